"""Staff access, kept by the core (issue 9, item 8): the session a PIN opens, the lockout
after wrong PINs (across restarts), the hash off the event loop, and what the UI may ask
for a customer."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from kiosk.core.runtime import open_runtime
from kiosk.core.server import serve_in_process
from kiosk.demo.headless import demo_runtime
from kiosk.errors import ConfigError
from kiosk.link.client import CoreUnavailable, RemoteCore
from kiosk.mock import MockState, create_app
from kiosk.tickets.staff import MAX_FAILURES, PinAnswer, StaffAccess, hash_pin

from .conftest import ATENCION, FAST_RETRY, KEY, REPO, make_config

DEMO_PIN = "123456"
CHEAP_HASH = hash_pin(DEMO_PIN, iterations=100_000)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_staff_actions_are_refused_without_the_pin(tmp_path: Path) -> None:
    """Before, the core ran any staff action the UI asked for, PIN or not."""
    async with demo_runtime(tmp_path) as (rt, _):
        core, served = await serve_in_process(rt)
        try:
            await core.ready()
            for action in ("test_print", "reprint_last", "reload", "refresh"):
                with pytest.raises(CoreUnavailable, match="no staff session"):
                    await core.admin(action, "es")
            assert not (tmp_path / "tickets" / "print-test.png").exists()
            assert (await core.check_pin(DEMO_PIN)) == (True, 0.0)
            note, _ = await core.admin("test_print", "es")
            assert note == "Ticket de prueba impreso"  # in the staff's language
            core.admin_close()  # staff leave the screen (or the idle reset does)
            with pytest.raises(CoreUnavailable, match="no staff session"):
                await core.admin("refresh", "es")
        finally:
            await core.aclose()
            await served


async def test_the_session_ends_by_itself_when_idle(tmp_path: Path) -> None:
    mono = Clock(100.0)
    staff = StaffAccess(tmp_path, idle_s=30, clock=Clock(), monotonic=mono)
    assert (await staff.check_pin(DEMO_PIN, CHEAP_HASH)).ok
    mono.now += 20
    staff.require_session()  # used: kept alive
    mono.now += 29
    assert staff.session_open
    mono.now += 2
    assert not staff.session_open


async def test_five_wrong_pins_lock_with_backoff_kept_across_restarts(tmp_path: Path) -> None:
    wall = Clock()
    staff = StaffAccess(tmp_path, clock=wall)
    for _ in range(MAX_FAILURES - 1):
        assert await staff.check_pin("000000", CHEAP_HASH) == PinAnswer(False, 0.0)
    answer = await staff.check_pin("000000", CHEAP_HASH)
    assert not answer.ok and answer.locked_s == 30
    # locked: even the right PIN is not checked now
    assert not (await staff.check_pin(DEMO_PIN, CHEAP_HASH)).ok
    # a restart keeps the lock (the count lives in the data folder, 0600)
    again = StaffAccess(tmp_path, clock=wall)
    assert again.locked_for() == 30
    assert (tmp_path / "admin-lockout.json").stat().st_mode & 0o077 == 0
    wall.now += 31
    answer = await again.check_pin("000000", CHEAP_HASH)  # one more wrong: twice as long
    assert not answer.ok and answer.locked_s == 60
    wall.now += 61
    assert (await again.check_pin(DEMO_PIN, CHEAP_HASH)).ok  # the right one resets it
    assert json.loads((tmp_path / "admin-lockout.json").read_text())["failures"] == 0
    assert StaffAccess(tmp_path, clock=wall).locked_for() == 0


async def test_the_lockout_reaches_the_ui_through_the_link(tmp_path: Path) -> None:
    async with demo_runtime(tmp_path) as (rt, _):
        core, served = await serve_in_process(rt)
        try:
            await core.ready()
            answers = [await core.check_pin("000000") for _ in range(MAX_FAILURES)]
            assert answers[-1][0] is False and answers[-1][1] > 0
            assert (await core.check_pin(DEMO_PIN))[0] is False  # locked
        finally:
            await core.aclose()
            await served


async def test_the_pin_is_hashed_off_the_event_loop(tmp_path: Path) -> None:
    """200k PBKDF2 rounds on the loop stopped the queues and the watchdog meanwhile."""
    staff = StaffAccess(tmp_path)
    stored = hash_pin(DEMO_PIN)  # the full 200k rounds
    loop_threads: set[int] = set()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            loop_threads.add(threading.get_ident())
            ticks += 1
            await asyncio.sleep(0)

    from kiosk.tickets import staff as admin
    hashed_on: list[int] = []
    original = admin.verify_pin

    def spy(pin: str, h: str) -> bool:
        hashed_on.append(threading.get_ident())
        return original(pin, h)
    admin.verify_pin = spy  # type: ignore[assignment]
    task = asyncio.ensure_future(ticker())
    try:
        assert (await staff.check_pin(DEMO_PIN, stored)).ok
    finally:
        admin.verify_pin = original  # type: ignore[assignment]
        task.cancel()
    assert hashed_on and hashed_on[0] not in loop_threads
    assert ticks > 1  # the loop ran while the PIN was hashed


def test_hash_pin_refuses_fewer_than_six_digits() -> None:
    for pin in ("1234", "12345", "12a456", ""):
        p = subprocess.run([sys.executable, "-m", "kiosk", "hash-pin"], input=pin + "\n",
                           capture_output=True, text=True, timeout=60, cwd=REPO)
        assert p.returncode == 2 and "6 to 12 digits" in p.stderr, pin
        assert p.stdout == ""
    p = subprocess.run([sys.executable, "-m", "kiosk", "hash-pin"], input="123456\n",
                       capture_output=True, text=True, timeout=60, cwd=REPO)
    assert p.returncode == 0 and p.stdout.startswith("pbkdf2_sha256$200000$")


@pytest.mark.parametrize("bad", [
    "1234",  # a PIN, not its hash
    "pbkdf2_sha256$200000$c2FsdA==",  # cut short
    "md5$200000$c2FsdHNhbHQ=$" + "A" * 44,
    "pbkdf2_sha256$10$c2FsdHNhbHQ=$" + "A" * 43 + "=",  # 10 rounds: no protection
    "pbkdf2_sha256$200000$c2FsdHNhbHQ=$not*base64",
])
def test_a_malformed_pin_hash_is_a_config_error_at_load(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_config(tmp_path, ui={"admin_pin_hash": bad})
    assert "ui.admin_pin_hash" in str(info.value) and "kiosk hash-pin" in str(info.value)
    assert bad not in str(info.value)  # what was there is not echoed (maybe a PIN)
    make_config(tmp_path, ui={"admin_pin_hash": CHEAP_HASH})  # a good one loads


# --------------------------------------------------------------------------- customer requests


async def raw(core: RemoteCore, op: str, args: dict[str, Any]) -> Any:
    """A request as a UI that does not play by the protocol's types could send it."""
    from dataclasses import make_dataclass

    from kiosk.link.protocol import Request
    cls = make_dataclass("Raw", [(k, Any) for k in args], bases=(Request,), frozen=True,
                         namespace={"op": op})
    return await core.call(cls(**args))


