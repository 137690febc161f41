"""Helpers for the fleet's tests: a relay with devices and a fleet token, heartbeats."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from kiosk.relay import RelaySettings
from kiosk.relay.devices import Device
from tests.relay_helpers import BRANCH_A, BRANCH_B, SECRET

FLEET_TOKEN = "fleet-token-operations-0123456789"
TOKENS = {"lobby-1": "device-token-lobby-1-0123456789ab",
          "greeter": "device-token-greeter-0123456789ab",
          "tv-1": "device-token-tv-1-0123456789abcdef",
          "b-kiosk": "device-token-branch-b-0123456789ab"}
DEVICES = {TOKENS["lobby-1"]: Device("lobby-1", BRANCH_A, "kiosk"),
           TOKENS["greeter"]: Device("greeter", BRANCH_A, "tablet"),
           TOKENS["tv-1"]: Device("tv-1", BRANCH_A, "display"),
           TOKENS["b-kiosk"]: Device("b-kiosk", BRANCH_B, "kiosk")}


def fleet_settings(tmp_path: Path, **kw: Any) -> RelaySettings:
    """A relay with four devices of two branches and a fleet token."""
    base = RelaySettings(secrets=(SECRET,), devices=DEVICES,
                         fleet_tokens=(FLEET_TOKEN.encode(),),
                         sqlite_path=tmp_path / "relay.sqlite3", heartbeat_s=30.0)
    return dataclasses.replace(base, **kw)


def beat(role: str = "kiosk", **kw: Any) -> dict[str, Any]:
    """A healthy heartbeat body (``kw`` overrides keys)."""
    body: dict[str, Any] = {
        "role": role, "version": "0.9.0", "in_service": True, "reason": None,
        "printer": "none" if role == "display" else "ok", "api": "ok", "clock": "ok",
        "clock_skew_s": 0.4,
        "journal": "ok", "numbers": "shared", "tickets_today": 41, "forms_today": 3,
        "priority_today": {"senior": 2, "": 1}, "last_ticket_at": "2026-12-02T09:14:03-03:00",
        "uptime_s": 5231}
    body.update(kw)
    return body


def put_state(url: str, device: str, body: Any, token: str | None = None,
              **kw: Any) -> httpx.Response:
    """``PUT /v1/devices/{device}/state`` with ``device``'s own token (or ``token``)."""
    token = TOKENS[device] if token is None else token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if isinstance(body, bytes | Iterator):
        return httpx.put(f"{url}/v1/devices/{device}/state", content=body, headers=headers,
                         timeout=10, **kw)
    return httpx.put(f"{url}/v1/devices/{device}/state", json=body, headers=headers,
                     timeout=10, **kw)


def fleet(url: str, token: str = FLEET_TOKEN, **params: str) -> httpx.Response:
    """``GET /v1/fleet`` with the fleet token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{url}/v1/fleet", params=params, headers=headers, timeout=10)


def by_id(url: str) -> dict[str, dict[str, Any]]:
    """The fleet's devices by id."""
    r = fleet(url)
    assert r.status_code == 200, r.text
    return {d["id"]: d for d in r.json()["devices"]}
