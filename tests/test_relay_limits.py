"""The relay's exposures, over real loopback HTTP: what ``/healthz`` and ``/metrics`` tell
whom, how many streams one display token may hold open, and the send deadline that closes
a stream whose screen stopped reading."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
import yaml

from kiosk.errors import StoreError
from kiosk.relay import RelayConfigError, RelayServer, load_settings
from kiosk.relay.app import create_app
from kiosk.relay.store import Call, Event, SqliteStore
from tests.relay_helpers import (
    BRANCH_A,
    BRANCH_B,
    SECRET,
    TOKEN_A,
    TOKEN_B,
    SseReader,
    call_body,
    metric,
    post,
    raw_stream,
    settings,
    sign,
    tcp_state,
    write_private,
)

METRICS_TOKEN = "metrics-token-0123456789abcdefghij"


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayServer]:
    with RelayServer(settings(tmp_path)) as server:
        yield server


def _config(tmp_path: Path, **relay: object) -> Path:
    secret = write_private(tmp_path / "webhook-secret", SECRET.decode() + "\n")
    token = write_private(tmp_path / "display-a", TOKEN_A + "\n")
    section = {"webhook_secret_file": str(secret),
               "displays": [{"branch": BRANCH_A, "token_file": str(token)}], **relay}
    path = tmp_path / "kiosk.yaml"
    path.write_text(yaml.safe_dump({"kiosk": {"data_dir": str(tmp_path / "data")},
                                    "relay": section}), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- /healthz


def test_healthz_says_only_ok_with_no_branch_or_count(relay: RelayServer) -> None:
    screen = SseReader(relay.url, BRANCH_A, TOKEN_A).start_connected()
    assert post(relay.url, call_body("A-1", "c-1")).status_code == 201
    screen.take(1)
    r = httpx.get(relay.url + "/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert BRANCH_A not in r.text and "sqlite" not in r.text
    screen.stop()


def test_healthz_is_503_when_the_store_does_not_answer(relay: RelayServer) -> None:
    assert relay.relay.loop is not None
    asyncio.run_coroutine_threadsafe(relay.relay.store.close(), relay.relay.loop).result(5)
    r = httpx.get(relay.url + "/healthz")
    assert r.status_code == 503
    assert r.json() == {"status": "unavailable"}


# --------------------------------------------------------------------------- /metrics


def test_metrics_with_a_token_file_demand_that_bearer_token(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    caplog.set_level("DEBUG")
    token_file = write_private(tmp_path / "metrics-token", METRICS_TOKEN + "\n")
    loaded = load_settings(_config(tmp_path, metrics_token_file=str(token_file)))
    assert METRICS_TOKEN not in repr(loaded)
    s = dataclasses.replace(loaded, sqlite_path=tmp_path / "relay.sqlite3")
    with RelayServer(s) as relay:
        url = relay.url + "/metrics"
        r = httpx.get(url)  # loopback, but a token is configured: it is needed
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert "relay_" not in r.text
        for wrong in ("Bearer nope", f"Bearer {METRICS_TOKEN}x", f"Basic {METRICS_TOKEN}",
                      f"Bearer {TOKEN_A}"):
            assert httpx.get(url, headers={"Authorization": wrong}).status_code == 401
        ok = httpx.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert ok.status_code == 200
        assert "relay_webhooks_total" in ok.text
    assert METRICS_TOKEN not in caplog.text


def test_a_metrics_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    token_file = write_private(tmp_path / "metrics-token", METRICS_TOKEN + "\n", mode=0o644)
    with pytest.raises(RelayConfigError) as err:
        load_settings(_config(tmp_path, metrics_token_file=str(token_file)))
    assert "relay.metrics_token_file" in str(err.value) and "chmod 600" in str(err.value)
    assert METRICS_TOKEN not in str(err.value)


def test_metrics_without_a_token_answer_loopback_peers_only(relay: RelayServer) -> None:
    url = relay.url + "/metrics"
    assert httpx.get(url).status_code == 200  # this test is a loopback peer
    # through a reverse proxy on this machine the peer is loopback too: a forwarded
    # request is another machine's, refused without a token
    for header in ({"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"},
                   {"X-Real-IP": "203.0.113.9"}, {"X-Forwarded-For": "127.0.0.1"}):
        r = httpx.get(url, headers=header)
        assert r.status_code == 403, header
        assert "relay_" not in r.text


def test_metrics_without_a_token_refuse_a_remote_peer(tmp_path: Path) -> None:
    app = create_app(settings(tmp_path))  # the app itself, as a remote peer reaches it

    async def fetch(client: tuple[str, int]) -> int:
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://relay") as c:
            return (await c.get("/metrics")).status_code

    assert asyncio.run(fetch(("203.0.113.9", 40000))) == 403
    assert asyncio.run(fetch(("127.0.0.1", 40000))) == 200


def test_refused_metrics_requests_cannot_flood_the_log(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    app = create_app(settings(tmp_path))

    async def refused(peers: range) -> list[int]:
        statuses = []
        for i in peers:  # each from another address: no per-peer allowance to exploit
            transport = httpx.ASGITransport(app=app, client=(f"203.0.113.{i}", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://relay") as c:
                statuses.append((await c.get("/metrics")).status_code)
        return statuses

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if "/metrics refused" in r.getMessage()]

    assert asyncio.run(refused(range(1, 51))) == [403] * 50
    assert len(lines()) == 1  # one line, not 50 (at any level)
    app.state.relay._metrics_refusal_logged = 0.0  # the interval has passed
    assert asyncio.run(refused(range(51, 53))) == [403] * 2
    assert len(lines()) == 2
    assert "49 more refused" in lines()[1]  # the quiet ones are counted, not lost


# --------------------------------------------------------------------------- streams per token


def _wait(predicate: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_one_display_token_may_hold_only_max_streams(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    with RelayServer(settings(tmp_path, max_streams_per_token=2)) as relay:
        held = [raw_stream(relay.url, BRANCH_A, TOKEN_A) for _ in range(2)]
        assert [status for _, status in held] == [200, 200]
        url = f"{relay.url}/v1/branches/{BRANCH_A}/calls"
        r = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN_A}"}, timeout=10)
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) > 0
        assert metric(relay.url, "relay_streams_refused_total") == 1.0
        # another token (another branch's screen) is not affected
        other = SseReader(relay.url, BRANCH_B, TOKEN_B).start_connected()
        assert other.status == 200
        assert post(relay.url, call_body("B-1", "c-b1", branch=BRANCH_B)).status_code == 201
        assert other.take(1)[0][1]["ticketId"] == "B-1"
        # a screen that leaves frees its place
        held[0][0].close()
        assert _wait(lambda: metric(
            relay.url, f'relay_screens{{branch="{BRANCH_A}"}}') == 1.0), "the stream stayed"
        again, status = raw_stream(relay.url, BRANCH_A, TOKEN_A)
        assert status == 200
        _, status = raw_stream(relay.url, BRANCH_A, TOKEN_A)
        assert status == 429
        assert metric(relay.url, "relay_streams_refused_total") == 2.0
        assert caplog.text.count("more refused (429)") == 1  # a looping screen: one line
        assert TOKEN_A not in caplog.text
        for sock in (again, held[1][0]):
            sock.close()
        other.stop()


class _HangingStore(SqliteStore):
    """A store whose backlog reads never answer while ``hang`` is set (a blackholed one)."""

    hang = True

    async def since(self, branch: str, day: str, after: int | None, limit: int) -> list[Event]:
        if self.hang:
            await asyncio.Event().wait()  # never set
        return await super().since(branch, day, after, limit)


def test_a_stream_whose_store_hangs_gets_503_and_gives_its_place_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kiosk.relay.app.STORE_READ_TIMEOUT_S", 0.5)
    s = settings(tmp_path, max_streams_per_token=1)
    server = RelayServer(s)
    store = _HangingStore(s.sqlite_path)
    server.relay.store = store
    with server as relay:
        url = f"{relay.url}/v1/branches/{BRANCH_A}/calls"
        r = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN_A}"}, timeout=10)
        assert r.status_code == 503  # not a request hung as long as the store is
        assert int(r.headers["retry-after"]) > 0
        assert r.json()["error"] == "store"
        assert metric(relay.url, f'relay_screens{{branch="{BRANCH_A}"}}') == 0.0
        store.hang = False  # the store is back: the token's one place is free again
        screen = SseReader(relay.url, BRANCH_A, TOKEN_A).start_connected()
        assert screen.status == 200
        assert post(relay.url, call_body("H-1", "h-1")).status_code == 201
        assert screen.take(1)[0][1]["ticketId"] == "H-1"
        screen.stop()


def test_the_stream_cap_is_a_setting(tmp_path: Path) -> None:
    assert load_settings(_config(tmp_path)).max_streams_per_token == 8
    assert load_settings(_config(tmp_path, max_streams_per_token=3)).max_streams_per_token == 3
    with pytest.raises(RelayConfigError, match=r"relay\.max_streams_per_token"):
        load_settings(_config(tmp_path, max_streams_per_token=0))


# --------------------------------------------------------------------------- send deadline

ESTABLISHED = 1


def test_a_screen_that_stops_reading_is_closed_at_the_send_deadline(tmp_path: Path) -> None:
    with RelayServer(settings(tmp_path, send_timeout_s=0.5)) as relay:
        stalled, status = raw_stream(relay.url, BRANCH_A, TOKEN_A, rcvbuf=4096)
        assert status == 200  # ...and it never reads again
        good = SseReader(relay.url, BRANCH_A, TOKEN_A).start_connected()
        label = "€" * 200  # big events fill the stalled socket's buffers sooner
        sent = 0
        with httpx.Client(base_url=relay.url, timeout=10) as client:
            while tcp_state(stalled) == ESTABLISHED and sent < 1200:
                body = call_body(f"S-{sent:04d}", f"s-{sent}", poc=label, queue_name=label)
                r = client.post("/webhooks/videsk", content=body, headers=sign(body))
                assert r.status_code == 201
                [(_, data)] = good.take(1, timeout=5)  # the other screen is never held up
                assert data["ticketId"] == f"S-{sent:04d}"
                sent += 1
        assert _wait(lambda: tcp_state(stalled) != ESTABLISHED), \
            f"the stalled stream is still open after {sent} calls"
        assert metric(relay.url, "relay_screens_stalled_total") == 1.0
        assert _wait(lambda: metric(relay.url, f'relay_screens{{branch="{BRANCH_A}"}}') == 1.0)
        assert post(relay.url, call_body("S-last", "s-last")).status_code == 201
        assert good.take(1)[0][1]["ticketId"] == "S-last"
        stalled.close()
        good.stop()


def test_the_send_deadline_is_a_setting(tmp_path: Path) -> None:
    assert load_settings(_config(tmp_path)).send_timeout_s == 30.0
    assert load_settings(_config(tmp_path, send_timeout_s=5)).send_timeout_s == 5.0
    with pytest.raises(RelayConfigError, match=r"relay\.send_timeout_s"):
        load_settings(_config(tmp_path, send_timeout_s=0))


def test_a_full_disk_forgets_nothing_of_the_calls_it_refused(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The file cannot grow (SQLite's "database or disk is full"): the batch is refused
    (the webhook answered 503) and rolled back, and so is what the store keeps in memory.
    The provider's retry of the same delivery, once there is room, is that call (not a
    re-call of a ticket that was never stored, and its JWT not a replay). The log names
    the cause (SQLite had rolled back already: a second ROLLBACK used to hide it)."""
    async def scenario() -> tuple[int, Event | None]:
        store = SqliteStore(tmp_path / "relay.sqlite3")
        await store.start(lambda branch, events: None)
        db = store._db
        assert db is not None
        moment = time.time()
        day = date.fromtimestamp(moment).isoformat()

        def call(n: int) -> Call:
            return Call(branch=BRANCH_A, day=day, call_id=f"c-{n}", ticket_id=f"A-{n:03d}",
                        data={"ticketId": f"A-{n:03d}"}, received=moment,
                        replay_key=f"jwt:{n}", replay_ttl_s=120)

        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")
        n, failed = 0, None
        while failed is None and n < 2000:  # until a call needs a page more
            n += 1
            try:
                await store.add(call(n))
            except StoreError:
                failed = n
        assert failed is not None, "the file never filled"
        db.execute("PRAGMA max_page_count = 1073741823")
        again = await store.add(call(failed))
        await store.close()
        return failed, again

    failed, again = asyncio.run(scenario())
    assert again is not None  # not a repeated delivery
    assert json.loads(again.data) == {"ticketId": f"A-{failed:03d}"}  # not a re-call
    assert "storing 1 call(s) failed: database or disk is full" in caplog.text


class _SlowClosingStore(SqliteStore):
    """A store whose pending writes take ``delay_s`` to finish when the relay stops."""

    delay_s = 1.5

    async def close(self) -> None:
        await asyncio.sleep(self.delay_s)
        await super().close()


def test_a_relay_still_shutting_down_after_the_deadline_says_so(tmp_path: Path) -> None:
    """``RelayServer.stop`` used to return as if the relay had ended while its shutdown
    (here, the store's last writes) still ran; now it raises, and a second stop with
    time enough ends it."""
    s = settings(tmp_path)
    server = RelayServer(s)
    server.relay.store = _SlowClosingStore(s.sqlite_path)
    server.start()
    assert post(server.url, call_body("A-001", "c-1")).status_code == 201
    with pytest.raises(RuntimeError, match=r"did not stop within 0\.2 s"):
        server.stop(timeout_s=0.2)
    server.stop()  # the store closes after 1.5 s; then the thread ends


def test_a_failed_batch_across_a_branchs_midnight_leaves_no_ticket_called(
        tmp_path: Path) -> None:
    """One group commit holds calls of day D, D+1 and D again (times are taken as requests
    arrive, so a batch may straddle a branch's midnight) and fails on a full disk: the
    retry of D's first call is that call, not a re-call (day D's tickets, read again from
    the file within the batch, saw its own rows: memory kept one that was never stored)."""
    day, next_day = "2026-12-02", "2026-12-03"

    def call(n: int, on: str, ticket: str, pad: str = "") -> Call:
        return Call(branch=BRANCH_A, day=on, call_id=f"c-{n}", ticket_id=ticket,
                    data={"ticketId": ticket, "pad": pad}, received=time.time())

    async def scenario() -> list[BaseException | Event | None]:
        store = SqliteStore(tmp_path / "relay.sqlite3")
        await store.start(lambda branch, events: None)
        db = store._db
        assert db is not None
        await store.add(call(0, day, "A-000"))  # day D's tickets now in memory
        db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
        batch = await asyncio.gather(
            store.add(call(1, day, "A-001")), store.add(call(2, next_day, "A-001")),
            store.add(call(3, day, "A-003")), store.add(call(4, day, "A-004", "x" * 20_000)),
            return_exceptions=True)
        db.execute("PRAGMA max_page_count = 1073741823")
        retry = await store.add(call(1, day, "A-001"))
        await store.close()
        return [*batch, retry]

    *batch, retry = asyncio.run(scenario())
    assert all(isinstance(r, StoreError) for r in batch)  # one transaction, all refused
    assert isinstance(retry, Event)
    assert json.loads(retry.data) == {"ticketId": "A-001", "pad": ""}  # no "recall"


def test_a_slow_shutdown_does_not_hide_the_error_that_ended_the_block(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``with RelayServer(...)``: an error inside the block is the one raised; the stop
    that ran out of time is logged beside it."""
    s = settings(tmp_path)
    server = RelayServer(s)
    server.relay.store = _SlowClosingStore(s.sqlite_path)
    server.stop = functools.partial(RelayServer.stop, server, timeout_s=0.2)  # type: ignore[method-assign]
    with pytest.raises(KeyError, match="the block's own"), server:
        raise KeyError("the block's own")
    assert "did not stop within 0.2 s" in caplog.text
    RelayServer.stop(server)  # the store closes after 1.5 s; then the thread ends
