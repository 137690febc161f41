"""Cost of issuing a ticket through the whole use case, beside a bare httpx POST and
beside the floor the design allows.

All run against the same mock API (``kiosk mock-api`` in its own process) over loopback
HTTP, interleaved in the same run (so a noisy machine slows them alike):

- bare: one httpx POST;
- floor: one journal row committed and fsynced (SQLite, WAL, ``synchronous=FULL``, on a
  worker thread as the use case does), then the same POST. A number must be on disk as
  sent before its POST leaves (a power cut must never give it twice), so no design of
  this use case can be faster than this;
- use case: claim the armed number (that fsynced row), enqueue through the client, record
  the outcome (a second, unsynced transaction), arm the next number in the background.

- use case with a hub: the same, on a second kiosk whose config has a ``hub:`` (the relay
  in its own process, as on the branch's server): its numbers leased ahead in blocks, its
  report written to the outbox in the outcome's transaction and delivered in the
  background. The lease is never on the tap's path, so this costs what the use case
  costs, within its noise (issue 17).

Printing is excluded from the ratios and timed on its own.

Goals: use case p50 <= 1.15 x floor p50 (the bare POST is shown for reference); with a
hub, p50 <= 1.10 x the use case's without (the noise: the use case's two halves, odd and
even rounds, are printed beside it).

    .venv/bin/python benchmarks/bench_issue.py [--n 300]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml

from kiosk.api.client import API_PREFIX, USER_AGENT
from kiosk.config import config_from_mapping, load_display_token
from kiosk.core.runtime import open_runtime
from kiosk.hub.client import HubClient
from kiosk.mock import default_scenario_path, mock_process
from kiosk.printing import TicketPrinter
from kiosk.printing.model import TicketData

BRANCH = "652720d479497a1b62df288b"
QUEUE = "652a1ae848880e168884e49b"
KEY = "mock.kiosk.key"
GOAL = 1.15
"""Use case over floor, at the median."""
GOAL_HUB = 1.10
"""Use case with a hub over the use case without, at the median."""
HUB_DEVICES = {"bench": "kiosk", "demo-1": "kiosk"}
"""The devices :func:`bench_hub` knows (bench_issue's kiosk, bench_ui's demo kiosk)."""


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100)[int(p) - 1] if len(values) > 1 else values[0]


@contextlib.contextmanager
def bench_mock(tmp: str) -> Iterator[str]:
    """The mock API in its own process, with a queue that never runs out of agents."""
    scenario = yaml.safe_load(default_scenario_path().read_text(encoding="utf-8"))
    scenario["branches"][0]["queues"][0]["agents"] = 10**4  # never 406 during the bench
    path = Path(tmp) / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario), encoding="utf-8")
    with mock_process(path) as url:
        yield url


@contextlib.contextmanager
def bench_hub(tmp: str, timezone: str = "America/Santiago"
              ) -> Iterator[tuple[str, dict[str, Path]]]:
    """The relay as the branch's hub (``kiosk relay``, its own process), knowing the
    devices of :data:`HUB_DEVICES`: ``(url, {device id: its token file})``."""
    import secrets

    from kiosk.relay.server import relay_process
    folder = Path(tmp) / "hub"
    folder.mkdir()
    files: dict[str, Path] = {}

    def private(name: str, text: str) -> Path:
        path = folder / name
        path.touch(mode=0o600)
        path.write_text(text + "\n", encoding="utf-8")
        return path
    devices = []
    for device_id, role in HUB_DEVICES.items():
        files[device_id] = private(f"device-{device_id}", secrets.token_urlsafe(32))
        devices.append({"id": device_id, "branch": BRANCH, "role": role,
                        "token_file": str(files[device_id])})
    config = folder / "relay.yaml"
    config.write_text(yaml.safe_dump({"kiosk": {"data_dir": str(folder / "data")}, "relay": {
        "webhook_secret_file": str(private("secret", secrets.token_hex(32))),
        "devices": devices, "branches": [{"id": BRANCH, "timezone": timezone}]}}),
        encoding="utf-8")
    with relay_process(config) as proc:
        yield proc.url, files


def floor_journal(path: Path) -> sqlite3.Connection:
    """A journal as small as one can be, set up as the kiosk's is (WAL, fsync at commit)."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS sent (ticket TEXT PRIMARY KEY, at REAL)")
    return db


def write_row(db: sqlite3.Connection, ticket: str) -> None:
    """One row, committed and fsynced: the number is on disk before its POST leaves."""
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO sent VALUES (?, ?)", (ticket, time.time()))
    db.execute("COMMIT")


