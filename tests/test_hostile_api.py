"""Bad data from the API (issue 9, item 5): one bad queue never hides the others, no name
is ever a printer command or a dead link, inf/NaN never reach a formatter, and Feathers'
paginated lists are read. Real HTTP over loopback to the mock, real ESC/POS bytes."""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from kiosk.api import QmsClient
from kiosk.api.models import Queue
from kiosk.config import Config
from kiosk.core.runtime import open_runtime
from kiosk.core.server import serve_in_process
from kiosk.i18n import format_wait
from kiosk.link.protocol import MAX_CARDS
from kiosk.mock import MockServer, MockState, ScriptedFault, default_scenario_path, load_scenario
from kiosk.mock.hostile import BIDI_NAME, HOSTILE_NAME, HUGE_NAME
from kiosk.printing import TicketData
from kiosk.printing.text import encode
from kiosk.textclean import NAME_MAX, clean_text
from kiosk.tickets.queues import QueueMonitor
from kiosk.view.outcomes import Outcome

from .conftest import ATENCION, BRANCH, CUENTAS, FAST_RETRY, KEY
from .test_printing import printer

DRAWER = b"\x1bp"   # ESC p m t1 t2: pulse the cash drawer
CUT = b"\x1dV"      # GS V m: cut the paper


def _bad(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cf") and ch != " "


def _state(**names: str) -> MockState:
    """The default scenario, some queues renamed (``{queue_id: name}``)."""
    scenario = load_scenario(default_scenario_path())
    for q in scenario.branches[0].queues:
        q.name = names.get(q.id, q.name)
    return MockState(scenario)


# ----------------------------------------------------------------------- one bad queue


async def test_one_bad_queue_is_skipped_and_logged_once_the_rest_is_shown(
        server: MockServer, caplog: pytest.LogCaptureFixture) -> None:
    server.state.push_faults(ScriptedFault(on="queues", answer="bad_queue_items", times=2))
    async with QmsClient(server.url, KEY, retry=FAST_RETRY, timeout_s=5) as api:
        with caplog.at_level(logging.WARNING, "kiosk.api.client"):
            queues = await api.list_queues(BRANCH)
            first_log = [r.getMessage() for r in caplog.records]
            again = await api.list_queues(BRANCH)
    assert [q.id for q in again] == [q.id for q in queues]
    ids = [q.id for q in queues]
    assert ids[:2] == [ATENCION, CUENTAS]   # the intact queue and the hostile name
    # null, 1e999 and NaN waits, negative users and the item without an id are skipped;
    # the hostile, 200 KB and bidi names are kept, cleaned
    assert len(queues) == 2 + 3
    for q in queues:
        assert not any(_bad(ch) for ch in q.name) and len(q.name) <= NAME_MAX
    assert queues[1].name == "Cajapú V"
    skipped = [m for m in first_log if "skipped" in m]
    assert len(skipped) == 2 + 5  # the real queues 3 and 4 spoiled, 5 of the 8 extras
    assert len([r for r in caplog.records if "skipped" in r.getMessage()]) == len(skipped)


async def test_the_monitor_shows_the_good_queues_not_stale(state: MockState) -> None:
    with MockServer(state) as srv:
        state.push_faults(ScriptedFault(on="queues", answer="bad_queue_items"))
        monitor = QueueMonitor(QmsClient(srv.url, KEY, retry=FAST_RETRY), BRANCH)
        snap = await monitor.poll_once()
        await monitor.api.aclose()
    assert snap.error is None and snap.failures == 0
    assert ATENCION in [q.id for q in snap.queues]


def test_non_finite_numbers_never_reach_a_formatter() -> None:
    for bad in (float("inf"), float("-inf"), float("nan")):
        assert format_wait(bad, "es") == ""
        with pytest.raises(ValueError, match="finite"):
            Queue.model_validate({"id": "q", "name": "Caja", "users": 1, "avgWaitingTime": bad})
    with pytest.raises(ValueError):
        Queue.model_validate({"id": "q", "name": "Caja", "users": -1, "avgWaitingTime": 1})


def test_names_lose_control_and_format_characters_and_are_capped() -> None:
    assert clean_text(HOSTILE_NAME) == "Cajapú V"
    cleaned = clean_text(BIDI_NAME)
    assert not any(_bad(ch) for ch in cleaned) and "\u202e" not in cleaned
    assert len(clean_text(HUGE_NAME)) == NAME_MAX and clean_text(HUGE_NAME).endswith("…")
    assert clean_text("  Atención\n a\tclientes ") == "Atención a clientes"


@pytest.mark.parametrize("text", [
    "652a1ae848880e168884e49b", "Caja", "Caja 1", "Caja  1", " Caja", "Caja ", "Caja\t1",
    "Caja\x1b[2J", "Caja\x7f", "A" * NAME_MAX, "A" * (NAME_MAX + 1), "", " ", "a b c",
    "Atención a clientes", "Atencio\u0301n", "Caja\xa01", "Caja\u202e1", "Ca\u200bja",
    "Caja\u20281", "Caja\ue0001", "Caja\u0378", "ñ" * NAME_MAX, "ñ" * (NAME_MAX + 1)])
def test_plain_text_is_cleaned_like_any_other(text: str) -> None:
    """The short path for plain printable text (most ids and names) answers what the full
    cleaning answers: composed (NFC), runs of spaces folded, edges trimmed, control,
    format, private-use and unassigned characters dropped, long cut."""
    text_nfc = unicodedata.normalize("NFC", text)
    full = re.sub(r"\s+", " ", "".join(ch for ch in text_nfc
                                       if ch.isspace() or ch.isprintable()))
    full = full.strip()
    if len(full) > NAME_MAX:
        full = full[: NAME_MAX - 1].rstrip() + "…"
    assert clean_text(text) == full
    assert clean_text(text, 5) == (full if len(full) <= 5 else full[:4].rstrip() + "…")


# ----------------------------------------------------------------------- pagination


async def test_a_feathers_paginated_list_is_read_page_by_page(server: MockServer) -> None:
    server.state.scenario.faults.page_size = 3
    server.state.push_faults(ScriptedFault(on="queues", answer="paginated"),
                             ScriptedFault(on="branches", answer="paginated"))
    async with QmsClient(server.url, KEY, retry=FAST_RETRY) as api:
        queues = await api.list_queues(BRANCH)
        branches = await api.list_branches()
    assert len(queues) == 4 and queues[0].id == ATENCION
    assert branches[0].id == BRANCH and len(branches) == 2
    gets = [r for r in server.state.requests if r[1].endswith("/queues")]
    assert len(gets) == 2  # two pages


# ----------------------------------------------------------------------- the printer


def test_a_queue_named_like_a_printer_command_neither_opens_the_drawer_nor_cuts() -> None:
    data = TicketData(ticket_id="B-001", queue_id=CUENTAS, queue_name=HOSTILE_NAME,
                      issued_at=datetime(2026, 11, 27, 17, 5, tzinfo=UTC),
                      branch_label="Sucursal\x1b@\x1dV\x01", language="es")
    raw = printer().render(data)
    assert DRAWER not in raw
    assert raw.count(CUT) == 1  # the ticket's own cut, at the end
    assert raw.index(CUT) > raw.index(b"Cajap")


def test_the_text_encoder_never_emits_a_control_byte() -> None:
    text = "".join(chr(c) for c in range(0x3000)) + "\u202e\u2066\ufeff\U000e0001"
    for page in ("CP858", "CP437", "CP1252", "ISO8859_15"):
        out = encode(text, page)
        assert not any(b < 0x20 or b == 0x7F for b in out), page


async def test_a_tap_on_a_hostile_queue_prints_its_name_as_text(
        config_factory: Callable[..., Config]) -> None:
    state = _state(**{CUENTAS: HOSTILE_NAME})
    with MockServer(state) as srv:
        config = config_factory(api={"base_url": srv.url, "timeout_s": 5})
        rt = open_runtime(config, KEY, retry=FAST_RETRY)
        try:
            await rt.monitor.poll_once()
            r = await rt.service.issue(CUENTAS, language="es")
        finally:
            await rt.aclose()
    assert r.outcome is Outcome.ISSUED and r.printed, r.print_error
    assert r.queue.name == "Cajapú V"
    raw = config.printer.path.read_bytes()  # type: ignore[union-attr]
    assert DRAWER not in raw
    assert raw.count(CUT) == 1


# ----------------------------------------------------------------------- the link


@pytest.mark.parametrize("case", ["huge_name", "many_queues"])
async def test_the_link_stays_up_with_a_200kb_name_or_2000_queues(
        config_factory: Callable[..., Config], case: str) -> None:
    state = _state(**{CUENTAS: HUGE_NAME}) if case == "huge_name" else _state()
    if case == "many_queues":
        state.scenario.faults.rates = {"many_queues": 1.0}
        state.scenario.faults.only = ["queues"]
    with MockServer(state) as srv:
        config = config_factory(api={"base_url": srv.url, "timeout_s": 5}, queues=[])
        rt = open_runtime(config, KEY, retry=FAST_RETRY)
        core, served = await serve_in_process(rt)
        try:
            await core.ready()
            await asyncio.wait_for(core.polled(), 20)
            views = core.views("es")
            assert views and not core.closed.done()
            assert len(views) <= MAX_CARDS
            assert all(len(v.name) <= NAME_MAX for v in views)
            if case == "huge_name":
                assert next(v for v in views if v.id == CUENTAS).name.startswith("Caja xxx")
            r = await asyncio.wait_for(core.issue(ATENCION, language="es"), 30)
            assert r.outcome is Outcome.ISSUED  # the link still carries a tap
        finally:
            await core.aclose()
            await asyncio.wait_for(served, 30)
            await rt.aclose()


def test_form_labels_and_hints_from_the_api_are_cleaned_too() -> None:
    from kiosk.view.forms import FieldDef
    fd = FieldDef.from_api({"_id": "f1", "type": "text", "name": "n",
                            "label": {"es": HOSTILE_NAME}, "hint": BIDI_NAME + HUGE_NAME})
    assert fd.title("es") == "Cajapú V"
    assert not any(_bad(ch) for ch in fd.hint_text("es")) and len(fd.hint_text("es")) <= 300
