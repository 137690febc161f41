"""The link between the UI process and the core process (kiosk.link.client): the same
answers as the runtime itself, nothing secret on the wire, and a clean end either way."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiosk.core.server import serve_in_process
from kiosk.core.settings import ui_settings
from kiosk.demo.headless import demo_runtime
from kiosk.errors import ConnectFailed, MalformedResponse, Unauthorized
from kiosk.link.client import CoreUnavailable
from kiosk.link.codec import (
    result_from_json,
    result_to_json,
    snapshot_from_json,
    snapshot_to_json,
)
from kiosk.mock import ScriptedFault
from kiosk.view.outcomes import IssueResult, Outcome, QueueSnapshot, QueueView
from kiosk.view.presentation import out_of_service

from .conftest import REPO

ATENCION = "652a1ae848880e168884e49b"
CREDITOS = "652a1ae848880e168884e4a1"


def view(qid: str, users: int) -> QueueView:
    return QueueView(id=qid, name="Atención", api_name="Atención", users=users,
                     avg_waiting_time=120.0, wait_minutes=2.0, prefix="A")


def test_an_issue_result_crosses_the_link_whole() -> None:
    r = IssueResult(Outcome.NO_AGENTS, "C-007", view(CREDITOS, 0), "Lo sentimos", "es",
                    videsk_id="v1", printed=None, alternatives=(view(ATENCION, 3),),
                    uncertain=True, detail="406", issued_at=datetime(2026, 11, 27, tzinfo=UTC),
                    qr="https://example.com/t/C-007", row_id=9)
    back = result_from_json(result_to_json(r), None)
    assert back == IssueResult(**{**{f: getattr(r, f) for f in r.__slots__}, "row_id": None})


def test_a_snapshot_keeps_its_age_and_the_kind_of_its_error() -> None:
    refused = QueueSnapshot((), 100.0, Unauthorized(401, "bad key"), 3)
    copy = snapshot_from_json(snapshot_to_json(refused), now=500.0)
    assert isinstance(copy.error, Unauthorized) and copy.error.status_code == 401
    assert out_of_service(copy) and copy.failures == 3
    net = snapshot_from_json(snapshot_to_json(QueueSnapshot((), None, ConnectFailed("no"), 1)),
                             now=5.0)
    assert isinstance(net.error, ConnectFailed) and net.fetched_at is None
    assert not out_of_service(net)  # the network: stale cards, not out of service


def test_a_snapshot_with_a_malformed_answer_crosses_the_link() -> None:
    """Found by the soak: a queue list answered 200 with a body that is not JSON broke the
    UI's end of the link (the UI exited and systemd restarted the kiosk, at every poll)."""
    bad = QueueSnapshot((), 100.0, MalformedResponse("not JSON", status_code=200), 2)
    copy = snapshot_from_json(snapshot_to_json(bad), now=500.0)
    assert isinstance(copy.error, MalformedResponse) and copy.error.status_code == 200
    assert str(copy.error) == "HTTP 200: not JSON" and not out_of_service(copy)


async def test_a_garbled_queue_list_leaves_the_link_up(tmp_path: Path) -> None:
    async with demo_runtime(tmp_path) as (rt, mock):
        mock.state.push_faults(ScriptedFault(on="queues", answer="garbage", times=3))
        core, served = await serve_in_process(rt)
        await asyncio.wait_for(core.polled(), 10)
        assert isinstance(core.snapshot.error, MalformedResponse)
        r = await asyncio.wait_for(core.issue(ATENCION, language="es"), 10)
        assert r.outcome is Outcome.ISSUED and not core.closed.done()
        await core.aclose()
        await served