async def main(n: int) -> int:
    with tempfile.TemporaryDirectory() as tmp, bench_mock(tmp) as mock_url, \
            bench_hub(tmp) as (hub_url, hub_tokens):
        data = {
            "api": {"base_url": mock_url}, "branch": BRANCH,
            "kiosk": {"id": "bench", "data_dir": tmp, "timezone": "America/Santiago"},
            "queues": [{"id": QUEUE, "prefix": "A"}],
            "numbering": {"format": "{prefix}-{seq:05d}"},
            "printer": {"type": "file", "path": str(Path(tmp) / "paper.bin")},
            "ticket": {"header": ["Banco Ejemplo"], "qr": "https://example.com/t/{ticketId}"},
        }
        cfg = config_from_mapping(data, "(bench)")
        rt = open_runtime(cfg, KEY)
        hub_cfg = config_from_mapping({  # a second kiosk: its own journal, prefix H
            **data, "kiosk": {**data["kiosk"], "data_dir": str(Path(tmp) / "hub-kiosk")},
            "queues": [{"id": QUEUE, "prefix": "H"}],
            "hub": {"url": hub_url, "token_file": str(hub_tokens["bench"])}}, "(bench hub)")
        hub = HubClient.from_config(hub_cfg, load_display_token(hub_cfg, "(bench hub)"))
        rt_hub = open_runtime(hub_cfg, KEY, hub=hub)
        rt_hub.start_hub()
        bare = httpx.AsyncClient(base_url=mock_url + API_PREFIX, headers={
            "Authorization": f"Bearer {KEY}", "Content-Type": "application/json",
            "User-Agent": USER_AGENT})
        url = f"/branches/{BRANCH}/queues/{QUEUE}"
        await rt.monitor.poll_once()
        await rt_hub.monitor.poll_once()
        assert rt_hub.leases is not None and rt_hub.reports is not None
        async with asyncio.timeout(10):  # the hub's first block, before the first tap
            while not rt_hub.journal.lease_left("H"):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        floor_db = floor_journal(Path(tmp) / "floor.sqlite3")
        t_bare: list[float] = []
        t_floor: list[float] = []
        t_case: list[float] = []
        t_hub: list[float] = []
        for i in range(n + 20):  # 20 warm-up rounds
            t0 = time.perf_counter()
            r = await bare.post(url, json={"ticketId": f"B-{i:05d}",
                                           "integrationData": {"kiosk": "bench"}})
            t1 = time.perf_counter()
            await asyncio.to_thread(write_row, floor_db, f"F-{i:05d}")
            f = await bare.post(url, json={"ticketId": f"F-{i:05d}",
                                           "integrationData": {"kiosk": "bench"}})
            t2 = time.perf_counter()
            res = await rt.service.issue(QUEUE, print_ticket=False)
            t3 = time.perf_counter()
            await rt.service.settle()  # background work after the answer, between customers
            t4 = time.perf_counter()
            hub_res = await rt_hub.service.issue(QUEUE, print_ticket=False)
            t5 = time.perf_counter()
            await rt_hub.service.settle()
            assert r.status_code == f.status_code == 201 and res.outcome.value == "issued", \
                (r, f, res)
            assert hub_res.outcome.value == "issued", hub_res
            if i >= 20:
                t_bare.append(t1 - t0)
                t_floor.append(t2 - t1)
                t_case.append(t3 - t2)
                t_hub.append(t5 - t4)
        floor_db.close()
        shared = sum(1 for row in rt_hub.journal.rows() if row.numbering == "shared")
        async with asyncio.timeout(10):  # the reports, delivered in the background
            while rt_hub.journal.outbox_size() and not rt_hub.reports.failures:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        waiting = rt_hub.journal.outbox_size()
        blocks = rt_hub.leases.leases
        await rt_hub.aclose()

        printer = TicketPrinter(cfg.printer, cfg.ticket, timezone=cfg.kiosk.timezone)
        data = TicketData(ticket_id="A-042", queue_id=QUEUE, queue_name="Atención a clientes",
                          issued_at=datetime.now(UTC), branch_label="Sucursal Providencia",
                          wait_minutes=3.2)
        t_print = []
        for _ in range(50):
            t0 = time.perf_counter()
            printer.print_ticket(data)
            t_print.append(time.perf_counter() - t0)
        await bare.aclose()
        await rt.aclose()

    b50, f50, c50 = (statistics.median(t) for t in (t_bare, t_floor, t_case))
    ratio = c50 / f50
    print(f"issue a ticket over loopback, n={n} (interleaved, after 20 warm-up rounds)")
    print(f"  bare httpx POST     p50 {b50 * 1e3:7.2f} ms   p90 {pct(t_bare, 90) * 1e3:7.2f} ms")
    print(f"  floor (fsync+POST)  p50 {f50 * 1e3:7.2f} ms   p90 {pct(t_floor, 90) * 1e3:7.2f} ms")
    print(f"  use case (no print) p50 {c50 * 1e3:7.2f} ms   p90 {pct(t_case, 90) * 1e3:7.2f} ms")
    print(f"  use case / floor    {ratio:5.2f}x   (goal <= {GOAL}x)  "
          f"{'MET' if ratio <= GOAL else 'NOT MET'};  use case / bare POST {c50 / b50:5.2f}x")
    print(f"  printing (render + file write) p50 {statistics.median(t_print) * 1e3:7.2f} ms")
    h50 = statistics.median(t_hub)
    hub_ratio = h50 / c50
    halves = statistics.median(t_case[0::2]) / statistics.median(t_case[1::2])
    print(f"  use case, hub       p50 {h50 * 1e3:7.2f} ms   p90 {pct(t_hub, 90) * 1e3:7.2f} ms"
          f"   ({shared} of {n + 20} numbers shared, {blocks} blocks leased, "
          f"{waiting} reports left in the outbox)")
    print(f"  hub / no hub        {hub_ratio:5.2f}x   (goal <= {GOAL_HUB}x)  "
          f"{'MET' if hub_ratio <= GOAL_HUB else 'NOT MET'};  noise: the use case's odd / "
          f"even rounds {halves:5.2f}x")
    return 0 if ratio <= GOAL and hub_ratio <= GOAL_HUB else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    sys.exit(asyncio.run(main(ap.parse_args().n)))
