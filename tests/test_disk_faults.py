"""Issue 9 item 9: disk and power. A journal write that fails after the API accepted a
ticket (SQLite busy, a really full disk) never takes the number away from the customer:
the ticket is shown and printed, the fault logged and reported to staff, and the record
written at the next chance. A number that cannot be taken sends nothing."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from kiosk.config import Config
from kiosk.core import admin
from kiosk.core.runtime import Runtime, open_runtime
from kiosk.mock import MockState, create_app
from kiosk.view.outcomes import Outcome

from .conftest import ATENCION, CUENTAS, FAST_RETRY, KEY


class AfterPost(httpx.AsyncBaseTransport):
    """The mock in-process; ``then()`` runs once the API has answered a POST, before the
    client sees the answer (the moment between a 201 and its journal record)."""

    def __init__(self, app: httpx.ASGITransport) -> None:
        self.app = app
        self.then: Callable[[], None] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.app.handle_async_request(request)
        if request.method == "POST" and self.then is not None:
            self.then()
        return response


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB filesystem (tmpfs) of our own, that the test fills up."""
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(folder: Path) -> Path:
    """Write a file until the filesystem says ENOSPC; returns it (delete to free)."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 4096)
    return filler


async def open_rt(cfg: Config, state: MockState) -> tuple[Runtime, AfterPost]:
    transport = AfterPost(httpx.ASGITransport(app=create_app(state)))
    rt = open_runtime(cfg, KEY, transport=transport, retry=FAST_RETRY)
    await rt.monitor.poll_once()
    return rt, transport


@pytest.fixture
async def rt_busy(config_factory: Callable[..., Config], state: MockState
                  ) -> AsyncIterator[tuple[Runtime, AfterPost]]:
    rt, transport = await open_rt(config_factory(), state)
    rt.journal._conn.execute("PRAGMA busy_timeout=200")  # busy in 0.2 s, not 15
    yield rt, transport
    await rt.aclose()


async def test_a_busy_journal_after_a_201_still_gives_the_number(
        rt_busy: tuple[Runtime, AfterPost], state: MockState, caplog: pytest.LogCaptureFixture,
        tmp_path: Path) -> None:
    rt, transport = rt_busy
    other = sqlite3.connect(rt.journal.path, isolation_level=None)

    def lock_the_journal() -> None:  # another writer holds SQLite's write lock
        other.execute("BEGIN IMMEDIATE")
    transport.then = lock_the_journal
    with caplog.at_level(logging.ERROR):
        r = await rt.service.issue(ATENCION, language="es")
    assert r.outcome is Outcome.ISSUED and r.ticket_id == "A-001" and r.printed is True
    assert r.videsk_id == state.tickets[0].id
    assert b"A-001" in (tmp_path / "printer.bin").read_bytes()
    assert "A-001" in caplog.text and "locked" in caplog.text
    fault = rt.faults()["journal"]
    assert "A-001" in fault and "locked" in fault
    assert "JOURNAL FAULT" in admin.summary(rt, rt.printer.last_status)
    assert rt.journal.find("A-001").outcome == "pending"  # type: ignore[union-attr]

    other.execute("ROLLBACK")  # the other writer is done
    transport.then = None
    await rt.service.settle()
    r2 = await rt.service.issue(CUENTAS, language="es")
    assert r2.outcome is Outcome.ISSUED
    row = rt.journal.find("A-001")  # written at the next chance
    assert row is not None and (row.outcome, row.videsk_id, row.printed) == (
        "issued", r.videsk_id, True)
    assert "journal" not in rt.faults()
    other.close()


@pytest.mark.slow
async def test_a_full_disk_after_a_201_still_gives_the_number(
        config_factory: Callable[..., Config], state: MockState, small_disk: Path,
        tmp_path: Path) -> None:
    cfg = config_factory(kiosk={"id": "test-1", "data_dir": str(small_disk / "data"),
                                "timezone": "America/Santiago"})
    rt, transport = await open_rt(cfg, state)
    try:
        assert (await rt.service.issue(ATENCION, language="es")).ticket_id == "A-001"
        await rt.service.settle()  # A-002 armed
        filler: list[Path] = []

        def disk_full() -> None:  # the write-ahead log emptied, then the disk filled
            db = sqlite3.connect(rt.journal.path)
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.close()
            filler.append(fill(small_disk))
        transport.then = disk_full
        r = await rt.service.issue(ATENCION, language="es")
        transport.then = None
        assert r.outcome is Outcome.ISSUED and r.ticket_id == "A-002" and r.printed is True
        assert b"A-002" in (tmp_path / "printer.bin").read_bytes()
        assert "full" in rt.faults()["journal"]

        # Still full: a number that cannot be taken is never sent.
        sent = len(state.tickets)
        r = await rt.service.issue(CUENTAS, language="es")
        assert r.outcome is Outcome.UNAVAILABLE and r.ticket_id == ""
        assert len(state.tickets) == sent

        filler[0].unlink()  # space again
        r = await rt.service.issue(CUENTAS, language="es")
        assert r.outcome is Outcome.ISSUED
        assert rt.journal.find("A-002").outcome == "issued"  # type: ignore[union-attr]
        assert "journal" not in rt.faults()
    finally:
        await rt.aclose()
