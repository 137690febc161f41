"""The phone link on the device's side (issue 18): with a hub, each ticket gets a token of
its own (128 random bits), its QR (screen, paper, ``kiosk ticket --json``) opens
``{hub.public_url}/t/{token}``, the paper and the screen say "follow your turn on your
phone", the journal keeps the token for a reprint that day, and no log line holds it.
Without a hub the QR is ``ticket.qr``'s, as before, and the words are left out."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from kiosk.config import Config
from kiosk.core.runtime import Runtime, open_runtime
from kiosk.mock import MockState, create_app

from .conftest import ATENCION, FAST_RETRY, KEY, WallClock
from .escpos_text import decode

PUBLIC = "https://turnos.example.com"
LINK = re.compile(re.escape(PUBLIC) + r"/t/([A-Za-z0-9_-]{22,})")


def hub_config(tmp_path: Path, factory: Callable[..., Config]) -> Config:
    token = tmp_path / "device-token"
    token.write_text("device-token-for-tests-0123456789\n")
    token.chmod(0o600)
    return factory(hub={"url": "http://127.0.0.1:9", "token_file": str(token),
                        "public_url": PUBLIC + "/"})


async def runtime(cfg: Config, state: MockState, clock: WallClock) -> Runtime:
    rt = open_runtime(cfg, KEY, transport=httpx.ASGITransport(app=create_app(state)),
                      retry=FAST_RETRY, clock=clock)
    await rt.monitor.poll_once()
    return rt


@pytest.fixture
async def hub_rt(tmp_path: Path, config_factory: Callable[..., Config], state: MockState,
                 utc_clock: WallClock) -> AsyncIterator[Runtime]:
    rt = await runtime(hub_config(tmp_path, config_factory), state, utc_clock)
    yield rt
    await rt.aclose()


def paper(cfg: Config) -> tuple[list[str], dict[str, object]]:
    assert cfg.printer.path is not None
    return decode(cfg.printer.path.read_bytes())


async def test_with_a_hub_the_qr_opens_the_phone_page(hub_rt: Runtime,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    r = await hub_rt.service.issue(ATENCION)
    assert r.printed is True and r.qr is not None and r.qr_phone
    m = LINK.fullmatch(r.qr)
    assert m, r.qr
    token = m.group(1)
    assert len(token) >= 22  # token_urlsafe(16): 128 bits
    lines, facts = paper(hub_rt.config)
    assert facts["qr"] == [r.qr]
    assert "Siga su turno en el teléfono" in lines
    assert r.as_json()["qr"] == r.qr
    assert hub_rt.journal.phone_token(r.ticket_id) == token
    assert token not in caplog.text and token not in repr(r)
    [report] = [p for _, p in hub_rt.journal.outbox() if p["ticketId"] == r.ticket_id]
    assert report["phone"] == token  # the hub keeps its hash (docs/hub.md)
    assert report["wait_min"] == pytest.approx(r.queue.wait_minutes)

    second = await hub_rt.service.issue(ATENCION, language="en")
    assert second.qr is not None and second.qr != r.qr  # one token per ticket
    assert "Follow your turn on your phone" in paper(hub_rt.config)[0]

    assert hub_rt.config.printer.path is not None
    hub_rt.config.printer.path.write_bytes(b"")
    assert (await hub_rt.service.reprint(r.ticket_id))[0] is True
    assert paper(hub_rt.config)[1]["qr"] == [r.qr]  # a reprint: the same link
    assert token not in caplog.text


async def test_a_ticket_not_issued_gets_no_token(hub_rt: Runtime, state: MockState) -> None:
    state.set_agents(ATENCION, 0)
    r = await hub_rt.service.issue(ATENCION)
    assert r.qr is None and not r.qr_phone
    assert hub_rt.journal.phone_token(r.ticket_id) is None


async def test_without_a_hub_the_qr_is_as_before_and_says_nothing_of_phones(
        config_factory: Callable[..., Config], state: MockState,
        utc_clock: WallClock) -> None:
    cfg = config_factory()
    rt = await runtime(cfg, state, utc_clock)
    try:
        r = await rt.service.issue(ATENCION)
        assert r.qr == "https://example.com/t/A-001" and not r.qr_phone
        lines, facts = paper(cfg)
        assert facts["qr"] == ["https://example.com/t/A-001"]
        assert not any("teléfono" in line or "phone" in line for line in lines)
        assert rt.journal.phone_token("A-001") is None
    finally:
        await rt.aclose()


async def test_the_staff_screen_shows_no_customers_link_but_in_the_demo(
        hub_rt: Runtime) -> None:
    """A kiosk's staff screen never shows a ticket's phone link (it is the customer's);
    the demo's does, for the newcomer to open it."""
    from kiosk.core import admin
    r = await hub_rt.service.issue(ATENCION)
    assert r.qr is not None
    token = r.qr.rsplit("/", 1)[1]
    status = await admin.printer_status(hub_rt)
    assert token not in admin.summary(hub_rt, status)
    hub_rt.demo_phone_link = (r.ticket_id, r.qr)  # what the demo's callback keeps
    assert f"Demo: {r.ticket_id}'s phone page: {r.qr}" in admin.summary(hub_rt, status)
