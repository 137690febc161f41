"""The branch's day at the hub (issue 17, docs/hub.md "The branch's day"): ticket reports
kept once per branch, branch-local day and ticketId, joined with their calls from the
webhook, listed to the branch's devices and the fleet; the phone token kept only as its
hash; the phone page's look-ups and notifications. Each test runs on SQLite (one relay)
and on a real redis-server (two replicas), over real loopback HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
import pytest
import redis

from kiosk.relay import RelayServer
from kiosk.relay import ledger as ledger_module
from kiosk.relay.changes import Change
from kiosk.relay.ledger import Ticket
from tests.redis_helpers import RedisProcess
from tests.relay_helpers import (
    BRANCH_A,
    BRANCH_B,
    DEVICES,
    KIOSK,
    KIOSK_B,
    TABLET,
    TV,
    call_body,
    post,
    settings,
)

FLEET = "fleet-token-operations-0123456789"
ZONE = "America/Santiago"
PHONE = "Zq3v9x-phone-token_0123456789abcdef"
T = TypeVar("T")


@dataclasses.dataclass
class Hub:
    """Where reports go (``a``) and where they are read (``b``: the other replica with
    Redis, the same relay with SQLite)."""

    a: RelayServer
    b: RelayServer
    kind: str
    redis_url: str | None = None

    def run(self, server: RelayServer, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on ``server``'s event loop."""
        loop = server.relay.loop
        assert loop is not None
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=20)


@pytest.fixture(params=["sqlite", "redis"])
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Hub]:
    base = settings(tmp_path, devices=DEVICES, fleet_tokens=(FLEET.encode(),),
                    zones={BRANCH_A: ZONE})
    if request.param == "sqlite":
        with RelayServer(base) as relay:
            yield Hub(relay, relay, "sqlite")
        return
    server: RedisProcess = request.getfixturevalue("redis_server")
    redis.Redis.from_url(server.url).flushdb()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with RelayServer(dataclasses.replace(base, store=server.url,
                                         sqlite_path=tmp_path / "a" / "relay.sqlite3")) as a, \
            RelayServer(dataclasses.replace(base, store=server.url,
                                            sqlite_path=tmp_path / "b" / "relay.sqlite3")) as b:
        yield Hub(a, b, "redis", server.url)


def now_at(offset_s: float = 0.0, zone: str = "America/Bogota") -> str:
    """An ``issuedAt`` (seconds from now) with another zone's offset than the branch's."""
    moment = datetime.now(UTC) + timedelta(seconds=offset_s)
    return moment.astimezone(ZoneInfo(zone)).isoformat(timespec="seconds")


def branch_day(at: str) -> str:
    return datetime.fromisoformat(at).astimezone(ZoneInfo(ZONE)).date().isoformat()


def body(ticket: str = "A-041", **kw: Any) -> dict[str, Any]:
    return {"ticketId": ticket, "queue": {"id": "q-caja", "name": "Caja"}, "lang": "es",
            "issuedAt": kw.pop("issuedAt", now_at()), "outcome": "issued",
            "device": "lobby-1", "priority": None, "phone": None, **kw}


def report(url: str, data: dict[str, Any], token: str | None = KIOSK,
           branch: str = BRANCH_A) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{url}/v1/branches/{branch}/tickets", json=data, headers=headers,
                      timeout=20, trust_env=False)


