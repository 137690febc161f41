"""The soak: many customers through the real core process, with faults everywhere, then a
reconciliation of what the API accepted, what the journal says and what was printed.

Set-up, each piece in its own process as in a lobby:

- the mock Videsk API (``kiosk mock-api``) injecting ``--fault-rate`` faults on every
  endpoint: 422, 5xx, a proxy's HTML page, answers slower than ``api.timeout_s``,
  connections dropped before and *after* the ticket was taken, 201s with an empty,
  unreadable or wrong-shaped body, trickled answers, queue lists with bad items;
- the printer: the emupos emulator behind a TCP proxy that cuts some jobs mid-way; paper
  out and offline switched on and off through the emulator's control API;
- the core (``kiosk core``, started exactly as ``kiosk run`` starts it), killed with
  SIGKILL at ``--kills`` random moments (during a tap, its printing, between taps, or
  in the core's start-up) and started again each time (as systemd would); this script
  plays the UI over the link, one customer after another (half of them tap while the
  last ticket is still printing).

Then it reconciles the mock's record (``GET /_mock/state``), the journal (the SQLite file,
opened read-only) and the paper (the emulator's receipts) and prints each figure; every
one must be 0 (exit status 1 otherwise):

- lost: tickets the API accepted that the journal does not hold as issued, uncertain or
  unknown (the customer is in the queue and the kiosk says otherwise);
- accepted twice: one ticketId taken twice by the API on one day;
- printed, not accepted: a number on paper the API never took;
- issued, not accepted: the journal (or the customer's screen) says issued, the API never
  took it;
- told not queued, but queued: the customer was told to try again (not ``uncertain``)
  while the API had taken the ticket;
- uncertain, not ambiguous: the journal says ``uncertain`` although every answer the API
  gave for that ticket reached the kiosk whole;
- unknown, no kill: ``unknown`` (interrupted) tickets not explained by a kill (each kill
  may leave at most the one ticket that was in flight);
- printed per journal, no paper: the journal says printed, no receipt carries the number;
- left waiting: a customer with no answer (or paper) from a live core in ``--patience``
  seconds (the core is then killed and started again, as a watchdog would);
- unplanned restarts: the link to the core ended with no kill (the UI would exit 1 and
  systemd restart the kiosk);
- errors: a tap answered with an error instead of an outcome (the core failed it).

    .venv/bin/python benchmarks/soak.py [--customers 10000] [--kills 20] [--seed 1]

The full run takes ~19 min on a busy 2-core machine; tests/test_soak.py runs 500
customers and 3 kills with short timeouts (~1 min).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk.link.client import CoreProcess, CoreUnavailable, RemoteCore
from kiosk.link.spawn import start_core
from kiosk.mock import mock_process
from kiosk.mock.scenario import Scenario
from kiosk.store.journal import JOURNAL_FILE

BRANCH = "652720d479497a1b62df288b"
KEY = "mock.kiosk.key"
QUEUES = [  # id, prefix, agents, service time (s): one queue runs out of agents now and then
    ("652a1ae848880e168884e49b", "A", 10_000, (0.1, 0.5)),
    ("652a1ae848880e168884e4a0", "B", 10_000, (0.1, 0.5)),
    ("652a1ae848880e168884e4a1", "C", 2, (0.05, 0.3)),
    ("652a1ae848880e168884e4a2", "D", 10_000, (0.1, 0.5)),
]
LANGS = ("es", "en", "pt")
FAULT_MIX: dict[Any, float] = {
    # shares of the fault rate (they add up to 1)
    422: 0.25, 500: 0.08, 502: 0.04, 503: 0.08, "html": 0.05, "slow": 0.05,
    "drop": 0.10, "accept_drop": 0.12, "empty": 0.08, "garbage": 0.08,
    # the hostile kinds, where the mock has them (see available_faults)
    "trickle": 0.04, "malformed": 0.04,
}
QUEUE_FAULTS = ("bad_queue_items",)
"""Faults only the queue list gets (where the mock has them)."""
PRINTER_FAULTS = ("paper-out", "offline")
NUMBER = re.compile(r"^[A-Z]-\d{3,}$")


def available_faults() -> set[str]:
    """The fault kinds this version of the mock knows."""
    from typing import get_args

    from kiosk.mock.scenario import Answer
    return {str(a) for a in get_args(Answer)}


# --------------------------------------------------------------------------- the printer


class CuttingProxy:
    """A TCP proxy to the printer that cuts a share of the jobs mid-way (after the first
    status query, part-way into the ticket's bytes)."""

    def __init__(self, target: int, cut_rate: float, seed: int) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.target = target
        self.cut_rate = cut_rate
        self.rng = random.Random(seed)
        self.cuts = 0
        self.enabled = True
        threading.Thread(target=self._accept, daemon=True, name="cutting-proxy").start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            cut = self.rng.randint(12, 900) if (self.enabled
                                                and self.rng.random() < self.cut_rate) else None
            threading.Thread(target=self._serve, args=(client, cut), daemon=True).start()

    def _serve(self, client: socket.socket, cut_after: int | None) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        done = threading.Event()

        def back() -> None:  # the printer's status replies
            with contextlib.suppress(OSError):
                while data := upstream.recv(4096):
                    client.sendall(data)
            done.set()

        threading.Thread(target=back, daemon=True).start()
        sent = 0
        with contextlib.suppress(OSError):
            while data := client.recv(4096):
                if cut_after is not None and sent + len(data) > cut_after:
                    upstream.sendall(data[:cut_after - sent])
                    self.cuts += 1
                    break
                upstream.sendall(data)
                sent += len(data)
        for s in (client, upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        done.wait(5)

    def close(self) -> None:
        self.sock.close()


# --------------------------------------------------------------------------- the core


@dataclass
class Customer:
    """One customer as the UI saw it."""

    index: int
    queue: str
    outcome: str = ""
    """The outcome shown, or ``core gone`` (killed) / ``left waiting``."""
    ticket_id: str = ""
    uncertain: bool = False
    printed: bool | None = None
    seconds: float = 0.0
    """From the tap to the answer (the paper is not waited for)."""
    answered: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Run:
    """What happened during the run."""

    customers: list[Customer] = field(default_factory=list)
    kills: list[datetime] = field(default_factory=list)
    """When each SIGKILL was sent (UTC)."""
    planned_kills: int = 0
    startup_kills: int = 0
    """Planned kills that hit the core while it was starting."""
    kill_in_flight: int = 0
    """Kills that caught a customer's request in flight."""
    restarts: int = 0
    unplanned: list[str] = field(default_factory=list)
    """Times the link ended with no kill (the UI exits 1, systemd restarts the kiosk)."""
    printer_faults: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


class Core:
    """The core process, started as ``kiosk run`` starts it, and the UI's link to it."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.remote: RemoteCore | None = None
        self.kills: list[datetime] = []
        """When each SIGKILL was sent (UTC)."""

    async def start(self, kill_after: float | None = None) -> RemoteCore:
        """Start the core; ``kill_after``: kill it that many seconds into its start-up
        (opening the journal, recovering, arming numbers) and start it again."""
        # The core's stderr (its log) goes to a file: start_core passes ours on, so it is
        # pointed at the file for the moment of the spawn.
        with self.log.open("ab") as log, _stderr_to(log.fileno()):
            proc, sock = start_core(["--config", str(self.config)])
        self.proc = proc
        self.remote = await CoreProcess(proc, sock).connect()
        if kill_after is not None:
            await asyncio.sleep(kill_after)
            self.kills.append(datetime.now(UTC))
            await self.kill()
            return await self.start()
        await asyncio.wait_for(self.remote.ready(), 60)
        return self.remote

    async def kill_for_restart(self) -> None:
        """Kill the core between two customers (noted), to kill the next start-up."""
        self.kills.append(datetime.now(UTC))
        await self.kill()

    def status(self) -> int | None:
        assert self.proc is not None
        return self.proc.poll()

    async def kill(self) -> None:
        """SIGKILL, as a power cut or the OOM killer would."""
        assert self.proc is not None and self.remote is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.proc.wait)
        await self.remote.aclose()

    async def stop(self) -> int:
        """Close the link: the core finishes what it is doing and exits."""
        assert self.proc is not None and self.remote is not None
        await self.remote.aclose()
        return await asyncio.to_thread(self.proc.wait, 60)


@contextlib.contextmanager
def _stderr_to(fd: int) -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(fd, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


async def serve_customer(remote: RemoteCore, c: Customer, lang: str) -> None:
    """One tap: the answer (noted on ``c``), then the paper."""
    t0 = time.perf_counter()
    try:
        r = await remote.issue(c.queue, language=lang)
    except CoreUnavailable as exc:
        # The link closed (killed), or the core answered with an error (a bug here)
        c.outcome = "core gone" if remote.closed.done() else f"core error: {exc}"
        return
    except Exception as exc:  # anything else the UI would have to show: a bug
        c.outcome = f"UI error: {exc!r}"
        return
    finally:
        c.seconds = time.perf_counter() - t0
        c.answered.set()
    c.outcome, c.ticket_id, c.uncertain = r.outcome.value, r.ticket_id, r.uncertain
    c.printed = r.printed
    if r.printing is not None:
        with contextlib.suppress(CoreUnavailable):  # killed while printing: unknown
            c.printed, _ = await r.printing


async def drive(core: Core, emu_api: str, n: int, kills: int, patience: float,
                rng: random.Random) -> Run:
    run = Run()
    kill_at = set(rng.sample(range(5, n), min(kills, max(0, n - 5))))
    remote = await core.start()
    latencies: list[float] = []
    printer_fault: str | None = None
    printing: set[asyncio.Future[None]] = set()
    t_start = time.perf_counter()
    async with httpx.AsyncClient(base_url=emu_api, timeout=10) as emu:
        for i in range(n):
            # The printer: paper out or offline for a few customers now and then.
            if printer_fault is None and rng.random() < 0.01:
                printer_fault = rng.choice(PRINTER_FAULTS)
                run.printer_faults[printer_fault] += 1
                (await emu.put(f"/devices/front/faults/{printer_fault}")).raise_for_status()
            elif printer_fault is not None and rng.random() < 0.3:
                (await emu.delete(f"/devices/front/faults/{printer_fault}")).raise_for_status()
                printer_fault = None
            if remote.closed.done():  # the link ended by itself: the UI would exit 1
                run.unplanned.append(f"before customer {i} (core status {core.status()})")
                await core.kill()
                remote = await core.start()
                run.restarts += 1
            c = Customer(i, rng.choice(QUEUES)[0])
            run.customers.append(c)
            task = asyncio.ensure_future(serve_customer(remote, c, rng.choice(LANGS)))
            if i in kill_at:
                # A random moment within a customer's usual time (or just after it), or
                # (one in four) right after: in the next start-up.
                run.planned_kills += 1
                if rng.random() < 0.25:
                    await asyncio.wait({task}, timeout=patience)
                    await core.kill_for_restart()
                    remote = await core.start(kill_after=rng.uniform(0.0, 1.5))
                    run.startup_kills += 1
                    run.restarts += 2
                    continue
                typical = statistics.median(latencies) if latencies else 0.05
                await asyncio.sleep(rng.uniform(0, 2 * typical))
                run.kill_in_flight += not task.done()
                core.kills.append(datetime.now(UTC))
                await core.kill()
                await task
                remote = await core.start()
                run.restarts += 1
                continue
            try:
                # The answer; the paper too for half of the customers (for the others,
                # the next one taps while it prints).
                await asyncio.wait_for(c.answered.wait(), patience)
                if rng.random() < 0.5:
                    await asyncio.wait_for(asyncio.shield(task), patience)
                else:
                    printing.add(task)
                    task.add_done_callback(printing.discard)
            except TimeoutError:
                c.outcome = "left waiting"
                task.cancel()
                core.kills.append(datetime.now(UTC))
                await core.kill()
                remote = await core.start()
                run.restarts += 1
                continue
            latencies.append(c.seconds)
            if i % 500 == 499:
                print(f"  {i + 1} customers, {time.perf_counter() - t_start:.0f} s",
                      flush=True)
        if printer_fault is not None:
            await emu.delete(f"/devices/front/faults/{printer_fault}")
        if printing:
            await asyncio.wait(printing, timeout=patience)
    run.seconds = time.perf_counter() - t_start
    run.kills = core.kills
    status = await core.stop()
    if status != 0:
        print(f"  note: the core exited with status {status} at the end", flush=True)
    return run


# --------------------------------------------------------------------------- reconciling


@dataclass
class Figures:
    lost: list[str] = field(default_factory=list)
    accepted_twice: list[str] = field(default_factory=list)
    printed_not_accepted: list[str] = field(default_factory=list)
    issued_not_accepted: list[str] = field(default_factory=list)
    told_not_queued_but_queued: list[str] = field(default_factory=list)
    uncertain_not_ambiguous: list[str] = field(default_factory=list)
    unknown_no_kill: list[str] = field(default_factory=list)
    printed_per_journal_no_paper: list[str] = field(default_factory=list)
    left_waiting: list[str] = field(default_factory=list)
    unplanned_restarts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def items(self) -> list[tuple[str, list[str]]]:
        return [(k.replace("_", " "), v) for k, v in vars(self).items()]

    def ok(self) -> bool:
        return not any(v for _, v in self.items())


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Every row of the journal, opened read-only."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM tickets ORDER BY row_id")]
    finally:
        db.close()


def printed_numbers(receipts_dir: Path) -> Counter[str]:
    """The ticket numbers on paper: lines of the receipts' text that are a number."""
    out: Counter[str] = Counter()
    for txt in receipts_dir.glob("*.txt"):
        for line in txt.read_text(encoding="utf-8", errors="replace").splitlines():
            if NUMBER.match(line.strip()):
                out[line.strip()] += 1
    return out


def reconcile(state: dict[str, Any], rows: list[dict[str, Any]], paper: Counter[str],
              run: Run) -> Figures:
    f = Figures()
    accepted: Counter[tuple[str, str]] = Counter()
    for t in state["tickets"]:
        day = (t.get("integrationData") or {}).get("day", "?")
        accepted[(day, t["ticketId"])] += 1
    accepted_ids = {tid for _, tid in accepted}
    journal = {(r["day"], r["ticket_id"]): r for r in rows}
    by_ticket: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for e in state["enqueues"]:
        by_ticket[e["ticketId"]].append(e)

    for key, count in sorted(accepted.items()):
        r = journal.get(key)
        if r is None or r["outcome"] not in ("issued", "uncertain", "unknown"):
            f.lost.append(f"{key[1]} ({r['outcome'] if r else 'not in the journal'})")
        if count > 1:
            f.accepted_twice.append(f"{key[1]} x{count}")
    f.printed_not_accepted = sorted(n for n in paper if n not in accepted_ids)
    for key, r in journal.items():
        if r["outcome"] == "issued" and key not in accepted:
            f.issued_not_accepted.append(f"{key[1]} (journal: {r['detail'] or 'issued'})")
        if r["outcome"] == "issued" and r["printed"] and key[1] not in paper:
            f.printed_per_journal_no_paper.append(key[1])
        if r["outcome"] == "uncertain":
            seen = by_ticket.get(key[1], [])
            if seen and all(e["delivered"] for e in seen):
                f.uncertain_not_ambiguous.append(
                    f"{key[1]} (answers: {', '.join(str(e['answer']) for e in seen)}; "
                    f"{r['detail']})")
    # Each kill may leave the one ticket in flight unknown: the first kill after it.
    explained: set[int] = set()
    for r in rows:
        if r["outcome"] != "unknown":
            continue
        created = datetime.fromisoformat(r["created_at"])
        k = next((i for i, t in enumerate(run.kills) if t >= created), None)
        if k is None or k in explained:
            f.unknown_no_kill.append(f"{r['ticket_id']} (created {r['created_at']})")
        else:
            explained.add(k)
    f.unplanned_restarts = list(run.unplanned)
    for c in run.customers:
        if c.outcome.startswith(("core error", "UI error")):
            f.errors.append(f"customer {c.index}: {c.outcome}")
        if c.outcome == "left waiting":
            f.left_waiting.append(f"customer {c.index}")
        if not c.ticket_id:
            continue
        taken = c.ticket_id in accepted_ids
        if c.outcome == "issued" and not taken:
            f.issued_not_accepted.append(f"{c.ticket_id} (shown to customer {c.index})")
        if c.outcome not in ("issued", "core gone") and not c.uncertain and taken:
            f.told_not_queued_but_queued.append(f"{c.ticket_id} (told {c.outcome})")
    return f


# --------------------------------------------------------------------------- set-up


def write_files(work: Path, seed: int, fault_rate: float, timeout_s: float,
                without: list[str]) -> tuple[Path, Path]:
    """The mock's scenario and the API key file; returns their paths."""
    known = available_faults() - set(without)
    mix = {k: v for k, v in FAULT_MIX.items() if str(k) in known}
    total = sum(mix.values())
    rates = {k: round(fault_rate * v / total, 6) for k, v in mix.items()}
    scenario: dict[str, Any] = {
        "api_keys": [KEY], "seed": seed,
        "branches": [{"id": BRANCH, "label": "Sucursal Soak", "name": "soak", "queues": [
            {"id": qid, "name": name, "agents": agents, "avg_wait": 2.0,
             "service_s": list(service)}
            for (qid, _, agents, service), name in zip(
                QUEUES, ["Atención a clientes", "Apertura de cuenta", "Créditos",
                         "Seguros"], strict=True)]}],
        # slow: past the client's timeout; trickle: each byte within it (only a total
        # deadline ends such an answer)
        "faults": {"rates": rates, "slow_s": round(timeout_s * 1.5, 3),
                   "trickle_s": round(timeout_s * 0.5, 3)},
    }
    for kind in QUEUE_FAULTS:
        if kind in known:
            scenario["faults"]["rates"][kind] = round(fault_rate * 0.3, 6)
    Scenario.model_validate(scenario)  # fail here, not in the mock's process
    sc_path = work / "scenario.yaml"
    sc_path.write_text(yaml.safe_dump(scenario, allow_unicode=True), encoding="utf-8")
    key = work / "api.key"
    key.write_text(KEY + "\n", encoding="utf-8")
    key.chmod(0o600)
    return sc_path, key


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def kiosk_config(work: Path, mock_url: str, key: Path, printer_port: int,
                 timeout_s: float) -> Path:
    cfg = {
        "api": {"base_url": mock_url, "timeout_s": timeout_s, "key_file": str(key)},
        "branch": BRANCH,
        "kiosk": {"id": "soak", "data_dir": str(work / "data"), "timezone": "UTC"},
        "queues": [{"id": qid, "prefix": prefix} for qid, prefix, _, _ in QUEUES],
        "printer": {"type": "network", "host": "127.0.0.1", "port": printer_port,
                    "profile": "TM-T20II", "timeout_s": 2},
        "ticket": {"header": ["Banco Soak"], "qr": "https://example.com/t/{ticketId}"},
        "ui": {"refresh_s": 2},
    }
    path = work / "kiosk.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return path


def _quiet_lost_links(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The UI's futures for a core that was killed end with CoreUnavailable, some never
    awaited (the paper of a ticket in flight): expected here, not worth a traceback."""
    if not isinstance(context.get("exception"), CoreUnavailable):
        loop.default_exception_handler(context)


async def soak(args: argparse.Namespace, work: Path) -> int:
    from tests.emulator import Emulator
    asyncio.get_running_loop().set_exception_handler(_quiet_lost_links)
    rng = random.Random(args.seed)
    sc_path, key = write_files(work, args.seed, args.fault_rate, args.api_timeout,
                               args.without)
    t0 = time.perf_counter()
    with (work / "mock.log").open("wb") as mock_log, \
            mock_process(sc_path, log=mock_log) as mock_url, \
            Emulator(_mkdir(work / "emupos")) as emu:
        emu.wait_ready()
        proxy = CuttingProxy(emu.port, args.cut_rate, args.seed)
        config = kiosk_config(work, mock_url, key, proxy.port, args.api_timeout)
        core = Core(config, work / "core.log")
        print(f"soak: {args.customers} customers, {args.kills} kills, seed {args.seed}, "
              f"faults {args.fault_rate:.0%} (api.timeout_s {args.api_timeout}"
              f"{', without ' + ', '.join(args.without) if args.without else ''}), "
              f"work folder {work}", flush=True)
        run = await drive(core, emu.api, args.customers, args.kills, args.patience, rng)
        proxy.enabled = False
        state = (await asyncio.to_thread(httpx.get, mock_url + "/_mock/state", timeout=60)).json()
        await asyncio.sleep(0.5)  # the emulator ends a job after 300 ms idle
        paper = printed_numbers(work / "emupos" / "receipts")
        rows = read_journal(work / "data" / JOURNAL_FILE)
        proxy.close()
    figures = reconcile(state, rows, paper, run)
    report(args, run, state, rows, paper, proxy.cuts, figures, time.perf_counter() - t0)
    return 0 if figures.ok() else 1


def report(args: argparse.Namespace, run: Run, state: dict[str, Any],
           rows: list[dict[str, Any]], paper: Counter[str], cuts: int, figures: Figures,
           total_s: float) -> None:
    outcomes = Counter(c.outcome.split(":")[0] for c in run.customers)
    journal = Counter(r["outcome"] for r in rows)
    answers = Counter(str(e["answer"]) for e in state["enqueues"])
    served = [c.seconds for c in run.customers if c.outcome not in ("core gone",
                                                                    "left waiting")]
    print(f"customers        {len(run.customers)} in {run.seconds:.0f} s "
          f"({len(run.customers) / max(run.seconds, 1e-9):.1f}/s; whole soak {total_s:.0f} s)")
    if len(served) > 1:
        q = statistics.quantiles(served, n=100)
        print(f"per customer     p50 {q[49] * 1000:.0f} ms, p95 {q[94] * 1000:.0f} ms, "
              f"max {max(served) * 1000:.0f} ms (tap to answer, through the link)")
    print(f"kills            {run.planned_kills} (in flight {run.kill_in_flight}, "
          f"in start-up {run.startup_kills}); "
          f"all SIGKILLs {len(run.kills)}, restarts {run.restarts}")
    print(f"printer faults   {dict(run.printer_faults)}, jobs cut {cuts}")
    print(f"shown            {dict(sorted(outcomes.items()))}")
    print(f"journal          {dict(sorted(journal.items()))}")
    print(f"API enqueues     {len(state['enqueues'])}: {dict(sorted(answers.items()))}")
    print(f"API accepted     {len(state['tickets'])}; numbers on paper {len(paper)} "
          f"({sum(paper.values())} prints)")
    print("reconciliation (all must be 0):")
    for name, items in figures.items():
        more = f"  e.g. {'; '.join(items[:5])}" if items else ""
        print(f"  {name:<32} {len(items)}{more}")
    print("soak: " + ("OK" if figures.ok() else "FAILED"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--customers", type=int, default=10_000)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--fault-rate", type=float, default=0.10,
                   help="share of API requests that get a fault (default 0.10)")
    p.add_argument("--cut-rate", type=float, default=0.02,
                   help="share of print jobs cut mid-way (default 0.02)")
    p.add_argument("--api-timeout", type=float, default=2.0,
                   help="the kiosk's api.timeout_s; slow answers take 1.5 times this")
    p.add_argument("--without", action="append", default=[], metavar="KIND",
                   help="leave out one fault kind (repeatable), e.g. trickle")
    p.add_argument("--patience", type=float, default=30.0,
                   help="seconds a customer waits for the answer and the paper before the "
                        "core counts as hung (it is then killed and started again)")
    p.add_argument("--work", type=Path, help="keep the files in this new folder "
                   "(default: a temporary one)")
    args = p.parse_args()
    if args.work is not None:
        if args.work.exists() and any(args.work.iterdir()):
            p.error(f"--work {args.work}: not empty (the soak reconciles a fresh journal)")
        args.work.mkdir(parents=True, exist_ok=True)
        return asyncio.run(soak(args, args.work))
    with tempfile.TemporaryDirectory(prefix="kiosk-soak-") as tmp:
        return asyncio.run(soak(args, Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
