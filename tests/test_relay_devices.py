"""The branch's devices at the hub (issue 17, docs/hub.md "Who is who"): ``relay.devices``
with their roles, ``relay.displays`` still read as displays, the fleet token, and who may do
what, over real loopback HTTP where a route exists."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kiosk.relay import RelayConfigError, RelayServer, load_settings
from kiosk.relay.devices import MAY, Access, Action, Device, Refused, access_of
from tests.relay_helpers import (
    BRANCH_A,
    BRANCH_B,
    SECRET,
    SseReader,
    call_body,
    post,
    write_private,
)

KIOSK_TOKEN = "device-token-lobby-1-0123456789ab"
TABLET_TOKEN = "device-token-greeter-0123456789ab"
TV_TOKEN = "device-token-tv-1-0123456789abcdef"
OTHER_TOKEN = "device-token-branch-b-0123456789ab"
LEGACY_TOKEN = "display-token-legacy-0123456789ab"
FLEET_TOKEN = "fleet-token-operations-0123456789"
ROOT = Path(__file__).resolve().parent.parent


def _config(tmp_path: Path, devices: list[dict[str, Any]] | None = None,
            **relay: Any) -> Path:
    secret = write_private(tmp_path / "webhook-secret", SECRET.decode() + "\n")
    tokens = {"lobby-1": KIOSK_TOKEN, "greeter": TABLET_TOKEN, "tv-1": TV_TOKEN,
              "b-kiosk": OTHER_TOKEN}
    for name, token in tokens.items():
        write_private(tmp_path / f"device-{name}", token + "\n")
    write_private(tmp_path / "display-legacy", LEGACY_TOKEN + "\n")
    write_private(tmp_path / "fleet-token", FLEET_TOKEN + "\n")
    if devices is None:
        devices = [
            {"id": "lobby-1", "branch": BRANCH_A, "role": "kiosk",
             "token_file": str(tmp_path / "device-lobby-1")},
            {"id": "greeter", "branch": BRANCH_A, "role": "tablet",
             "token_file": str(tmp_path / "device-greeter")},
            {"id": "tv-1", "branch": BRANCH_A, "role": "display",
             "token_file": str(tmp_path / "device-tv-1")},
            {"id": "b-kiosk", "branch": BRANCH_B, "role": "kiosk",
             "token_file": str(tmp_path / "device-b-kiosk")}]
    section: dict[str, Any] = {
        "webhook_secret_file": str(secret), "devices": devices,
        "displays": [{"branch": BRANCH_A, "token_file": str(tmp_path / "display-legacy")}],
        "fleet_token_file": str(tmp_path / "fleet-token"), **relay}
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump({"kiosk": {"data_dir": str(tmp_path / "data")},
                                    "relay": section}), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- config


def test_devices_displays_fleet_token_and_heartbeat_are_read(tmp_path: Path) -> None:
    s = load_settings(_config(tmp_path))
    assert s.devices == {
        KIOSK_TOKEN: Device("lobby-1", BRANCH_A, "kiosk"),
        TABLET_TOKEN: Device("greeter", BRANCH_A, "tablet"),
        TV_TOKEN: Device("tv-1", BRANCH_A, "display"),
        OTHER_TOKEN: Device("b-kiosk", BRANCH_B, "kiosk"),
        LEGACY_TOKEN: Device("display-0", BRANCH_A, "display")}
    assert s.displays == {LEGACY_TOKEN: BRANCH_A}  # still there for the older callers
    assert s.fleet_tokens == (FLEET_TOKEN.encode(),)
    assert s.heartbeat_s == 30.0
    assert load_settings(_config(tmp_path, heartbeat_s=2.5)).heartbeat_s == 2.5
    for token in (KIOSK_TOKEN, TABLET_TOKEN, TV_TOKEN, LEGACY_TOKEN, FLEET_TOKEN):
        assert token not in repr(s)
    assert FLEET_TOKEN not in repr(access_of(s.devices, s.displays, s.fleet_tokens))


def test_a_token_rotation_opens_the_same_device(tmp_path: Path) -> None:
    config = _config(tmp_path)
    new = "device-token-lobby-1-next-0123456"
    write_private(tmp_path / "device-lobby-1", f"{KIOSK_TOKEN}\n{new}\n")
    s = load_settings(config)
    assert s.devices[new] == s.devices[KIOSK_TOKEN] == Device("lobby-1", BRANCH_A, "kiosk")


def _device(tmp_path: Path, id: str, role: str = "kiosk", token: str = "lobby-1",
            branch: str = BRANCH_A) -> dict[str, Any]:
    return {"id": id, "branch": branch, "role": role,
            "token_file": str(tmp_path / f"device-{token}")}


@pytest.mark.parametrize(("make", "key", "expected"), [
    (lambda t: [_device(t, "lobby-1"), _device(t, "lobby-1", token="greeter")],
     "relay.devices[1].id", "a device id of its own ('lobby-1' is also relay.devices[0]'s)"),
    (lambda t: [_device(t, "lobby-1"), _device(t, "lobby-2")],
     "relay.devices[1].token_file", "a token of its own (device 'lobby-1' uses the same one)"),
    (lambda t: [_device(t, "lobby-1", role="printer")],
     "relay.devices[0].role", "'kiosk', 'tablet' or 'display'"),
    (lambda t: [_device(t, "lobby 1")],
     "relay.devices[0].id", "a device id: 1-40 letters, digits, '_' or '-'"),
    (lambda t: [_device(t, "x" * 41)],
     "relay.devices[0].id", "a device id"),
    (lambda t: [_device(t, "lobby-1", branch="a/b")],
     "relay.devices[0].branch", "a branch id"),
    (lambda t: [{"id": "lobby-1", "branch": BRANCH_A, "role": "kiosk"}],
     "relay.devices[0].token_file", "a value (this key is required)"),
    (lambda t: [_device(t, "display-0", token="greeter")],  # a display's implicit id
     "relay.displays[0]", "a device id of its own ('display-0' is also relay.devices[0]'s)"),
    (lambda t: [{**_device(t, "tv-1", role="display"),  # shared with a display
                 "token_file": str(t / "display-legacy")}],
     "relay.displays[0].token_file", "a token of its own (device 'tv-1' uses the same one)"),
])
def test_a_bad_device_list_names_file_key_and_expectation(tmp_path: Path, make: Any,
                                                          key: str, expected: str) -> None:
    config = _config(tmp_path, make(tmp_path))
    with pytest.raises(RelayConfigError) as err:
        load_settings(config)
    assert str(err.value).startswith(f"{config}: {key}: ")
    assert expected in str(err.value)
    for token in (KIOSK_TOKEN, TABLET_TOKEN, LEGACY_TOKEN):
        assert token not in str(err.value)


def test_device_and_fleet_token_files_must_be_private_long_and_distinct(
        tmp_path: Path) -> None:
    config = _config(tmp_path)
    (tmp_path / "device-greeter").chmod(0o644)
    with pytest.raises(RelayConfigError, match=r"relay\.devices\[1\]\.token_file: .*chmod 600"):
        load_settings(config)
    (tmp_path / "device-greeter").chmod(0o600)
    write_private(tmp_path / "device-greeter", "short\n")
    with pytest.raises(RelayConfigError, match=r"relay\.devices\[1\]\.token_file: tokens of "
                                               r"at least 16"):
        load_settings(config)
    write_private(tmp_path / "device-greeter", TABLET_TOKEN + "\n")
    (tmp_path / "fleet-token").chmod(0o640)
    with pytest.raises(RelayConfigError, match=r"relay\.fleet_token_file: .*chmod 600"):
        load_settings(config)
    write_private(tmp_path / "fleet-token", KIOSK_TOKEN + "\n")  # a device's token
    with pytest.raises(RelayConfigError) as err:
        load_settings(config)
    assert "relay.fleet_token_file: a token of its own (a device uses the same one" in \
        str(err.value)
    assert KIOSK_TOKEN not in str(err.value)
    write_private(tmp_path / "fleet-token", "a\nb\nc\n")
    with pytest.raises(RelayConfigError, match=r"relay\.fleet_token_file: one or two tokens"):
        load_settings(config)


def test_two_displays_of_one_branch_may_still_share_a_token(tmp_path: Path) -> None:
    legacy = str(tmp_path / "display-legacy")
    config = _config(tmp_path, displays=[{"branch": BRANCH_A, "token_file": legacy},
                                         {"branch": BRANCH_A, "token_file": legacy}])
    assert load_settings(config).devices[LEGACY_TOKEN] == Device("display-0", BRANCH_A,
                                                                 "display")
    config = _config(tmp_path, displays=[{"branch": BRANCH_A, "token_file": legacy},
                                         {"branch": BRANCH_B, "token_file": legacy}])
    with pytest.raises(RelayConfigError, match=r"relay\.displays\[1\]\.token_file: a token "
                                               r"of its own"):
        load_settings(config)


# --------------------------------------------------------------------------- who may do what


def _doc_table() -> dict[str, dict[str, str]]:
    """docs/hub.md's table: route -> {kiosk, tablet, display, fleet token} -> cell."""
    text = (ROOT / "docs" / "hub.md").read_text(encoding="utf-8")
    rows: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) not in (3, 5) or "/v1/" not in cells[0]:
            continue
        route = re.sub(r"\s+", " ", cells[0].replace("`", ""))
        if len(cells) == 5:
            rows[route] = dict(zip(("kiosk", "tablet", "display", "fleet"), cells[1:],
                                   strict=True))
        else:  # "own id only, any role" spans the three device columns
            rows[route] = {"kiosk": cells[1], "tablet": cells[1], "display": cells[1],
                           "fleet": cells[2]}
    return rows


