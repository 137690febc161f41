"""Calling screens in a real Kivy window: the display (1920x1080, its own process) showing
and saying calls from a stream over loopback HTTP, the kiosk's "now calling" strip, the
kiosk's journal of its tickets' calls, and speech that never blocks a frame.
Screenshots go to ``artifacts/screenshots``."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import wave
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from kiosk.config import config_from_mapping
from kiosk.service.callfeed import Backoff, CallFeed
from kiosk.service.display import open_call_feed, serve_display_in_process
from kiosk.service.speech import synthesize

from . import ui_driver as d
from .conftest import REPO
from .sse_stub import SseStub

pytestmark = pytest.mark.slow
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")  # sound is played, to no device

BRANCH = "652720d479497a1b62df288b"
ATENCION = "652a1ae848880e168884e49b"
TOKEN = "display-token-for-tests"
FAST = Backoff(initial_s=0.05, max_s=0.2, jitter=0.0, refused_s=0.2)


def in_a_window_of_its_own(test_id: str, window: str = "display") -> bool:
    """Kivy makes one window per process and SDL's offscreen window cannot be resized:
    a display test (1920x1080) runs again in a new process. True in the parent (after
    checking the child passed), False in the child."""
    if os.environ.get("KIOSK_TEST_WINDOW") == window:
        return False
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        f"{__file__}::{test_id}"], capture_output=True, text=True,
                       timeout=300, cwd=REPO, env=dict(os.environ, KIOSK_TEST_WINDOW=window))
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    return True


def display_config(tmp_path: Path, url: str, **calls: Any) -> Any:
    token = tmp_path / "display-token"
    token.write_text(TOKEN)
    token.chmod(0o600)
    return config_from_mapping({
        "branch": BRANCH,
        "kiosk": {"id": "tv-1", "mode": "display", "data_dir": str(tmp_path / "data"),
                  "language": "es"},
        "calls": {"url": url, "token_file": str(token), **calls},
        "ticket": {"branch_label": "Sucursal Providencia"},
        "ui": {"fullscreen": False},
    }, "display.yaml")


Scenario = Callable[[Any, CallFeed], Awaitable[None]]


async def run_display(config: Any, scenario: Scenario) -> None:
    """The calling screen on this loop, its core served in-process over a real link."""
    from kiosk.ui.run import run_ui
    errors: list[BaseException] = []
    feed = CallFeed.from_config(config, SecretStr(TOKEN), backoff=FAST)
    core, served = await serve_display_in_process(config, feed)

    async def driver(app: Any) -> None:
        try:
            await d.until(lambda: app.root is not None and app.branch, what="the screen")
            await d.frames(3)
            await scenario(app, feed)
        except BaseException as exc:  # re-raised after the app has stopped
            errors.append(exc)
        finally:
            app.stop()
    try:
        assert await run_ui(core, mode="display", fullscreen=False, on_app=driver) == 0
        await asyncio.wait_for(served, 10)
    finally:
        await feed.aclose()
    if errors:
        raise errors[0]


def wav_frames(path: Path) -> int:
    with wave.open(str(path), "rb") as w:
        return w.getnframes()


async def test_the_display_shows_and_says_each_call(tmp_path: Path) -> None:
    if in_a_window_of_its_own("test_the_display_shows_and_says_each_call"):
        return
    async with SseStub(BRANCH, TOKEN) as relay:
        morning = datetime.now(UTC) - timedelta(minutes=40)
        for i, (ticket, poc) in enumerate([("A-038", "Cabina 1"), ("B-011", "Cabina 4"),
                                           ("A-039", "Cabina 2"), ("A-040", "Cabina 1"),
                                           ("C-003", "Cabina 5"), ("A-041", "Cabina 3")]):
            relay.push(ticket, poc, at=morning + timedelta(minutes=3 * i))

        async def scenario(app: Any, feed: CallFeed) -> None:
            from kivy.core.window import Window
            assert tuple(Window.size) == (1920, 1080)
            screen = app.screen("home")
            await d.until(lambda: screen.ticket == "A-041", what="the day's last calls")
            assert screen.poc == "Cabina 3"
            assert [r[0] for r in screen.earlier] == ["C-003", "A-040", "A-039", "B-011",
                                                      "A-038"]
            assert app.announcer.spoken == []  # the morning is listed, not read out again
            assert app.branch == "Sucursal Providencia"
            await d.screenshot("display-es-calls")
            relay.push("A-042", "Cabina 3", lang="pt", queue="Atención a clientes")
            await d.until(lambda: screen.ticket == "A-042", what="the new call")
            await d.until(lambda: screen.flash > 0.5, what="the flash")
            from kiosk.ui.calling import stop_flash
            stop_flash(screen)  # held at its brightest for the picture
            screen.flash = 1.0
            await d.screenshot("display-es-new-call-flash")
            screen.flash = 0.0
            await d.until(lambda: app.announcer.spoken, timeout=20, what="the announcement")
            said = app.announcer.spoken[0]
            assert said.ticket_id == "A-042" and said.voice == "pt-br"  # the ticket's language
            assert said.text == "Senha A 0 42, Cabina 3."
            assert wav_frames(said.wav) > 0
            await d.screenshot("display-es-new-call")
            await d.key(27)  # Escape: refused
            from kivy.core.window import Window
            assert Window.dispatch("on_request_close") is True
            # the relay goes away: the calls stay, a small marker says so
            relay.drop()
            relay.refuse_with = 503
            await d.until(lambda: not screen.connected, what="the marker")
            assert screen.ticket == "A-042" and len(screen.earlier) == 5
            await d.screenshot("display-es-relay-gone")
            # it comes back: the screen resumes where it left off
            relay.push("D-001", "Cabina 6", lang="en")
            relay.refuse_with = None
            feed.reconnect_now()
            await d.until(lambda: screen.connected and screen.ticket == "D-001",
                          what="the resumed stream")
            assert relay.requests[-1]["last-event-id"] == "7"
        await run_display(display_config(tmp_path, relay.url), scenario)


async def test_speech_never_blocks_a_frame(tmp_path: Path) -> None:
    if in_a_window_of_its_own("test_speech_never_blocks_a_frame"):
        return
    gate = threading.Event()
    entered = threading.Event()

    def slow_synth(text: str, voice: str, out: Path) -> Path:
        entered.set()
        assert gate.wait(30), "never released"
        return synthesize(text, voice, out)

    async with SseStub(BRANCH, TOKEN) as relay:
        async def scenario(app: Any, feed: CallFeed) -> None:
            app.announcer.synth = slow_synth
            await d.until(lambda: relay.connected, what="the stream")
            relay.push("B-007", "Cabina 1", lang=None)
            await d.until(entered.is_set, what="synthesis started")
            # synthesis is stuck on its thread: frames go on being drawn meanwhile
            await d.frames(10)
            assert app.screen("home").ticket == "B-007" and app.announcer.spoken == []
            gate.set()
            await d.until(lambda: app.announcer.spoken, timeout=20, what="the announcement")
            said = app.announcer.spoken[0]
            assert said.voice == "es-419" and said.text == "Número B 0 0 7, Cabina 1."
            assert wav_frames(said.wav) > 0
        await run_display(display_config(tmp_path, relay.url), scenario)


async def test_the_kiosk_strip_and_journal_record_its_tickets_calls(tmp_path: Path) -> None:
    """The kiosk's home shows "now calling" from the same stream, and its journal records
    when its own tickets were called (kiosk window: no process of its own)."""
    from kiosk.service.demo import demo_runtime
    from kiosk.service.link import CoreServer, RemoteCore
    from kiosk.ui.run import run_ui

    errors: list[BaseException] = []
    async with SseStub(BRANCH, TOKEN) as relay, demo_runtime(tmp_path) as (rt, _mock):
        from kiosk.config import CallsConfig
        rt.config = rt.config.model_copy(update={
            "calls": CallsConfig(url=relay.url, token_file=tmp_path / "unused"),
            "ui": rt.config.ui.model_copy(update={"calls": True})})
        ui_end, core_end = socket.socketpair()
        server = await CoreServer.connect(core_end)
        feed = open_call_feed(server, rt, SecretStr(TOKEN), backoff=FAST)
        served = asyncio.ensure_future(server.serve(rt))
        core = await RemoteCore.connect(ui_end)

        async def driver(app: Any) -> None:
            try:
                await d.until(lambda: app.root is not None
                              and rt.monitor.snapshot.fetched_at is not None, what="queues")
                await d.frames(3)
                strip = app.screen("home").ids.strip
                assert not strip.active  # nothing called yet: no band
                card = next(c for c in app.screen("home").cards if c.queue_id == ATENCION)
                await d.tap(card)
                await d.until(lambda: app.sm.current == "ticket", what="ticket")
                number = app.screen("ticket").number
                await d.tap(app.screen("ticket").ids.done)
                relay.push("Z-900", "Cabina 2")  # another kiosk's ticket
                relay.push(number, "Cabina 3")
                await d.until(lambda: strip.latest == f"{number} → Cabina 3", what="strip")
                assert strip.others == "Z-900 → Cabina 2"
                await d.until(lambda: rt.journal.calls_of(number), what="journalled")
                await d.until(lambda: strip.flash > 0.5, what="the flash")
                await d.until(lambda: strip.flash == 0, what="the flash's end")
                await d.screenshot("kiosk-es-home-now-calling")
                assert [p for p, _ in rt.journal.calls_of(number)] == ["Cabina 3"]
                assert rt.journal.calls_of("Z-900") == []  # not ours: not journalled
                assert len(rt.journal.call_waits()) == 1
                relay.drop()  # a replay after a reconnect is one call, not two
                await d.until(lambda: len(relay.requests) >= 2 and relay.connected,
                              what="reconnected")
                await d.frames(5)
                assert len(rt.journal.calls_of(number)) == 1
                assert "Ticket to call today: 1 called, median" in rt.admin_summary(
                    rt.printer.last_status)
                assert TOKEN not in rt.admin_summary(rt.printer.last_status)
            except BaseException as exc:
                errors.append(exc)
            finally:
                app.stop()
        try:
            assert await run_ui(core, mode="kiosk", fullscreen=False, on_app=driver) == 0
            await asyncio.wait_for(served, 10)
        finally:
            await feed.aclose()
    if errors:
        raise errors[0]
