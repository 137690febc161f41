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

from kiosk.calls.feed import Backoff, CallFeed
from kiosk.config import config_from_mapping
from kiosk.core import admin
from kiosk.core.server import serve_display_in_process
from kiosk.view.speech import synthesize

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
    return d.in_a_window_of_its_own(__file__, test_id, window)


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


async def run_display(config: Any, scenario: Scenario, backoff: Backoff = FAST) -> None:
    """The calling screen on this loop, its core served in-process over a real link."""
    from kiosk.ui.run import run_ui
    errors: list[BaseException] = []
    feed = CallFeed.from_config(config, SecretStr(TOKEN), backoff=backoff)
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


async def screenshot(name: str) -> Path:
    """A screenshot of what is on screen now: the window is drawn twice first, since a
    window that has nothing new to draw keeps an older frame in the buffer read back."""
    from kivy.core.window import Window
    for _ in range(2):
        Window.canvas.ask_update()
        await d.frames(1)
    return await d.screenshot(name)


def wav_frames(path: Path) -> int:
    with wave.open(str(path), "rb") as w:
        return w.getnframes()


async def test_the_display_shows_and_says_each_call(tmp_path: Path) -> None:
    if in_a_window_of_its_own("test_the_display_shows_and_says_each_call"):
        return
    async with SseStub(BRANCH, TOKEN) as relay:
        midnight = datetime.now().astimezone().replace(hour=0, minute=0, second=0,
                                                       microsecond=0)
        morning = max(datetime.now(UTC) - timedelta(minutes=40), midnight.astimezone(UTC))
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
            assert d.costly_drawing(Window) == []  # kiosk/ui/drawing.py
            await screenshot("display-es-calls")
            relay.push("A-042", "Cabina 3", lang="pt", queue="Atención a clientes")
            await d.until(lambda: screen.ticket == "A-042", what="the new call")
            await d.until(lambda: screen.flash > 0.5, what="the flash")
            from kiosk.ui.calling import stop_flash
            stop_flash(screen)  # held at its brightest for the picture
            screen.flash = 1.0
            await screenshot("display-es-new-call-flash")
            screen.flash = 0.0
            await d.until(lambda: app.announcer.spoken, timeout=20, what="the announcement")
            said = app.announcer.spoken[0]
            assert said.ticket_id == "A-042" and said.voice == "pt-br"  # the ticket's language
            assert said.text == "Senha A 0 42, Cabina 3."
            assert wav_frames(said.wav) > 0
            await screenshot("display-es-new-call")
            await d.key(27)  # Escape: refused
            from kivy.core.window import Window
            assert Window.dispatch("on_request_close") is True
            # the relay goes away: the calls stay, a small marker says so
            relay.drop()
            relay.refuse_with = 503
            await d.until(lambda: not screen.connected, what="the marker")
            assert screen.ticket == "A-042" and len(screen.earlier) == 5
            await screenshot("display-es-relay-gone")
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
            assert app.screen("home").ticket == ""  # nothing called yet today
            await screenshot("display-es-waiting")
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
    """The demo's loop on the kiosk: a tap, a ticket; the mock's agent takes it, the
    webhook reaches the relay, the kiosk's core reads the call off the relay's stream
    (all real HTTP over loopback); the home's "now calling" strip shows it and the
    journal records when and where this kiosk's ticket was called (kiosk window)."""
    from kiosk.core.server import KioskServer
    from kiosk.demo.calls import demo_relay
    from kiosk.demo.headless import BRANCH as DEMO_BRANCH
    from kiosk.demo.headless import demo_runtime
    from kiosk.link.client import RemoteCore
    from kiosk.ui.run import run_ui

    from .relay_helpers import call_body, jwt_headers, post

    errors: list[BaseException] = []
    with demo_relay(tmp_path, DEMO_BRANCH, "America/Santiago") as relay:
        key = relay.private_key  # the demo's relay takes only the JWT the provider signs
        async with demo_runtime(tmp_path, relay=relay) as (rt, _mock):
            ui_end, core_end = socket.socketpair()
            server = await KioskServer.connect(core_end)
            feed = server.open_call_feed(rt, relay.token, backoff=FAST)
            served = asyncio.ensure_future(server.serve(rt))
            core = await RemoteCore.connect(ui_end)

            async def driver(app: Any) -> None:
                try:
                    await d.until(lambda: app.root is not None
                                  and rt.monitor.snapshot.fetched_at is not None,
                                  what="queues")
                    await d.frames(3)
                    strip = app.screen("home").ids.strip
                    await d.until(lambda: core.calls_connected, what="the relay's stream")
                    assert not strip.active  # nothing called yet: no band
                    card = next(c for c in app.screen("home").cards if c.queue_id == ATENCION)
                    await d.tap(card)
                    await d.until(lambda: app.sm.current == "ticket", what="ticket")
                    number = app.screen("ticket").number
                    await d.tap(app.screen("ticket").ids.done)
                    await d.until(lambda: strip.latest.startswith(f"{number} → Cabina "),
                                  timeout=20, what="the agent's call on the strip")
                    await d.until(lambda: rt.journal.calls_of(number), what="journalled")
                    [(poc, _)] = rt.journal.calls_of(number)
                    assert strip.latest == f"{number} → {poc}"
                    # another kiosk's ticket is shown, not journalled here
                    body = call_body("Z-900", "call-z", DEMO_BRANCH, "Cabina 9", lang="es")
                    assert (await asyncio.to_thread(
                        post, relay.url, body, jwt_headers(body, key, "RS256"))).status_code < 300
                    await d.until(lambda: strip.latest == "Z-900 → Cabina 9", what="Z-900")
                    assert strip.others == f"{number} → {poc}"
                    await d.until(lambda: strip.flash > 0, what="the flash")
                    await d.until(lambda: strip.flash == 0, what="the flash's end")
                    await screenshot("kiosk-es-home-now-calling")
                    assert rt.journal.calls_of("Z-900") == []
                    assert len(rt.journal.call_waits()) == 1
                    from kiosk.core.status import snapshot
                    assert snapshot(rt)["calls"] == {"connected": True, "error": None,
                                                     "on_screen": 2}
                    summary = admin.summary(rt, rt.printer.last_status)
                    assert "Calls today: 1 called, median" in summary
                    assert relay.token.get_secret_value() not in summary
                    # Z-900 called again to another booth: a re-call, marked on the band
                    body = call_body("Z-900", "call-z2", DEMO_BRANCH, "Cabina 2", lang="es")
                    assert (await asyncio.to_thread(
                        post, relay.url, body, jwt_headers(body, key, "RS256"))).status_code == 201
                    await d.until(lambda: strip.latest == "Z-900 → Cabina 2", what="re-call")
                    assert strip.recall and strip.others == f"{number} → {poc}"
                    await d.until(lambda: strip.flash > 0, what="the re-call's flash")
                    from kiosk.ui.calling import stop_flash
                    stop_flash(strip)  # the picture at rest
                    strip.flash = 0.0
                    await screenshot("kiosk-es-home-now-calling-recall")
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