async def test_the_ui_gets_views_tickets_and_the_paper_and_nothing_secret(
        tmp_path: Path) -> None:
    async with demo_runtime(tmp_path) as (rt, mock):
        sent: list[bytes] = []
        core, served = await serve_in_process(rt)
        original = core._reader.readline

        async def spy() -> bytes:  # everything the core says to the UI
            line = await original()
            sent.append(line)
            return line
        core._reader.readline = spy  # type: ignore[method-assign]
        settings = await core.ready()
        assert settings == ui_settings(rt.config) and settings.admin
        await asyncio.wait_for(core.polled(), 10)
        assert [v.id for v in core.views("en")] == [v.id for v in rt.service.views("en")]
        assert core.snapshot.error is None and core.snapshot.fetched_at is not None

        r = await core.issue(ATENCION, language="pt")
        assert r.outcome is Outcome.ISSUED and r.ticket_id == mock.state.tickets[-1].ticket_id
        assert r.printing is not None
        assert await asyncio.wait_for(r.printing, 10) == (True, "")
        assert (tmp_path / "tickets" / f"{r.ticket_id}.bin").exists()

        assert (await core.check_pin("999999"))[0] is False
        assert (await core.check_pin("123456"))[0] is True
        note, state = await core.admin("refresh", "es")
        assert note == "" and state.role == "kiosk" and state.tickets_today == 1
        await core.aclose()
        await asyncio.wait_for(served, 10)  # the core side ends with the link
    wire = b"".join(sent).decode()
    assert "mock.kiosk.key" not in wire
    assert rt.config.ui.admin_pin_hash is not None
    assert rt.config.ui.admin_pin_hash.get_secret_value() not in wire
    assert "pbkdf2" not in wire


async def test_a_refused_key_reaches_the_ui_as_out_of_service(tmp_path: Path) -> None:
    async with demo_runtime(tmp_path) as (rt, mock):
        mock.state.push_faults(ScriptedFault(on="queues", answer=401, times=1))
        core, served = await serve_in_process(rt)
        await asyncio.wait_for(core.polled(), 10)
        assert out_of_service(core.snapshot)
        await core.aclose()
        await served


async def test_when_the_core_stops_the_ui_is_told_and_requests_fail(tmp_path: Path) -> None:
    async with demo_runtime(tmp_path) as (rt, _):
        core, served = await serve_in_process(rt)
        await core.ready()
        served.cancel()  # the core goes away
        await asyncio.wait_for(asyncio.shield(core.closed), 10)
        with pytest.raises(CoreUnavailable):
            await core.issue(ATENCION, language="es")
        with pytest.raises(CoreUnavailable):
            await core.branch_label()
        core.poll_soon()  # fire-and-forget requests do not raise
        await core.aclose()


async def test_a_print_answer_nobody_awaits_is_not_an_error_when_the_core_stops(
        tmp_path: Path) -> None:
    # A ticket's "printed" answer still pending when the core dies, and the screen has
    # moved on: asyncio used to log "Future exception was never retrieved" for it.
    loop = asyncio.get_running_loop()
    unhandled: list[str] = []
    loop.set_exception_handler(lambda _loop, ctx: unhandled.append(ctx["message"]))
    try:
        async with demo_runtime(tmp_path) as (rt, _):
            core, served = await serve_in_process(rt)
            await core.ready()
            core._printing[10_000] = loop.create_future()  # as issue() leaves it
            served.cancel()
            await asyncio.wait_for(asyncio.shield(core.closed), 10)
            await asyncio.sleep(0)  # done callbacks run
            await core.aclose()
            del core
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert not [m for m in unhandled if "never retrieved" in m]


async def test_a_core_that_cannot_start_says_so_and_the_ui_exits_with_its_status(
        tmp_path: Path) -> None:
    bad = tmp_path / "kiosk.yaml"
    bad.write_text("kiosk: {mode: kiosk}\n")  # no branch
    p = subprocess.run([sys.executable, "-m", "kiosk", "--config", str(bad), "run"],
                       capture_output=True, text=True, timeout=120, cwd=REPO,
                       env=dict(os.environ, KIVY_HOME=str(tmp_path / "kivy")))
    assert p.returncode == 2
    assert f"{bad}: branch: a value (this key is required)" in p.stderr
    assert p.stderr.count("config error") == 1  # said once, by the core


@pytest.mark.slow
def test_the_demo_runs_its_core_in_a_second_process(tmp_path: Path) -> None:
    """`kiosk demo --smoke`: the UI starts the core process, draws the queues, stops; the
    core has exited by then (no process is left behind)."""
    p = subprocess.run([sys.executable, "-m", "kiosk", "demo", "--smoke", "--data-dir",
                        str(tmp_path / "d")], capture_output=True, text=True, timeout=120,
                       cwd=REPO, env=dict(os.environ, KIVY_HOME=str(tmp_path / "kivy")))
    assert p.returncode == 0, p.stderr[-3000:]
    assert "first frame with live queue data" in p.stdout and "(4 queues)" in p.stdout
    assert (tmp_path / "d" / "status.json").exists()  # written by the core process
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(tmp_path / "d") not in ps
