"""The core's call feed against an SSE endpoint over real loopback HTTP: history on
connect, live calls, reconnect with Last-Event-ID, refusal, bad events, the token kept
secret; and the pure helpers that turn a call into words."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from kiosk.calls.feed import (
    MAX_LINE,
    Backoff,
    CallFeed,
    bounded_lines,
    probe_relay,
    sse_events,
)
from kiosk.view.calling import (
    Call,
    call_from_json,
    call_to_json,
    parse_call,
    speech_text,
    spell_ticket,
)

from .proxy_stub import RecordingProxy
from .sse_stub import SseStub

BRANCH = "652720d479497a1b62df288b"
TOKEN = "display-token-s3cret"
FAST = Backoff(initial_s=0.01, max_s=0.05, jitter=0.0, refused_s=0.05)


async def until(predicate: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.01)


def feed_for(stub: SseStub, token: str = TOKEN) -> CallFeed:
    return CallFeed(stub.url, BRANCH, SecretStr(token), backoff=FAST)


async def test_history_then_live_calls_newest_first() -> None:
    announced: list[Call] = []
    async with SseStub(BRANCH, TOKEN) as stub:
        old = datetime.now(UTC) - timedelta(minutes=30)
        stub.push("A-001", "Cabina 1", at=old)
        stub.push("B-001", "Cabina 2", at=old)
        feed = feed_for(stub)
        feed.subscribe(lambda f, new: announced.extend(c for c in new if f.fresh(c)))
        feed.start()
        try:
            await until(lambda: len(feed.calls) == 2)
            assert feed.connected
            assert [c.ticket_id for c in feed.calls] == ["B-001", "A-001"]
            assert announced == []  # the morning's calls are listed, not read out again
            assert "last-event-id" not in stub.requests[0]
            stub.push("A-002", "Cabina 3", lang="pt")
            await until(lambda: len(announced) == 1)
            assert announced[0].ticket_id == "A-002" and announced[0].lang == "pt"
            assert feed.calls[0].poc == "Cabina 3"
        finally:
            await feed.aclose()


async def test_reconnects_with_last_event_id_and_gets_what_it_missed() -> None:
    announced: list[str] = []
    async with SseStub(BRANCH, TOKEN) as stub:
        feed = feed_for(stub)
        feed.subscribe(lambda f, new: announced.extend(c.ticket_id for c in new if f.fresh(c)))
        feed.start()
        try:
            await until(lambda: stub.connected == 1)
            first = stub.push("A-001", "Cabina 1")
            await until(lambda: announced == ["A-001"])
            stub.drop()
            await until(lambda: not feed.connected or len(stub.requests) > 1)
            stub.push("A-002", "Cabina 2")  # while the screen is away (maybe)
            await until(lambda: feed.connected and stub.connected == 1
                        and len(stub.requests) >= 2)
            assert stub.requests[1]["last-event-id"] == first
            await until(lambda: announced == ["A-001", "A-002"])
            assert [c.ticket_id for c in feed.calls] == ["A-002", "A-001"]
        finally:
            await feed.aclose()


async def test_a_ticket_called_again_is_listed_once() -> None:
    async with SseStub(BRANCH, TOKEN) as stub:
        feed = feed_for(stub)
        feed.start()
        try:
            stub.push("A-001", "Cabina 1")
            stub.push("A-002", "Cabina 2")
            stub.push("A-001", "Cabina 4")
            await until(lambda: feed.last_event_id == "3")
            assert [(c.ticket_id, c.poc) for c in feed.calls] == [
                ("A-001", "Cabina 4"), ("A-002", "Cabina 2")]
        finally:
            await feed.aclose()


async def test_a_wrong_token_is_refused_and_never_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with SseStub(BRANCH, TOKEN) as stub:
        feed = feed_for(stub, token="wrong-t0ken-zz")
        feed.start()
        try:
            await until(lambda: len(stub.requests) >= 2)  # it comes back (slowly in life)
            assert not feed.connected and "401" in feed.error
            assert stub.requests[0]["authorization"] == "Bearer wrong-t0ken-zz"
        finally:
            await feed.aclose()
    assert "calls.token_file" in caplog.text
    assert "wrong-t0ken-zz" not in caplog.text


async def test_the_relay_gone_keeps_the_last_calls() -> None:
    stub = SseStub(BRANCH, TOKEN)
    async with stub:
        feed = feed_for(stub)
        feed.start()
        stub.push("C-010", "Cabina 9")
        await until(lambda: feed.calls)
    try:  # the stub's server is closed now: nothing listens on that port
        await until(lambda: not feed.connected and feed.failures >= 2)
        assert [c.ticket_id for c in feed.calls] == ["C-010"]
        assert "unreachable" in feed.error
    finally:
        await feed.aclose()


async def test_bad_events_are_skipped() -> None:
    async with SseStub(BRANCH, TOKEN) as stub:
        feed = feed_for(stub)
        feed.start()
        try:
            stub.push("", "", raw="not json")
            stub.push("", "", raw='{"ticketId": "A-1"}')  # no booth
            stub.push("A-\x1b[2J007\n", "Cabina\t5", lang="xx")
            await until(lambda: feed.last_event_id == "3")
            assert [(c.ticket_id, c.poc, c.lang) for c in feed.calls] == [
                ("A- [2J007", "Cabina 5", "")]
        finally:
            await feed.aclose()


async def test_sse_parsing() -> None:
    async def lines():  # type: ignore[no-untyped-def]
        for line in [": keep-alive", "", "event: call", "id: 7", "data: {\"a\":", "data: 1}",
                     "retry: 3000", "", "data: x", "", "id: 8\0", "event: call", "data: y", ""]:
            yield line
    got = [ev async for ev in sse_events(lines())]
    assert [(e.event, e.data, e.id, e.retry_ms) for e in got] == [
        ("call", '{"a":\n1}', "7", 3000), ("message", "x", "7", None),
        ("call", "y", "7", None)]


async def test_an_oversized_id_is_ignored() -> None:
    """An ``id:`` is sent back as Last-Event-ID at every reconnect: one over 128
    characters (the relay's are short numbers) is not kept."""
    async def lines():  # type: ignore[no-untyped-def]
        for line in ["id: 7", "data: a", "", "id: " + "9" * 129, "data: b", "",
                     "id: " + "8" * 128, "data: c", ""]:
            yield line
    got = [ev async for ev in sse_events(lines())]
    assert [e.id for e in got] == ["7", "7", "8" * 128]


async def _lines_of(data: bytes, cut: int, max_line: int = MAX_LINE) -> list[str]:
    """``data`` through :func:`bounded_lines` in chunks of ``cut`` bytes."""
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(data), cut):
            yield data[i:i + cut]
    return [line async for line in bounded_lines(chunks(), max_line)]