def ledger(url: str, token: str | None = KIOSK, branch: str = BRANCH_A,
           day: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    params = {"date": day} if day else {}
    return httpx.get(f"{url}/v1/branches/{branch}/tickets", params=params, headers=headers,
                     timeout=20, trust_env=False)


def listed(hub: Hub, day: str | None = None) -> list[dict[str, Any]]:
    r = ledger(hub.b.url, day=day)
    assert r.status_code == 200, r.text
    tickets: list[dict[str, Any]] = r.json()["tickets"]
    return tickets


def wait_for(check: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


# --------------------------------------------------------------------------- reports


def test_a_report_is_kept_once_and_listed_with_its_call(hub: Hub) -> None:
    at = now_at()
    first = report(hub.a.url, body("A-041", issuedAt=at))
    assert first.status_code == 201, first.text
    assert first.json() == {"ticketId": "A-041", "day": branch_day(at), "result": "new"}
    again = report(hub.b.url, body("A-041", issuedAt=at))  # the outbox's retry, elsewhere
    assert (again.status_code, again.json()["result"]) == (200, "known")
    r = ledger(hub.b.url)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert r.json() == {"branch": BRANCH_A, "date": branch_day(at), "tickets": [
        {"ticketId": "A-041", "queue": {"id": "q-caja", "name": "Caja"}, "lang": "es",
         "issuedAt": at, "outcome": "issued", "device": "lobby-1", "priority": None,
         "call": None, "conflict": False}]}
    # called at booth 3, then called again at booth 5 (a new callId): the latest is shown
    assert post(hub.a.url, call_body("A-041", "call-1", poc="Cabina 3")).status_code == 201
    [ticket] = listed(hub)
    assert ticket["call"]["booth"] == "Cabina 3" and ticket["call"]["recall"] is False
    called_at = datetime.fromisoformat(ticket["call"]["at"])
    assert abs(called_at.timestamp() - time.time()) < 60
    assert post(hub.b.url, call_body("A-041", "call-2", poc="Cabina 5")).status_code == 201
    [ticket] = listed(hub)
    assert (ticket["call"]["booth"], ticket["call"]["recall"]) == ("Cabina 5", True)


def test_a_call_before_its_report_is_joined_when_the_report_comes(hub: Hub) -> None:
    assert post(hub.a.url, call_body("B-007", "call-7", poc="Cabina 1")).status_code == 201
    assert report(hub.b.url, body("B-007")).status_code == 201
    [ticket] = listed(hub)
    assert ticket["call"]["booth"] == "Cabina 1"


def test_outcomes_a_later_report_replaces_uncertain_never_issued(hub: Hub) -> None:
    at = now_at()
    assert report(hub.a.url, body("A-050", issuedAt=at, outcome="uncertain")).status_code == 201
    r = report(hub.a.url, body("A-050", issuedAt=at, outcome="issued"))
    assert (r.status_code, r.json()["result"]) == (200, "replaced")
    r = report(hub.b.url, body("A-050", issuedAt=at, outcome="uncertain"))  # late redelivery
    assert (r.status_code, r.json()["result"]) == (200, "known")
    assert [t["outcome"] for t in listed(hub)] == ["issued"]


def test_the_key_is_branch_local_day_and_ticket(hub: Hub) -> None:
    at = now_at()
    same_instant = datetime.fromisoformat(at).astimezone(ZoneInfo("Asia/Tokyo")).isoformat()
    assert report(hub.a.url, body("A-001", issuedAt=at)).status_code == 201
    assert report(hub.a.url, body("A-001", issuedAt=same_instant)).status_code == 200
    yesterday = now_at(-24 * 3600)
    assert branch_day(yesterday) != branch_day(at)
    assert report(hub.a.url, body("A-001", issuedAt=yesterday)).status_code == 201  # another day
    assert report(hub.a.url, body("A-001"), token=KIOSK_B, branch=BRANCH_B).status_code == 403
    assert [t["issuedAt"] for t in listed(hub, branch_day(yesterday))] == [yesterday]
    assert [t["issuedAt"] for t in listed(hub, branch_day(at))] == [at]


def test_another_devices_report_of_a_number_is_kept_beside_the_first_both_marked(
        hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    """Numbers never repeat in a branch, so two devices reporting one is a fault to see:
    both reports are kept and listed, marked ``conflict``. It was a 409 that kept only the
    first, and the outbox does not retry a 409: a device reporting numbers it never issued
    (a stolen token) made the real tickets vanish from the ledger and their phone pages
    give 404 (a reviewing helper). A device doing it over and over is logged once a minute,
    every one counted."""
    caplog.set_level(logging.WARNING, logger="kiosk.relay")
    at = now_at()
    numbers = [f"A-{n:03d}" for n in range(70, 75)]
    for number in numbers:
        assert report(hub.a.url, body(number, issuedAt=at)).status_code == 201
    later = now_at(5)
    for number in numbers:
        r = report(hub.b.url, body(number, issuedAt=later, device="greeter",
                                   queue={"id": "q-caja", "name": "Otra"}), token=TABLET)
        assert (r.status_code, r.json()["result"]) == (201, "conflict")
    r = report(hub.a.url, body("A-070", issuedAt=later, device="greeter"), token=TABLET)
    assert (r.status_code, r.json()["result"]) == (200, "known")  # its own report again
    r = report(hub.a.url, body("A-070", issuedAt=at))
    assert (r.status_code, r.json()["result"]) == (200, "known")  # the first one's, again
    entries = [(t["ticketId"], t["device"], t["issuedAt"], t["queue"]["name"], t["conflict"])
               for t in listed(hub)]
    assert entries == [(n, "lobby-1", at, "Caja", True) for n in numbers] + \
        [(n, "greeter", later, "Otra", True) for n in numbers]
    metrics = "".join(httpx.get(url + "/metrics").text for url in {hub.a.url, hub.b.url})
    assert sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(
        'relay_ticket_reports_total{result="conflict"}')) == 5
    lines = [r.getMessage() for r in caplog.records if "numbers repeated" in r.getMessage()]
    per_relay = 1 if hub.a is hub.b else 2
    assert len(lines) <= per_relay and "greeter" in lines[0] and "lobby-1" in lines[0], lines
    assert report(hub.a.url, body("A-099")).json()["result"] == "new"
    assert [t["conflict"] for t in listed(hub) if t["ticketId"] == "A-099"] == [False]


def test_a_device_reporting_numbers_first_takes_no_customers_page(hub: Hub) -> None:
    """A hostile device of the branch reports the numbers the kiosk is about to issue,
    before it does. The kiosk's reports are kept all the same, each customer's phone
    token opens that customer's ticket (its queue, its call), and the hostile device's
    entries cannot take the token over."""
    digest = hashlib.sha256(PHONE.encode()).hexdigest()
    fake = body("A-090", issuedAt=now_at(-60), device="greeter",
                queue={"id": "q-fake", "name": "Falsa"})
    assert report(hub.a.url, fake, token=TABLET).status_code == 201
    r = report(hub.b.url, body("A-090", phone=PHONE))
    assert (r.status_code, r.json()["result"]) == (201, "conflict")
    stolen = dict(fake, phone=PHONE)  # the token read off the customer's paper ticket
    assert report(hub.a.url, stolen, token=TABLET).json()["result"] == "known"
    assert post(hub.a.url, call_body("A-090", poc="Cabina 2")).status_code == 201
    for server in (hub.a, hub.b):
        found = hub.run(server, server.relay.ledger.ticket_by_phone(digest))
        assert found is not None
        assert (found.ticket_id, found.device, found.queue_name, found.conflict) == \
            ("A-090", "lobby-1", "Caja", True)
    deadline = time.monotonic() + 10
    while True:
        state = httpx.get(f"{hub.b.url}/t/{PHONE}/state", trust_env=False).json()
        if state["state"] == "called" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert (state["ticketId"], state["queue"]["name"], state["state"], state["booth"]) == \
        ("A-090", "Caja", "called", "Cabina 2")


def test_who_may_report_and_read(hub: Hub) -> None:
    r = report(hub.a.url, body(device="greeter"))  # the kiosk's token, the tablet's id
    assert (r.status_code, r.json()) == (403, {"error": "device: this token is another "
                                               "device's"})
    r = report(hub.a.url, body(device="tv-1"), token=TV)
    assert (r.status_code, r.json()) == (403, {"error": "a display may not report tickets"})
    assert report(hub.a.url, body(), token=None).status_code == 401
    assert report(hub.a.url, body(), token=FLEET).status_code == 401
    assert report(hub.a.url, body(device="b-kiosk"), token=KIOSK_B).status_code == 403
    assert report(hub.a.url, body(device="greeter"), token=TABLET).status_code == 201
    for token in (KIOSK, TABLET, TV, FLEET):
        assert [t["device"] for t in ledger(hub.b.url, token).json()["tickets"]] == ["greeter"]
    assert ledger(hub.b.url, KIOSK_B).status_code == 403
    assert ledger(hub.b.url, None).status_code == 401
    assert ledger(hub.b.url, KIOSK_B, branch=BRANCH_B).json()["tickets"] == []
    assert ledger(hub.b.url, day="2026-02-30").status_code == 400
    assert ledger(hub.b.url, day="yesterday").status_code == 400


@pytest.mark.parametrize(("change", "field"), [
    ({"ticketId": ""}, "ticketId"), ({"ticketId": "A\n1"}, "ticketId"),
    ({"ticketId": "x" * 51}, "ticketId"), ({"ticketId": 41}, "ticketId"),
    ({"queue": "Caja"}, "queue"), ({"queue": {"name": "Caja"}}, "queue.id"),
    ({"queue": {"id": "q", "name": None}}, "queue.name"),
    ({"lang": "spanish"}, "lang"), ({"outcome": "printed"}, "outcome"),
    ({"outcome": None}, "outcome"), ({"device": None}, "device"),
    ({"priority": "Senior Citizen"}, "priority"), ({"priority": False}, "priority"),
    ({"phone": "short"}, "phone"), ({"phone": "a b" * 10}, "phone"),
    ({"issuedAt": "2026-12-02T09:14:03"}, "issuedAt"),  # no offset: whose day?
    ({"issuedAt": "today"}, "issuedAt"), ({"issuedAt": None}, "issuedAt"),
    ({"issuedAt": now_at(3 * 24 * 3600)}, "issuedAt"),  # ahead of the hub's clock
    ({"issuedAt": now_at(-20 * 24 * 3600)}, "issuedAt"),  # past the ledger's days
    ({"issuedAt": "0001-01-01T00:00:00+14:00"}, "issuedAt"),  # before year 1 in UTC: was a 500
    ({"issuedAt": "9999-12-31T23:59:59-14:00"}, "issuedAt"),  # after 9999 in UTC: too
    ({"wait_min": 10**400}, "wait_min"),  # no float holds it (isfinite raised: a 500)
    # found by a reviewing helper: taken and kept as sent (one report filled 8 KB; control
    # characters reached whoever reads the ledger)
    ({"issuedAt": now_at()[:19] + "." + "1" * 7000 + now_at()[19:]}, "issuedAt"),
    ({"ticketId": "A-\x85041"}, "ticketId"), ({"ticketId": "A-041\u2028"}, "ticketId"),
    ({"queue": {"id": "q\x00\r\n", "name": "Caja"}}, "queue.id"),
    ({"queue": {"id": "q", "name": "x\x1b[31m"}}, "queue.name"),
])
def test_a_bad_report_is_400_naming_the_field_and_nothing_is_kept(
        hub: Hub, change: dict[str, Any], field: str) -> None:
    r = report(hub.a.url, {**body(), **change})
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith(f"{field}: ")
    assert listed(hub) == []


@pytest.mark.parametrize("field", ["ticketId", "queue.id", "queue.name", "device"])
def test_a_report_that_is_not_utf8_text_is_400_and_nothing_is_kept(hub: Hub, field: str
                                                                   ) -> None:
    """A lone surrogate ("\\ud800" is valid JSON) is no text SQLite or Redis can keep: it
    was a 500 (UnicodeEncodeError is not the store's error); a UTF-16 body was read."""
    data = body()
    if field.startswith("queue."):
        data["queue"] = {**data["queue"], field.split(".")[1]: "Caja \ud800"}
    else:
        data[field] = "A-\ud800"
    r = httpx.post(f"{hub.a.url}/v1/branches/{BRANCH_A}/tickets",
                   content=json.dumps(data).encode("ascii"),  # "\\ud800" escaped, as sent
                   headers={"Authorization": f"Bearer {KIOSK}"}, timeout=20, trust_env=False)
    assert r.status_code == 400 and "UTF-8" in r.json()["error"], r.text
    r = httpx.post(f"{hub.a.url}/v1/branches/{BRANCH_A}/tickets",
                   content=json.dumps(body()).encode("utf-16"),
                   headers={"Authorization": f"Bearer {KIOSK}"}, timeout=20, trust_env=False)
    assert r.status_code == 400
    assert listed(hub) == []
    r = httpx.post(f"{hub.a.url}/v1/branches/{BRANCH_A}/tickets",  # a BOM may lead UTF-8
                   content=json.dumps(body()).encode("utf-8-sig"),
                   headers={"Authorization": f"Bearer {KIOSK}"}, timeout=20, trust_env=False)
    assert r.status_code == 201, r.text


def test_the_longest_number_the_api_takes_is_kept(hub: Hub) -> None:
    """A device may number up to the API's 50 characters (a long offline number: prefix,
    a long kiosk id): the hub keeps every one of them (it once stopped at 40 and set such
    reports aside for good)."""
    number = "AB" + "k" * 44 + "-001"
    assert len(number) == 50
    assert report(hub.a.url, body(number)).status_code == 201
    assert [t["ticketId"] for t in listed(hub)] == [number]


def test_priority_is_kept(hub: Hub) -> None:
    assert report(hub.a.url, body("P-001", priority="senior")).status_code == 201
    assert report(hub.a.url, body("P-002", priority=True, issuedAt=now_at(1))).status_code == 201
    assert [t["priority"] for t in listed(hub)] == ["senior", True]


# --------------------------------------------------------------------------- the phone


def _everything_stored(hub: Hub, tmp_path: Path) -> bytes:
    """Every byte the ledger holds (SQLite's file, or every Redis value)."""
    if hub.kind == "sqlite":
        data = b""
        for f in tmp_path.glob("hub.sqlite3*"):
            data += f.read_bytes()
        db = sqlite3.connect(tmp_path / "hub.sqlite3")
        try:
            data += repr(db.execute("SELECT * FROM tickets").fetchall()).encode()
        finally:
            db.close()
        return data
    client = redis.Redis.from_url(hub.redis_url or "")
    out = b""
    for key in client.scan_iter("*"):
        kind = client.type(key)
        out += key + b"=" + repr({b"string": client.get, b"hash": client.hgetall,
                                  b"zset": lambda k: client.zrange(k, 0, -1),
                                  b"set": client.smembers}.get(kind, lambda k: b"")(key)
                                 ).encode()
    return out


def test_a_phone_token_stays_with_the_ticket_that_first_had_it(hub: Hub) -> None:
    """A device that read a customer's token off the paper ticket's QR and reported it on
    a ticket of its own took over the customer's page (a reviewing helper: an older ticket
    of the branch showed "This ticket has ended" with SQLite; another branch's ticket,
    "cancelled", with Redis). The page is the ticket that first had the token: the later
    ticket is kept, without it."""
    digest = hashlib.sha256(PHONE.encode()).hexdigest()
    mine = body("A-041", phone=PHONE)
    assert report(hub.a.url, mine).status_code == 201
    old = body("A-900", issuedAt=now_at(-12 * 24 * 3600), device="greeter", phone=PHONE)
    assert report(hub.a.url, old, token=TABLET).status_code == 201
    other = body("B-001", device="b-kiosk", phone=PHONE)
    assert report(hub.b.url, other, token=KIOSK_B, branch=BRANCH_B).status_code == 201
    assert report(hub.a.url, mine).status_code == 200  # its own again
    for server in (hub.a, hub.b):
        found = hub.run(server, server.relay.ledger.ticket_by_phone(digest))
        assert found is not None and (found.branch, found.ticket_id) == (BRANCH_A, "A-041")
    # the later tickets are in the ledger all the same
    assert [t["ticketId"] for t in ledger(hub.b.url, KIOSK_B, branch=BRANCH_B).json()[
        "tickets"]] == ["B-001"]

def test_the_phone_token_is_kept_only_as_its_sha256_and_finds_its_ticket(
        hub: Hub, tmp_path: Path) -> None:
    digest = hashlib.sha256(PHONE.encode()).hexdigest()
    at = now_at()
    assert report(hub.a.url, body("A-010", issuedAt=now_at(-30))).status_code == 201
    assert report(hub.a.url, body("A-011", issuedAt=now_at(-20), phone=PHONE)).status_code == 201
    assert report(hub.a.url, body("A-012", issuedAt=at, phone=None, priority="senior")
                  ).status_code == 201
    # a later report of A-012 brings its phone token (the outbox's first try had none)
    assert report(hub.b.url, body("A-012", issuedAt=at, phone=PHONE + "x", priority="senior")
                  ).status_code == 200
    stored = _everything_stored(hub, tmp_path)
    assert PHONE.encode() not in stored and digest.encode() in stored
    assert PHONE not in ledger(hub.b.url).text and digest not in ledger(hub.b.url).text

    found = hub.run(hub.b, hub.b.relay.ledger.ticket_by_phone(digest))
    assert isinstance(found, Ticket)
    assert (found.branch, found.day, found.ticket_id, found.queue_name, found.lang,
            found.outcome, found.priority, found.call) == \
        (BRANCH_A, branch_day(at), "A-011", "Caja", "es", "issued", None, None)
    other = hub.run(hub.b, hub.b.relay.ledger.ticket_by_phone(
        hashlib.sha256((PHONE + "x").encode()).hexdigest()))
    assert other is not None and (other.ticket_id, other.priority) == ("A-012", "senior")
    assert hub.run(hub.b, hub.b.relay.ledger.ticket_by_phone("0" * 64)) is None

    assert hub.run(hub.b, hub.b.relay.ledger.ahead(found)) == 1
    assert hub.run(hub.a, hub.a.relay.ledger.ahead(other)) == 2
    assert post(hub.a.url, call_body("A-010", "c-10")).status_code == 201
    assert hub.run(hub.b, hub.b.relay.ledger.ahead(found)) == 0
    assert hub.run(hub.b, hub.b.relay.ledger.ahead(other)) == 1  # A-011 still waits
    assert report(hub.a.url, {**body("C-001", issuedAt=now_at(-60)),
                              "queue": {"id": "q-other", "name": "Otra"}}).status_code == 201
    assert hub.run(hub.b, hub.b.relay.ledger.ahead(other)) == 1  # another queue's is not
    assert post(hub.b.url, call_body("A-011", "c-11", poc="Cabina 2")).status_code == 201
    found = hub.run(hub.a, hub.a.relay.ledger.ticket_by_phone(digest))
    assert found is not None and found.call is not None and found.call["booth"] == "Cabina 2"


def test_followers_hear_of_reports_and_calls_on_every_replica(hub: Hub) -> None:
    heard: list[Change] = []
    lock = threading.Lock()
    left = threading.Event()
    entered = threading.Event()

    def listener(change: Change) -> None:
        with lock:
            heard.append(change)

    async def follow() -> None:
        async with hub.b.relay.follow(BRANCH_A, listener):
            entered.set()
            while not left.is_set():
                await asyncio.sleep(0.02)

    loop = hub.b.relay.loop
    assert loop is not None
    task = asyncio.run_coroutine_threadsafe(follow(), loop)
    assert entered.wait(10)
    time.sleep(0.3)  # the reader has joined the branch's stream (Redis)
    at = now_at()
    assert report(hub.a.url, body("A-020", issuedAt=at, outcome="uncertain")).status_code == 201
    assert report(hub.a.url, body("A-020", issuedAt=at)).status_code == 200  # replaced
    assert report(hub.a.url, body("A-020", issuedAt=at)).status_code == 200  # known: quiet
    assert post(hub.a.url, call_body("A-020", "call-20")).status_code == 201
    assert post(hub.a.url, call_body("Z-1", "call-z", branch=BRANCH_B)).status_code == 201
    expected = [Change(BRANCH_A, "report", "A-020"), Change(BRANCH_A, "report", "A-020"),
                Change(BRANCH_A, "call", "A-020")]
    wait_for(lambda: len(heard) >= 3, f"heard {heard}")
    time.sleep(0.3)
    with lock:
        assert sorted(heard, key=lambda c: c.kind == "call") == expected
    left.set()
    task.result(timeout=10)
    assert not hub.b.relay.changes.followed(BRANCH_A)


def test_a_data_folder_with_uri_characters_still_joins_the_calls(tmp_path: Path) -> None:
    """The call store is attached by URI (read-only): '?', '#', '%' and spaces in its
    folder are its name, not a query."""
    folder = tmp_path / "datos sucursal?x=1#y%20z"
    base = settings(tmp_path, devices=DEVICES, zones={BRANCH_A: ZONE},
                    sqlite_path=folder / "relay.sqlite3")
    with RelayServer(base) as relay:
        assert report(relay.url, body("A-001")).status_code == 201
        assert post(relay.url, call_body("A-001", "call-1", poc="Cabina 4")).status_code == 201
        [ticket] = ledger(relay.url).json()["tickets"]
        assert ticket["call"]["booth"] == "Cabina 4"
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(("-wal", "-shm"))
                  ) == ["hub.sqlite3", "relay.sqlite3"]
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no stray file elsewhere


@pytest.mark.slow
def test_a_report_answered_201_survives_a_kill_9(tmp_path: Path) -> None:
    """Each report is on the disk before its 201: the hub killed -9 right after keeps
    every one (the outbox would not send them again)."""
    import yaml

    from kiosk.relay import relay_process
    from tests.relay_helpers import SECRET, write_private
    secret = write_private(tmp_path / "webhook-secret", SECRET.decode() + "\n")
    token = write_private(tmp_path / "device-lobby-1", KIOSK + "\n")
    config = tmp_path / "relay.yaml"
    config.write_text(yaml.safe_dump({"kiosk": {"data_dir": str(tmp_path / "data")}, "relay": {
        "webhook_secret_file": str(secret),
        "devices": [{"id": "lobby-1", "branch": BRANCH_A, "role": "kiosk",
                     "token_file": str(token)}],
        "branches": [{"id": BRANCH_A, "timezone": ZONE}]}}), encoding="utf-8")
    sent = []
    with relay_process(config) as proc:
        for i in range(20):
            at = now_at(i / 100)
            assert report(proc.url, body(f"A-{i:03d}", issuedAt=at)).status_code == 201
            sent.append(f"A-{i:03d}")
        proc.kill()
    with relay_process(config) as proc:
        assert [t["ticketId"] for t in ledger(proc.url).json()["tickets"]] == sent


async def test_a_relay_running_for_months_deletes_old_tickets_and_numbers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``hub.sqlite3`` deleted what was past its 14 days only at start-up: a relay that ran
    for months kept every ticket and counter (a reviewing helper: 60 days, all there). Now
    it does so every ``PRUNE_S`` too."""
    monkeypatch.setattr(ledger_module, "PRUNE_S", 0.05)
    clock = [time.time()]
    path = tmp_path / "hub.sqlite3"
    ledger_ = ledger_module.SqliteLedger(path, clock=lambda: clock[0])
    await ledger_.start()
    try:
        day = datetime.fromtimestamp(clock[0]).date().isoformat()
        await ledger_.lease(BRANCH_A, day, "A", 10)
        assert await ledger_.report(BRANCH_A, ledger_module.Report(
            ticket_id="A-001", queue_id="q", queue_name="Caja", lang="es",
            issued_at=now_at(), issued_ts=clock[0], day=day, outcome="issued",
            device="lobby-1", priority=None)) == (ledger_module.NEW, "")

        def rows() -> tuple[int, int]:
            with sqlite3.connect(path) as db:
                return (db.execute("SELECT count(*) FROM tickets").fetchone()[0],
                        db.execute("SELECT count(*) FROM counters").fetchone()[0])
        await asyncio.sleep(0.2)
        assert rows() == (1, 1)  # within its days: kept
        clock[0] += 60 * 24 * 3600  # two months on, the relay still running
        deadline = time.monotonic() + 5
        while rows() != (0, 0) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert rows() == (0, 0)
    finally:
        await ledger_.close()


# --------------------------------------------------------------- a device's own token, stolen
# (a reviewing helper's findings on the conflicts and the report budget, 4 December)


def phone_state(url: str, token: str) -> httpx.Response:
    return httpx.get(f"{url}/t/{token}/state", trust_env=False, timeout=20)


@pytest.mark.parametrize("junk_phone", [False, True])
def test_the_kiosks_own_token_reporting_its_numbers_first_takes_no_customers_page(
        hub: Hub, junk_phone: bool) -> None:
    """Whoever holds the kiosk's own token reports its next numbers first. The kiosk's
    real report was then "known" (200) and dropped: its customer's page showed the fake's
    queue, or gave 404 when the fake carried a phone token of its own. A device's retries
    never change a report's queue, time, language, priority or phone token, so a report
    that does is kept beside the first, both marked."""
    fake = body("A-041", issuedAt=now_at(-3600), queue={"id": "q-fake", "name": "Falsa"},
                phone="attacker-junk-token-0123456789abcdef" if junk_phone else None)
    assert report(hub.a.url, fake).status_code == 201
    real = body("A-041", phone=PHONE)
    r = report(hub.b.url, real)
    assert (r.status_code, r.json()["result"]) == (201, "conflict")
    assert report(hub.a.url, real).json()["result"] == "known"  # the outbox's retry
    assert report(hub.a.url, dict(real, outcome="uncertain")).json()["result"] == "known"
    page = phone_state(hub.b.url, PHONE)
    assert page.status_code == 200, page.text
    assert (page.json()["ticketId"], page.json()["queue"]["name"]) == ("A-041", "Caja")
    assert [(t["queue"]["name"], t["device"], t["conflict"]) for t in listed(hub)] == [
        ("Falsa", "lobby-1", True), ("Caja", "lobby-1", True)]


def test_a_number_reported_twice_is_one_place_and_one_call_in_its_queue(
        hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each report of a number reported twice is listed, but the phone pages count it
    once: its one call counted twice made the median interval between calls 0, and every
    waiting customer's wait "0 min" (a tablet's token was enough)."""
    clock = [time.time() - 600]
    monkeypatch.setattr("kiosk.relay.app.now", lambda: clock[0])
    for n in range(1, 7):  # issued 20 minutes ago, a second apart
        assert report(hub.a.url, body(f"A-{n:03d}", issuedAt=now_at(-1200 + n))
                      ).status_code == 201
    assert report(hub.a.url, body("A-007", issuedAt=now_at(-1100), phone=PHONE)
                  ).status_code == 201
    for n in (1, 2, 3):  # called a minute apart, ten minutes ago
        assert post(hub.a.url, call_body(f"A-{n:03d}", f"c-{n}")).status_code == 201
        clock[0] += 60
    before = phone_state(hub.b.url, PHONE).json()
    assert (before["ahead"], before["wait_min"]) == (3, 3.0)  # a call a minute
    for n in (1, 2, 3, 4):  # the tablet reports numbers called, and one waiting, again
        dup = body(f"A-{n:03d}", device="greeter", issuedAt=now_at(-1200 + n))
        assert report(hub.a.url, dup, token=TABLET).json()["result"] == "conflict"
    deadline = time.monotonic() + 10
    while (after := phone_state(hub.b.url, PHONE).json()) != before and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert (after["ahead"], after["wait_min"]) == (3, 3.0), after


def test_a_report_the_ledger_knew_costs_no_budget(tmp_path: Path) -> None:
    """Reports that change nothing are not charged: a token's holder replaying one of the
    kiosk's reports spent the kiosk's budget, and its real reports were refused (429)."""
    with RelayServer(settings(tmp_path, devices=DEVICES, zones={BRANCH_A: ZONE},
                              max_reports_per_hour=100)) as relay:
        replayed = body("A-001")
        codes = [report(relay.url, replayed).status_code for _ in range(150)]
        assert (codes.count(201), codes.count(200)) == (1, 149)
        for n in range(2, 101):
            assert report(relay.url, body(f"A-{n:03d}")).status_code == 201, n
        assert report(relay.url, body("A-101")).status_code == 429  # 100 stored: spent
        assert report(relay.url, body("A-100")).status_code == 429  # (its check first)


def test_the_ledger_lists_tickets_in_the_order_issued_after_an_outcome_changes(
        hub: Hub) -> None:
    """Redis's Lua rewrote a record whose outcome changed with 14 significant digits
    (cjson): its time lost its tenths of a millisecond, and it was listed after a ticket
    issued 30 microseconds later (SQLite kept the order)."""
    local = (datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)).astimezone(
        ZoneInfo("America/Bogota"))
    first = local.replace(microsecond=123460).isoformat()
    second = local.replace(microsecond=123490).isoformat()
    assert report(hub.a.url, body("A-001", issuedAt=first, outcome="uncertain")
                  ).status_code == 201
    assert report(hub.a.url, body("A-002", issuedAt=second)).status_code == 201
    assert report(hub.a.url, body("A-001", issuedAt=first)).json()["result"] == "replaced"
    assert [t["ticketId"] for t in listed(hub)] == ["A-001", "A-002"]


