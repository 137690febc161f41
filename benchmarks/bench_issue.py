"""Cost of issuing a ticket through the whole use case, beside a bare httpx POST.

Both run against the same mock API (``kiosk mock-api`` in its own process) over loopback
HTTP, interleaved in the same run (so a
noisy machine slows both alike). The use case = reserve a number in the SQLite journal
(a committed, fsynced transaction), enqueue through the client, record the outcome (a
second transaction). Printing is excluded from the ratio and timed on its own.

Goal: use case p50 <= 1.3 x bare POST p50.

    .venv/bin/python benchmarks/bench_issue.py [--n 300]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from kiosk.config import config_from_mapping
from kiosk.mock import default_scenario_path, mock_process
from kiosk.printing import TicketPrinter
from kiosk.printing.model import TicketData
from kiosk.service.runtime import open_runtime

BRANCH = "652720d479497a1b62df288b"
QUEUE = "652a1ae848880e168884e49b"
KEY = "mock.kiosk.key"
GOAL = 1.3


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


async def main(n: int) -> int:
    with tempfile.TemporaryDirectory() as tmp, bench_mock(tmp) as mock_url:
        cfg = config_from_mapping({
            "api": {"base_url": mock_url}, "branch": BRANCH,
            "kiosk": {"id": "bench", "data_dir": tmp, "timezone": "America/Santiago"},
            "queues": [{"id": QUEUE, "prefix": "A"}],
            "numbering": {"format": "{prefix}-{seq:05d}"},
            "printer": {"type": "file", "path": str(Path(tmp) / "paper.bin")},
            "ticket": {"header": ["Banco Ejemplo"], "qr": "https://example.com/t/{ticketId}"},
        }, "(bench)")
        rt = open_runtime(cfg, KEY)
        bare = httpx.AsyncClient(base_url=mock_url + API_PREFIX, headers={
            "Authorization": f"Bearer {KEY}", "Content-Type": "application/json",
            "User-Agent": USER_AGENT})
        url = f"/branches/{BRANCH}/queues/{QUEUE}"
        await rt.monitor.poll_once()
        t_bare: list[float] = []
        t_case: list[float] = []
        for i in range(n + 20):  # 20 warm-up rounds
            t0 = time.perf_counter()
            r = await bare.post(url, json={"ticketId": f"B-{i:05d}",
                                           "integrationData": {"kiosk": "bench"}})
            t1 = time.perf_counter()
            res = await rt.service.issue(QUEUE, print_ticket=False)
            t2 = time.perf_counter()
            await rt.service.settle()  # background work after the answer, between customers
            assert r.status_code == 201 and res.outcome.value == "issued", (r, res)
            if i >= 20:
                t_bare.append(t1 - t0)
                t_case.append(t2 - t1)

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

    b50, c50 = statistics.median(t_bare), statistics.median(t_case)
    ratio = c50 / b50
    print(f"issue a ticket over loopback, n={n} (interleaved, after 20 warm-up rounds)")
    print(f"  bare httpx POST     p50 {b50 * 1e3:7.2f} ms   p90 {pct(t_bare, 90) * 1e3:7.2f} ms")
    print(f"  use case (no print) p50 {c50 * 1e3:7.2f} ms   p90 {pct(t_case, 90) * 1e3:7.2f} ms")
    print(f"  ratio p50           {ratio:5.2f}x   (goal <= {GOAL}x)  "
          f"{'MET' if ratio <= GOAL else 'NOT MET'}")
    print(f"  printing (render + file write) p50 {statistics.median(t_print) * 1e3:7.2f} ms")
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    sys.exit(asyncio.run(main(ap.parse_args().n)))