ROUTES = {"GET /v1/branches/{b}/calls (SSE)": Action.CALLS,
          "POST /v1/branches/{b}/leases": Action.LEASE,
          "POST /v1/branches/{b}/tickets": Action.REPORT,
          "GET /v1/branches/{b}/tickets?date=": Action.LEDGER,
          "PUT /v1/devices/{id}/state": Action.STATE,
          "GET /v1/fleet, /fleet": Action.FLEET}


def test_the_roles_are_the_table_of_docs_hub_md() -> None:
    table = _doc_table()
    assert set(table) == set(ROUTES), table
    access = Access({KIOSK_TOKEN: Device("k", BRANCH_A, "kiosk"),
                     TABLET_TOKEN: Device("t", BRANCH_A, "tablet"),
                     TV_TOKEN: Device("d", BRANCH_A, "display")}, [FLEET_TOKEN.encode()])
    tokens = {"kiosk": KIOSK_TOKEN, "tablet": TABLET_TOKEN, "display": TV_TOKEN}
    for route, action in ROUTES.items():
        for role, token in tokens.items():
            cell = table[route][role]
            assert (action in MAY[role]) == (cell != "no" and cell != "403"), (route, role)  # type: ignore[index]
            header = f"Bearer {token}"
            if action is Action.FLEET:
                with pytest.raises(Refused) as err:
                    access.fleet(header)
                assert err.value.status == 403
                continue
            ids = {"device_id": access.by_id[{"kiosk": "k", "tablet": "t",
                                              "display": "d"}[role]].id} \
                if action is Action.STATE else {"branch": BRANCH_A}
            if action in MAY[role]:  # type: ignore[index]
                assert access.device(header, action, **ids).role == role
            else:
                with pytest.raises(Refused) as err:
                    access.device(header, action, **ids)
                assert err.value.status == 403, (route, role)
        fleet_cell = table[route]["fleet"]
        header = f"Bearer {FLEET_TOKEN}"
        if action is Action.FLEET:
            access.fleet(header)
        elif action is Action.LEDGER:
            assert fleet_cell == "yes" and access.reader(header, BRANCH_A) is None
        else:
            assert fleet_cell == "no"
            with pytest.raises(Refused) as err:
                access.device(header, action, branch=BRANCH_A)
            assert err.value.status == 401


