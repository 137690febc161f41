"""Blocks of ticket numbers leased by the hub (issue 17, docs/hub.md "Numbers"), over real
loopback HTTP: one counter per branch, day and sequence; 409 with the hub's day; bounds;
roles; concurrent clients and two replicas on one real redis-server never overlap; a kill
-9 after a 201 never hands its block out again; a Redis restart without persistence never
either (the replicas' floors)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml

from kiosk.relay import RelayConfigError, RelayServer, RelaySettings, load_settings, relay_process
from kiosk.relay import ledger as ledger_module
from kiosk.relay.quota import FREE_FIRSTS, NumberQuota, OverBudget
from tests.redis_helpers import RedisProcess
from tests.relay_helpers import (
    BRANCH_A,
    BRANCH_B,
    DEVICES,
    KIOSK,
    KIOSK_B,
    SECRET,
    TABLET,
    TV,
    settings,
    write_private,
)

ZONES = {BRANCH_A: "Pacific/Kiritimati", BRANCH_B: "Pacific/Pago_Pago"}  # UTC+14, UTC-11


def day_of(branch: str) -> str:
    """The branch's day now, in its own zone (computed here, not by the relay)."""
    return datetime.now(ZoneInfo(ZONES[branch])).date().isoformat()


def lease(url: str, token: str | None, sequence: str = "A", count: Any = 10,
          day: str | None = None, branch: str = BRANCH_A, **extra: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"sequence": sequence, "day": day or day_of(branch), "count": count, **extra}
    return httpx.post(f"{url}/v1/branches/{branch}/leases", json=body, headers=headers,
                      timeout=20, trust_env=False)


def block(r: httpx.Response) -> tuple[int, int]:
    assert r.status_code == 201, (r.status_code, r.text)
    return r.json()["first"], r.json()["last"]


def hub_settings(tmp_path: Path, **kw: Any) -> RelaySettings:
    return settings(tmp_path, devices=DEVICES, zones=ZONES, **kw)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[RelayServer]:
    with RelayServer(hub_settings(tmp_path)) as server:
        yield server


def disjoint(blocks: list[tuple[int, int]]) -> bool:
    blocks = sorted(blocks)
    return all(a[1] < b[0] for a, b in itertools.pairwise(blocks))


# --------------------------------------------------------------------------- one relay


def test_blocks_follow_each_other_per_branch_day_and_sequence(hub: RelayServer) -> None:
    r = lease(hub.url, KIOSK)
    assert r.json() == {"sequence": "A", "day": day_of(BRANCH_A), "first": 1, "last": 10}
    assert block(lease(hub.url, TABLET, count=5)) == (11, 15)  # another device, same counter
    assert block(lease(hub.url, KIOSK, "priority:A", 3)) == (1, 3)
    assert block(lease(hub.url, KIOSK, "B", 1)) == (1, 1)
    assert block(lease(hub.url, KIOSK_B, branch=BRANCH_B)) == (1, 10)  # its own branch
    assert block(lease(hub.url, KIOSK, count=1000)) == (16, 1015)
    assert (hub.url and (hub.settings.sqlite_path.parent / "hub.sqlite3").exists())


def test_another_day_is_409_with_the_hubs_day_for_that_branch(hub: RelayServer) -> None:
    assert day_of(BRANCH_A) != day_of(BRANCH_B)  # 25 hours apart: never the same day
    r = lease(hub.url, KIOSK, day=day_of(BRANCH_B))
    assert (r.status_code, r.json()) == (409, {"error": "day", "day": day_of(BRANCH_A)})
    r = lease(hub.url, KIOSK_B, day=day_of(BRANCH_A), branch=BRANCH_B)
    assert (r.status_code, r.json()) == (409, {"error": "day", "day": day_of(BRANCH_B)})
    assert block(lease(hub.url, KIOSK)) == (1, 10)  # nothing was counted for the refusals


