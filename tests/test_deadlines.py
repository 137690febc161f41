"""Deadlines everywhere (issue 9, item 6): a total deadline per API call and per attempt
(a server that trickles one byte every 1.5 s cannot hold a ``timeout_s: 2`` call), capped
bodies, one budget for everything one tap asks of the API, the UI's deadline on the core,
a watchdog fed only while the core answers, and every stop limit from one module."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from kiosk.api import QmsClient
from kiosk.api.client import MAX_BODY_BYTES, api_budget
from kiosk.config import Config
from kiosk.core.runtime import Runtime, open_runtime
from kiosk.core.server import serve_in_process
from kiosk.core.settings import deadlines_of, ui_settings
from kiosk.deadlines import DEFAULT, Deadlines
from kiosk.errors import AcceptedUnreadable, ApiError, ConnectFailed, MalformedResponse
from kiosk.link import client as link_module
from kiosk.link.client import CoreTimeout, RemoteCore
from kiosk.link.codec import encode
from kiosk.link.protocol import UiSettings
from kiosk.link.watchdog import Watchdog
from kiosk.mock import MockServer, MockState, ScriptedFault, default_scenario_path, load_scenario

from .conftest import ATENCION, BRANCH, FAST_RETRY, KEY, REPO

SLACK_S = 3.0
"""Allowed beyond a configured deadline on a shared, noisy two-core machine."""


def _trickling(every_s: float = 1.5) -> MockState:
    scenario = load_scenario(default_scenario_path())
    scenario.faults.trickle_s = every_s
    return MockState(scenario)


async def _timed(coro: Any, limit: float) -> tuple[Any, float]:
    """Run ``coro``; (its result or exception, seconds taken). Never waits past ``limit``
    (code without deadlines would hang here for minutes)."""
    start = time.monotonic()
    try:
        result: Any = await asyncio.wait_for(coro, limit)
    except (ApiError, CoreTimeout) as exc:
        result = exc
    return result, time.monotonic() - start


# ----------------------------------------------------------------------- the API client


@pytest.mark.parametrize("endpoint", ["queue", "queues"])
async def test_a_trickling_server_cannot_hold_a_get_past_its_deadline(endpoint: str) -> None:
    state = _trickling()
    state.push_faults(ScriptedFault(on=endpoint, answer="trickle", times=5))  # every retry too
    with MockServer(state) as srv:
        async with QmsClient(srv.url, KEY, timeout_s=2, retry=FAST_RETRY) as api:
            deadline = api.call_deadline()
            call = (api.get_queue(BRANCH, ATENCION) if endpoint == "queue"
                    else api.list_queues(BRANCH))
            result, took = await _timed(call, deadline + 30)
    assert isinstance(result, MalformedResponse), result
    assert "did not arrive within" in str(result)
    assert took <= deadline + SLACK_S


async def test_a_trickled_enqueue_ends_in_time_and_counts_as_accepted() -> None:
    state = _trickling()
    state.push_faults(ScriptedFault(on="enqueue", answer="trickle"))
    with MockServer(state) as srv:
        async with QmsClient(srv.url, KEY, timeout_s=2, retry=FAST_RETRY) as api:
            deadline = api.call_deadline(enqueue=True)
            result, took = await _timed(api.enqueue(BRANCH, ATENCION, "A-001"), deadline + 30)
    # the 201 arrived, its body did not: the ticket is in the queue (never asked twice)
    assert isinstance(result, AcceptedUnreadable), result
    assert [t.ticket_id for t in state.tickets] == ["A-001"]
    assert took <= deadline + SLACK_S


async def test_a_body_over_the_cap_is_not_read_to_its_end() -> None:
    sent = 0

    async def huge() -> Any:
        nonlocal sent
        yield b"["
        for _ in range(10_000):
            chunk = b'{"id":"x","name":"y","users":1,"avgWaitingTime":1},' * 20
            sent += len(chunk)
            yield chunk

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=huge())

    async with QmsClient("http://m", KEY, transport=httpx.MockTransport(handler),
                         retry=FAST_RETRY) as api:
        with pytest.raises(MalformedResponse, match="over"):
            await api.list_queues(BRANCH, retries=0)
    assert sent < MAX_BODY_BYTES + 64_000  # it stopped reading just past the cap


async def test_an_announced_length_is_read_in_one_go_and_no_further() -> None:
    """A body with an honest Content-Length within the cap is read at once; bytes sent
    past that length are never taken as the body (h11 stops at the length)."""
    body = b'{"id":"5f0c0ffee","segment":"Caja"}'
    sent_after = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent_after
        await reader.readuntil(b"\r\n\r\n")
        await reader.read(1000)  # the request body
        writer.write(b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n"
                     b"date: Tue, 01 Dec 2026 12:00:00 GMT\r\n"
                     b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        for _ in range(20):  # and then more than it announced
            writer.write(b"x" * 64_000)
            sent_after += 64_000
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with QmsClient(f"http://127.0.0.1:{port}", KEY, retry=FAST_RETRY) as api:
            result = await api.enqueue(BRANCH, ATENCION, "A-001")
            assert api.server_date is not None
    finally:
        server.close()
    assert (result.id, result.segment) == ("5f0c0ffee", "Caja")
    assert sent_after > MAX_BODY_BYTES // 4


async def test_an_announced_length_over_the_cap_is_not_read() -> None:
    sent = 0

    async def huge() -> Any:
        nonlocal sent
        for _ in range(10_000):
            sent += 20_000
            yield b"x" * 20_000

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, content=huge(),
                              headers={"content-length": str(10_000 * 20_000)})

    async with QmsClient("http://m", KEY, transport=httpx.MockTransport(handler),
                         retry=FAST_RETRY) as api:
        with pytest.raises(AcceptedUnreadable, match="over"):
            await api.enqueue(BRANCH, ATENCION, "A-001")
    assert sent < MAX_BODY_BYTES + 64_000  # it stopped reading just past the cap


async def test_one_budget_for_all_the_calls_of_a_request() -> None:
    scenario = load_scenario(default_scenario_path())
    scenario.faults.slow_s = 30
    state = MockState(scenario)
    state.push_faults(ScriptedFault(on="queues", answer="slow", times=5))
    with MockServer(state) as srv:
        async with QmsClient(srv.url, KEY, timeout_s=2, retry=FAST_RETRY) as api:
            with api_budget(1.0):
                result, took = await _timed(api.list_queues(BRANCH), 30)
            assert isinstance(result, ApiError)
            assert took <= 1.0 + SLACK_S
            # an enqueue is never sent with less than a whole attempt's time left
            with api_budget(1.0):
                result, _ = await _timed(api.enqueue(BRANCH, ATENCION, "A-009"), 30)
    assert isinstance(result, ConnectFailed) and "not sent" in str(result)
    assert not [r for r in state.requests if r[0] == "POST"]


# ----------------------------------------------------------------------- the limits


def _unit_stop_sec() -> int:
    text = (REPO / "packaging" / "systemd" / "kiosk.service").read_text(encoding="utf-8")
    m = re.search(r"^TimeoutStopSec=(\d+)", text, re.MULTILINE)
    assert m, "the unit sets TimeoutStopSec"
    return int(m.group(1))


def test_every_stop_limit_derives_from_the_api_timeout_in_one_place(
        config_factory: Callable[..., Config]) -> None:
    d = DEFAULT
    assert d.enqueue_call_s <= d.api_budget_s < d.tap_s < d.ui_tap_s
    assert d.tap_s < d.finish_s < d.stop_wait_s < d.stop_s <= d.stop_sec
    assert d.stop_wait_s == link_module.STOP_WAIT_S
    assert _unit_stop_sec() >= d.stop_sec  # systemd lets the kiosk stop cleanly
    slower = Deadlines(timeout_s=10)
    assert slower.stop_s > d.stop_s and slower.ui_tap_s > d.ui_tap_s
    config = config_factory(api={"base_url": "http://127.0.0.1:9", "timeout_s": 3})
    settings = ui_settings(config)
    assert settings.tap_deadline_s == deadlines_of(config).ui_tap_s < d.ui_tap_s
    assert settings.stop_wait_s == deadlines_of(config).stop_wait_s


def test_the_client_s_own_deadline_is_the_one_derived() -> None:
    api = QmsClient("http://m", KEY, timeout_s=DEFAULT.timeout_s)
    assert api.call_deadline(enqueue=True) >= DEFAULT.enqueue_call_s
    assert api.call_deadline(enqueue=True) <= DEFAULT.enqueue_call_s + 1
    assert api.call_deadline() <= DEFAULT.get_call_s + 1


# ----------------------------------------------------------------------- UI -> core


async def _silent_core(settings: UiSettings) -> tuple[RemoteCore, socket.socket]:
    """A core that says hello and then never answers anything."""
    ui_end, core_end = socket.socketpair()
    core_end.sendall(encode({"event": "hello", "settings": settings.__dict__, "note": ""}))
    remote = await RemoteCore.connect(ui_end)
    await remote.ready()
    return remote, core_end


async def test_the_ui_s_request_to_a_silent_core_ends_at_its_deadline(
        config_factory: Callable[..., Config]) -> None:
    settings = replace(ui_settings(config_factory()), tap_deadline_s=0.5)
    remote, core_end = await _silent_core(settings)
    try:
        result, took = await _timed(remote.issue(ATENCION, language="es"), 30)
        assert isinstance(result, CoreTimeout), result
        assert took <= 0.5 + SLACK_S
        result, _ = await _timed(remote.admin("refresh", "es"), 30)
        assert isinstance(result, CoreTimeout)
        assert not await remote.ping(0.3)
    finally:
        await remote.aclose()
        core_end.close()


# ----------------------------------------------------------------------- the watchdog


class _Systemd:
    """A NOTIFY_SOCKET that counts WATCHDOG=1."""

    def __init__(self, folder: Path) -> None:
        self.path = str(folder / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)

    def watchdogs(self) -> int:
        n = 0
        while True:
            try:
                n += self.sock.recv(4096).count(b"WATCHDOG=1")
            except BlockingIOError:
                return n


async def test_the_watchdog_is_fed_only_while_the_core_answers(
        tmp_path: Path, config_factory: Callable[..., Config]) -> None:
    systemd = _Systemd(tmp_path)
    env = {"NOTIFY_SOCKET": systemd.path, "WATCHDOG_USEC": "1000000"}  # a ping every 0.5 s
    state = MockState(load_scenario(default_scenario_path()))
    with MockServer(state) as srv:
        rt: Runtime = open_runtime(config_factory(api={"base_url": srv.url}), KEY,
                                   retry=FAST_RETRY)
        core, served = await serve_in_process(rt)
        watchdog = Watchdog(env, check=core.ping)
        try:
            await core.ready()
            watchdog.start()
            await asyncio.sleep(1.6)
            assert systemd.watchdogs() >= 2  # both alive: fed
            served.cancel()                  # the core goes away
            await asyncio.wait_for(asyncio.shield(core.closed), 10)
            await asyncio.sleep(0.6)
            systemd.watchdogs()              # what was already on its way
            await asyncio.sleep(1.6)
            assert systemd.watchdogs() == 0  # not fed: systemd will restart the kiosk
            assert watchdog.missed >= 2
        finally:
            await watchdog.stop()
            await core.aclose()
            await rt.aclose()
    systemd.sock.close()


async def test_a_core_that_is_alive_but_stuck_starves_the_watchdog(
        tmp_path: Path, config_factory: Callable[..., Config]) -> None:
    systemd = _Systemd(tmp_path)
    env = {"NOTIFY_SOCKET": systemd.path, "WATCHDOG_USEC": "1000000"}
    remote, core_end = await _silent_core(ui_settings(config_factory()))
    watchdog = Watchdog(env, check=remote.ping)
    try:
        watchdog.start()
        await asyncio.sleep(1.6)
        assert systemd.watchdogs() == 0 and watchdog.missed >= 1
    finally:
        await watchdog.stop()
        await remote.aclose()
        core_end.close()
        systemd.sock.close()


# ----------------------------------------------------------------------- the screen


@pytest.mark.slow
async def test_a_tap_the_core_never_answers_ends_on_a_screen_that_says_what_to_do(
        tmp_path: Path) -> None:
    from . import ui_driver as d
    from .test_ui import card, run

    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        async def stuck(*args: Any, **kw: Any) -> Any:
            await asyncio.sleep(4)  # a core whose use case hangs past the UI's deadline
        rt.service.issue = stuck  # type: ignore[method-assign]
        app.core.settings = replace(app.core.settings, tap_deadline_s=1.0)
        await d.tap(card(app, ATENCION))
        await d.until(lambda: app.sm.current == "message", timeout=15,
                      what="a message after the core's deadline")
        s = app.screen("message")
        assert s.title == "Por favor consulte a nuestro personal"
        assert "personal" in s.message
        assert app.busy_queue == ""  # no spinner left on the card
        await d.screenshot("kiosk-es-tap-timeout")

    await run(tmp_path, scenario)
