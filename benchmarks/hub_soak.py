"""The hub's soak (issue 17): two kiosks and a greeter's tablet of one branch, each its own
process with its own data folder, issuing at once against the branch's hub while the hub
goes away, then a reconciliation of every device's journal against the hub's ledger.

Phases, each with its own mock API (``kiosk mock-api``), hub and fresh devices:

- ``sqlite``: one hub (``kiosk relay``, SQLite), killed -9 ``--kills`` times while the
  devices issue, each time started again on the same port after ``--down`` seconds;
- ``redis``: two hub replicas on one ``redis-server`` (AOF, ``appendfsync always``), the
  kiosks on one replica and the tablet on the other, Redis killed -9 and started again
  ``--redis-restarts`` times;
- ``redis-volatile``: the same on a Redis without persistence (a restart forgets every
  counter and the ledger): the replicas' floors must still keep every number unique. Its
  ledger is not reconciled (a Redis without persistence loses the ledger: development
  only, packaging/README.md).

Each device issues its share of ``--tickets`` (per phase) across two queues (prefixes A
and B), one customer after the other (the use case, no printing), then waits for its
outbox to drain and writes what its journal holds. Reconciled and printed, each by count
(all must be 0, exit status 1 otherwise):

- issued twice: a ticket number attempted by two devices, or twice by one, that day;
- missing from the ledger: a ticket the customer may be queued with (issued, uncertain)
  that the hub's ``GET /v1/branches/{b}/tickets`` does not list as that device's;
- not in the offline format: a number taken while the hub was away (``offline``) that is
  not ``{prefix}{kiosk}-{seq:03d}``, or a shared one that is not ``{prefix}-{seq:03d}``;
- reports undelivered: reports still in a device's outbox after the drain (or refused).

Figures that explain the rest are printed too (numbers shared and offline, blocks leased,
faults, tickets a second).

    .venv/bin/python benchmarks/hub_soak.py [--tickets 3000] [--kills 3] [--down 1.5]
        [--redis-restarts 1] [--pace 0.02] [--phases sqlite,redis,redis-volatile]
        [--work DIR] [--json]

The faults are spread over the run by its progress (the n-th of k when n/(k+1) of the
tickets are out), so the devices number offline while the hub is away and share numbers
again once it is back.

tests/test_hub_soak.py runs a smaller one; the figures of a full run are in the README.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _processes import RedisServer, RelayProcess

from kiosk.mock import default_scenario_path, mock_process

BRANCH = "652720d479497a1b62df288b"
ZONE = "America/Santiago"
KEY = "mock.kiosk.key"
QUEUES = {"652a1ae848880e168884e49b": "A", "652a1ae848880e168884e4a0": "B"}
DEVICES = (("k1", "kiosk"), ("k2", "kiosk"), ("g1", "tablet"))
"""The branch's devices: two kiosks and the greeter's tablet (ids double as kiosk.id)."""
FORMAT = "{prefix}-{seq:03d}"
OFFLINE = "{prefix}{kiosk}-{seq:03d}"
FIGURES = ("issued twice", "missing from the ledger", "not in the offline format",
           "reports undelivered")
DRAIN_S = 90.0
"""How long a device waits for its outbox to drain after its last ticket."""


# --------------------------------------------------------------------------- a device


async def device(config: Path, count: int, go: Path, out: Path, pace_s: float) -> None:
    """One device's core: say it is ready (``out`` with ``.ready``), wait for ``go``,
    issue ``count`` tickets ``pace_s`` apart (its progress in ``out`` with ``.progress``),
    drain its outbox, write ``out``."""
    from kiosk.config import load_config, load_hub_token
    from kiosk.core.runtime import open_runtime
    from kiosk.hub.client import HubClient, RetryWait
    cfg = load_config(config)
    hub = HubClient.from_config(cfg, load_hub_token(cfg, str(config)))
    rt = open_runtime(cfg, KEY, hub=hub)
    assert rt.leases is not None and rt.reports is not None
    rt.leases.retry = rt.reports.retry = RetryWait(initial_s=0.1, max_s=1.0, jitter=0.2)
    await rt.monitor.poll_once()
    rt.start_hub()
    out.with_suffix(".ready").touch()
    while not await asyncio.to_thread(go.exists):  # noqa: ASYNC110 (the others start together)
        await asyncio.sleep(0.01)
    started = time.monotonic()
    outcomes: Counter[str] = Counter()
    queues = list(QUEUES)
    for i in range(count):
        res = await rt.service.issue(queues[i % len(queues)], print_ticket=False)
        outcomes[res.outcome.value] += 1
        await rt.service.settle()
        if i % 10 == 9:
            out.with_suffix(".progress").write_text(str(i + 1), encoding="ascii")
        await asyncio.sleep(pace_s)
    issued_s = time.monotonic() - started
    deadline = time.monotonic() + DRAIN_S
    while rt.journal.outbox_size() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    rows = [[r.day, r.ticket_id, r.numbering, r.outcome] for r in rt.journal.rows()]
    result = {"device": cfg.kiosk.id, "rows": rows, "outcomes": dict(outcomes),
              "outbox": rt.journal.outbox_size(), "refused": rt.journal.outbox_size(True),
              "leases": rt.leases.leases, "issued_s": issued_s}
    await rt.aclose()
    await asyncio.to_thread(out.write_text, json.dumps(result), encoding="utf-8")


# --------------------------------------------------------------------------- processes


def private(path: Path, text: str) -> Path:
    path.touch(mode=0o600)
    path.write_text(text + "\n", encoding="utf-8")
    return path


@contextlib.contextmanager
def mock(folder: Path) -> Iterator[str]:
    """The mock API in its own process, its two queues never out of agents."""
    scenario = yaml.safe_load(default_scenario_path().read_text(encoding="utf-8"))
    for q in scenario["branches"][0]["queues"]:
        if q["id"] in QUEUES:
            q["agents"] = 10**6
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario), encoding="utf-8")
    with mock_process(path) as url:
        yield url


def hub_configs(folder: Path, store: str, replicas: int) -> tuple[list[Path], dict[str, Path],
                                                                    str]:
    """The replicas' ``relay.yaml`` (their own data folders), the devices' token files,
    and the fleet token."""
    tokens = {d: private(folder / f"device-{d}", secrets.token_urlsafe(32)) for d, _ in DEVICES}
    fleet = secrets.token_urlsafe(32)
    relay = {"webhook_secret_file": str(private(folder / "secret", secrets.token_hex(32))),
             "fleet_token_file": str(private(folder / "fleet", fleet)), "store": store,
             "devices": [{"id": d, "branch": BRANCH, "role": role,
                          "token_file": str(tokens[d])} for d, role in DEVICES],
             "branches": [{"id": BRANCH, "timezone": ZONE}]}
    configs = []
    for n in range(replicas):
        path = folder / f"relay-{n}.yaml"
        path.write_text(yaml.safe_dump({"kiosk": {"data_dir": str(folder / f"hub-{n}")},
                                        "relay": relay}), encoding="utf-8")
        configs.append(path)
    return configs, tokens, fleet


def device_config(folder: Path, kiosk_id: str, mode: str, mock_url: str, hub_url: str,
                  token: Path) -> Path:
    path = folder / f"{kiosk_id}.yaml"
    path.write_text(yaml.safe_dump({
        "api": {"base_url": mock_url}, "branch": BRANCH,
        "kiosk": {"id": kiosk_id, "data_dir": str(folder / f"data-{kiosk_id}"),
                  "timezone": ZONE, "mode": mode},
        "queues": [{"id": q, "prefix": p} for q, p in QUEUES.items()],
        "numbering": {"format": FORMAT, "offline_format": OFFLINE, "block": 10},
        "printer": {"type": "none"},
        "hub": {"url": hub_url, "token_file": str(token)}}), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- a phase


def progress(outs: dict[str, Path]) -> int:
    """Tickets the devices have issued so far (to tens)."""
    done = 0
    for out in outs.values():
        with contextlib.suppress(OSError, ValueError):
            done += int(out.with_suffix(".progress").read_text(encoding="ascii") or 0)
    return done


def run_phase(name: str, work: Path, tickets: int, kills: int, down_s: float,
              redis_restarts: int, pace_s: float) -> dict[str, Any]:
    """One phase: its hub(s), three devices issuing ``tickets`` in all, the faults."""
    folder = work / name
    folder.mkdir(parents=True)
    redis: RedisServer | None = None
    store = "sqlite"
    if name != "sqlite":
        redis = RedisServer(folder / "redis", persist=name == "redis")
        redis.start()
        store = redis.url
    configs, tokens, fleet = hub_configs(folder, store, 1 if redis is None else 2)
    hubs = [RelayProcess(c, folder / f"hub-{n}.log") for n, c in enumerate(configs)]
    faults: list[str] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with mock(folder) as mock_url:
            for hub in hubs:
                hub.start()
            go = folder / "go"
            outs = {}
            for n, (kiosk_id, role) in enumerate(DEVICES):
                mode = "tablet" if role == "tablet" else "kiosk"
                hub_url = hubs[(n // 2) % len(hubs)].url  # kiosks on one, the tablet on the other
                cfg = device_config(folder, kiosk_id, mode, mock_url, hub_url, tokens[kiosk_id])
                outs[kiosk_id] = folder / f"{kiosk_id}.json"
                count = tickets // len(DEVICES) + (1 if n < tickets % len(DEVICES) else 0)
                procs.append(subprocess.Popen(
                    [sys.executable, __file__, "device", str(cfg), str(count), str(go),
                     str(outs[kiosk_id]), str(pace_s)], stdout=subprocess.DEVNULL,
                    stderr=(folder / f"{kiosk_id}.log").open("wb")))
            deadline = time.monotonic() + 120
            while not all(o.with_suffix(".ready").exists() for o in outs.values()):
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise RuntimeError("a device did not start: " + " | ".join(
                        (folder / f"{d}.log").read_text(errors="replace")[-800:]
                        for d in outs))
                time.sleep(0.05)
            time.sleep(1.0)  # their first blocks leased
            started = time.monotonic()
            go.touch()
            fault_plan = (["kill"] * kills if redis is None else ["redis"] * redis_restarts)
            for n, fault in enumerate(fault_plan):  # spread over the run, by its progress
                due = tickets * (n + 1) // (len(fault_plan) + 1)
                while progress(outs) < due and any(p.poll() is None for p in procs):
                    time.sleep(0.05)
                if all(p.poll() is not None for p in procs):
                    break
                at = f"at {progress(outs)} tickets ({time.monotonic() - started:.1f} s)"
                away = time.monotonic()
                if fault == "kill":
                    hubs[0].kill()
                    time.sleep(down_s)
                    hubs[0].start()
                    faults.append(f"kill -9 hub {at}, back after "
                                  f"{time.monotonic() - away:.1f} s")
                else:
                    assert redis is not None
                    redis.kill()
                    time.sleep(down_s)
                    redis.start()
                    faults.append(f"restart redis {at}, back after "
                                  f"{time.monotonic() - away:.1f} s")
            for p in procs:
                p.wait(timeout=600 + DRAIN_S)
            elapsed = time.monotonic() - started
            results = {}
            for kiosk_id, out in outs.items():
                if not out.exists():
                    log = (folder / f"{kiosk_id}.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"device {kiosk_id} wrote no result: {log}")
                results[kiosk_id] = json.loads(out.read_text(encoding="utf-8"))
            days = sorted({row[0] for r in results.values() for row in r["rows"]})
            ledger: dict[str, dict[str, str]] = {}
            for day in days:
                r = httpx.get(f"{hubs[-1].url}/v1/branches/{BRANCH}/tickets",
                              params={"date": day}, headers={"Authorization": f"Bearer {fleet}"},
                              timeout=30, trust_env=False)
                r.raise_for_status()
                ledger[day] = {t["ticketId"]: t["device"] for t in r.json()["tickets"]}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for hub in hubs:
            hub.stop()
        if redis is not None:
            redis.stop()
    return reconcile(name, results, ledger, faults, elapsed)


def reconcile(name: str, results: dict[str, dict[str, Any]],
              ledger: dict[str, dict[str, str]], faults: list[str],
              elapsed: float) -> dict[str, Any]:
    """The phase's figures (see the module's docstring)."""
    seen: Counter[tuple[str, str]] = Counter()
    numbering: Counter[str] = Counter()
    bad_format: list[str] = []
    missing: list[str] = []
    outcomes: Counter[str] = Counter()
    undelivered = 0
    recovered = 0
    for kiosk_id, r in results.items():
        undelivered += r["outbox"] + r["refused"]
        outcomes.update(r["outcomes"])
        prefixes = "|".join(QUEUES.values())
        shared = re.compile(rf"(?:{prefixes})-\d{{3,}}")
        offline = re.compile(rf"(?:{prefixes}){re.escape(kiosk_id)}-\d{{3,}}")
        offline_seen = False
        for day, ticket, how, outcome in r["rows"]:
            offline_seen = offline_seen or how == "offline"
            if offline_seen and how == "shared":
                recovered += 1
            seen[(day, ticket)] += 1
            numbering[how] += 1
            if not (offline if how == "offline" else shared).fullmatch(ticket):
                bad_format.append(f"{kiosk_id} {how} {ticket}")
            if outcome in ("issued", "uncertain") and \
                    ledger.get(day, {}).get(ticket) != kiosk_id:
                missing.append(f"{kiosk_id} {day} {ticket}")
    twice = [f"{d} {t} x{n}" for (d, t), n in seen.items() if n > 1]
    volatile = name == "redis-volatile"
    figures = {"issued twice": len(twice),
               "missing from the ledger": 0 if volatile else len(missing),
               "not in the offline format": len(bad_format),
               "reports undelivered": 0 if volatile else undelivered}
    return {"phase": name, "figures": figures, "examples": {
                "issued twice": twice[:5], "missing": missing[:5], "format": bad_format[:5]},
            "tickets": sum(seen.values()), "numbering": dict(numbering),
            "shared after offline": recovered,
            "outcomes": dict(outcomes),
            "leases": {k: r["leases"] for k, r in results.items()},
            "not reconciled (volatile Redis)": len(missing) if volatile else 0,
            "faults": faults, "elapsed_s": round(elapsed, 1),
            "tickets_per_s": round(sum(seen.values()) / max(elapsed, 0.001), 1)}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "device":
        config, count, go, out, pace = sys.argv[2:7]
        asyncio.run(device(Path(config), int(count), Path(go), Path(out), float(pace)))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tickets", type=int, default=3000, help="tickets per phase, all devices")
    ap.add_argument("--kills", type=int, default=3, help="hub kill -9s (sqlite phase)")
    ap.add_argument("--down", type=float, default=1.5, help="seconds the hub stays away")
    ap.add_argument("--redis-restarts", type=int, default=1)
    ap.add_argument("--pace", type=float, default=0.02,
                    help="seconds between one device's customers")
    ap.add_argument("--phases", default="sqlite,redis,redis-volatile")
    ap.add_argument("--work", type=Path, help="keep the run's files here")
    ap.add_argument("--json", action="store_true", help="the figures as JSON")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="hub-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    phases = [run_phase(p, work, args.tickets, args.kills, args.down, args.redis_restarts,
                        args.pace)
              for p in args.phases.split(",")]
    bad = any(any(p["figures"].values()) for p in phases)
    if args.json:
        print(json.dumps(phases, indent=1))
    else:
        for p in phases:
            print(f"phase {p['phase']}: {p['tickets']} tickets in {p['elapsed_s']} s "
                  f"({p['tickets_per_s']}/s), numbering {p['numbering']} "
                  f"({p['shared after offline']} shared again after offline), outcomes "
                  f"{p['outcomes']}, blocks leased {p['leases']}")
            print(f"faults: {'; '.join(p['faults']) or 'none'}")
            for name in FIGURES:
                print(f"  {name:<28}{p['figures'][name]}")
            if p["not reconciled (volatile Redis)"]:
                print(f"  (not reconciled: {p['not reconciled (volatile Redis)']} reports "
                      "the volatile Redis forgot)")
            if any(p["figures"].values()):
                print(f"  examples: {p['examples']}")
        print("hub soak: " + ("FAILED" if bad else "OK"))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
