"""Two relay replicas on one real Redis (``redis-server``, started here on a free
loopback port): a call received by one reaches the screens of the other, a repeated
delivery to either is one call, ids stay ordered per branch; Redis killed and started
again (without persistence, with AOF, back to an older snapshot) and a replica killed
lose no call answered 2xx (issue 16)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from kiosk.errors import StoreError
from kiosk.relay import RelayServer, RelaySettings, relay_process
from kiosk.relay import ledger as ledger_module
from kiosk.relay.ledger import RedisLedger
from kiosk.relay.redis_store import BLOCK_MS, SOCKET_TIMEOUT_S, RedisStore
from kiosk.relay.server import free_port
from kiosk.relay.store import EPOCH_SPAN, Call, Replayed
from tests.redis_helpers import RedisProcess
from tests.relay_helpers import (
    BRANCH_A,
    BRANCH_B,
    SECRET,
    TOKEN_A,
    TOKEN_B,
    SseReader,
    call_body,
    event_id,
    post,
    raw_stream,
)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server for this module (packaging/dev.sh installs it)."""
    exe = shutil.which("redis-server")
    assert exe, "redis-server is not installed (packaging/dev.sh test installs it as root)"
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert proc.poll() is None and time.monotonic() < deadline, "redis did not start"
            time.sleep(0.05)
    try:
        yield url
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def replicas(redis_url: str, tmp_path: Path) -> Iterator[tuple[RelayServer, RelayServer]]:
    redis.Redis.from_url(redis_url).flushdb()
    base = RelaySettings(secrets=(SECRET,), displays={TOKEN_A: BRANCH_A, TOKEN_B: BRANCH_B},
                         store=redis_url, sqlite_path=tmp_path / "unused.sqlite3")
    with RelayServer(base) as a, RelayServer(dataclasses.replace(base, history=3)) as b:
        yield a, b


def test_a_call_received_by_one_replica_reaches_a_screen_on_the_other(
        replicas: tuple[RelayServer, RelayServer]) -> None:
    a, b = replicas
    on_b = SseReader(b.url, BRANCH_A, TOKEN_A).start_connected()
    on_a = SseReader(a.url, BRANCH_A, TOKEN_A).start_connected()
    r = post(a.url, call_body("A-042", "call-1", poc="Cabina 3"))
    assert r.status_code == 201
    [(id_b, data_b)] = on_b.take(1)
    [(id_a, data_a)] = on_a.take(1)
    assert id_a == id_b == event_id(r)
    assert data_b["ticketId"] == "A-042" and data_b["poc"] == {"label": "Cabina 3"}
    assert data_a == data_b
    assert httpx.get(b.url + "/healthz").json() == {"status": "ok"}


def test_a_duplicate_sent_to_the_other_replica_is_one_call(
        replicas: tuple[RelayServer, RelayServer]) -> None:
    a, b = replicas
    screen = SseReader(b.url, BRANCH_A, TOKEN_A).start_connected()
    body = call_body("A-042", "call-1")
    assert post(a.url, body).status_code == 201
    assert post(b.url, body).status_code == 200
    assert post(a.url, body).status_code == 200
    recall = post(b.url, call_body("A-042", "call-other", poc="Cabina 6"))  # a new call
    assert recall.status_code == 201
    [(_, first), (_, again)] = screen.take(2)
    assert "recall" not in first and again["recall"] is True
    assert again["poc"] == {"label": "Cabina 6"}
    assert screen.nothing_more(1.0)
    assert "relay_duplicates_total 1.0" in httpx.get(b.url + "/metrics").text


def test_ids_are_ordered_per_branch_across_replicas_and_replay_works(
        replicas: tuple[RelayServer, RelayServer]) -> None:
    a, b = replicas
    ids = []
    for i in range(6):
        target = a if i % 2 else b
        r = post(target.url, call_body(f"A-{i:03d}", f"c-{i}"))
        assert r.status_code == 201
        ids.append(event_id(r))
    assert ids == sorted(ids) and len(set(ids)) == 6
    other = event_id(post(a.url, call_body("Z-001", "z-1", branch=BRANCH_B)))
    assert other % EPOCH_SPAN == 1  # each branch counts on its own: 6 calls of A unseen
    assert [i % EPOCH_SPAN for i in ids] == [1, 2, 3, 4, 5, 6]
    replay = SseReader(a.url, BRANCH_A, TOKEN_A, last_id=str(ids[2])).start_connected()
    assert [d["ticketId"] for _, d in replay.take(3)] == ["A-003", "A-004", "A-005"]
    fresh = SseReader(b.url, BRANCH_A, TOKEN_A).start_connected()  # history=3 on b
    assert [i for i, _ in fresh.take(3)] == ids[3:]
    assert fresh.nothing_more()


def test_without_redis_webhooks_get_503_so_the_provider_retries(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = RelaySettings(secrets=(SECRET,), displays={TOKEN_A: BRANCH_A}, store=dead,
                             sqlite_path=tmp_path / "unused.sqlite3")
    with RelayServer(settings) as relay:
        assert post(relay.url, call_body()).status_code == 503
        assert httpx.get(relay.url + "/healthz").status_code == 503
        r = httpx.get(f"{relay.url}/v1/branches/{BRANCH_A}/calls",
                      headers={"Authorization": f"Bearer {TOKEN_A}"})
        assert r.status_code == 503


def test_a_replay_from_redis_is_capped_at_replay_max_newest_kept(
        replicas: tuple[RelayServer, RelayServer], monkeypatch: pytest.MonkeyPatch) -> None:
    a, _ = replicas
    monkeypatch.setattr("kiosk.relay.app.REPLAY_MAX", 2)
    ids = [event_id(post(a.url, call_body(f"R-{i:03d}", f"r-{i}"))) for i in range(5)]
    screen = SseReader(a.url, BRANCH_A, TOKEN_A, last_id="0").start_connected()
    assert [i for i, _ in screen.take(2)] == ids[3:]
    assert screen.nothing_more()


def test_the_stream_cap_holds_per_replica(redis_url: str, tmp_path: Path) -> None:
    base = RelaySettings(secrets=(SECRET,), displays={TOKEN_A: BRANCH_A}, store=redis_url,
                         sqlite_path=tmp_path / "unused.sqlite3", max_streams_per_token=1)
    with RelayServer(base) as a, RelayServer(base) as b:
        on_a, status_a = raw_stream(a.url, BRANCH_A, TOKEN_A)
        on_b, status_b = raw_stream(b.url, BRANCH_A, TOKEN_A)  # as documented: per replica
        assert (status_a, status_b) == (200, 200)
        more, status = raw_stream(a.url, BRANCH_A, TOKEN_A)
        assert status == 429
        for sock in (on_a, on_b, more):
            sock.close()


def test_a_blackholed_redis_gives_503s_not_hung_requests(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kiosk.relay.redis_store.SOCKET_TIMEOUT_S", 0.5)
    hole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)  # the kernel accepts connections; nothing ever answers on them
    store = f"redis://127.0.0.1:{hole.getsockname()[1]}/0"
    settings = RelaySettings(secrets=(SECRET,), displays={TOKEN_A: BRANCH_A}, store=store,
                             sqlite_path=tmp_path / "unused.sqlite3", max_streams_per_token=1)
    try:
        with RelayServer(settings) as relay:  # its start-up ping gives up too
            assert httpx.get(relay.url + "/healthz", timeout=10).status_code == 503
            assert post(relay.url, call_body()).status_code == 503  # the provider retries
            for _ in range(2):  # cap 1: the first stream gave its place back
                r = httpx.get(f"{relay.url}/v1/branches/{BRANCH_A}/calls",
                              headers={"Authorization": f"Bearer {TOKEN_A}"}, timeout=10)
                assert r.status_code == 503
                assert int(r.headers["retry-after"]) > 0
    finally:
        hole.close()


def test_the_redis_clients_bound_connects_and_reads_and_the_url_may_say_otherwise() -> None:
    # older redis-py versions wait forever by default; the relay sets its own bound
    assert BLOCK_MS / 1000 < SOCKET_TIMEOUT_S  # the reader's blocking XREAD fits in it
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")
    for client in (store._redis, store._reader_conn):
        kwargs = client.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == SOCKET_TIMEOUT_S
        assert kwargs["socket_connect_timeout"] == SOCKET_TIMEOUT_S
    tuned = RedisStore(f"redis://127.0.0.1:{free_port()}/0?socket_timeout=9")
    assert tuned._redis.connection_pool.connection_kwargs["socket_timeout"] == 9.0
    for opened in (store, tuned):
        asyncio.run(opened.close())


# --------------------------------------------------------------------------- issue 16


@pytest.mark.slow
@pytest.mark.parametrize("persistence", ["none", "aof", "rdb"])
def test_calls_answered_2xx_across_a_redis_restart_reach_every_screen_once_in_order(
        tmp_path: Path, persistence: str) -> None:
    """Issue 16.1: two replicas on one Redis; Redis killed (-9) and started again, without
    persistence (everything gone), with AOF (nothing gone) or back to an older snapshot
    (RDB: the state goes back). Calls after it are answered 201 at once (no 503 from the
    pooled connections), reach the screens connected on both replicas in order and once
    each, and a screen resuming with its Last-Event-ID gets them too; a screen that
    connects later gets what the store kept."""
    with RedisProcess(tmp_path, persistence) as server:
        base = RelaySettings(secrets=(SECRET,), displays={TOKEN_A: BRANCH_A},
                             store=server.url, sqlite_path=tmp_path / "unused.sqlite3",
                             history=50)
        with RelayServer(base) as a, RelayServer(base) as b:
            on_a = SseReader(a.url, BRANCH_A, TOKEN_A).start_connected()
            on_b = SseReader(b.url, BRANCH_A, TOKEN_A).start_connected()
            before = []
            for i in range(3):
                before.append(event_id(post((a, b)[i % 2].url,
                                            call_body(f"A-{i:03d}", f"before-{i}"))))
                if i == 0 and persistence == "rdb":
                    server.save()  # what Redis comes back with: the first call only
            assert [i for i, _ in on_a.take(3)] == before == [i for i, _ in on_b.take(3)]
            server.restart()
            after = []
            for i in range(7):
                r = post((b, a)[i % 2].url, call_body(f"B-{i:03d}", f"after-{i}"))
                assert r.status_code == 201, (i, r.status_code, r.text)
                after.append(event_id(r))
            assert after == sorted(after) and min(after) > max(before)
            for screen in (on_a, on_b):
                assert [i for i, _ in screen.take(7)] == after
                assert screen.nothing_more()
            resumed = SseReader(a.url, BRANCH_A, TOKEN_A, last_id=str(before[-1]))
            assert [i for i, _ in resumed.start_connected().take(7)] == after
            kept = {"none": [], "aof": before, "rdb": before[:1]}[persistence]
            fresh = SseReader(b.url, BRANCH_A, TOKEN_A).start_connected()
            assert [i for i, _ in fresh.take(len(kept) + 7)] == kept + after
            assert fresh.nothing_more()
            for replica in (a, b):
                assert "relay_store_epochs_total 1.0" in httpx.get(replica.url + "/metrics").text


@pytest.mark.slow
def test_a_replica_killed_loses_nothing_its_screens_resume_on_the_other(
        tmp_path: Path) -> None:
    """A replica killed -9 (its screens reconnect to the other with Last-Event-ID) and
    started again: every call answered 201 meanwhile reaches them."""
    import yaml

    from tests.relay_helpers import write_private
    with RedisProcess(tmp_path, "aof") as server:
        secret = write_private(tmp_path / "secret", SECRET.decode())
        token = write_private(tmp_path / "token", TOKEN_A)
        config = tmp_path / "relay.yaml"
        config.write_text(yaml.safe_dump({"kiosk": {"data_dir": str(tmp_path / "d")}, "relay": {
            "webhook_secret_file": str(secret), "store": server.url,
            "displays": [{"branch": BRANCH_A, "token_file": str(token)}]}}))
        base = RelaySettings(secrets=(SECRET,), displays={TOKEN_A: BRANCH_A},
                             store=server.url, sqlite_path=tmp_path / "unused.sqlite3")
        with RelayServer(base) as a, relay_process(config) as b:
            on_b = SseReader(b.url, BRANCH_A, TOKEN_A).start_connected()
            first = [event_id(post(a.url, call_body(f"A-{i}", f"c-{i}"))) for i in range(2)]
            assert [i for i, _ in on_b.take(2)] == first
            b.kill()
            missed = [event_id(post(a.url, call_body(f"B-{i}", f"d-{i}"))) for i in range(3)]
            moved = SseReader(a.url, BRANCH_A, TOKEN_A, last_id=str(first[-1]))
            assert [i for i, _ in moved.start_connected().take(3)] == missed
            with relay_process(config) as b2:
                back = SseReader(b2.url, BRANCH_A, TOKEN_A, last_id=str(missed[0]))
                back.start_connected()
                assert [i for i, _ in back.take(2)] == missed[1:]
                last = event_id(post(b2.url, call_body("C-1", "e-1")))
                assert back.take(1)[0][0] == moved.take(1)[0][0] == last


def test_a_jwt_used_on_one_replica_is_refused_on_the_other(redis_url: str,
                                                           tmp_path: Path) -> None:
    from tests.relay_helpers import es256_pair, jwt_headers
    redis.Redis.from_url(redis_url).flushdb()
    private, public = es256_pair()
    base = RelaySettings(jwt_keys=(public,), require_jwt=True, displays={TOKEN_A: BRANCH_A},
                         store=redis_url, sqlite_path=tmp_path / "unused.sqlite3")
    with RelayServer(base) as a, RelayServer(base) as b:
        body = call_body("A-042", "call-1")
        headers = jwt_headers(body, private)
        assert post(a.url, body, headers).status_code == 201
        r = post(b.url, body, headers)
        assert (r.status_code, r.json()["error"]) == (401, "replayed_jwt")
        signed = headers["Authorization"][7:].rsplit(".", 1)[0]  # what the key is of
        ttl = redis.Redis.from_url(redis_url).ttl(
            "kiosk:relay:jwt:" + hashlib.sha256(signed.encode()).hexdigest())
        assert 60 < ttl <= 300 + 60 + 60  # kept for its window (plus Redis' minute)


def test_a_call_id_is_remembered_31_days_in_redis(redis_url: str, tmp_path: Path) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    base = RelaySettings(secrets=(SECRET,), displays={TOKEN_A: BRANCH_A}, store=redis_url,
                         sqlite_path=tmp_path / "unused.sqlite3")
    with RelayServer(base) as relay:
        assert post(relay.url, call_body("A-1", "call-31")).status_code == 201
    ttl = redis.Redis.from_url(redis_url).ttl("kiosk:relay:call:call-31")
    assert ttl >= 31 * 86400


def test_a_replica_stops_while_its_loops_talk_to_redis(redis_url: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The ledger's loops are stopped at any moment of a Redis command. On Python 3.11
    redis-py loses a cancellation that lands as a command ends (``asyncio.wait_for``), and
    a replica's shutdown then waited for good (1 relay stop in 7 in the lease tests)."""
    monkeypatch.setattr(ledger_module, "SEED_CHECK_S", 0)  # the seed check never rests

    async def rounds() -> None:
        for i in range(40):
            ledger = RedisLedger(redis_url, tmp_path / f"hub-{i}.sqlite3")
            await ledger.start()
            await asyncio.sleep(random.random() * 0.02)
            await ledger.close()

    stopped: list[bool] = []
    thread = threading.Thread(target=lambda: stopped.append(asyncio.run(rounds()) is None),
                              daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert stopped == [True], "a ledger's close() did not return (a lost cancellation)"


def test_two_screens_watching_a_branch_at_once_miss_no_call(redis_url: str) -> None:
    """Two screens of a branch connect to a replica at once (all its screens come back
    after a restart): each one's watch reads the branch's last id before its backlog. The
    watch answered last must not move the reader's cursor past a call stored between the
    two reads, which the first screen's backlog does not hold: that screen never got it
    (the relay soak's one lost call, CI run of ``c266bb6``)."""
    redis.Redis.from_url(redis_url).flushdb()
    day = "2026-12-04"

    async def scenario() -> tuple[int, list[int]]:
        store = RedisStore(redis_url, today=lambda branch: day)
        real = store._last
        second_reads = asyncio.Event()
        reads = 0

        async def last_id(*args: object, **kwargs: object) -> object:
            nonlocal reads
            reads += 1
            if reads == 2:  # the second screen's read of the branch's last id comes late
                await second_reads.wait()
            return await real(*args, **kwargs)

        store._last = last_id
        first = asyncio.create_task(store.watch(BRANCH_A))
        second = asyncio.create_task(store.watch(BRANCH_A))
        await first  # the first screen reads its backlog now: no call yet
        event = await store.add(Call(BRANCH_A, day, "call-1", "A-001",
                                     {"ticketId": "A-001"}, time.time()))
        assert event is not None
        second_reads.set()
        await second
        got: list[int] = []
        await store.start(lambda branch, events: got.extend(ev.id for ev in events))
        for _ in range(40):
            if got:
                break
            await asyncio.sleep(0.05)
        await store.close()
        return event.id, got

    stored, published = asyncio.run(scenario())
    assert published == [stored], "the call stored between the two watches never reached the hub"


def test_a_call_that_took_its_day_before_the_branchs_midnight_still_reaches_the_hub(
        redis_url: str) -> None:
    """A webhook takes the branch's day as it arrives, and stores the call a moment later.
    One that arrived just before midnight and was stored after the reader moved to the
    new day's stream sat in the day before's, which nobody read any more: answered 201,
    never on a screen. The reader reads the streams of the days around the branch's."""
    redis.Redis.from_url(redis_url).flushdb()
    today = ["2026-12-04"]

    async def scenario() -> tuple[list[int], list[int]]:
        store, got = await _watching(redis_url, lambda branch: today[0])
        stored = [await _add(store, "2026-12-04", "call-1", "A-001")]
        await _until(lambda: got == stored, "the first call never reached the hub")
        today[0] = "2026-12-05"
        await asyncio.sleep(3 * BLOCK_MS / 1000)  # the reader reads the new day's now
        stored.append(await _add(store, "2026-12-04", "call-2", "A-002"))  # its day: before
        stored.append(await _add(store, "2026-12-05", "call-3", "A-001"))  # midnight
        await _until(lambda: len(got) >= 3, f"calls lost at midnight: {got} of {stored}")
        await store.close()
        return stored, got

    stored, published = asyncio.run(scenario())
    assert published == stored


def _screen_sees(published: list[int]) -> list[int]:
    """What a screen sends of what its hub is handed: ``Relay._stream`` skips an id at or
    below the last one it sent."""
    shown: list[int] = []
    for i in published:
        if not shown or i > shown[-1]:
            shown.append(i)
    return shown


async def _add(store: RedisStore, day: str, call_id: str, ticket: str) -> int:
    event = await store.add(Call(BRANCH_A, day, call_id, ticket, {"ticketId": ticket},
                                 time.time()))
    assert event is not None
    return event.id


async def _watching(url: str, today: Callable[[str], str]) -> tuple[RedisStore, list[int]]:
    """A store whose reader follows branch A, and the ids it hands the hub, in order."""
    store = RedisStore(url, today=today)
    got: list[int] = []
    await store.watch(BRANCH_A)
    await store.start(lambda branch, events: got.extend(ev.id for ev in events))
    return store, got


async def _until(check: Callable[[], bool], what: str) -> None:
    for _ in range(250):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(what)


def test_a_new_days_call_is_not_skipped_after_a_late_call_of_the_day_before(
        redis_url: str) -> None:
    """Ids grow per branch whatever the day. After midnight a call is stored in the new
    day's stream; then one that took its day just before midnight, in the day before's,
    with a higher id. The reader, still on the day before's stream, handed the hub the
    higher id first, then the new day's lower one, which every screen skipped (a
    reviewing helper). Now one cursor per branch reads the days around it in one XREAD."""
    redis.Redis.from_url(redis_url).flushdb()
    today = ["2026-12-04"]

    async def scenario() -> tuple[list[int], list[int]]:
        store, got = await _watching(redis_url, lambda branch: today[0])
        await asyncio.sleep(0.05)  # the reader waits on its XREAD
        stored = [await _add(store, "2026-12-05", "call-new", "B-001"),   # after midnight
                  await _add(store, "2026-12-04", "call-late", "A-099")]  # took its day before
        await _until(lambda: stored[1] in got, "the late call never reached the hub")
        today[0] = "2026-12-05"
        await asyncio.sleep(3 * BLOCK_MS / 1000)
        await store.close()
        return stored, got

    stored, published = asyncio.run(scenario())
    assert _screen_sees(published) == stored, published


def test_a_replica_whose_clock_is_behind_loses_none_of_the_others_calls(
        redis_url: str) -> None:
    """Replica B's clock is behind A's. Past A's midnight A stores calls in the new day's
    stream, B (still on the day before) its own in the day before's, with higher ids. At
    B's midnight B's reader read the new day's stream from its start: A's calls came
    after B's, and B's screens skipped them all."""
    redis.Redis.from_url(redis_url).flushdb()

    async def scenario() -> tuple[list[int], list[int]]:
        a = RedisStore(redis_url, today=lambda branch: "2026-12-05")
        b_today = ["2026-12-04"]
        b = RedisStore(redis_url, today=lambda branch: b_today[0])
        got: list[int] = []  # B's hub
        await b.watch(BRANCH_A)
        await b.start(lambda branch, events: got.extend(ev.id for ev in events))
        await asyncio.sleep(0.05)
        stored = [await _add(a, "2026-12-05", f"a-{i}", f"A-{i:03d}") for i in range(3)]
        stored.append(await _add(b, "2026-12-04", "b-0", "B-000"))
        await _until(lambda: stored[-1] in got, "B's own call never came")
        b_today[0] = "2026-12-05"  # B's midnight
        await asyncio.sleep(3 * BLOCK_MS / 1000)
        await a.close()
        await b.close()
        return stored, got

    stored, published = asyncio.run(scenario())
    assert _screen_sees(published) == stored, published


def test_a_screen_that_connects_just_after_midnight_gets_a_late_call(redis_url: str) -> None:
    """A screen connects at 00:00:01 (a replica's first of the branch); a call that took
    its day at 23:59:59.9 is stored at 00:00:02 in the day before's stream and answered
    201. The reader read only the new day's stream: the connected screen never got it."""
    redis.Redis.from_url(redis_url).flushdb()

    async def scenario() -> tuple[int, list[int]]:
        store = RedisStore(redis_url, today=lambda branch: "2026-12-05")
        got: list[int] = []
        await store.start(lambda branch, events: got.extend(ev.id for ev in events))
        await store.watch(BRANCH_A)
        await asyncio.sleep(0.05)
        late = await _add(store, "2026-12-04", "call-late", "A-099")
        await _until(lambda: bool(got), "the call answered 201 after the screen connected "
                                         "never came")
        await store.close()
        return late, got

    late, published = asyncio.run(scenario())
    assert published == [late]


def test_ids_never_repeat_when_redis_loses_its_data_within_an_epochs_second(
        tmp_path: Path) -> None:
    """Redis without persistence is killed and started again within the second its epoch
    began; the next call reaches a replica that saw no call since it started. Its new
    epoch was max(Redis's clock, 0 + 1): the same second, so ids began again at ones the
    screens and the other replicas' cursors held, and were skipped everywhere. A new
    epoch is now also above the second this Redis run began in."""
    with RedisProcess(tmp_path, "none") as server:
        async def scenario() -> tuple[int, int, list[int]]:
            day = "2026-12-04"
            a = RedisStore(server.url, today=lambda branch: day)
            got: list[int] = []
            await a.watch(BRANCH_A)
            await a.start(lambda branch, events: got.extend(ev.id for ev in events))
            while time.time() % 1 > 0.05:  # at the start of a second
                await asyncio.sleep(0.005)
            first = await _add(a, day, "call-1", "A-001")
            server.restart()  # kill -9, started again at once: empty
            b = RedisStore(server.url, today=lambda branch: day)  # a replica just started
            while True:
                try:
                    second = await _add(b, day, "call-2", "A-002")
                    break
                except StoreError:  # 503: the provider retries
                    await asyncio.sleep(0.1)
            await b.close()
            await _until(lambda: len(got) >= 2, f"only {got} reached A's hub")
            await a.close()
            return first, second, got

        first, second, published = asyncio.run(scenario())
        assert second > first, f"ids went back: {first} then {second}"
        assert _screen_sees(published) == [first, second], published


def test_a_jwt_call_whose_answer_was_lost_is_a_repeat_not_a_replay(redis_url: str) -> None:
    """redis-py sends a command again after a connection error. When the error came after
    the script had run (its answer lost), a JWT-signed call met its own JWT's key and was
    answered 401 ``replayed_jwt``, although it was stored and shown: the provider saw a
    refusal (a reviewing helper). The second sending is now a repeated delivery (200); a
    real replay of the JWT is still refused."""
    redis.Redis.from_url(redis_url).flushdb()
    day = "2026-12-04"

    async def scenario() -> tuple[object, int]:
        store = RedisStore(redis_url, today=lambda branch: day)
        real = store._redis.parse_response
        lost: list[str] = []

        async def parse_response(conn: object, command: str, **options: object) -> object:
            answer = await real(conn, command, **options)
            if command == "EVALSHA" and not lost:
                lost.append(command)
                raise redis.exceptions.ConnectionError("connection lost after the script ran")
            return answer

        store._redis.parse_response = parse_response
        moment = time.time()
        event = await store.add(Call(BRANCH_A, day, "call-1", "A-001", {"ticketId": "A-001"},
                                     moment, replay_key="jwt:captured", replay_ttl_s=600))
        with pytest.raises(Replayed):  # the same JWT a second later: a replay
            await store.add(Call(BRANCH_A, day, "call-1", "A-001", {"ticketId": "A-001"},
                                 moment + 1, replay_key="jwt:captured", replay_ttl_s=600))
        stored = int(await store._redis.xlen(f"kiosk:relay:calls:{BRANCH_A}:{day}"))
        await store.close()
        assert lost == ["EVALSHA"], "the connection error was never raised"
        return event, stored

    event, stored = asyncio.run(scenario())
    assert (event, stored) == (None, 1)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_screen_resuming_just_after_midnight_gets_the_calls_it_missed(
        redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """A screen's connection drops at 23:59:50; a call is answered 201 at 23:59:58; the
    screen resumes at 00:00:03 with its Last-Event-ID. Its backlog was read from the new
    day's calls only: it never showed the one it missed (a reviewing helper). A resuming
    screen now reads the days around."""
    from datetime import UTC, datetime

    from kiosk.relay import app as app_module
    redis.Redis.from_url(redis_url).flushdb()
    clock = [datetime(2026, 12, 4, 23, 59, 40, tzinfo=UTC).timestamp()]
    monkeypatch.setattr(app_module, "now", lambda: clock[0])
    base = RelaySettings(secrets=(SECRET,), displays={TOKEN_A: BRANCH_A},
                         store=redis_url if kind == "redis" else "sqlite",
                         sqlite_path=tmp_path / "relay.sqlite3", timezone="UTC")
    with RelayServer(base) as relay:
        first = event_id(post(relay.url, call_body("A-001", "c-1")))
        clock[0] += 18  # 23:59:58: the screen (with first) is away
        late = event_id(post(relay.url, call_body("A-002", "c-2")))
        clock[0] += 5  # 00:00:03: it resumes
        resumed = SseReader(relay.url, BRANCH_A, TOKEN_A, last_id=str(first)).start_connected()
        after = event_id(post(relay.url, call_body("B-001", "c-3")))
        got = [i for i, _ in resumed.take(2)]
    assert got == [late, after]
