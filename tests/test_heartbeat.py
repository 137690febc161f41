"""The heartbeat (issue 19): the device's state to the hub over real HTTP on loopback,
every period and at once on a change; only the latest counts (nothing queued while the
hub is away); kiosks, tablets and calling screens."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kiosk.core.runtime import Runtime, open_runtime
from kiosk.core.state import asked, compose_display, watched
from kiosk.hub.client import HubClient
from kiosk.hub.heartbeat import Heartbeat
from kiosk.mock import MockState, create_app
from kiosk.relay.server import listening_socket
from kiosk.view.devicestate import DeviceState

from .conftest import FAST_RETRY, KEY, make_config

TOKEN = "device-token-lobby-1-0123456789abcdef"


class RecordingHub:
    """A hub on loopback that records each heartbeat's body; ``up = False``: it answers
    503 and records nothing (the hub away); ``token``: the one it takes."""

    def __init__(self) -> None:
        self.bodies: list[tuple[float, str, dict[str, Any]]] = []
        self.attempts = 0
        self.up = True
        self.token = TOKEN

        async def put(request: Request) -> Response:
            self.attempts += 1
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return Response(status_code=401)
            if not self.up:
                return Response(status_code=503)
            self.bodies.append((time.monotonic(), request.path_params["device"],
                                json.loads(await request.body())))
            return Response(status_code=204)

        self._sock = listening_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(
            Starlette(routes=[Route("/v1/devices/{device}/state", put, methods=["PUT"])]),
            log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self) -> RecordingHub:
        self._thread.start()
        while not self._server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._sock.close()

    async def wait(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < count:
            assert time.monotonic() < deadline, f"{len(self.bodies)} of {count} heartbeats"
            await asyncio.sleep(0.02)
        return [b for _, _, b in self.bodies]


def putter(client: httpx.AsyncClient, url: str, device: str) -> Any:
    """The device's real client of the hub: ``HubClient.put_state``."""
    hub = HubClient(url, "652720d479497a1b62df288b", device, SecretStr(TOKEN))
    hub.http = client  # closed by the fixture
    return hub.put_state


@pytest.fixture
def hub() -> Iterator[RecordingHub]:
    with RecordingHub() as h:
        yield h


@pytest.fixture
async def rt(tmp_path: Path, state: MockState) -> AsyncIterator[Runtime]:
    runtime = open_runtime(make_config(tmp_path), KEY, retry=FAST_RETRY,
                           transport=httpx.ASGITransport(app=create_app(state)))
    await runtime.monitor.poll_once()
    yield runtime
    await runtime.aclose()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=2) as c:
        yield c


def kiosk_heartbeat(rt: Runtime, hub: RecordingHub, client: httpx.AsyncClient,
                    every_s: float, check_s: float = 0.05) -> Heartbeat:
    def answered(word: str) -> None:
        rt.hub_word = word
    return Heartbeat(lambda: asked(rt), lambda: watched(rt),
                     putter(client, hub.url, rt.config.kiosk.id), every_s=every_s,
                     check_s=check_s, answered=answered)


async def test_every_period_the_contracts_body(rt: Runtime, hub: RecordingHub,
                                               client: httpx.AsyncClient) -> None:
    hb = kiosk_heartbeat(rt, hub, client, every_s=0.3)
    hb.start()
    try:
        bodies = await hub.wait(3)
    finally:
        await hb.stop()
    gaps = [b[0] - a[0] for a, b in zip(hub.bodies, hub.bodies[1:], strict=False)]
    assert all(g > 0.2 for g in gaps), gaps  # every period, not every check
    assert {d for _, d, _ in hub.bodies} == {"test-1"}
    body = bodies[-1]
    assert set(body) == {"role", "version", "in_service", "reason", "printer", "api",
                         "clock", "clock_skew_s", "journal", "numbers", "tickets_today",
                         "forms_today", "priority_today", "last_ticket_at", "uptime_s"}
    assert (body["role"], body["in_service"], body["printer"]) == ("kiosk", True, "unknown")
    assert rt.hub_word == "ok"


