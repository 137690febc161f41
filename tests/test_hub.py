"""The device's side of the hub (docs/hub.md): its config (``hub:``, today's ``calls:``,
``numbering``'s offline formats) and its client, against a hostile hub on loopback (the
happy paths run against the real relay in tests/test_hub_numbers.py)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from kiosk.config import config_from_mapping, load_display_token
from kiosk.errors import ConfigError, HubDayMismatch, HubError
from kiosk.hub.client import MAX_ANSWER, HubClient

from .conftest import BRANCH

TOKEN = "device-token-lobby-1-0123456789abcdef"


def cfg(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"branch": BRANCH, "kiosk": {"id": "lobby-1",
                                                        "data_dir": str(tmp_path)}}
    data.update(sections)
    return data


# --------------------------------------------------------------------------- config


def test_a_hub_section_and_its_defaults(tmp_path: Path) -> None:
    c = config_from_mapping(cfg(tmp_path, hub={"url": "https://hub.example.com/",
                                               "token_file": "/etc/kiosk/device"}), "k.yaml")
    assert c.hub is not None and c.hub.url == "https://hub.example.com"
    assert c.hub.phone_url == "https://hub.example.com" and c.hub.heartbeat_s == 30
    assert c.calls is not None and c.calls.keep == 6  # the calls come with the hub
    assert c.numbering.block == 10
    assert c.numbering.offline_format == "{prefix}{kiosk}-{seq:03d}"
    c = config_from_mapping(cfg(tmp_path, hub={
        "url": "https://hub.example.com", "token_file": "/x",
        "public_url": "https://turnos.example.com", "heartbeat_s": 10}), "k.yaml")
    assert c.hub is not None and c.hub.phone_url == "https://turnos.example.com"


def test_todays_calls_section_is_the_hub(tmp_path: Path) -> None:
    c = config_from_mapping(cfg(tmp_path, calls={"url": "http://127.0.0.1:8787",
                                                 "token_file": "/t", "keep": 3}), "k.yaml")
    assert c.hub is not None and c.hub.url == "http://127.0.0.1:8787"
    assert c.hub.token_file == Path("/t") and c.calls is not None and c.calls.keep == 3
    assert config_from_mapping(cfg(tmp_path), "k.yaml").hub is None  # no hub: as today


@pytest.mark.parametrize(("sections", "key", "expected"), [
    ({"hub": {"url": "http://10.0.0.5:8787", "token_file": "/t"}}, "hub.url", "loopback"),
    ({"hub": {"url": "https://u:p@hub.example", "token_file": "/t"}}, "hub.url",
     "user:password"),
    ({"hub": {"url": "https://hub.example"}}, "hub.token_file", "required"),
    ({"hub": {"url": "https://h.example", "token_file": "/t", "public_url": "http://x.org"}},
     "hub.public_url", "loopback"),
    ({"hub": {"url": "https://h.example", "token_file": "/t", "heartbeat_s": 1}},
     "hub.heartbeat_s", "greater than or equal to 5"),
    ({"hub": {"url": "https://h.example", "token_file": "/t"},
      "calls": {"url": "https://other.example", "token_file": "/t"}}, "(top level)",
     "left out when there is a hub section"),
    ({"calls": {"url": "https://h.example"}}, "calls", "calls.token_file together"),
    ({"numbering": {"block": 0}}, "numbering.block", "greater than or equal to 1"),
    ({"numbering": {"offline_format": "{prefix}"}}, "numbering.offline_format", "{seq}"),
])
def test_a_bad_hub_config_names_its_key(tmp_path: Path, sections: dict[str, Any], key: str,
                                        expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping(cfg(tmp_path, **sections), "k.yaml")
    assert info.value.key == key and expected in info.value.expected, info.value


HUB = {"url": "https://hub.example", "token_file": "/t"}


@pytest.mark.parametrize(("kiosk", "numbering", "priority", "queues", "key", "example"), [
    # a device called "P" numbers offline "AP-001": a priority number
    ("P", {}, True, [{"id": "q", "prefix": "A"}], "numbering.offline_format", "AP-000"),
    # a device called "1" numbers offline "A1-001", what queue "A1" numbers when shared
    ("1", {"format": "{prefix}-{seq:03d}"}, False,
     [{"id": "q", "prefix": "A"}, {"id": "r", "prefix": "A1"}], "numbering.offline_format",
     "A1-000"),
    # offline without {kiosk}: two devices offline at once give the same numbers
    ("lobby-1", {"offline_format": "{prefix}X-{seq:03d}"}, False, [],
     "numbering.offline_format", "{kiosk}"),
    ("lobby-1", {"offline_priority_format": "{prefix}{kiosk}-{seq:03d}"}, True,
     [{"id": "q", "prefix": "A"}], "numbering.offline_priority_format", "Alobby-1-000"),
])
def test_start_up_refuses_offline_numbers_that_could_equal_others(
        tmp_path: Path, kiosk: str, numbering: dict[str, str], priority: bool,
        queues: list[dict[str, str]], key: str, example: str) -> None:
    data = cfg(tmp_path, hub=HUB, numbering=numbering, queues=queues,
               priority={"enabled": priority})
    data["kiosk"]["id"] = kiosk
    with pytest.raises(ConfigError) as info:
        config_from_mapping(data, "k.yaml")
    assert info.value.key == key and example in info.value.expected, info.value
    del data["hub"]  # no hub: the offline formats are never used, never checked
    config_from_mapping(data, "k.yaml")


def test_the_default_formats_never_collide_for_ordinary_ids(tmp_path: Path) -> None:
    for kiosk in ("lobby-1", "greeter", "k2", "tv-1"):
        data = cfg(tmp_path, hub=HUB, priority={"enabled": True},
                   queues=[{"id": "q", "prefix": "A"}, {"id": "r"}])
        data["kiosk"]["id"] = kiosk
        config_from_mapping(data, "k.yaml")


def test_the_device_token_comes_from_hub_token_file(tmp_path: Path) -> None:
    token = tmp_path / "device"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    c = config_from_mapping(cfg(tmp_path, hub={"url": "https://h.example",
                                               "token_file": str(token)}), "k.yaml")
    assert load_display_token(c, "k.yaml").get_secret_value() == TOKEN
    token.chmod(0o644)
    with pytest.raises(ConfigError) as info:
        load_display_token(c, "k.yaml")
    assert info.value.key == "hub.token_file" and TOKEN not in str(info.value)


# --------------------------------------------------------------------------- a hostile hub


class CannedHub:
    """A loopback HTTP server answering every request with :attr:`answer` (status, body
    bytes, content type), recording the requests; ``close_at_once`` hangs up instead."""

    def __init__(self) -> None:
        self.answer: tuple[int, bytes, str] = (201, b"{}", "application/json")
        self.close_at_once = False
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> CannedHub:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.lower(): v.strip() for k, _, v in
                           (line.partition(":") for line in lines[1:] if line)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((lines[0], headers, body))
                if self.close_at_once:
                    writer.close()
                    return
                status, payload, ctype = self.answer
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\n"
                             f"content-length: {len(payload)}\r\n\r\n".encode() + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@pytest.fixture
async def canned() -> AsyncIterator[CannedHub]:
    async with CannedHub() as hub:
        yield hub


async def test_a_lease_as_the_contract_says_and_the_token_only_in_its_header(
        canned: CannedHub, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    canned.answer = (201, json.dumps({"sequence": "priority:A", "day": "2026-12-02",
                                      "first": 41, "last": 50}).encode(), "application/json")
    hub = HubClient(canned.url, BRANCH, "lobby-1", SecretStr(TOKEN))
    lease = await hub.lease("priority:A", "2026-12-02", 10)
    assert (lease.first, lease.last, lease.day) == (41, 50, "2026-12-02")
    line, headers, body = canned.requests[0]
    assert line == f"POST /v1/branches/{BRANCH}/leases HTTP/1.1"
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert json.loads(body) == {"sequence": "priority:A", "day": "2026-12-02", "count": 10}
    await hub.aclose()
    assert TOKEN not in caplog.text


@pytest.mark.parametrize(("answer", "status", "expected"), [
    ((201, b'{"sequence": "A", "day": "2026-12-02", "first": 41, "last": 60}'), 201,
     "at most 10"),                       # more numbers than asked: another device's too
    ((201, b'{"sequence": "A", "day": "2026-12-01", "first": 1, "last": 10}'), 201,
     "on 2026-12-02"),                    # a block of another day
    ((201, b'{"sequence": "B", "day": "2026-12-02", "first": 1, "last": 10}'), 201,
     "numbers of A"),
    ((201, b'{"sequence": "A", "day": "2026-12-02", "first": 0, "last": 9}'), 201, "block"),
    ((201, b'{"sequence": "A", "day": "2026-12-02", "first": 1.0, "last": 9}'), 201, "block"),
    ((201, b'{"sequence": "A", "day": "2026-12-02", "first": true, "last": 1}'), 201,
     "block"),
    ((201, b"<html>proxy</html>"), 201, "not JSON"),
    ((201, b"[1, 2]"), 201, "not a JSON object"),
    ((403, b'{"error": "forbidden"}'), 403, "refused (forbidden)"),
    ((502, b"bad gateway"), 502, "refused"),
    ((409, b'{"error": "day"}'), 409, "a day, unreadable"),
    ((201, b" " * (MAX_ANSWER + 10)), 201, "over"),
])
async def test_a_bad_lease_answer_is_a_hub_error(canned: CannedHub, answer: tuple[int, bytes],
                                                 status: int, expected: str) -> None:
    canned.answer = (*answer, "application/json")
    hub = HubClient(canned.url, BRANCH, "lobby-1", SecretStr(TOKEN))
    with pytest.raises(HubError) as info:
        await hub.lease("A", "2026-12-02", 10)
    await hub.aclose()
    assert info.value.status == status and expected in str(info.value), info.value
    assert TOKEN not in str(info.value)


async def test_the_hubs_other_day_is_named(canned: CannedHub) -> None:
    canned.answer = (409, b'{"error": "day", "day": "2026-12-03"}', "application/json")
    hub = HubClient(canned.url, BRANCH, "lobby-1", SecretStr(TOKEN))
    with pytest.raises(HubDayMismatch) as info:
        await hub.lease("A", "2026-12-02", 10)
    await hub.aclose()
    assert (info.value.day, info.value.asked, info.value.status) == ("2026-12-03",
                                                                     "2026-12-02", 409)


async def test_no_answer_is_a_hub_error_without_a_status(canned: CannedHub) -> None:
    canned.close_at_once = True
    hub = HubClient(canned.url, BRANCH, "lobby-1", SecretStr(TOKEN), timeout_s=2)
    with pytest.raises(HubError) as info:
        await hub.report({"ticketId": "A-001"})
    assert info.value.status is None
    await hub.aclose()
    hub = HubClient("http://127.0.0.1:9", BRANCH, "lobby-1", SecretStr(TOKEN))
    with pytest.raises(HubError) as info:
        await hub.put_state({"role": "kiosk"})
    assert info.value.status is None and "no answer (ConnectError)" in str(info.value)
    await hub.aclose()


async def test_reports_state_and_ledger_requests(canned: CannedHub) -> None:
    hub = HubClient(canned.url, BRANCH, "lobby 1/x", SecretStr(TOKEN))
    canned.answer = (201, b"", "application/json")
    assert await hub.report({"ticketId": "A-001"}) is True
    canned.answer = (200, b'{"known": true}', "application/json")
    assert await hub.report({"ticketId": "A-001"}) is False
    canned.answer = (204, b"", "application/json")
    await hub.put_state({"role": "kiosk"})
    canned.answer = (200, b'{"branch": "b", "date": "2026-12-02", "tickets": []}',
                     "application/json")
    assert (await hub.tickets("2026-12-02"))["tickets"] == []
    canned.answer = (200, b'{"tickets": "all"}', "application/json")
    with pytest.raises(HubError, match="without a list"):
        await hub.tickets()
    await hub.aclose()
    lines = [r[0] for r in canned.requests]
    assert lines[2] == "PUT /v1/devices/lobby%201%2Fx/state HTTP/1.1"
    assert lines[3] == f"GET /v1/branches/{BRANCH}/tickets?date=2026-12-02 HTTP/1.1"
    assert lines[4] == f"GET /v1/branches/{BRANCH}/tickets HTTP/1.1"


async def test_a_loopback_hub_is_never_reached_through_a_proxy(
        canned: CannedHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    canned.answer = (204, b"", "application/json")
    hub = HubClient(canned.url, BRANCH, "lobby-1", SecretStr(TOKEN))
    await hub.put_state({"role": "kiosk"})  # a proxy at :9 would refuse the connection
    await hub.aclose()


async def test_the_calls_stream_shares_the_hubs_connection_pool(canned: CannedHub) -> None:
    """One pool to the hub per core: the feed borrows it, and closing the feed leaves it
    open for the hub's other requests."""
    from kiosk.calls.feed import CallFeed

    from .sse_stub import SseStub
    async with SseStub(BRANCH, TOKEN) as stub:
        hub = HubClient(stub.url, BRANCH, "lobby-1", SecretStr(TOKEN))
        feed = CallFeed(stub.url, BRANCH, SecretStr(TOKEN), client=hub.http)
        stub.push("A-001", "Cabina 1")
        feed.start()
        for _ in range(200):
            if feed.calls:
                break
            await asyncio.sleep(0.02)
        assert [c.ticket_id for c in feed.calls] == ["A-001"]
        await feed.aclose()
        assert not hub.http.is_closed
        await hub.aclose()
        assert hub.http.is_closed