async def test_only_offered_queues_and_our_languages(tmp_path: Path) -> None:
    async with demo_runtime(tmp_path) as (rt, mock):
        core, served = await serve_in_process(rt)
        try:
            await core.ready()
            await asyncio.wait_for(core.polled(), 10)
            other = "652a1ae848880e168884ffff"  # a queue id this kiosk does not offer
            for queue_id in (other, "../branches", ""):
                with pytest.raises(CoreUnavailable, match="not offered"):
                    await raw(core, "issue", {"queue_id": queue_id, "language": "es"})
            with pytest.raises(CoreUnavailable, match="queue_id must be a string"):
                await raw(core, "issue", {"queue_id": 42, "language": "es"})
            with pytest.raises(CoreUnavailable, match="language"):
                await raw(core, "issue", {"queue_id": ATENCION, "language": "xx"})
            assert mock.state.tickets == []  # nothing reached the API
            r = await core.issue(ATENCION, language="en")
            assert r.ticket_id == mock.state.tickets[-1].ticket_id
        finally:
            await core.aclose()
            await served


async def test_the_ui_cannot_override_our_integration_data(tmp_path: Path) -> None:
    async with demo_runtime(tmp_path) as (rt, mock):
        core, served = await serve_in_process(rt)
        try:
            await core.ready()
            forged = {"source": "web", "kiosk": "evil", "day": "1999-01-01", "lang": "xx",
                      "customer": "Ana"}
            await core.issue(ATENCION, language="pt", integration_data=forged)
            sent = mock.state.tickets[-1].integration_data
            assert sent["source"] == "kiosk" and sent["kiosk"] == rt.config.kiosk.id
            assert sent["day"] != "1999-01-01" and sent["lang"] == "pt"
            assert sent["customer"] == "Ana"
        finally:
            await core.aclose()
            await served


async def test_the_use_case_keeps_its_own_integration_data(
        config_factory: Any, state: MockState) -> None:
    """Defence in depth: the use case itself puts its own keys last."""
    rt = open_runtime(config_factory(), KEY,
                      transport=httpx.ASGITransport(app=create_app(state)), retry=FAST_RETRY)
    try:
        await rt.service.issue(ATENCION, integration_data={"kiosk": "evil", "source": "x",
                                                           "customer": "Ana"})
    finally:
        await rt.aclose()
    sent = state.tickets[-1].integration_data
    assert (sent["kiosk"], sent["source"], sent["customer"]) == ("test-1", "kiosk", "Ana")
