"""Issue 9 items 1 and 2: maintenance commands on a live kiosk, and a journal that cannot
be used. A real core process (started as ``kiosk run`` starts it), real CLI processes,
the mock API over loopback, a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import yaml

from kiosk.link.client import CoreProcess, RemoteCore
from kiosk.link.spawn import start_core
from kiosk.mock import MockServer, MockState
from kiosk.store import Journal
from kiosk.view.outcomes import Outcome

from .conftest import ATENCION, CUENTAS, KEY, REPO, make_config


@pytest.fixture
def cfg_file(tmp_path: Path, server: MockServer, state: MockState) -> Path:
    state.set_agents(ATENCION, 1000)  # never 406 here
    state.set_agents(CUENTAS, 1000)
    cfg = make_config(tmp_path, api={"base_url": server.url, "timeout_s": 5})
    path = tmp_path / "kiosk.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    return path


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch, cli_env: dict[str, str]) -> Iterator[dict[str, str]]:
    monkeypatch.setenv("VIDESK_API_KEY", KEY)  # for the core process start_core spawns
    yield cli_env


def kiosk(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiosk", *args], capture_output=True,
                          text=True, env=env, timeout=120, cwd=REPO)


@asynccontextmanager
async def live_core(cfg_file: Path) -> AsyncIterator[tuple[CoreProcess, RemoteCore]]:
    """``kiosk core`` as ``kiosk run`` starts it, and the UI's end of its link."""
    process = CoreProcess(*start_core(["--config", str(cfg_file)]))
    core = await process.connect()
    try:
        await asyncio.wait_for(core.ready(), 60)
        await asyncio.wait_for(core.polled(), 60)
        yield process, core
    finally:
        await core.aclose()
        assert await asyncio.wait_for(process.wait(), 60) == 0


def armed(data_dir: Path) -> list[str]:
    """The numbers the core holds armed now (read-only look)."""
    if not (data_dir / "journal.sqlite3").exists():
        return []
    db = sqlite3.connect(f"{(data_dir / 'journal.sqlite3').as_uri()}?mode=ro", uri=True)
    try:
        return [r[0] for r in db.execute(
            "SELECT ticket_id FROM tickets WHERE outcome = 'armed'")]
    finally:
        db.close()


async def wait_for(predicate: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_maintenance_commands_never_disturb_a_running_kiosk(
        cfg_file: Path, key_env: dict[str, str], tmp_path: Path) -> None:
    """Each command on the same config as a live core; the next tap still issues, on the
    number the core had armed (no command recovered the journal under it)."""
    data = tmp_path / "data"
    async with live_core(cfg_file) as (process, core):
        first = await core.issue(ATENCION, language="es")
        assert (first.outcome, first.ticket_id) == (Outcome.ISSUED, "A-001")
        await wait_for(lambda: armed(data) == ["A-002"])
        runs = {
            "check": kiosk("--config", str(cfg_file), "check", env=key_env),
            "queues": kiosk("--config", str(cfg_file), "queues", env=key_env),
            "tickets": kiosk("--config", str(cfg_file), "tickets", "--json", env=key_env),
            "reprint": kiosk("--config", str(cfg_file), "reprint", "A-001", env=key_env),
            "ticket": kiosk("--config", str(cfg_file), "ticket", CUENTAS, "--json",
                            env=key_env),
        }
        for name, p in runs.items():
            assert "Traceback" not in p.stderr, (name, p.stderr)
        assert runs["queues"].returncode == 0 and runs["reprint"].returncode == 0
        assert json.loads(runs["ticket"].stdout)["ticketId"] == "B-001"
        listed = json.loads(runs["tickets"].stdout)
        assert [(t["ticketId"], t["outcome"]) for t in listed] == [("A-001", "issued")]
        assert armed(data) == ["A-002"]  # still armed: nobody voided it
        tap = await core.issue(ATENCION, language="es")
        assert (tap.outcome, tap.ticket_id) == (Outcome.ISSUED, "A-002"), tap.detail
        assert process.proc.poll() is None


def test_a_one_shot_ticket_arms_no_number(cfg_file: Path, key_env: dict[str, str]) -> None:
    """`kiosk ticket` twice gives A-001 then A-002 (it used to arm A-002 and void it)."""
    got = []
    for _ in range(2):
        p = kiosk("--config", str(cfg_file), "ticket", ATENCION, "--json", "--no-print",
                  env=key_env)
        assert p.returncode == 0, p.stderr
        got.append(json.loads(p.stdout)["ticketId"])
    assert got == ["A-001", "A-002"]


def test_a_second_owner_neither_recovers_nor_arms(tmp_path: Path) -> None:
    """While one process owns the journal, another asking to own it does not recover it
    (which would void the first one's armed number) and may not arm."""
    first = Journal(tmp_path, kiosk_id="k1")
    assert first.recover() == 0 and first.owner
    held = first.arm(prefix="A", fmt="{prefix}-{seq:03d}")
    second = Journal(tmp_path, kiosk_id="k1")
    assert second.recover() is None and not second.owner
    with pytest.raises(Exception, match="only its owner"):
        second.arm(prefix="A", fmt="{prefix}-{seq:03d}")
    assert first.find(held.ticket_id).outcome == "armed"  # type: ignore[union-attr]
    first.close()
    assert second.recover() == 0 and second.owner  # the first is gone: it may own now


def test_the_owner_does_not_recover_under_a_one_shot_writer(tmp_path: Path) -> None:
    """A one-shot command waiting for the API's answer keeps its attempt 'pending': the
    owner starting meanwhile recovers later, not under it."""
    one_shot = Journal(tmp_path, kiosk_id="k1", access="write")
    row = one_shot.reserve(queue_id="q", queue_name="Q", prefix="A", fmt="{prefix}-{seq:03d}")
    core = Journal(tmp_path, kiosk_id="k1")
    assert core.recover() is None
    assert core.find("A-001").outcome == "pending"  # type: ignore[union-attr]
    one_shot.finish(row.row_id, "issued", videsk_id="v")
    one_shot.close()
    assert core.recover() == 0 and core.owner
    assert core.find("A-001").outcome == "issued"  # type: ignore[union-attr]


def test_read_only_commands_cannot_write(tmp_path: Path) -> None:
    Journal(tmp_path, kiosk_id="k1").close()
    reader = Journal(tmp_path, kiosk_id="k1", access="read")
    with pytest.raises(Exception, match="readonly"):
        reader.reserve(queue_id="q", queue_name="Q", prefix="A", fmt="{prefix}-{seq:03d}")
    assert reader.recover() is None


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["corrupt", "unwritable"])
async def test_a_journal_that_cannot_be_opened_keeps_the_core_up_and_says_why(
        cfg_file: Path, key_env: dict[str, str], tmp_path: Path, damage: str) -> None:
    """Out of service with the reason (tap, status file, kiosk check), never an exit that
    systemd would turn into a restart loop, and never a new journal over the old one."""
    cfg = yaml.safe_load(cfg_file.read_text())
    if damage == "corrupt":
        data = Path(cfg["kiosk"]["data_dir"])
        data.mkdir(parents=True)
        garbage = b"this is not a journal\x00" * 300
        (data / "journal.sqlite3").write_bytes(garbage)
        reason = "journal"
    else:
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        cfg["kiosk"]["data_dir"] = str(blocker / "data")  # under a file: cannot be made
        cfg_file.write_text(yaml.safe_dump(cfg))
        reason = f"cannot create {blocker / 'data'}"
    async with live_core(cfg_file) as (process, core):
        tap = await core.issue(ATENCION, language="es")
        assert tap.outcome is Outcome.UNAVAILABLE and tap.ticket_id == ""
        assert reason in tap.detail
        check = kiosk("--config", str(cfg_file), "check", env=key_env)
        assert check.returncode == 1
        assert any(line.startswith("FAIL journal") for line in check.stdout.splitlines()), \
            check.stdout
        if damage == "corrupt":
            await wait_for((data / "status.json").exists)
            status = json.loads((data / "status.json").read_text())
            assert reason in status["faults"]["journal"]
            assert (data / "journal.sqlite3").read_bytes() == garbage  # left as it was
        await asyncio.sleep(0.5)
        assert process.proc.poll() is None  # still up, saying why