@pytest.mark.parametrize(("body", "field"), [
    ({"count": 0}, "count"), ({"count": 1001}, "count"), ({"count": "10"}, "count"),
    ({"count": True}, "count"), ({"count": 2.5}, "count"), ({"count": -3}, "count"),
    ({"count": None}, "count"),
    ({"sequence": ""}, "sequence"), ({"sequence": "A B"}, "sequence"),
    ({"sequence": "x" * 41}, "sequence"), ({"sequence": 7}, "sequence"),
    ({"sequence": "A\n"}, "sequence"),
    ({"day": "2026-13-01"}, "day"), ({"day": "02/12/2026"}, "day"), ({"day": 20261202}, "day"),
])
def test_a_bad_lease_request_is_400_naming_the_field(hub: RelayServer, body: dict[str, Any],
                                                     field: str) -> None:
    r = lease(hub.url, KIOSK, **{"sequence": "A", "count": 10, **body})
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith(f"{field}: ")
    assert block(lease(hub.url, KIOSK, count=1)) == (1, 1)  # none of them took a number


def test_not_json_too_large_and_who_may_lease(hub: RelayServer) -> None:
    url = f"{hub.url}/v1/branches/{BRANCH_A}/leases"
    auth = {"Authorization": f"Bearer {KIOSK}"}
    assert httpx.post(url, content=b"{nope", headers=auth).status_code == 400
    assert httpx.post(url, content=b"[1, 2]", headers=auth).status_code == 400
    big = b'{"sequence": "A", "day": "x", "pad": "' + b"x" * 9000 + b'"}'
    assert httpx.post(url, content=big, headers=auth).status_code == 413
    r = lease(hub.url, TV)
    assert (r.status_code, r.json()) == (403, {"error": "a display may not take numbers"})
    assert lease(hub.url, None).status_code == 401
    assert lease(hub.url, "z" * 32).status_code == 401
    r = lease(hub.url, KIOSK_B)  # branch B's kiosk, branch A's counter
    assert (r.status_code, r.json()) == (403, {"error": "this token is for another branch"})
    assert block(lease(hub.url, KIOSK)) == (1, 10)


