"""The hub's fleet (issue 19, docs/hub.md "Heartbeats" and "Fleet"): heartbeats in over
real loopback HTTP, kept in SQLite or a real redis-server, the states out in
``GET /v1/fleet`` and ``/metrics`` (checked by Prometheus's own ``promtool``)."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from kiosk.i18n import t
from kiosk.relay import RelayServer
from kiosk.relay.fleet import REASONS, STATES, assess
from kiosk.relay.fleet_page import PAGE_WORDS, PRINTER_WORDS, REASON_WORDS, ROLE_WORDS, STATE_WORDS
from tests.fleet_helpers import FLEET_TOKEN, TOKENS, beat, by_id, fleet, fleet_settings, put_state
from tests.redis_helpers import RedisProcess
from tests.relay_helpers import BRANCH_A, BRANCH_B


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayServer]:
    with RelayServer(fleet_settings(tmp_path)) as server:
        yield server


# --------------------------------------------------------------------------- heartbeats in


def test_a_device_reports_its_state_with_its_own_token_only(relay: RelayServer) -> None:
    url = relay.url
    assert put_state(url, "lobby-1", beat()).status_code == 204
    assert put_state(url, "lobby-1", beat(), token="").status_code == 401
    assert put_state(url, "lobby-1", beat(), token="not-a-token-0123456789").status_code == 401
    assert put_state(url, "lobby-1", beat(), token=FLEET_TOKEN).status_code == 401
    other = put_state(url, "lobby-1", beat(), token=TOKENS["greeter"])  # same branch
    assert other.status_code == 403 and "another device" in other.json()["error"]
    assert put_state(url, "lobby-1", beat(), token=TOKENS["b-kiosk"]).status_code == 403
    # an id nobody configured: no token opens it
    assert put_state(url, "ghost", beat(), token=TOKENS["lobby-1"]).status_code == 403
    assert by_id(url)["lobby-1"]["state"] == "ok"


@pytest.mark.parametrize(("key", "value"), [
    ("printer", "paper_gone"), ("reason", "coffee"), ("api", "down"), ("journal", "meh"),
    ("clock", "late"),
    ("numbers", "borrowed"), ("in_service", "yes"), ("tickets_today", -1),
    ("tickets_today", 1.5), ("clock_skew_s", "0.4"), ("version", "1.0 <script>"),
    ("priority_today", {"senior": "two"}), ("last_ticket_at", "yesterday"), ("role", "tablet"),
    ("last_ticket_at", "\u0662\u0660\u0662\u0666-12-02T12:01:02Z"),  # Arabic-Indic digits
])
def test_an_unknown_value_is_refused_naming_its_key(relay: RelayServer, key: str,
                                                    value: object) -> None:
    r = put_state(relay.url, "lobby-1", beat(**{key: value}))
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid"
    assert r.json()["field"].split(".")[0] == key
    assert by_id(relay.url)["lobby-1"]["state"] == "unknown"  # nothing kept


def test_missing_keys_and_bodies_that_are_no_object_are_refused(relay: RelayServer) -> None:
    body = beat()
    del body["printer"]
    r = put_state(relay.url, "lobby-1", body)
    assert (r.status_code, r.json()["field"]) == (400, "printer")
    for raw in (b"", b"[]", b"not json", b"\xff\xfe", b"null"):
        r = put_state(relay.url, "lobby-1", raw)
        assert (r.status_code, r.json()["field"]) == (400, "(body)"), raw


def test_hostile_bodies_are_kind_400s_never_500s(relay: RelayServer) -> None:
    for raw in (b"[" * 5000, b'{"role":' * 900, b'{"role": "kiosk", "x": ' + b"[" * 4000,
                b'{"clock_skew_s": NaN}', b'{"uptime_s": Infinity}',
                json.dumps(beat(clock_skew_s=float("nan"))).encode(),
                json.dumps(beat(priority_today={f"r{i}": 1 for i in range(33)})).encode(),
                json.dumps(beat(tickets_today=10**30)).encode()):
        r = put_state(relay.url, "lobby-1", raw)
        assert r.status_code == 400, (raw[:30], r.status_code, r.text)
    assert by_id(relay.url)["lobby-1"]["state"] == "unknown"


def test_reason_goes_with_being_out_of_service(relay: RelayServer) -> None:
    r = put_state(relay.url, "lobby-1", beat(in_service=False, reason=None))
    assert (r.status_code, r.json()["field"]) == (400, "reason")
    r = put_state(relay.url, "lobby-1", beat(in_service=True, reason="api"))
    assert (r.status_code, r.json()["field"]) == (400, "reason")


def test_keys_it_does_not_know_are_ignored_and_not_kept(relay: RelayServer) -> None:
    r = put_state(relay.url, "lobby-1", beat(future_key={"x": 1}, customer_rut="12.345.678-5"))
    assert r.status_code == 204
    assert "12.345.678-5" not in fleet(relay.url).text


def test_a_body_over_8_kb_is_refused(relay: RelayServer) -> None:
    big = beat(padding="x" * 9000)
    r = put_state(relay.url, "lobby-1", big)
    assert r.status_code == 413
    # the same without a Content-Length (chunked): still refused, not read to the end
    raw = json.dumps(big).encode()
    r = put_state(relay.url, "lobby-1", iter([raw[:4000], raw[4000:]]))
    assert r.status_code == 413
    assert put_state(relay.url, "lobby-1", beat(padding="x" * 7000)).status_code == 204


def test_only_the_latest_heartbeat_counts(relay: RelayServer) -> None:
    assert put_state(relay.url, "lobby-1", beat(printer="paper_low")).status_code == 204
    assert put_state(relay.url, "lobby-1", beat(tickets_today=42)).status_code == 204
    d = by_id(relay.url)["lobby-1"]
    assert (d["state"], d["printer"], d["tickets_today"]) == ("ok", "ok", 42)


# --------------------------------------------------------------------------- the fleet out


def test_the_fleet_needs_the_fleet_token(relay: RelayServer) -> None:
    assert fleet(relay.url, token="").status_code == 401
    assert fleet(relay.url, token="fleet-token-operations-0123456788").status_code == 401
    assert fleet(relay.url, token=TOKENS["lobby-1"]).status_code == 403
    assert httpx.get(relay.url + "/v1/fleet", params={"token": FLEET_TOKEN}).status_code == 401


def test_states_worst_first_with_their_reasons(relay: RelayServer) -> None:
    url = relay.url
    assert put_state(url, "lobby-1", beat(in_service=False, reason="printer",
                                          printer="paper_out")).status_code == 204
    assert put_state(url, "greeter", beat("tablet", printer="paper_low")).status_code == 204
    assert put_state(url, "tv-1", beat("display")).status_code == 204
    r = fleet(url)
    assert r.headers["cache-control"] == "no-store"
    devices = r.json()["devices"]
    assert [(d["id"], d["state"], d["reason"]) for d in devices] == [
        ("lobby-1", "error", "printer"), ("greeter", "warning", "paper_low"),
        ("b-kiosk", "unknown", "never_heard"), ("tv-1", "ok", None)]
    lobby = devices[0]
    assert lobby["printer"] == "paper_out" and lobby["faults"] == ["printer"]
    assert lobby["in_service"] is False and lobby["version"] == "0.9.0"
    assert lobby["branch"] == BRANCH_A and lobby["role"] == "kiosk"
    assert lobby["tickets_today"] == 41 and lobby["priority_today"] == {"senior": 2, "": 1}
    seen = time.time() - time.mktime(time.strptime(lobby["last_seen"],
                                                   "%Y-%m-%dT%H:%M:%S+00:00")) + time.timezone
    assert -2 < seen < 10
    assert devices[2]["last_seen"] is None and devices[2]["printer"] == "unknown"


def test_the_fleet_filters_by_branch_and_state(relay: RelayServer) -> None:
    url = relay.url
    put_state(url, "lobby-1", beat(numbers="offline"))
    put_state(url, "b-kiosk", beat())
    ids = [d["id"] for d in fleet(url, branch=BRANCH_B).json()["devices"]]
    assert ids == ["b-kiosk"]
    ids = [d["id"] for d in fleet(url, state="warning").json()["devices"]]
    assert ids == ["lobby-1"]
    ids = [d["id"] for d in fleet(url, state="unknown,ok").json()["devices"]]
    assert ids == ["greeter", "tv-1", "b-kiosk"]
    assert fleet(url, branch=BRANCH_A, state="ok").json()["devices"] == []
    r = fleet(url, state="broken")
    assert (r.status_code, r.json()["field"]) == (400, "state")
    r = fleet(url, branch="../etc")
    assert (r.status_code, r.json()["field"]) == (400, "branch")
    assert fleet(url, branch="no-such-branch").json()["devices"] == []


def test_a_device_is_offline_after_three_missed_heartbeats(tmp_path: Path) -> None:
    with RelayServer(fleet_settings(tmp_path, heartbeat_s=0.4)) as server:
        assert put_state(server.url, "lobby-1", beat()).status_code == 204
        time.sleep(0.8)  # two missed: still ok
        assert by_id(server.url)["lobby-1"]["state"] == "ok"
        time.sleep(0.6)  # past three
        d = by_id(server.url)["lobby-1"]
        assert (d["state"], d["reason"], d["in_service"], d["printer"]) == \
            ("offline", "silent", False, "unknown")
        assert put_state(server.url, "lobby-1", beat()).status_code == 204
        assert by_id(server.url)["lobby-1"]["state"] == "ok"


def test_sqlite_keeps_the_last_states_across_a_restart(tmp_path: Path) -> None:
    settings = fleet_settings(tmp_path)
    with RelayServer(settings) as server:
        put_state(server.url, "greeter", beat("tablet", printer="cover_open"))
    with RelayServer(settings) as server:
        d = by_id(server.url)["greeter"]
        assert (d["state"], d["reason"]) == ("error", "cover_open")


def test_a_kill_9_loses_at_most_the_last_second(tmp_path: Path) -> None:
    """The relay in its own process, killed -9 after a heartbeat had a second to be
    written: the next relay still knows it."""
    import yaml

    from kiosk.relay.server import relay_process
    from tests.relay_helpers import SECRET, write_private
    secret = write_private(tmp_path / "secret", SECRET.decode() + "\n")
    write_private(tmp_path / "fleet", FLEET_TOKEN + "\n")
    write_private(tmp_path / "lobby", TOKENS["lobby-1"] + "\n")
    config = tmp_path / "relay.yaml"
    config.write_text(yaml.safe_dump({"kiosk": {"data_dir": str(tmp_path / "data")}, "relay": {
        "webhook_secret_file": str(secret), "fleet_token_file": str(tmp_path / "fleet"),
        "devices": [{"id": "lobby-1", "branch": BRANCH_A, "role": "kiosk",
                     "token_file": str(tmp_path / "lobby")}]}}), encoding="utf-8")
    with relay_process(config) as proc:
        assert put_state(proc.url, "lobby-1", beat(printer="paper_low")).status_code == 204
        time.sleep(1.5)
        proc.kill()
    with relay_process(config) as proc:
        assert by_id(proc.url)["lobby-1"]["reason"] == "paper_low"


def test_with_redis_every_replica_sees_every_device(tmp_path: Path) -> None:
    with RedisProcess(tmp_path) as server:
        settings = fleet_settings(tmp_path, store=server.url)
        with RelayServer(settings) as a, RelayServer(settings) as b:
            assert put_state(a.url, "lobby-1", beat(printer="paper_out")).status_code == 204
            assert put_state(b.url, "greeter", beat("tablet", api="refused")).status_code == 204
            for replica in (a, b):
                states = by_id(replica.url)
                assert states["lobby-1"]["reason"] == "paper_out"
                assert states["greeter"]["reason"] == "api"
            client = redis.Redis.from_url(server.url)
            record = client.hget("kiosk:relay:devices", "lobby-1")
            assert record and json.loads(record)["s"]["printer"] == "paper_out"
            # a Redis that comes back empty: never heard of, until the next heartbeat
            client.flushall()
            assert by_id(a.url)["lobby-1"]["state"] == "unknown"
            assert put_state(a.url, "lobby-1", beat()).status_code == 204
            assert by_id(b.url)["lobby-1"]["state"] == "ok"
            # a record that is not what a relay wrote (another program, an old version)
            client.hset("kiosk:relay:devices", "greeter", "not json")
            client.hset("kiosk:relay:devices", "tv-1", json.dumps({"t": 1, "s": beat()}))
            states = by_id(b.url)
            assert states["greeter"]["state"] == "unknown"
            assert states["tv-1"]["state"] == "unknown"  # a kiosk's record: not the screen's
        # Redis down: the heartbeat is answered 503 (the device sends the next one), the
        # fleet 503 with Retry-After; never a 500
        with RelayServer(settings) as c:
            server.stop()
            assert put_state(c.url, "lobby-1", beat()).status_code == 503
            r = fleet(c.url)
            assert r.status_code == 503 and r.headers["retry-after"]


# --------------------------------------------------------------------------- /metrics


def metrics_text(url: str) -> str:
    r = httpx.get(url + "/metrics", timeout=10)
    assert r.status_code == 200
    return r.text


def sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_carry_one_series_set_per_configured_device(relay: RelayServer) -> None:
    url = relay.url
    put_state(url, "lobby-1", beat(printer="paper_low", clock_skew_s=-900.0,
                                   tickets_today=17))
    put_state(url, "greeter", beat("tablet", in_service=False, reason="api",
                                   api="unreachable"))
    text = metrics_text(url)
    lobby = {"branch": BRANCH_A, "device": "lobby-1", "role": "kiosk"}
    assert sample(text, "kiosk_device_up", **lobby) == 1
    assert sample(text, "kiosk_device_in_service", **lobby) == 1
    assert sample(text, "kiosk_printer_state", state="paper_low", **lobby) == 1
    assert sample(text, "kiosk_printer_state", state="ok", **lobby) == 0
    assert sample(text, "kiosk_device_fault", fault="clock", **lobby) == 1
    assert sample(text, "kiosk_device_fault", fault="printer", **lobby) == 0
    assert sample(text, "kiosk_tickets_today", **lobby) == 17
    seen = sample(text, "kiosk_device_last_seen_seconds", **lobby)
    assert seen is not None and abs(seen - time.time()) < 10
    greeter = {"device": "greeter", "role": "tablet"}
    assert sample(text, "kiosk_device_in_service", **greeter) == 0
    assert sample(text, "kiosk_device_fault", fault="api", **greeter) == 1
    never = {"device": "b-kiosk", "branch": BRANCH_B}
    assert sample(text, "kiosk_device_up", **never) == 0
    assert sample(text, "kiosk_printer_state", state="unknown", **never) == 1
    assert sample(text, "kiosk_device_last_seen_seconds", **never) is None
    # a calling screen has no printer series
    assert sample(text, "kiosk_printer_state", device="tv-1") is None
    assert sample(text, "kiosk_device_up", device="tv-1") == 0


def test_nothing_a_request_sends_creates_a_series(relay: RelayServer) -> None:
    url = relay.url
    for i in range(20):
        put_state(url, f"ghost-{i}", beat(), token=TOKENS["lobby-1"])
        put_state(url, "lobby-1", beat(priority_today={f"reason{i}": i}, version=f"v{i}"))
    put_state(url, "lobby-1", beat(role="display"))
    text = metrics_text(url)
    devices = set(re.findall(r'device="([^"]*)"', text))
    assert devices == {"lobby-1", "greeter", "tv-1", "b-kiosk"}
    kiosk_lines = [ln for ln in text.splitlines() if ln.startswith("kiosk_")]
    # up, in service and tickets of 4 devices; 6 printer states of the 3 with a printer;
    # 5 faults of 4 devices; the last heartbeat of the one heard
    assert len(kiosk_lines) == 3 * 4 + 3 * 6 + 4 * 5 + 1


def test_promtool_parses_the_metrics(relay: RelayServer) -> None:
    exe = shutil.which("promtool")
    assert exe, "promtool is missing: `packaging/dev.sh test` installs Debian's prometheus"
    put_state(relay.url, "lobby-1", beat(printer="paper_out"))
    text = metrics_text(relay.url)
    p = subprocess.run([exe, "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


# --------------------------------------------------------------------------- secrets, words


def test_tokens_never_reach_a_log(relay: RelayServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    put_state(relay.url, "lobby-1", beat(), token=TOKENS["greeter"])
    put_state(relay.url, "lobby-1", beat(printer="x"))
    fleet(relay.url, token=FLEET_TOKEN + "x")
    fleet(relay.url)
    httpx.post(relay.url + "/fleet/login", data={"token": FLEET_TOKEN})
    httpx.post(relay.url + "/fleet/login", data={"token": FLEET_TOKEN[:-1]})
    logged = caplog.text
    for token in (*TOKENS.values(), FLEET_TOKEN, FLEET_TOKEN[:-1]):
        assert token not in logged


def test_assess_has_a_word_for_every_state_and_reason() -> None:
    seen_states, seen_reasons = set(), set()
    base = beat()
    cases = [None, base, beat(printer="paper_low"), beat(printer="paper_out"),
             beat(printer="cover_open"), beat(printer="offline"), beat(printer="unknown"),
             beat(numbers="offline"), beat(api="unreachable"), beat(clock="skewed"),
             beat(clock_skew_s=301.0),
             beat(journal="fault"),
             *(beat(in_service=False, reason=r) for r in ("api", "printer", "clock", "journal",
                                                          "numbers"))]
    for case in cases:
        state, reason, _ = assess(case, 0.0, 30.0)
        seen_states.add(state)
        seen_reasons.add(reason)
    state, reason, _ = assess(base, 91.0, 30.0)
    seen_states.add(state)
    seen_reasons.add(reason)
    assert seen_states == set(STATES)
    assert seen_reasons - {None} == set(REASONS)


@pytest.mark.parametrize("lang", ["es", "pt"])
def test_every_word_of_the_fleet_is_translated(lang: str) -> None:
    for table in (STATE_WORDS, ROLE_WORDS, PRINTER_WORDS, REASON_WORDS, PAGE_WORDS):
        for english in table.values():
            assert t(english, lang, time="12:00") != english.format(time="12:00"), (lang,
                                                                                    english)



@pytest.mark.parametrize(("state", "expected"), [
    ({}, ("ok", None)),
    ({"printer": "paper_low"}, ("warning", "paper_low")),
    ({"printer": "paper_out"}, ("error", "printer")),
    ({"printer": "cover_open"}, ("error", "printer")),
    ({"printer": "unknown"}, ("warning", "printer_unknown")),
    ({"api": "unreachable"}, ("error", "api")),
    ({"api": "refused"}, ("error", "api")),
    ({"clock": "skewed", "clock_skew_s": 400.0}, ("warning", "clock")),
    ({"clock": "wrong"}, ("error", "clock")),
    ({"journal": "fault"}, ("warning", "journal")),
    ({"journal": "unavailable"}, ("error", "journal")),
    ({"numbers": "offline"}, ("warning", "numbers_offline")),
    ({"priority_today": {"": 2, "senior": 1}, "last_ticket_at": "2026-12-02T12:01:02.123456+00:00"},
     ("ok", None)),
])
def test_the_devices_own_heartbeat_is_taken(relay: RelayServer, state: dict[str, object],
                                            expected: tuple[str, str | None]) -> None:
    """The body the device composes (kiosk.view.devicestate, the device's side of the
    contract) is what the hub takes, and the hub reads it as the device means it."""
    from kiosk.view.devicestate import DeviceState
    kw: dict[str, object] = {"printer": "ok", "api": "ok", "numbers": "shared",
                             "tickets": {"issued": 5}, **state}
    body = DeviceState(role="kiosk", version="0.9.0", **kw).heartbeat()  # type: ignore[arg-type]
    r = put_state(relay.url, "lobby-1", body)
    assert r.status_code == 204, r.text
    d = by_id(relay.url)["lobby-1"]
    assert (d["state"], d["reason"]) == expected
    assert d["tickets_today"] == 5
    screen = DeviceState(role="display", version="0.9.0", printer="none", api="none",
                         journal="none").heartbeat()
    assert put_state(relay.url, "tv-1", screen).status_code == 204
    assert by_id(relay.url)["tv-1"]["state"] == "ok"