async def test_the_display_calls_through_the_real_relay(tmp_path: Path) -> None:
    """The calling screen against `kiosk relay` in its own process (real HTTP over
    loopback): the day's last calls on connecting; a call by webhook shown and said; the
    relay killed (kill -9): the calls stay, the marker shows; the relay back: the screen
    resumes with Last-Event-ID (the new relay gives a fresh screen nothing, history 0, so
    only Last-Event-ID can bring the call it missed)."""
    if in_a_window_of_its_own("test_the_display_calls_through_the_real_relay"):
        return
    import yaml

    from kiosk.relay.server import free_port, relay_process

    from .relay_helpers import SECRET, call_body, post, write_private
    secret = write_private(tmp_path / "webhook-secret", SECRET.decode())
    token = write_private(tmp_path / "relay-token", TOKEN)

    def relay_config(history: int) -> Path:
        path = tmp_path / "relay.yaml"
        path.write_text(yaml.safe_dump({
            "branch": BRANCH, "kiosk": {"id": "relay-1", "data_dir": str(tmp_path / "r")},
            "relay": {"webhook_secret_file": str(secret), "history": history,
                      "displays": [{"branch": BRANCH, "token_file": str(token)}]}}))
        return path

    port = free_port()
    first = relay_process(relay_config(history=10), port=port)
    proc = first.__enter__()
    try:
        for n, (ticket, poc) in enumerate([("A-040", "Cabina 1"), ("A-041", "Cabina 2")]):
            assert post(proc.url, call_body(ticket, f"c{n}", BRANCH, poc)).status_code < 300

        async def scenario(app: Any, feed: CallFeed) -> None:
            screen = app.screen("home")
            await d.until(lambda: screen.ticket == "A-041", what="the day's last calls")
            assert [r[0] for r in screen.earlier] == ["A-040"]
            body = call_body("A-042", "c2", BRANCH, "Cabina 3", lang="en")
            assert (await asyncio.to_thread(post, proc.url, body)).status_code < 300
            await d.until(lambda: screen.ticket == "A-042", what="the webhook's call")
            await d.until(lambda: app.announcer.spoken, timeout=20, what="the announcement")
            said = app.announcer.spoken[-1]
            assert said.text == "Number A 0 42, Cabina 3." and said.voice == "en-us"
            assert wav_frames(said.wav) > 0
            await screenshot("display-es-real-relay")
            await asyncio.to_thread(proc.kill)  # kill -9
            await d.until(lambda: not screen.connected, what="the marker")
            assert screen.ticket == "A-042" and len(screen.earlier) == 2
            second = relay_process(relay_config(history=0), port=port)
            again = await asyncio.to_thread(second.__enter__)
            try:
                body = call_body("B-001", "c3", BRANCH, "Cabina 4", lang="es")
                assert (await asyncio.to_thread(post, again.url, body)).status_code < 300
                feed.reconnect_now()
                await d.until(lambda: screen.connected and screen.ticket == "B-001",
                              timeout=20, what="the call missed while away")
                assert [r[0] for r in screen.earlier] == ["A-042", "A-041", "A-040"]
                assert not screen.recall
                # A-042 called again, to another booth: a new call, marked, said again
                body = call_body("A-042", "c4", BRANCH, "Cabina 5", lang="en")
                assert (await asyncio.to_thread(post, again.url, body)).status_code == 201
                await d.until(lambda: screen.ticket == "A-042" and screen.poc == "Cabina 5",
                              what="the re-call")
                assert screen.recall and screen.ids.recall.opacity == 1
                assert screen.ids.recall.text.endswith("Nuevo llamado")
                await d.until(lambda: any(said.text == "Number A 0 42, Cabina 5."
                                          for said in app.announcer.spoken), timeout=20,
                              what="the re-call said")
                assert [r[0] for r in screen.earlier] == ["B-001", "A-041", "A-040"]
                from kiosk.ui.calling import stop_flash
                stop_flash(screen)
                screen.flash = 0.0
                await screenshot("display-es-recall")
                body = call_body("C-001", "c5", BRANCH, "Cabina 2", lang="es")
                assert (await asyncio.to_thread(post, again.url, body)).status_code == 201
                await d.until(lambda: screen.ticket == "C-001", what="the next call")
                assert not screen.recall and screen.ids.recall.opacity == 0
                assert [(r[0], r[4]) for r in screen.earlier[:2]] == [("A-042", True),
                                                                      ("B-001", False)]
                stop_flash(screen)
                screen.flash = 0.0
                await screenshot("display-es-recall-earlier")
            finally:
                await asyncio.to_thread(second.__exit__, None, None, None)
        slow = Backoff(initial_s=60, max_s=60, jitter=0.0, refused_s=60)  # reconnect on cue
        await run_display(display_config(tmp_path, proc.url), scenario, backoff=slow)
    finally:
        first.__exit__(None, None, None)


def test_the_demo_closes_the_loop_on_a_calling_screen(tmp_path: Path) -> None:
    """`kiosk demo --mode display`: nothing to configure; customers take tickets, the
    mock's agents call them, the webhook goes through the relay, and the calling screen
    (its own process, beside its core) shows the call."""
    p = subprocess.run([sys.executable, "-m", "kiosk", "demo", "--mode", "display", "--smoke",
                        "--data-dir", str(tmp_path / "d")], capture_output=True, text=True,
                       timeout=180, cwd=REPO,
                       env=dict(os.environ, KIVY_HOME=str(tmp_path / "kivy")))
    assert p.returncode == 0, p.stderr[-3000:]
    assert "first call on screen after" in p.stdout and " → Cabina " in p.stdout
    assert "numbers and calls through the branch's hub at http://127.0.0.1:" in p.stdout
    for device in ("demo-1", "demo-greeter", "demo-tv"):  # one token per device, none shown
        token = (tmp_path / "d" / "relay" / f"device-{device}").read_text().strip()
        assert token not in p.stdout + p.stderr