async def test_at_once_on_a_change(rt: Runtime, hub: RecordingHub,
                                   client: httpx.AsyncClient) -> None:
    hb = kiosk_heartbeat(rt, hub, client, every_s=60)
    hb.start()
    try:
        await hub.wait(1)
        t0 = time.monotonic()
        rt.service.health.set("clock", "it is 2026-12-01 here but the journal has 2026-12-02")
        bodies = await hub.wait(2, timeout=2)
        assert time.monotonic() - t0 < 1.0  # not 60 s later
        assert (bodies[1]["in_service"], bodies[1]["reason"], bodies[1]["clock"]) == (
            False, "clock", "wrong")
        rt.service.health.clear("clock")
        bodies = await hub.wait(3, timeout=2)
        assert bodies[2]["in_service"] is True
        await asyncio.sleep(0.3)
        assert len(hub.bodies) == 3  # nothing changed: nothing sent until the period
    finally:
        await hb.stop()


async def test_only_the_latest_counts_while_the_hub_is_away(
        rt: Runtime, hub: RecordingHub, client: httpx.AsyncClient) -> None:
    """Three changes while the hub is away: when it is back it gets one heartbeat, the
    state as it is then, never the ones it missed."""
    hb = kiosk_heartbeat(rt, hub, client, every_s=0.5)
    hb.start()
    try:
        await hub.wait(1)
        hub.up = False
        for fault in ("journal", "clock", "journal"):
            rt.service.health.set(fault, f"{fault} fault for the test")
            await asyncio.sleep(0.15)
            rt.service.health.clear(fault)
        rt.service.health.set("journal", "3 record(s) not written")  # the latest state
        await asyncio.sleep(0.6)
        assert rt.hub_word == "unreachable"
        assert hb.failed >= 3 and len(hub.bodies) == 1
        attempts = hub.attempts
        await asyncio.sleep(0.6)
        assert hub.attempts - attempts <= 2  # while away: once a period, not a flood
        hub.up = True
        await hub.wait(2, timeout=5)
        first = hub.bodies[1][0]
        await asyncio.sleep(0.2)  # under a period: a backlog would arrive now
        later = hub.bodies[1:]
        assert len([at for at, _, _ in later if at - first < 0.2]) == 1, later
        for _, _, body in later:  # only the state as it is: none of the missed ones
            assert (body["journal"], body["clock"], body["in_service"]) == (
                "fault", "ok", True)
        assert rt.hub_word == "ok"
    finally:
        await hb.stop()


async def test_a_refused_token_is_said(rt: Runtime, hub: RecordingHub,
                                       client: httpx.AsyncClient) -> None:
    hub.token = "another-token"
    hb = kiosk_heartbeat(rt, hub, client, every_s=60)
    assert not await hb.beat()
    assert (hb.word, rt.hub_word) == ("refused", "refused")
    assert hub.bodies == []


async def test_a_calling_screen_beats_too(hub: RecordingHub, client: httpx.AsyncClient,
                                          tmp_path: Path) -> None:
    from kiosk.calls.feed import CallFeed
    from kiosk.config import config_from_mapping
    config = config_from_mapping({
        "branch": "652720d479497a1b62df288b",
        "kiosk": {"id": "tv-1", "mode": "display", "data_dir": str(tmp_path)},
        "calls": {"url": "http://127.0.0.1:9", "token_file": str(tmp_path / "t")}},
        "display.yaml")
    feed = CallFeed.from_config(config, "display-token-0123456789abcdef")  # type: ignore[arg-type]
    started = time.monotonic()

    async def state() -> DeviceState:
        return compose_display(config, feed, started)
    hb = Heartbeat(state, lambda: feed.connected, putter(client, hub.url, "tv-1"),
                   every_s=60)
    try:
        assert await hb.beat()
        (_, device, body), = hub.bodies
        assert device == "tv-1"
        assert (body["role"], body["printer"], body["api"], body["in_service"]) == (
            "display", "none", "none", True)
    finally:
        await feed.aclose()


# --------------------------------------------------------------------------- the real hub