@pytest.mark.parametrize("sep", ["\n", "\x1b", "\u2028", "\x00", "x"])
def test_issued_at_with_a_control_character_or_another_separator_is_refused(
        hub: Hub, sep: str) -> None:
    """Python 3.11's parser takes any one character between the date and the time: a
    line break was kept and served to every reader of the ledger."""
    at = now_at()
    r = report(hub.a.url, body("A-001", issuedAt=at[:10] + sep + at[11:]))
    assert (r.status_code, r.json()["error"].split(":")[0]) == (400, "issuedAt"), r.text
    assert listed(hub) == []


def test_a_priority_reason_may_not_be_named_true(hub: Hub) -> None:
    """SQLite read a reason named "true" back as a priority without a reason (Redis kept
    the text): the name is refused, by the relay and by the kiosk's config."""
    r = report(hub.a.url, body("P-001", priority="true"))
    assert (r.status_code, r.json()["error"].split(":")[0]) == (400, "priority")
    assert report(hub.a.url, body("P-001", priority=True)).status_code == 201
    assert [t["priority"] for t in listed(hub)] == [True]
    from kiosk.config import PriorityReason
    with pytest.raises(ValueError, match="a reason may not be named so"):
        PriorityReason(id="true", texts={"es": "x", "en": "x", "pt": "x"})