def test_concurrent_leases_from_many_clients_never_overlap(hub: RelayServer) -> None:
    got: list[tuple[int, int]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        rng = random.Random(n)
        with httpx.Client(trust_env=False, timeout=30) as c:
            for _ in range(15):
                token = (KIOSK, TABLET)[rng.randrange(2)]
                r = c.post(f"{hub.url}/v1/branches/{BRANCH_A}/leases",
                           json={"sequence": "A", "day": day_of(BRANCH_A),
                                 "count": rng.randint(1, 20)},
                           headers={"Authorization": f"Bearer {token}"})
                with lock:
                    if r.status_code == 201:
                        got.append((r.json()["first"], r.json()["last"]))
                    else:
                        errors.append(f"{r.status_code} {r.text}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(got) == 16 * 15 and disjoint(got)
    numbers = sorted(n for a, b in got for n in range(a, b + 1))
    assert numbers == list(range(1, len(numbers) + 1))  # no gap either: one counter


def test_a_device_in_a_loop_cannot_burn_the_branchs_numbers(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A device that leases more than ``relay.max_numbers_per_hour`` (a bug looping, a
    stolen token) is answered 429 with the seconds until its lease fits, and nothing is
    handed out: the branch's counter stays where the devices that behave need it. Its
    first block of a sequence each day is not charged. Every refusal is counted, one a
    minute logged."""
    caplog.set_level(logging.INFO, logger="kiosk.relay")
    with RelayServer(hub_settings(tmp_path, max_numbers_per_hour=1000)) as hub:
        assert block(lease(hub.url, KIOSK, count=600)) == (1, 600)  # its first: free
        assert block(lease(hub.url, KIOSK, count=500)) == (601, 1100)
        refused = [lease(hub.url, KIOSK, count=600) for _ in range(3)]
        for r in refused:
            assert (r.status_code, r.json()["error"]) == (429, "rate"), r.text
            # 100 numbers short, at 1,000 an hour: six minutes (less what came back since)
            assert 350 <= int(r.headers["retry-after"]) <= 360, r.headers
        assert block(lease(hub.url, KIOSK, count=500)) == (1101, 1600)  # what is left fits
        assert block(lease(hub.url, TABLET, count=1000)) == (1601, 2600)  # its own budget
        assert block(lease(hub.url, TABLET, count=1000)) == (2601, 3600)
        assert lease(hub.url, KIOSK, count=1).status_code == 429
        text = httpx.get(hub.url + "/metrics", trust_env=False).text
    assert 'relay_leases_total{result="limited"} 4.0' in text
    assert 'relay_leases_total{result="leased"} 5.0' in text
    lines = [r.getMessage() for r in caplog.records if "max_numbers_per_hour" in r.getMessage()]
    assert len(lines) == 1 and "lobby-1" in lines[0] and "429" in lines[0], lines


def failing(monkeypatch: pytest.MonkeyPatch, method: str, at_first: bool) -> list[bool]:
    """``SqliteLedger.<method>`` fails ("disk I/O error") while the list's one flag is
    true (the test sets it)."""
    real = getattr(ledger_module.SqliteLedger, method)
    fail = [at_first]

    async def flaky(self: Any, *args: Any) -> Any:
        if fail[0]:
            raise ledger_module.StoreError("disk I/O error")
        return await real(self, *args)

    monkeypatch.setattr(ledger_module.SqliteLedger, method, flaky)
    return fail


def test_a_lease_the_store_did_not_hand_out_is_not_charged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store fails a lease (503): what it took from the device's budget, or its free
    first block of the day, is given back; the device's next ask is served."""
    fail = failing(monkeypatch, "lease", at_first=True)
    with RelayServer(hub_settings(tmp_path, max_numbers_per_hour=1000)) as hub:
        assert lease(hub.url, KIOSK, count=1000).status_code == 503  # the free first
        fail[0] = False
        assert block(lease(hub.url, KIOSK, count=1000)) == (1, 1000)  # free still
        fail[0] = True
        assert lease(hub.url, KIOSK, count=1000).status_code == 503  # charged, given back
        fail[0] = False
        assert block(lease(hub.url, KIOSK, count=1000)) == (1001, 2000)
        assert lease(hub.url, KIOSK, count=1).status_code == 429  # and now it is spent


def test_a_number_budget_fills_back_by_the_hour_and_the_first_blocks_are_free() -> None:
    clock = [1000.0]
    quota = NumberQuota(1200, clock=lambda: clock[0])
    day = "2026-12-03"
    assert quota.take("lobby-1", day, "A", 1000).free  # the day's first block of A
    assert not quota.take("lobby-1", day, "A", 1000).free
    with pytest.raises(OverBudget) as over:
        quota.take("lobby-1", day, "A", 300)
    assert over.value.wait_s == 300  # 100 short at 1,200 an hour: 300 s
    assert quota.take("greeter", day, "A", 1000).free  # each device its own first blocks
    assert not quota.take("greeter", day, "A", 1000).free  # ...and its own budget
    clock[0] += 300
    taken = quota.take("lobby-1", day, "A", 300)
    quota.give_back(taken)  # the store did not hand the block out after all
    assert not quota.take("lobby-1", day, "A", 300).free
    clock[0] += 10 * 3600  # a budget is never more than an hour's
    quota.take("lobby-1", day, "A", 1200)
    with pytest.raises(OverBudget) as over:
        quota.take("lobby-1", day, "A", 1)
    assert over.value.wait_s == 3
    assert quota.take("lobby-1", "2026-12-04", "A", 1000).free  # a new day: a new first
    clock[0] -= 7200  # a clock that goes back gives nothing back
    with pytest.raises(OverBudget):
        quota.take("lobby-1", "2026-12-04", "A", 1)
    made_up = NumberQuota(1200)  # a token making sequence names up gets so many free
    firsts = [made_up.take("x", day, f"S{n}", 1).free for n in range(FREE_FIRSTS + 8)]
    assert firsts == [True] * FREE_FIRSTS + [False] * 8
    with pytest.raises(ValueError, match="1000"):
        NumberQuota(999)


def test_the_number_budget_is_a_setting_of_at_least_one_largest_lease(
        tmp_path: Path) -> None:
    assert load_settings(_config(tmp_path)).max_numbers_per_hour == 3000
    assert load_settings(_config(tmp_path, max_numbers_per_hour=5000)
                         ).max_numbers_per_hour == 5000
    with pytest.raises(RelayConfigError, match=r"relay\.max_numbers_per_hour"):
        load_settings(_config(tmp_path, max_numbers_per_hour=999))


def test_the_report_budget_is_a_setting_of_at_least_a_hundred(tmp_path: Path) -> None:
    assert load_settings(_config(tmp_path)).max_reports_per_hour == 3000
    assert load_settings(_config(tmp_path, max_reports_per_hour=200)
                         ).max_reports_per_hour == 200
    with pytest.raises(RelayConfigError, match=r"relay\.max_reports_per_hour"):
        load_settings(_config(tmp_path, max_reports_per_hour=99))


def _report(url: str, token: str, ticket: str, device: str) -> httpx.Response:
    moment = datetime.now(ZoneInfo(ZONES[BRANCH_A])).isoformat(timespec="milliseconds")
    return httpx.post(f"{url}/v1/branches/{BRANCH_A}/tickets", trust_env=False, timeout=20,
                      headers={"Authorization": f"Bearer {token}"},
                      json={"ticketId": ticket, "queue": {"id": "q", "name": "Caja"},
                            "lang": "es", "issuedAt": moment, "outcome": "issued",
                            "device": device, "priority": None, "phone": None})


def test_a_device_reporting_in_a_loop_cannot_fill_the_branchs_ledger(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A device may report at most ``relay.max_reports_per_hour`` (a reserve refilled by
    the hour): beyond, 429 with ``Retry-After`` (its outbox sends the report later), and
    nothing is kept. It had no limit: a hostile device's minute of reports, as fast as
    the relay took them, made the branch's ledger a 181 MB answer (a reviewing helper).
    Other devices keep their own budget; a report the store failed is not charged."""
    caplog.set_level(logging.INFO, logger="kiosk.relay")
    fail = failing(monkeypatch, "report", at_first=False)
    with RelayServer(hub_settings(tmp_path, max_reports_per_hour=100)) as hub:
        for n in range(1, 100):
            assert _report(hub.url, KIOSK, f"A-{n:03d}", "lobby-1").status_code == 201
        fail[0] = True
        assert _report(hub.url, KIOSK, "A-100", "lobby-1").status_code == 503
        fail[0] = False
        assert _report(hub.url, KIOSK, "A-100", "lobby-1").status_code == 201  # given back
        refused = [_report(hub.url, KIOSK, f"A-{n:03d}", "lobby-1") for n in (101, 102)]
        for r in refused:
            assert (r.status_code, r.json()["error"]) == (429, "rate"), r.text
            assert 1 <= int(r.headers["retry-after"]) <= 36, r.headers  # 100 an hour
        assert _report(hub.url, TABLET, "A-500", "greeter").status_code == 201  # its own
        listed = httpx.get(f"{hub.url}/v1/branches/{BRANCH_A}/tickets", trust_env=False,
                           headers={"Authorization": f"Bearer {KIOSK}"}).json()["tickets"]
        text = httpx.get(hub.url + "/metrics", trust_env=False).text
    assert [t["ticketId"] for t in listed] == [f"A-{n:03d}" for n in range(1, 101)] + ["A-500"]
    assert 'relay_ticket_reports_total{result="limited"} 2.0' in text
    lines = [r.getMessage() for r in caplog.records if "max_reports_per_hour" in r.getMessage()]
    assert len(lines) == 1 and "lobby-1" in lines[0] and "429" in lines[0], lines


def _config(tmp_path: Path, **relay: Any) -> Path:
    secret = write_private(tmp_path / "webhook-secret", SECRET.decode() + "\n")
    token = write_private(tmp_path / "device-lobby-1", KIOSK + "\n")
    section = {"webhook_secret_file": str(secret),
               "devices": [{"id": "lobby-1", "branch": BRANCH_A, "role": "kiosk",
                            "token_file": str(token)}],
               "branches": [{"id": BRANCH_A, "timezone": ZONES[BRANCH_A]}], **relay}
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump({"kiosk": {"data_dir": str(tmp_path / "data")},
                                    "relay": section}), encoding="utf-8")
    return path


@pytest.mark.slow
def test_a_kill_9_after_a_201_never_hands_that_block_out_again(tmp_path: Path) -> None:
    """Leases in flight from several clients when the relay is killed -9, three times:
    every block answered 201 before a kill is below every block after it."""
    config = _config(tmp_path)
    answered: list[tuple[int, int]] = []
    for _round in range(3):
        with relay_process(config) as proc:
            stop = threading.Event()
            got: list[tuple[int, int]] = []
            lock = threading.Lock()

            def client(url: str = proc.url, got: list[tuple[int, int]] = got,
                       stop: threading.Event = stop, lock: threading.Lock = lock) -> None:
                with httpx.Client(trust_env=False, timeout=5) as c:
                    while not stop.is_set():
                        try:
                            r = c.post(f"{url}/v1/branches/{BRANCH_A}/leases",
                                       json={"sequence": "A", "day": day_of(BRANCH_A),
                                             "count": 7},
                                       headers={"Authorization": f"Bearer {KIOSK}"})
                        except httpx.HTTPError:
                            return
                        if r.status_code == 201:
                            with lock:
                                got.append((r.json()["first"], r.json()["last"]))

            threads = [threading.Thread(target=client) for _ in range(4)]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 20
            while len(got) < 30 and time.monotonic() < deadline:
                time.sleep(0.01)
            proc.kill()  # mid-flight: some requests never get their answer
            stop.set()
            for t in threads:
                t.join()
            assert len(got) >= 30
            before = max((b for _, b in answered), default=0)
            assert min(a for a, _ in got) > before  # nothing answered before came back
            answered += got
    assert disjoint(answered)


# --------------------------------------------------------------------------- replicas


def _replica(redis_url: str, folder: Path) -> RelaySettings:
    """A replica's settings: its own data folder (its floors), one Redis."""
    folder.mkdir(exist_ok=True)
    return dataclasses.replace(hub_settings(folder), store=redis_url)


def _known_replicas(folder: Path) -> int:
    db = sqlite3.connect(folder / "hub.sqlite3")
    try:
        return int(db.execute("SELECT count(*) FROM replicas").fetchone()[0])
    finally:
        db.close()


def _wait(condition: Any, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_two_replicas_on_one_redis_never_overlap(tmp_path: Path) -> None:
    with RedisProcess(tmp_path, "none") as server, \
            RelayServer(_replica(server.url, tmp_path / "a")) as a, \
            RelayServer(_replica(server.url, tmp_path / "b")) as b:
        _wait(lambda: lease(a.url, KIOSK, count=1).status_code == 201, "replica a leases")
        got: list[tuple[int, int]] = []
        lock = threading.Lock()

        def client(n: int) -> None:
            rng = random.Random(n)
            for i in range(20):
                r = lease((a, b)[(n + i) % 2].url, (KIOSK, TABLET)[i % 2],
                          count=rng.randint(1, 15))
                with lock:
                    got.append(block(r))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(got) == 160 and disjoint(got) and min(x for x, _ in got) == 2
        import redis
        held = redis.Redis.from_url(server.url).get(
            f"kiosk:seq:{BRANCH_A}:{day_of(BRANCH_A)}:A")
        assert held is not None and int(held) == max(y for _, y in got)
        ttl = redis.Redis.from_url(server.url).ttl(f"kiosk:seq:{BRANCH_A}:{day_of(BRANCH_A)}:A")
        assert 3 * 24 * 3600 < ttl <= ledger_module.COUNTER_TTL_S


@pytest.mark.slow
def test_a_redis_restart_without_persistence_never_hands_a_number_out_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis killed -9 with nothing persisted while replica b is down: a's leases are
    refused (503, Retry-After) until b is back and has raised the counters to its floor,
    then every block is above every block handed out before the restart."""
    monkeypatch.setattr(ledger_module, "SEED_CHECK_S", 0.1)
    with RedisProcess(tmp_path, "none") as server:
        sa, sb = _replica(server.url, tmp_path / "a"), _replica(server.url, tmp_path / "b")
        before: list[tuple[int, int]] = []
        with RelayServer(sa) as a:
            with RelayServer(sb) as b:
                _wait(lambda: lease(a.url, KIOSK, count=1).status_code == 201, "a leases")
                for i in range(10):
                    before.append(block(lease((a, b)[i % 2].url, KIOSK, count=5)))
                before.append(block(lease(b.url, KIOSK, count=50)))  # b holds the highest
                _wait(lambda: _known_replicas(tmp_path / "a") == 2, "a knows b")
            server.restart()  # b is down: its floor is the only record of its last block
            r = lease(a.url, KIOSK)
            assert r.status_code == 503 and r.headers["retry-after"] == "2", r.text
            time.sleep(0.5)  # a seeds its own floor meanwhile; b's is still missing
            assert lease(a.url, KIOSK).status_code == 503
            with RelayServer(sb) as b:  # b is back: it seeds at start
                _wait(lambda: lease(a.url, KIOSK, count=1).status_code == 201,
                      "a leases once b seeded")
                after = [block(lease((a, b)[i % 2].url, KIOSK, count=5)) for i in range(6)]
        top = max(y for _, y in before)
        assert top == 1 + 10 * 5 + 50
        assert min(x for x, _ in after) > top + 1  # above b's floor (and the one just above)
        assert disjoint(before + after)


@pytest.mark.slow
@pytest.mark.parametrize("persistence", ["aof", "rdb"])
def test_a_redis_restart_with_persistence_or_an_older_snapshot_is_seeded_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, persistence: str) -> None:
    """A Redis back from an older snapshot (rdb) would count from that snapshot: the run
    changed, so the counters are raised to the floors before any lease."""
    monkeypatch.setattr(ledger_module, "SEED_CHECK_S", 0.1)
    with RedisProcess(tmp_path, persistence) as server:
        with RelayServer(_replica(server.url, tmp_path / "a")) as a:
            _wait(lambda: lease(a.url, KIOSK, count=1).status_code == 201, "a leases")
            if persistence == "rdb":
                server.save()  # the snapshot holds the counter at 1
            before = [block(lease(a.url, KIOSK, count=10)) for _ in range(3)]
            server.restart()
            _wait(lambda: lease(a.url, KIOSK, count=1).status_code == 201, "a leases again")
            after = block(lease(a.url, KIOSK, count=10))
        assert after[0] > max(y for _, y in before) + 1


# --------------------------------------------------------------------------- replicas gone


def _replica_config(folder: Path, redis_url: str) -> Path:
    """A replica's config file: its data_dir (its ``hub.sqlite3``), one Redis."""
    folder.mkdir(exist_ok=True)
    secret = write_private(folder / "secret", SECRET.decode())
    config = folder / "relay.yaml"
    config.write_text(yaml.safe_dump({"kiosk": {"data_dir": str(folder)}, "relay": {
        "store": redis_url, "webhook_secret_file": str(secret)}}), encoding="utf-8")
    return config


async def test_a_replica_gone_for_good_holds_leases_36_hours_after_its_last_check_only(
        tmp_path: Path) -> None:
    """Replica r stops for good; Redis keeps its data (AOF) and restarts. Within 36 hours
    of r's last check, leases wait for r to seed (its floor may be the highest); past
    them, r is forgotten. Before, r's id stayed in Redis's set of replicas for ever and
    every other replica wrote it down as seen every minute: after a restart of a Redis
    that kept it, leases waited for r for ever (503; the devices numbering offline)."""
    now = [time.time()]
    day = day_of(BRANCH_A)
    with RedisProcess(tmp_path, "aof") as server:
        a = ledger_module.RedisLedger(server.url, tmp_path / "a" / "hub.sqlite3",
                                      clock=lambda: now[0])
        r = ledger_module.RedisLedger(server.url, tmp_path / "r" / "hub.sqlite3",
                                      clock=lambda: now[0])
        await a.start()
        await r.start()
        try:
            assert await r.check() and await a.check()
            assert {x.id for x in ledger_module.known_replicas(server.url, a._file.path)} \
                == {a.id, r.id}
            top = (await r.lease(BRANCH_A, day, "A", 50)).last
            await r.close()  # gone for good
            for _ in range(60):  # a runs on for an hour after r's last check
                now[0] += 60
                await a.check()
            server.restart()  # with its data: a new run, seeded again
            await _until_checked(a)
            with pytest.raises(ledger_module.NotSeeded) as refused:
                await a.lease(BRANCH_A, day, "A", 5)
            assert r.id in str(refused.value) and "Numbers with replicas" in str(refused.value)
            for _ in range(36):  # 37 hours after r's last check
                now[0] += 3600
                await a.check()
            lease = await a.lease(BRANCH_A, day, "A", 5)
            assert lease.first > top  # above r's block (Redis kept the counter)
        finally:
            await a.close()
            await r.close()


async def test_the_replicas_list_drops_what_is_old_or_not_a_time_and_older_replicas_see_it(
        tmp_path: Path) -> None:
    """Redis's list of replicas' checks: an entry older than 36 hours, or not a time (Lua
    read "0x7fffffff" as a number and kept it, Python refused it and every check failed:
    after a Redis restart nobody could seed), is dropped by the next check. Each replica
    is also in the older SET, so a replica of the older version still running during an
    upgrade waits for the newer ones' floors."""
    import redis
    with RedisProcess(tmp_path, "none") as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        now = float(client.time()[0])
        client.hset(ledger_module.REPLICAS, mapping={
            "gone": f"{now - 37 * 3600:.3f}", "poison": "0x7fffffff", "nan": "nan",
            "recent": f"{now - 3600:.3f}"})
        a = ledger_module.RedisLedger(server.url, tmp_path / "a" / "hub.sqlite3")
        await a.start()
        try:
            assert await a.check()
            assert set(client.hkeys(ledger_module.REPLICAS)) == {a.id, "recent"}
            assert client.sismember(ledger_module.OLDER_REPLICAS, a.id)
            known = {r.id: r for r in ledger_module.known_replicas(server.url,
                                                                   tmp_path / "a" / "hub.sqlite3")}
            assert set(known) == {a.id, "recent"} and known[a.id].me
            assert known["recent"].seen == pytest.approx(now - 3600, abs=1)
        finally:
            await a.close()
            client.close()


async def _until_checked(ledger: Any) -> None:
    """A check after a Redis restart (the first command on a pooled connection may meet
    the closed socket)."""
    for _ in range(50):
        try:
            await ledger.check()
            return
        except ledger_module.StoreError:
            await asyncio.sleep(0.1)
    raise AssertionError("the ledger never checked Redis again")


async def test_kiosk_forget_replica_lists_the_replicas_and_forgets_one_at_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`kiosk forget-replica` (no id) lists the replicas. It refuses this replica, one that
    is running, and, without --force, one seen within 26 hours (the last numbers it handed
    out are only on its disk); forced, run on a, leases after a restart of a Redis that
    kept its data no longer wait for r."""
    import redis

    from kiosk.cli import main
    day = day_of(BRANCH_A)

    def forget(*args: str) -> int:
        return main(["--config", str(config), "forget-replica", *args])
    with RedisProcess(tmp_path, "aof") as server:
        config = _replica_config(tmp_path / "a", server.url)
        a = ledger_module.RedisLedger(server.url, tmp_path / "a" / "hub.sqlite3")
        r = ledger_module.RedisLedger(server.url, tmp_path / "r" / "hub.sqlite3")
        await a.start()
        await r.start()
        try:
            await r.check()
            await a.check()
            await r.close()
            assert await asyncio.to_thread(forget) == 0
            listed = capsys.readouterr().out
            assert a.id in listed and r.id in listed and "(this one)" in listed
            assert await asyncio.to_thread(forget, a.id) != 0
            assert "this replica" in capsys.readouterr().err
            assert await asyncio.to_thread(forget, r.id) != 0  # it checked a moment ago
            assert "it is running" in capsys.readouterr().err
            client = redis.Redis.from_url(server.url, decode_responses=True)
            hours_ago = float(client.time()[0]) - 3 * 3600  # as if r stopped 3 hours ago
            client.hset(ledger_module.REPLICAS, r.id, f"{hours_ago:.3f}")
            client.close()
            db = sqlite3.connect(tmp_path / "a" / "hub.sqlite3")
            db.execute("UPDATE replicas SET seen = ? WHERE id = ?", (hours_ago, r.id))
            db.commit()
            db.close()
            assert await asyncio.to_thread(forget, r.id) == 2
            assert "Redis kept its data (AOF)" in capsys.readouterr().err
            assert _known_replicas(tmp_path / "a") == 2  # nothing forgotten
            assert await asyncio.to_thread(forget, r.id, "--force") == 0
            assert "forgotten here and in Redis" in capsys.readouterr().out
            assert _known_replicas(tmp_path / "a") == 1
            assert await asyncio.to_thread(forget, "no-such-replica", "--force") != 0
            server.restart()
            await _until_checked(a)
            assert (await a.lease(BRANCH_A, day, "A", 5)).first >= 1  # no wait for r
        finally:
            await a.close()
            await r.close()
