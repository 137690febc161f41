"""Issue 9 item 2: ticket numbers and the clock. The day never goes back behind what the
journal has seen; the API's ``Date`` is a second opinion on the local clock. Injected
clocks in-process, and the real CLI on a wrong clock (``faketime``)."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml

from kiosk.config import Config
from kiosk.core import admin
from kiosk.core.runtime import open_runtime
from kiosk.errors import ClockBehind
from kiosk.mock import MockServer, MockState, create_app, mock_process
from kiosk.store import Journal
from kiosk.tickets.clock import TicketClock
from kiosk.view.outcomes import Outcome

from .conftest import ATENCION, FAST_RETRY, KEY, REPO, WallClock

FMT = "{prefix}-{seq:03d}"
TZ = ZoneInfo("America/Santiago")


def local_day(t: datetime) -> str:
    return t.astimezone(TZ).date().isoformat()


def test_the_api_clock_wins_beyond_the_tolerance() -> None:
    local = WallClock(datetime(2026, 11, 30, 9, 0, tzinfo=UTC))  # a day behind
    mono = [100.0]
    seen: list[tuple[datetime, float]] = []
    clock = TicketClock(local, lambda: seen[-1] if seen else None, monotonic=lambda: mono[0])
    assert clock() == local.now and clock.note() == ""  # no second opinion yet
    seen.append((datetime(2026, 12, 1, 9, 0, tzinfo=UTC), 100.0))
    mono[0] = 160.0  # a minute later, on both clocks
    local.advance(minutes=1)
    assert clock() == datetime(2026, 12, 1, 9, 1, tzinfo=UTC)
    assert "1 d 0 h behind the API's" in clock.note()
    seen.append((local.now + timedelta(minutes=4), 160.0))  # NTP synced: 4 min is noise
    assert clock() == local.now and clock.note() == ""


def test_the_day_never_goes_back_behind_the_journal(tmp_path: Path) -> None:
    clock = WallClock(datetime(2026, 12, 1, 15, 0, tzinfo=UTC))
    j = Journal(tmp_path, kiosk_id="k1", timezone="America/Santiago", clock=clock)
    assert j.reserve(queue_id="q", queue_name="Q", prefix="A", fmt=FMT).ticket_id == "A-001"
    clock.advance(days=-1)  # the clock is set back a day (a board with no RTC, say)
    with pytest.raises(ClockBehind, match="2026-11-30 but the journal already has tickets "
                       "of 2026-12-01"):
        j.reserve(queue_id="q", queue_name="Q", prefix="A", fmt=FMT)
    assert [r.ticket_id for r in j.rows("2026-11-30")] == []  # nothing numbered yesterday
    clock.advance(days=1)
    assert j.reserve(queue_id="q", queue_name="Q", prefix="A", fmt=FMT).ticket_id == "A-002"


async def test_a_clock_behind_the_journal_stops_issuing_and_says_so(
        config_factory: Callable[..., Config], state: MockState, utc_clock: WallClock) -> None:
    rt = open_runtime(config_factory(), KEY, transport=httpx.ASGITransport(
        app=create_app(state)), retry=FAST_RETRY, clock=utc_clock)  # no Date header here
    try:
        await rt.monitor.poll_once()
        assert (await rt.service.issue(ATENCION, language="es")).ticket_id == "A-001"
        await rt.service.settle()
        utc_clock.advance(days=-1)
        r = await rt.service.issue(ATENCION, language="es")
        assert r.outcome is Outcome.UNAVAILABLE and r.ticket_id == ""
        assert len(state.tickets) == 1  # nothing sent
        assert "journal already has tickets" in rt.faults()["clock"]
        assert "CLOCK FAULT" in admin.summary(rt, rt.printer.last_status)
        utc_clock.advance(days=1)  # the clock is right again
        r = await rt.service.issue(ATENCION, language="es")
        assert r.outcome is Outcome.ISSUED and r.ticket_id not in ("A-001", "")
        assert "clock" not in rt.faults()
    finally:
        await rt.aclose()


async def test_a_board_booted_on_yesterdays_time_numbers_on_the_apis_day(
        config_factory: Callable[..., Config], state: MockState, server: MockServer) -> None:
    """The issue's case: yesterday's journal, a board that boots with yesterday's time
    and syncs later. The API's Date (real HTTP, the server's real clock) puts today's
    tickets on today; after the sync numbering goes on: no ticketId twice today."""
    state.set_agents(ATENCION, 1000)
    cfg = config_factory(api={"base_url": server.url, "timeout_s": 5})
    behind = [timedelta(days=-1)]

    def local() -> datetime:
        return datetime.now(UTC) + behind[0]
    yesterday = Journal(cfg.kiosk.data_dir, kiosk_id="test-1", timezone=cfg.kiosk.timezone,
                        clock=local)
    old = yesterday.reserve(queue_id=ATENCION, queue_name="Q", prefix="A", fmt=FMT)
    yesterday.finish(old.row_id, "issued", videsk_id="y1")
    yesterday.close()

    rt = open_runtime(cfg, KEY, retry=FAST_RETRY, clock=local)
    try:
        await rt.monitor.poll_once()  # the API's Date arrives
        assert "behind the API's" in rt.faults()["clock"]
        assert "CLOCK FAULT" in admin.summary(rt, rt.printer.last_status)
        booted = [await rt.service.issue(ATENCION, language="es") for _ in range(2)]
        await rt.service.settle()
        behind[0] = timedelta(0)  # NTP answers
        synced = [await rt.service.issue(ATENCION, language="es") for _ in range(2)]
        assert "clock" not in rt.faults()
        today = local_day(datetime.now(UTC))
        sent = [t.ticket_id for t in state.tickets]
        assert len(sent) == len(set(sent)) == 4, sent
        for r in booted + synced:
            assert r.outcome is Outcome.ISSUED
            assert rt.journal.find(r.ticket_id, today) is not None
    finally:
        await rt.aclose()


# --------------------------------------------------------------------------- faketime

def faked(offset: str, env: dict[str, str]) -> dict[str, str]:
    """``env`` for a process on a clock ``offset`` from ours (libfaketime)."""
    libs = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    assert libs, "faketime is not installed (packaging/dev.sh test installs it as root)"
    return dict(env, LD_PRELOAD=libs[0], FAKETIME=offset, FAKETIME_DONT_FAKE_MONOTONIC="1")


def kiosk(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiosk", *args], capture_output=True,
                          text=True, env=env, timeout=120, cwd=REPO)


def write_config(tmp_path: Path, url: str) -> Path:
    from .conftest import make_config
    cfg = make_config(tmp_path, api={"base_url": url, "timeout_s": 5})
    path = tmp_path / "kiosk.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    return path


@pytest.mark.slow
def test_cli_on_a_clock_a_day_behind_numbers_on_the_apis_day(
        tmp_path: Path, server: MockServer, cli_env: dict[str, str]) -> None:
    cfg = write_config(tmp_path, server.url)
    wrong = faked("-1d", cli_env)
    p = kiosk("--config", str(cfg), "ticket", ATENCION, "--json", "--no-print", env=wrong)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["ticketId"] == "A-001"
    assert "behind the API's" in p.stderr  # said in the log
    listed = json.loads(kiosk("--config", str(cfg), "tickets", "--json", env=cli_env).stdout)
    assert [(t["ticketId"], t["day"]) for t in listed] == [
        ("A-001", local_day(datetime.now(UTC)))]
    sound = {"SDL_AUDIODRIVER": "disk", "SDL_DISKAUDIOFILE": str(tmp_path / "a.raw")}
    check = kiosk("--config", str(cfg), "check", env={**wrong, **sound})  # audio: a file
    assert check.returncode == 1
    assert [line for line in check.stdout.splitlines() if line.startswith("FAIL")] == [
        line for line in check.stdout.splitlines() if line.startswith("FAIL clock")]
    assert "1 d 0 h behind the API's" in check.stdout


@pytest.mark.slow
def test_cli_whose_clock_and_api_went_back_a_day_issues_nothing(
        tmp_path: Path, server: MockServer, state: MockState, cli_env: dict[str, str]) -> None:
    """Both clocks say yesterday but the journal has today's tickets: refused (exit 8),
    never a number of yesterday's sequence again."""
    cfg = write_config(tmp_path, server.url)
    p = kiosk("--config", str(cfg), "ticket", ATENCION, "--json", "--no-print", env=cli_env)
    assert json.loads(p.stdout)["ticketId"] == "A-001"
    with mock_process(env=faked("-1d", dict(os.environ))) as url:  # the API a day behind
        cfg = write_config(tmp_path, url)
        wrong = faked("-1d", cli_env)
        p = kiosk("--config", str(cfg), "ticket", ATENCION, "--json", "--no-print", env=wrong)
        assert p.returncode == 8, p.stdout + p.stderr
        assert json.loads(p.stdout)["ticketId"] == ""
        assert "journal already has tickets of" in p.stderr
        check = kiosk("--config", str(cfg), "check", env=wrong)
        assert "FAIL clock" in check.stdout and "issues nothing" in check.stdout