async def test_a_kiosks_heartbeat_through_the_real_relay(tmp_path: Path,
                                                         state: MockState) -> None:
    """The core's own heartbeat (kiosk.core.state.heartbeat, as `kiosk core` starts it)
    through HubClient to the relay's PUT: /v1/fleet shows the device, its change within a
    second, and a token the hub does not know is said on the staff screen."""
    from kiosk.core.state import compose, heartbeat
    from kiosk.relay.server import RelayServer
    from tests.fleet_helpers import TOKENS, by_id, fleet_settings
    from tests.relay_helpers import BRANCH_A
    token_file = tmp_path / "device-token"
    token_file.write_text(TOKENS["lobby-1"])
    token_file.chmod(0o600)
    with RelayServer(fleet_settings(tmp_path)) as relay:
        config = make_config(tmp_path, branch=BRANCH_A, kiosk__id="lobby-1",
                             hub={"url": relay.url, "token_file": str(token_file),
                                  "heartbeat_s": 30})
        hub = HubClient.from_config(config, SecretStr(TOKENS["lobby-1"]))
        rt = open_runtime(config, KEY, retry=FAST_RETRY, hub=hub,
                          transport=httpx.ASGITransport(app=create_app(state)))
        try:
            await rt.monitor.poll_once()
            hb = heartbeat(rt)
            assert hb is not None and hb.every_s == 30
            hb.check_s = 0.05
            hb.start()

            async def fleet_says(check: Any, what: str) -> dict[str, Any]:
                deadline = time.monotonic() + 5
                while True:
                    d = (await asyncio.to_thread(by_id, relay.url))["lobby-1"]
                    if check(d):
                        return d
                    assert time.monotonic() < deadline, (what, d)
                    await asyncio.sleep(0.05)

            d = await fleet_says(lambda d: d["last_seen"] is not None, "first heartbeat")
            assert (d["branch"], d["role"], d["printer"]) == (BRANCH_A, "kiosk", "unknown")
            assert rt.hub_word == "ok" and compose(rt).hub == "ok"
            t0 = time.monotonic()
            rt.service.health.set("clock", "it is 2026-12-01 here but the journal has "
                                  "tickets of 2026-12-02")
            d = await fleet_says(lambda d: d["state"] == "error", "the clock's fault")
            assert d["reason"] == "clock" and time.monotonic() - t0 < 2  # not 30 s later
            await hb.stop()
            hub._token = SecretStr("a-token-the-hub-does-not-know-0123")
            assert not await hb.beat()
            assert rt.hub_word == "refused"
        finally:
            await rt.aclose()


async def test_a_calling_screens_heartbeat_through_the_real_relay(tmp_path: Path) -> None:
    """`kiosk core`'s display heartbeat (kiosk.core.main.display_heartbeat) through the
    calling screen's HubClient to the relay: /v1/fleet shows the screen, in service."""
    import types

    from kiosk.calls.feed import CallFeed
    from kiosk.config import config_from_mapping
    from kiosk.core.main import display_heartbeat
    from kiosk.relay.server import RelayServer
    from tests.fleet_helpers import TOKENS, by_id, fleet_settings
    from tests.relay_helpers import BRANCH_A
    token_file = tmp_path / "device-token"
    token_file.write_text(TOKENS["tv-1"])
    token_file.chmod(0o600)
    with RelayServer(fleet_settings(tmp_path)) as relay:
        config = config_from_mapping({
            "branch": BRANCH_A,
            "kiosk": {"id": "tv-1", "mode": "display", "data_dir": str(tmp_path / "d")},
            "hub": {"url": relay.url, "token_file": str(token_file)}}, "display.yaml")
        hub = HubClient.from_config(config, SecretStr(TOKENS["tv-1"]))
        feed = CallFeed.from_config(config, SecretStr(TOKENS["tv-1"]), client=hub.http)
        server = types.SimpleNamespace(started=time.monotonic(), hub="none")
        beat = display_heartbeat(server, config, feed, hub)  # type: ignore[arg-type]
        try:
            assert server.hub == "waiting" and beat.every_s == 30
            assert await beat.beat()
            assert server.hub == "ok"
            d = (await asyncio.to_thread(by_id, relay.url))["tv-1"]
            assert (d["role"], d["state"], d["printer"]) == ("display", "ok", "none")
        finally:
            await feed.aclose()
            await hub.aclose()