def test_a_token_opens_only_its_branch_and_its_own_device() -> None:
    access = Access({KIOSK_TOKEN: Device("lobby-1", BRANCH_A, "kiosk"),
                     OTHER_TOKEN: Device("b-kiosk", BRANCH_B, "kiosk")})
    h = f"Bearer {KIOSK_TOKEN}"
    assert access.device(h, Action.LEASE, branch=BRANCH_A).id == "lobby-1"
    cases: list[tuple[Any, dict[str, str], int, str]] = [
        (h, {"branch": BRANCH_B}, 403, "this token is for another branch"),
        (h, {"device_id": "b-kiosk"}, 403, "this token is for another device"),
        (None, {"branch": BRANCH_A}, 401, "a device token is required"),
        ("", {"branch": BRANCH_A}, 401, "a device token is required"),
        (f"Basic {KIOSK_TOKEN}", {"branch": BRANCH_A}, 401, "a device token is required"),
        ("Bearer ", {"branch": BRANCH_A}, 401, "a device token is required"),
        (f"Bearer {KIOSK_TOKEN}x", {"branch": BRANCH_A}, 401, "a device token is required"),
        (f"Bearer {KIOSK_TOKEN[:-1]}", {"branch": BRANCH_A}, 401, "a device token is required"),
    ]
    for header, where, status, error in cases:
        with pytest.raises(Refused) as err:
            access.device(header, Action.LEASE, **where)  # type: ignore[arg-type]
        assert (err.value.status, err.value.error) == (status, error), header
    with pytest.raises(Refused) as err:  # no fleet token configured: nobody reads the fleet
        access.fleet(f"Bearer {FLEET_TOKEN}")
    assert err.value.status == 401
    with pytest.raises(Refused) as err:  # another branch's ledger
        access.reader(h, BRANCH_B)
    assert err.value.status == 403
    assert access.device(f"bearer  {KIOSK_TOKEN} ", Action.CALLS, branch=BRANCH_A).id == \
        "lobby-1"  # the scheme in any case, spaces around the token