def test_tickets_lists_a_day_for_staff_and_auditors(tmp_path: Path,
                                                    cli_env: dict[str, str]) -> None:
    """`kiosk tickets [--date] [--json]`: every attempt that was sent, with its fate;
    never an armed or void number."""
    from datetime import UTC, datetime

    from .conftest import WallClock
    cfg = make_config(tmp_path)
    path = tmp_path / "kiosk.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    clock = WallClock(datetime(2026, 11, 30, 15, 0, tzinfo=UTC))  # 12:00 in Santiago
    j = Journal(cfg.kiosk.data_dir, kiosk_id="test-1", timezone="America/Santiago",
                clock=clock)
    j.recover()
    fmt = "{prefix}-{seq:03d}"
    ok = j.reserve(queue_id=ATENCION, queue_name="Atención", prefix="A", fmt=fmt)
    j.finish(ok.row_id, "issued", videsk_id="v1")
    j.set_printed(ok.row_id, True)
    lost = j.reserve(queue_id=ATENCION, queue_name="Atención", prefix="A", fmt=fmt)
    j.finish(lost.row_id, "uncertain", detail="ApiTimeout: read timed out")
    j.reserve(queue_id=CUENTAS, queue_name="Cuentas", prefix="B", fmt=fmt)  # in flight
    j.arm(prefix="A", fmt=fmt)  # never sent: not listed
    clock.advance(days=1)
    j.reserve(queue_id=ATENCION, queue_name="Atención", prefix="A", fmt=fmt)  # another day
    j.close()

    p = kiosk("--config", str(path), "tickets", "--date", "2026-11-30", "--json",
              env=cli_env)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert [(t["ticketId"], t["outcome"], t["printed"], t["videskId"]) for t in got] == [
        ("A-001", "issued", True, "v1"), ("A-002", "uncertain", False, None),
        ("B-001", "unknown", False, None)]
    assert got[0]["queue"] == {"id": ATENCION, "name": "Atención"}
    assert got[0]["time"] == "2026-11-30T12:00:00-03:00"
    table = kiosk("--config", str(path), "tickets", "--date", "2026-11-30", env=cli_env)
    assert "A-002" in table.stdout and "uncertain" in table.stdout
    assert table.stdout.rstrip().endswith("3 ticket(s)")
    bad = kiosk("--config", str(path), "tickets", "--date", "30/11/2026", env=cli_env)
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr
