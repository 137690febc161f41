"""What is one call, and the ids calls get (issue 16, items 1, 2 and 5), in both stores
(SQLite; Redis with a real ``redis-server``), over real loopback HTTP:

- a repeated delivery (same ``callId``) is one call; a new ``callId`` is a new call, a
  re-call (``"recall": true``) when the ticket was called before that (branch-local) day;
  without a ``callId``, the same ticket to the same booth within 5 minutes is one call;
- the day follows the branch's own time zone;
- ids increase per branch (a branch learns nothing of another's volume) and never go back:
  a SQLite relay restarted (kill -9) or rebuilt from nothing, a store from before per-branch
  ids, all give ids above every id a screen may hold.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
import yaml

from kiosk.relay import RelayServer, RelaySettings, load_settings, relay_process
from kiosk.relay.store import DEDUP_NEAR_S, EPOCH_SPAN
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
    settings,
    write_private,
)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with RedisProcess(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture(params=["sqlite", "redis"])
def relay_settings(request: pytest.FixtureRequest, tmp_path: Path) -> RelaySettings:
    """The same relay on each store (Redis: flushed for each test)."""
    if request.param == "sqlite":
        return settings(tmp_path)
    url = request.getfixturevalue("redis_url")
    redis.Redis.from_url(url).flushdb()
    return settings(tmp_path, store=url)


@pytest.fixture
def relay(relay_settings: RelaySettings) -> Iterator[RelayServer]:
    with RelayServer(relay_settings) as server:
        yield server


# --------------------------------------------------------------------------- one call


def test_a_re_call_to_another_booth_is_a_new_call_and_says_so(relay: RelayServer) -> None:
    screen = SseReader(relay.url, BRANCH_A, TOKEN_A).start_connected()
    first = post(relay.url, call_body("A-042", "call-1", poc="Cabina 3"))
    again = post(relay.url, call_body("A-042", "call-1", poc="Cabina 3"))
    moved = post(relay.url, call_body("A-042", "call-2", poc="Cabina 5"))
    called_back = post(relay.url, call_body("A-042", "call-3", poc="Cabina 3"))
    other = post(relay.url, call_body("A-043", "call-4", poc="Cabina 3"))
    assert [r.status_code for r in (first, again, moved, called_back, other)] == \
        [201, 200, 201, 201, 201]
    got = screen.take(4)
    assert [(d["ticketId"], d["poc"]["label"], d.get("recall")) for _, d in got] == [
        ("A-042", "Cabina 3", None), ("A-042", "Cabina 5", True),
        ("A-042", "Cabina 3", True), ("A-043", "Cabina 3", None)]
    assert screen.nothing_more()
    fresh = SseReader(relay.url, BRANCH_A, TOKEN_A).start_connected()  # the store kept it
    assert [d.get("recall") for _, d in fresh.take(4)] == [None, True, True, None]


def test_without_a_call_id_the_same_ticket_and_booth_within_minutes_is_one_call(
        relay: RelayServer, monkeypatch: pytest.MonkeyPatch) -> None:
    start = time.time()
    clock = [start]
    monkeypatch.setattr("kiosk.relay.app.now", lambda: clock[0])
    screen = SseReader(relay.url, BRANCH_A, TOKEN_A).start_connected()
    assert post(relay.url, call_body("B-007", "", poc="Cabina 1")).status_code == 201
    clock[0] = start + 60
    assert post(relay.url, call_body("B-007", "", poc="Cabina 1")).status_code == 200
    assert post(relay.url, call_body("B-007", "", poc="Cabina 2")).status_code == 201
    clock[0] = start + DEDUP_NEAR_S + 30  # called to booth 1 again, minutes later
    assert post(relay.url, call_body("B-007", "", poc="Cabina 1")).status_code == 201
    got = screen.take(3)
    assert [(d["poc"]["label"], d.get("recall")) for _, d in got] == [
        ("Cabina 1", None), ("Cabina 2", True), ("Cabina 1", True)]
    assert screen.nothing_more()


def test_a_body_without_call_id_at_all_is_a_call(relay: RelayServer) -> None:
    body = json.loads(call_body("C-001", "x"))
    del body["callId"]
    raw = json.dumps(body).encode()
    assert post(relay.url, raw).status_code == 201
    assert post(relay.url, raw).status_code == 200


def test_the_day_is_the_branchs_own(relay_settings: RelaySettings,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Bogotá (UTC-5) calls A-001 at 23:30 one evening and again at 08:00 the next
    morning: the same UTC day, two days of the branch; the morning's call is no re-call,
    and a screen that connects in the morning gets the morning's calls only. Santiago
    (the relay's default zone here) has its own day."""
    bogota = ZoneInfo("America/Bogota")
    evening = datetime(2026, 12, 1, 23, 30, tzinfo=bogota).timestamp()
    morning = datetime(2026, 12, 2, 8, 0, tzinfo=bogota).timestamp()
    assert datetime.fromtimestamp(evening, ZoneInfo("UTC")).date() == \
        datetime.fromtimestamp(morning, ZoneInfo("UTC")).date()
    s = dataclasses.replace(relay_settings, zones={BRANCH_A: "America/Bogota"},
                            timezone="America/Santiago")
    clock = [evening]
    monkeypatch.setattr("kiosk.relay.app.now", lambda: clock[0])
    with RelayServer(s) as relay:
        assert post(relay.url, call_body("A-001", "e-1")).status_code == 201
        assert post(relay.url, call_body("A-002", "e-2")).status_code == 201
        clock[0] = morning
        assert post(relay.url, call_body("A-001", "m-1")).status_code == 201
        screen = SseReader(relay.url, BRANCH_A, TOKEN_A).start_connected()
        [(_, data)] = screen.take(1)
        assert data["ticketId"] == "A-001" and "recall" not in data
        assert data["at"] == "2026-12-02T08:00:00-05:00"
        assert screen.nothing_more()


def test_branch_time_zones_come_from_branches_or_displays(tmp_path: Path) -> None:
    secret = write_private(tmp_path / "secret", SECRET.decode())
    token_a = write_private(tmp_path / "a", TOKEN_A)
    token_b = write_private(tmp_path / "b", TOKEN_B)
    path = tmp_path / "relay.yaml"
    relay = {"webhook_secret_file": str(secret),
             "branches": [{"id": BRANCH_A, "timezone": "America/Bogota"}],
             "displays": [{"branch": BRANCH_A, "token_file": str(token_a)},
                          {"branch": BRANCH_B, "token_file": str(token_b),
                           "timezone": "America/Sao_Paulo"}]}
    path.write_text(yaml.safe_dump({"kiosk": {"timezone": "America/Santiago"},
                                    "relay": relay}), encoding="utf-8")
    s = load_settings(path)
    assert (s.zone_of(BRANCH_A), s.zone_of(BRANCH_B), s.zone_of("other")) == \
        ("America/Bogota", "America/Sao_Paulo", "America/Santiago")
    relay["displays"][0]["timezone"] = "Europe/Lisbon"  # type: ignore[index]
    path.write_text(yaml.safe_dump({"relay": relay}), encoding="utf-8")
    with pytest.raises(Exception, match=r"relay.displays\[0\].timezone: one time zone"):
        load_settings(path)


# --------------------------------------------------------------------------- ids


def test_ids_are_per_branch_and_say_nothing_of_other_branches(relay: RelayServer) -> None:
    a = [event_id(post(relay.url, call_body(f"A-{i:03d}", f"a-{i}"))) for i in range(7)]
    b = event_id(post(relay.url, call_body("Z-001", "z-1", branch=BRANCH_B)))
    assert [i % EPOCH_SPAN for i in a] == list(range(1, 8))
    assert b % EPOCH_SPAN == 1 and b // EPOCH_SPAN == a[0] // EPOCH_SPAN
    screen_b = SseReader(relay.url, BRANCH_B, TOKEN_B).start_connected()
    [(seen, _)] = screen_b.take(1)
    assert seen == b
    assert len(str(seen)) <= 18 and str(seen).isdigit()  # short ASCII: feed.py, announced.py


@pytest.mark.slow
def test_a_sqlite_relay_killed_and_restarted_gives_ids_above_every_earlier_one(
        tmp_path: Path) -> None:
    """kill -9 between calls; a screen that held the last id before resumes with it and
    gets exactly the calls made after, in order; a new epoch each start."""
    secret = write_private(tmp_path / "secret", SECRET.decode())
    token = write_private(tmp_path / "token", TOKEN_A)
    config = tmp_path / "relay.yaml"
    config.write_text(yaml.safe_dump({"kiosk": {"data_dir": str(tmp_path / "data")}, "relay": {
        "webhook_secret_file": str(secret),
        "displays": [{"branch": BRANCH_A, "token_file": str(token)}]}}), encoding="utf-8")
    with relay_process(config) as proc:
        before = [event_id(post(proc.url, call_body(f"A-{i}", f"c-{i}"))) for i in range(3)]
        proc.kill()
    with relay_process(config) as proc:
        screen = SseReader(proc.url, BRANCH_A, TOKEN_A, last_id=str(before[-1]))
        screen.start_connected()
        after = [event_id(post(proc.url, call_body(f"B-{i}", f"d-{i}"))) for i in range(3)]
        assert min(after) > max(before)
        assert after[0] // EPOCH_SPAN > before[0] // EPOCH_SPAN and after[0] % EPOCH_SPAN == 1
        got = screen.take(3)
        assert [i for i, _ in got] == after
        assert screen.nothing_more()
        everything = SseReader(proc.url, BRANCH_A, TOKEN_A, last_id="0").start_connected()
        assert [i for i, _ in everything.take(6)] == before + after


def test_a_sqlite_store_rebuilt_from_nothing_still_gives_higher_ids(tmp_path: Path) -> None:
    """The store file lost (a new disk): ids start from a later epoch, so a screen's
    Last-Event-ID from before is below the new calls, which reach it."""
    with RelayServer(settings(tmp_path)) as relay:
        old = event_id(post(relay.url, call_body("A-1", "c-1")))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp_path / 'relay.sqlite3'}{suffix}").unlink(missing_ok=True)
    time.sleep(1.01)  # a new epoch is a later second
    with RelayServer(settings(tmp_path)) as relay:
        screen = SseReader(relay.url, BRANCH_A, TOKEN_A, last_id=str(old)).start_connected()
        new = event_id(post(relay.url, call_body("A-2", "c-2")))
        assert new > old
        [(got, _)] = screen.take(1)
        assert got == new


def test_a_store_from_before_per_branch_ids_is_moved_and_keeps_its_calls(
        tmp_path: Path) -> None:
    """The SQLite layout of earlier versions (one ``calls`` table, shared ids): its calls
    and call ids are kept; new ids are above the old ones."""
    path = tmp_path / "relay.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE calls (id INTEGER PRIMARY KEY AUTOINCREMENT, branch TEXT NOT NULL,
            day TEXT NOT NULL, call_id TEXT NOT NULL UNIQUE, ticket_id TEXT NOT NULL,
            data TEXT NOT NULL, received REAL NOT NULL, UNIQUE (branch, day, ticket_id));
        CREATE INDEX calls_by_branch ON calls (branch, day, id);""")
    today = datetime.now(ZoneInfo("UTC")).date().isoformat()
    for i, branch in enumerate([BRANCH_A, BRANCH_B, BRANCH_A], start=1):
        db.execute("INSERT INTO calls (branch, day, call_id, ticket_id, data, received) "
                   "VALUES (?, ?, ?, ?, ?, ?)", (branch, today, f"old-{i}", f"A-00{i}",
                                                 json.dumps({"ticketId": f"A-00{i}",
                                                             "poc": {"label": "Cabina 1"}}),
                                                 time.time()))
    db.commit()
    db.close()
    with RelayServer(settings(tmp_path)) as relay:
        screen = SseReader(relay.url, BRANCH_A, TOKEN_A, last_id="1").start_connected()
        [(kept, data)] = screen.take(1)
        assert (kept, data["ticketId"]) == (3, "A-003")
        assert post(relay.url, call_body("A-003", "old-3")).status_code == 200
        new = event_id(post(relay.url, call_body("A-004", "new-4")))
        assert new > 3
        assert screen.take(1)[0][0] == new
        assert event_id(post(relay.url, call_body("A-001", "new-5"))) > new  # a re-call


def test_a_store_keyed_by_branch_and_id_is_moved_to_one_table_by_day(tmp_path: Path) -> None:
    """The layout before December 2026 (``events`` keyed by branch and id, two indexes):
    its calls are kept, their ids too; a ticket called there is a re-call after the move;
    the file now holds one B-tree of calls, keyed by branch, day and id."""
    path = tmp_path / "relay.sqlite3"
    today = datetime.now(ZoneInfo("UTC")).date().isoformat()
    old_id = 1_700_000_000 * EPOCH_SPAN + 1
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE events (branch TEXT NOT NULL, id INTEGER NOT NULL, day TEXT NOT NULL,
            ticket_id TEXT NOT NULL, data TEXT NOT NULL, received REAL NOT NULL,
            PRIMARY KEY (branch, id)) WITHOUT ROWID;
        CREATE INDEX events_by_day ON events (branch, day, id);
        CREATE INDEX events_by_ticket ON events (branch, day, ticket_id);
        CREATE TABLE seen (key TEXT PRIMARY KEY, expires REAL NOT NULL) WITHOUT ROWID;
        CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;""")
    db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", (
        BRANCH_A, old_id, today, "A-001",
        json.dumps({"ticketId": "A-001", "poc": {"label": "Cabina 1"}}), time.time()))
    db.execute("INSERT INTO seen VALUES ('call:old-1', ?)", (time.time() + 3600,))
    db.execute("INSERT INTO meta VALUES ('epoch', 1700000000)")
    db.commit()
    db.close()
    with RelayServer(settings(tmp_path)) as relay:
        screen = SseReader(relay.url, BRANCH_A, TOKEN_A, last_id="0").start_connected()
        assert screen.take(1)[0][0] == old_id
        assert post(relay.url, call_body("A-001", "old-1")).status_code == 200
        again = event_id(post(relay.url, call_body("A-001", "new-2", poc="Cabina 4")))
        [(got, data)] = screen.take(1)
        assert (got, data.get("recall")) == (again, True)
        assert again > old_id
    db = sqlite3.connect(path)
    try:
        indexes = db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND "
                             "tbl_name = 'events' AND sql IS NOT NULL").fetchall()
        assert indexes == []
        key = [r[2] for r in db.execute("PRAGMA index_info(sqlite_autoindex_events_1)")]
        assert key[:3] == ["branch", "day", "id"]
        assert db.execute("SELECT count(*) FROM events").fetchone() == (2,)
    finally:
        db.close()


def test_a_ticket_called_before_a_restart_is_a_re_call_after_it(tmp_path: Path) -> None:
    """What makes a call a re-call is read from the file at the branch's first call."""
    with RelayServer(settings(tmp_path)) as relay:
        assert post(relay.url, call_body("A-007", "c-1")).status_code == 201
    with RelayServer(settings(tmp_path)) as relay:
        screen = SseReader(relay.url, BRANCH_A, TOKEN_A).start_connected()
        screen.take(1)  # the backlog: the first call
        post(relay.url, call_body("A-007", "c-2", poc="Cabina 9"))
        post(relay.url, call_body("A-008", "c-3"))
        got = [(d["ticketId"], d.get("recall")) for _, d in screen.take(2)]
        assert got == [("A-007", True), ("A-008", None)]


def test_a_screens_json_is_the_text_json_dumps_writes_whatever_the_names() -> None:
    """The SSE ``data:`` JSON is made by pydantic-core (a third of json's time): its text is
    exactly ``json.dumps``'s compact, non-ASCII form, for any text a call carries (quotes,
    backslashes, control characters, line separators, emoji), and re-calls end alike."""
    import random

    from kiosk.relay.store import RECALL_END, Call

    rng = random.Random(16)
    alphabet = [chr(i) for i in range(0x80)] + list("éñü中\u2028\u2029\u0085\ufeff\u00a0😀")
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
        data: dict[str, object] = {
            "ticketId": text, "poc": {"label": text[::-1]}, "queue": {"name": text[:3]},
            "at": "2026-12-03T09:00:00-03:00", "lang": "es",
            "priority": rng.choice([True, text, "mayor"])}
        call = Call(branch="b", day="2026-12-03", call_id="c", ticket_id=text, data=data,
                    received=0.0)
        first, again = call.payloads()
        want = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        assert first == want and call.payload(False) == want
        assert again == want[:-1] + RECALL_END == call.payload(True)
        assert json.loads(again) == {**data, "recall": True}