def test_a_display_may_not_take_numbers_or_report() -> None:
    access = Access({TV_TOKEN: Device("tv-1", BRANCH_A, "display")})
    for action, words in ((Action.LEASE, "a display may not take numbers"),
                          (Action.REPORT, "a display may not report tickets")):
        with pytest.raises(Refused) as err:
            access.device(f"Bearer {TV_TOKEN}", action, branch=BRANCH_A)
        assert (err.value.status, err.value.error) == (403, words)
    assert access.reader(f"Bearer {TV_TOKEN}", BRANCH_A) == Device("tv-1", BRANCH_A,
                                                                    "display")


# --------------------------------------------------------------------------- over HTTP


def test_every_device_of_the_branch_reads_its_calls_over_http(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = load_settings(_config(tmp_path))
    with RelayServer(settings) as relay:
        screens = [SseReader(relay.url, BRANCH_A, t).start_connected()
                   for t in (KIOSK_TOKEN, TABLET_TOKEN, TV_TOKEN, LEGACY_TOKEN)]
        assert [s.status for s in screens] == [200] * 4
        assert post(relay.url, call_body("A-042", "call-1")).status_code == 201
        for s in screens:
            [(_, data)] = s.take(1)
            assert data["ticketId"] == "A-042"
            s.stop()
        url = f"{relay.url}/v1/branches/{BRANCH_A}/calls"
        answers = {
            "none": httpx.get(url, timeout=10),
            "unknown": httpx.get(url, headers={"Authorization": "Bearer " + "z" * 32},
                                 timeout=10),
            "fleet": httpx.get(url, headers={"Authorization": f"Bearer {FLEET_TOKEN}"},
                               timeout=10),
            "other branch": httpx.get(url, headers={"Authorization": f"Bearer {OTHER_TOKEN}"},
                                      timeout=10)}
        assert {k: r.status_code for k, r in answers.items()} == {
            "none": 401, "unknown": 401, "fleet": 401, "other branch": 403}
        assert answers["none"].headers["www-authenticate"] == "Bearer"
        assert answers["other branch"].json() == {"error": "this token is for another branch"}
        b = SseReader(relay.url, BRANCH_B, OTHER_TOKEN).start_connected()
        assert b.status == 200 and b.nothing_more(0.3)  # branch A's call is not B's
        b.stop()
    logged = caplog.text
    for token in (KIOSK_TOKEN, TABLET_TOKEN, TV_TOKEN, LEGACY_TOKEN, FLEET_TOKEN, OTHER_TOKEN):
        assert token not in logged


def test_the_stream_cap_is_per_device_across_a_rotation(tmp_path: Path) -> None:
    config = _config(tmp_path, max_streams_per_token=1)
    new = "device-token-lobby-1-next-0123456"
    write_private(tmp_path / "device-lobby-1", f"{KIOSK_TOKEN}\n{new}\n")
    with RelayServer(load_settings(config)) as relay:
        first = SseReader(relay.url, BRANCH_A, KIOSK_TOKEN).start_connected()
        assert first.status == 200
        url = f"{relay.url}/v1/branches/{BRANCH_A}/calls"
        r = httpx.get(url, headers={"Authorization": f"Bearer {new}"}, timeout=10)
        assert r.status_code == 429  # the same device under its next token
        other = SseReader(relay.url, BRANCH_A, TABLET_TOKEN).start_connected()
        assert other.status == 200  # another device is not affected
        first.stop()
        other.stop()


# --------------------------------------------------------------------------- the token


def test_kiosk_device_token_writes_a_private_token_it_never_prints(tmp_path: Path) -> None:
    import subprocess
    import sys
    path = tmp_path / "made-by-kiosk"
    run = [sys.executable, "-m", "kiosk", "device-token", str(path)]
    first = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    token = path.read_text(encoding="ascii").strip()
    assert path.stat().st_mode & 0o777 == 0o600
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)  # 256 bits, URL-safe
    assert token not in first.stdout + first.stderr
    assert str(path) in first.stdout
    again = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "not replaced" in again.stderr
    assert path.read_text(encoding="ascii").strip() == token  # untouched
    # the relay takes it as a device's token
    config = _config(tmp_path, [{"id": "lobby-1", "branch": BRANCH_A, "role": "kiosk",
                                 "token_file": str(path)}])
    assert load_settings(config).devices[token] == Device("lobby-1", BRANCH_A, "kiosk")