async def test_lines_are_the_same_however_the_stream_is_cut() -> None:
    """CR, LF and CRLF end lines wherever the chunks split them (a CRLF cut in two is one
    line end, not two)."""
    data = b"id: 1\r\ndata: a\rdata: b\n\r\n: keep-alive\r\r\nevent: call\nend\r"
    whole = await _lines_of(data, len(data))
    assert whole == ["id: 1", "data: a", "data: b", "", ": keep-alive", "", "event: call",
                     "end\r"]
    for cut in range(1, len(data)):
        assert await _lines_of(data, cut) == whole, cut


async def test_the_line_reader_is_linear_in_the_bytes_however_they_come() -> None:
    """A relay trickling one 64 KiB line a byte at a time (before: each byte searched the
    whole line again, 12 s of CPU). The ratio of the CPU time of a 64 KiB line to an 8 KiB
    one, both a byte at a time, measured here: 8 when linear, over 50 when quadratic."""
    async def cpu(size: int) -> float:
        line = b"d" * size + b"\n"
        best = float("inf")
        for _ in range(3):
            began = time.process_time()
            got = await _lines_of(line, 1)
            best = min(best, time.process_time() - began)
            assert got == ["d" * size]
        return best

    small, large = await cpu(8 * 1024), await cpu(64 * 1024)
    assert large < 16 * small, f"64 KiB: {large:.3f} s, 8 KiB: {small:.3f} s of CPU"


PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                   "all_proxy")


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "ALL_PROXY"])
async def test_a_loopback_relay_is_reached_directly_never_through_a_proxy(
        monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    """A proxy in the environment (a branch's network settings) never sees a request to a
    relay on this machine: over ``http://`` it would read the display token in clear
    (before: the feed and ``kiosk check`` sent it there)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with RecordingProxy() as proxy, SseStub(BRANCH, TOKEN) as stub:
        monkeypatch.setenv(variable, proxy.url)
        stub.push("A-001", "Cabina 1")
        feed = feed_for(stub)
        feed.start()
        try:
            await until(lambda: [c.ticket_id for c in feed.calls] == ["A-001"])
            checks = await probe_relay(stub.url, BRANCH, SecretStr(TOKEN))
        finally:
            await feed.aclose()
        assert [ok for ok, _, _ in checks] == [True, True], checks
        assert stub.requests[0]["authorization"] == f"Bearer {TOKEN}"  # it went direct
        assert proxy.seen == b"", proxy.seen[:200]


async def test_a_relay_elsewhere_goes_through_the_proxy_only_as_a_tunnel(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An ``https://`` relay across the internet may need the branch's proxy: it is used,
    as a ``CONNECT`` tunnel for TLS, so the token never reaches it (the proxy here refuses
    the tunnel: nothing leaves this machine)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    async with RecordingProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        checks = await probe_relay("https://calls.example.invalid", BRANCH, SecretStr(TOKEN))
    assert checks[0][0] is False and "unreachable" in checks[0][2]
    assert proxy.connects == ["calls.example.invalid:443"]
    assert TOKEN.encode() not in proxy.seen and b"Bearer" not in proxy.seen


@pytest.mark.parametrize("retry_after", ["1", "Wed, 21 Oct 2015 07:28:00 GMT", "999999"])
async def test_a_relay_that_says_retry_after_is_left_alone_that_long(retry_after: str) -> None:
    """A 429 (too many streams for this token) or 503 with Retry-After: the screen waits
    at least that long (at most its refused wait) before it asks again."""
    async with SseStub(BRANCH, TOKEN) as stub:
        stub.refuse_with, stub.retry_after = 429, retry_after
        feed = CallFeed(stub.url, BRANCH, SecretStr(TOKEN), backoff=Backoff(
            initial_s=0.01, max_s=0.05, jitter=0.0, refused_s=1.0))
        feed.start()
        try:
            await until(lambda: len(stub.requests) >= 1)
            await asyncio.sleep(0.6)
            if retry_after.isdigit():
                assert len(stub.requests) == 1  # still waiting
            else:
                assert len(stub.requests) > 2  # a date is not read: the usual short waits
            assert "429" in feed.error
            stub.refuse_with = None
            await until(lambda: feed.connected, timeout=5)  # capped: it comes back
        finally:
            await feed.aclose()


def test_backoff_doubles_and_is_capped() -> None:
    b = Backoff(initial_s=0.5, max_s=30, jitter=0)
    assert [b.delay(n) for n in (1, 2, 3, 8, 20)] == [0.5, 1.0, 2.0, 30, 30]


@pytest.mark.parametrize(("ticket", "spoken"), [
    ("A-042", "A 0 42"), ("B-007", "B 0 0 7"), ("A-100", "A 100"), ("C-000", "C 0 0 0"),
    ("A2-015", "A 2 0 15"), ("ab12", "A B 12")])
def test_tickets_are_spelled_to_be_understood(ticket: str, spoken: str) -> None:
    assert spell_ticket(ticket) == spoken


def test_speech_in_the_tickets_language() -> None:
    call = parse_call("1", '{"ticketId": "A-042", "poc": {"label": "Cabina 3"}, '
                           '"queue": {"name": "Caja"}, "at": "2026-12-01T10:00:00Z"}')
    assert call is not None and call.lang == ""
    assert speech_text(call, "es") == "Número A 0 42, Cabina 3."
    assert speech_text(call, "en") == "Number A 0 42, Cabina 3."
    assert speech_text(call, "pt") == "Senha A 0 42, Cabina 3."
    assert call_from_json(call_to_json(call)) == call
    now = datetime(2026, 12, 1, 10, 1, tzinfo=UTC)
    assert call.is_recent(now) and not call.is_recent(now + timedelta(hours=1))


def test_only_todays_calls_are_shown() -> None:
    from kiosk.view.calling import todays
    now = datetime.now(UTC)
    calls = [parse_call(str(i), json.dumps({"ticketId": f"A-{i:03d}", "poc": {"label": "C"},
                                            "at": (now - timedelta(days=i)).isoformat()}))
             for i in range(3)]
    assert [c.ticket_id for c in todays([c for c in calls if c])] == ["A-000"]


@pytest.mark.parametrize(("flood", "what"), [
    (b"data: " + b"x" * 65_536, "one endless line"),
    (b"data: " + b"x" * 1000 + b"\n", "one endless event"),
])
async def test_an_endless_line_or_event_is_cut_off_and_the_feed_comes_back(
        caplog: pytest.LogCaptureFixture, flood: bytes, what: str) -> None:
    """A broken or hostile relay streams ~32 MB with no end of event: the screen drops the
    stream at MAX_LINE / MAX_EVENT bytes (its memory stays bounded), says so once without
    the data, reconnects and gets the next call."""
    import tracemalloc
    caplog.set_level(logging.DEBUG)
    announced: list[str] = []
    async with SseStub(BRANCH, TOKEN) as stub:
        stub.push("A-001", "Cabina 1")
        feed = feed_for(stub)
        feed.subscribe(lambda f, new: announced.extend(c.ticket_id for c in new if f.fresh(c)))
        stub.flood = flood
        tracemalloc.start()
        try:
            feed.start()
            await until(lambda: stub.flood_cut or stub.flood_sent >= stub.flood_limit,
                        timeout=60)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        try:
            assert stub.flood_cut, f"the screen read all of {what} ({stub.flood_sent} bytes)"
            assert peak < 4 * 1024 * 1024, f"{peak} bytes held for {what}"
            await until(lambda: feed.connected and len(stub.requests) >= 2)
            stub.push("A-002", "Cabina 2")
            await until(lambda: "A-002" in announced)
            assert [c.ticket_id for c in feed.calls] == ["A-002", "A-001"]
        finally:
            await feed.aclose()
    cut = [r for r in caplog.records if "protocol error" in r.getMessage()]
    assert len(cut) == 1 and cut[0].levelno == logging.WARNING
    assert "xxxxxxxx" not in caplog.text


async def test_a_compressed_stream_is_refused_as_a_protocol_error(
        caplog: pytest.LogCaptureFixture) -> None:
    """The screen asks for an uncompressed stream (a small gzip body can inflate to
    gigabytes); one that comes compressed all the same is dropped, and retried."""
    caplog.set_level(logging.DEBUG)
    async with SseStub(BRANCH, TOKEN) as stub:
        stub.encoding = "gzip"
        feed = feed_for(stub)
        feed.start()
        try:
            await until(lambda: feed.connected and len(stub.requests) >= 2)
            assert stub.requests[0]["accept-encoding"] == "identity"
            stub.push("A-001", "Cabina 1")
            await until(lambda: feed.calls)
        finally:
            await feed.aclose()
    assert "protocol error" in caplog.text


async def test_a_relay_that_always_compresses_meets_a_growing_wait(
        caplog: pytest.LogCaptureFixture) -> None:
    """Each protocol error counts as a failure in a row: the waits grow as for a relay
    that cannot be reached, and the warning is not repeated at every try."""
    async with SseStub(BRANCH, TOKEN) as stub:
        feed = CallFeed(stub.url, BRANCH, SecretStr(TOKEN), backoff=Backoff(
            initial_s=0.02, max_s=5.0, jitter=0.0, refused_s=5.0))
        stub.encoding = "gzip"
        stub.always_encoding = True
        feed.start()
        try:
            await asyncio.sleep(1.0)  # 0.02 0.04 0.08 0.16 0.32 (0.62 s) then 0.64
        finally:
            await feed.aclose()
    assert 4 <= len(stub.requests) <= 7, len(stub.requests)
    assert feed.failures >= 4
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) <= 2, [r.getMessage() for r in warnings]


@pytest.mark.parametrize(("header", "body"), [
    ("retry-after: \xb2", ""),  # "²": a digit to str.isdigit, not to float()
    ("", "id: \u00b2\nevent: call\ndata: {\"ticketId\": \"A-1\", \"poc\": {\"label\": \"B\"}}\n\n"),
    ("", "id: \u20ac\nevent: call\ndata: {\"ticketId\": \"A-1\", \"poc\": {\"label\": \"B\"}}\n\n"),
])
async def test_odd_characters_from_the_relay_never_stop_the_feed(header: str,
                                                                 body: str) -> None:
    """A Retry-After of "²", an id of "²" (not a number) or "€" (not sendable back in a
    header): the feed goes on, and still shows the next call."""
    import httpx

    answers = {"n": 0}
    at = datetime.now(UTC).isoformat()

    def relay(request: httpx.Request) -> httpx.Response:
        answers["n"] += 1
        if header and answers["n"] == 1:
            name, _, value = header.partition(": ")
            return httpx.Response(429, headers={name: value.encode("latin-1")})
        call = json.dumps({"ticketId": "A-2", "poc": {"label": "Cabina 2"}, "at": at})
        text = body if answers["n"] == 1 else f"id: 5\nevent: call\ndata: {call}\n\n"
        async def stream() -> AsyncIterator[bytes]:  # read as a stream, as a relay's is
            yield text.encode()
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              content=stream())

    feed = CallFeed("http://127.0.0.1:9", BRANCH, SecretStr(TOKEN), backoff=FAST,
                    transport=httpx.MockTransport(relay))
    feed.start()
    try:
        await until(lambda: any(c.ticket_id == "A-2" for c in feed.calls), timeout=5)
        assert feed._task is not None and not feed._task.done()
    finally:
        await feed.aclose()
