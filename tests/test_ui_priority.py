"""Priority service in a real window (SDL offscreen): the home's button, the reasons, the
services, the ticket, by touch (es) and by keypad (en); without a reason asked; a 406 on
the way; the greeter's toggle on the tablet; the calling screen's mark. Screenshots go to
``artifacts/screenshots``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kiosk.core.runtime import Runtime

from . import ui_driver as d
from .escpos_text import decode
from .test_ui import ATENCION, CREDITOS, card, run

pytestmark = pytest.mark.slow

CUENTAS = "652a1ae848880e168884e4a0"
K_TAB, K_ENTER, K_DOWN, K_ESCAPE = 9, 13, 274, 27


def paper(tmp_path: Path, ticket_id: str) -> tuple[list[str], dict[str, object]]:
    return decode((tmp_path / "tickets" / f"{ticket_id}.bin").read_bytes())


def reason_button(app: Any, reason: str) -> Any:
    return next(b for b in app.screen("priority").buttons if b.reason == reason)


async def on(app: Any, screen: str) -> None:
    """Wait for ``screen``, laid out (a finger taps what it sees)."""
    await d.until(lambda: app.sm.current == screen, what=screen)
    await d.frames(3)


async def test_priority_by_touch(tmp_path: Path) -> None:
    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        home = app.screen("home")
        assert home.ids.priority in app.focus_items()  # offered: one clear button
        await d.tap(home.ids.priority)
        await d.until(lambda: app.sm.current == "priority", what="the reasons")
        reasons = app.screen("priority")
        assert [b.text for b in reasons.buttons] == [
            "Persona mayor (60 años o más)", "Embarazada o en lactancia",
            "Persona con discapacidad", "Con un niño pequeño"]
        await d.screenshot("kiosk-es-priority-reasons")
        await d.tap(reason_button(app, "senior"))
        await d.until(lambda: app.sm.current == "priority_queues", what="the services")
        queues = app.screen("priority_queues")
        assert queues.reason_text == "Persona mayor (60 años o más)"
        assert [c.queue_id for c in queues.cards][:2] == [ATENCION, CUENTAS]
        await d.screenshot("kiosk-es-priority-queues")
        await d.tap(card(app, ATENCION, "priority_queues"))
        await d.until(lambda: app.sm.current == "ticket", what="the ticket")
        ticket = app.screen("ticket")
        assert ticket.number == "AP-001" and ticket.priority == "Atención preferente"
        await d.until(lambda: ticket.printed is True, what="printed")
        await d.screenshot("kiosk-es-priority-ticket")
        sent = mock.state.tickets[-1]
        assert (sent.ticket_id, sent.queue) == ("AP-001", ATENCION)
        assert sent.integration_data["priority"] == "senior"
        lines, facts = paper(tmp_path, "AP-001")
        assert facts["inverted"] == ["Atención preferente"] and "AP-001" in lines
        assert rt.journal.find("AP-001").priority == "senior"  # type: ignore[union-attr]
        await d.tap(ticket.ids.done)
        assert app.sm.current == "home" and app.priority is None  # the next customer
        await d.tap(card(app, ATENCION))  # ...gets a regular ticket
        await d.until(lambda: app.sm.current == "ticket", what="the next ticket")
        assert app.screen("ticket").number == "A-001" and app.screen("ticket").priority == ""
        assert "priority" not in mock.state.tickets[-1].integration_data
    await run(tmp_path, scenario)


async def test_priority_by_keypad(tmp_path: Path) -> None:
    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        for _ in range(2):  # Español, English
            await d.key(K_TAB)
        await d.key(K_ENTER)
        await d.until(lambda: app.lang == "en", what="English (a key press releases 50 ms later)")
        await d.key(K_TAB)
        await d.key(K_TAB)  # Português, then the priority button
        assert app._ring.widget is app.screen("home").ids.priority
        await d.screenshot("kiosk-en-home-priority-focus")
        await d.key(K_ENTER)
        await d.until(lambda: app.sm.current == "priority", what="the reasons")
        await d.key(K_DOWN)
        await d.key(K_DOWN)  # the second reason
        assert app._ring.widget.text == "Pregnant or breastfeeding"
        await d.screenshot("kiosk-en-priority-reasons-focus")
        await d.key(K_ENTER)
        await d.until(lambda: app.sm.current == "priority_queues", what="the services")
        await d.key(K_DOWN)
        await d.key(K_DOWN)  # the second service
        assert app._ring.widget.queue_id == CUENTAS
        await d.screenshot("kiosk-en-priority-queues-focus")
        await d.key(K_ENTER)
        await d.until(lambda: app.sm.current == "ticket", what="the ticket")
        assert app.screen("ticket").number == "BP-001"
        assert app.screen("ticket").priority == "Priority service"
        await d.until(lambda: app.screen("ticket").printed is True, what="printed")
        await d.screenshot("kiosk-en-priority-ticket")
        assert mock.state.tickets[-1].integration_data["priority"] == "pregnant"
        assert paper(tmp_path, "BP-001")[1]["inverted"] == ["Priority service"]
        await d.key(K_ESCAPE)  # back home: the next customer starts afresh
        assert app.sm.current == "home" and app.priority is None
        # Escape on the services goes back to the reasons, then home
        await d.tap(app.screen("home").ids.priority)
        await on(app, "priority")
        await d.tap(reason_button(app, "infant"))
        await d.until(lambda: app.sm.current == "priority_queues", what="the services")
        await d.key(K_ESCAPE)
        assert app.sm.current == "priority"
        await d.key(K_ESCAPE)
        assert app.sm.current == "home" and app.priority is None
    await run(tmp_path, scenario)


async def test_a_406_keeps_the_priority_for_the_alternative(tmp_path: Path) -> None:
    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        await d.tap(app.screen("home").ids.priority)
        await on(app, "priority")
        await d.tap(reason_button(app, "disability"))
        await on(app, "priority_queues")
        await d.tap(card(app, CREDITOS, "priority_queues"))  # nobody there today
        await on(app, "noagents")
        await d.screenshot("kiosk-es-priority-noagents")
        assert mock.state.enqueues[-1].ticket_id == "CP-001"
        await d.tap(card(app, ATENCION, "noagents"))  # one tap takes the alternative
        await d.until(lambda: app.sm.current == "ticket", what="the ticket")
        assert app.screen("ticket").number == "AP-001"
        assert mock.state.tickets[-1].integration_data["priority"] == "disability"
    await run(tmp_path, scenario)


async def test_priority_without_a_reason(tmp_path: Path) -> None:
    def no_question(data: dict[str, Any]) -> None:
        data["priority"] = {"enabled": True, "ask_reason": False}

    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        await d.tap(app.screen("home").ids.priority)  # straight to the services
        await on(app, "priority_queues")
        assert app.screen("priority_queues").reason_text == ""
        await d.screenshot("kiosk-es-priority-queues-no-reason")
        await d.tap(card(app, CUENTAS, "priority_queues"))
        await on(app, "ticket")
        assert app.screen("ticket").number == "BP-001"
        assert mock.state.tickets[-1].integration_data["priority"] is True
        await d.tap(app.screen("ticket").ids.done)
        await on(app, "home")
        await d.tap(app.screen("home").ids.priority)
        await d.until(lambda: app.sm.current == "priority_queues", what="the services")
        app.screen("priority_queues").back()  # Back: home (there are no reasons)
        assert app.sm.current == "home"
    await run(tmp_path, scenario, config=no_question)


async def test_no_priority_button_where_it_is_off(tmp_path: Path) -> None:
    def off(data: dict[str, Any]) -> None:
        data["priority"] = {"enabled": False}

    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        home = app.screen("home")
        assert home.ids.priority not in app.focus_items() and home.ids.priority.height == 0
        app.open_priority()  # nothing happens
        assert app.sm.current == "home"
        await d.screenshot("kiosk-es-home-no-priority")
    await run(tmp_path, scenario, config=off)


def rerun_with_a_window_of_its_own(test_id: str, window: str) -> bool:
    return d.in_a_window_of_its_own(__file__, test_id, window)


@pytest.mark.parametrize("lang", ["es", "en"])
async def test_the_greeters_priority_toggle(tmp_path: Path, lang: str) -> None:
    if rerun_with_a_window_of_its_own(f"test_the_greeters_priority_toggle[{lang}]", "tablet"):
        return

    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        app.set_language(lang)
        await d.frames(2)
        home = app.screen("home")
        chips = {c.value: c for c in home.chips}
        assert list(chips) == ["-", "senior", "pregnant", "disability", "infant"]
        assert chips["-"].selected  # regular, until the greeter says otherwise
        await d.screenshot(f"tablet-{lang}-home-priority-off")
        await d.tap(chips["infant"])
        assert app.priority == "infant" and chips["infant"].selected
        assert not chips["-"].selected
        await d.screenshot(f"tablet-{lang}-home-priority-on")
        await d.tap(card(app, ATENCION))
        await d.until(lambda: app.sm.current == "ticket", what="the ticket")
        ticket = app.screen("ticket")
        assert ticket.number == "AP-001" and ticket.priority
        await d.until(lambda: ticket.printed is not None, what="printing done")
        await d.screenshot(f"tablet-{lang}-priority-ticket")
        assert mock.state.tickets[-1].integration_data["priority"] == "infant"
        await d.tap(ticket.ids.done)
        assert app.priority is None and chips["-"].selected  # the toggle is back off
    await run(tmp_path, scenario, mode="tablet")


async def test_the_calling_screen_marks_priority_calls(tmp_path: Path) -> None:
    """The relay's call carries the kiosk's ``integrationData.priority`` (as ``priority``):
    the latest call and the earlier ones say "priority service"; the others say nothing."""
    if rerun_with_a_window_of_its_own("test_the_calling_screen_marks_priority_calls",
                                      "display"):
        return
    import json
    from datetime import UTC, datetime, timedelta

    from .sse_stub import SseStub
    from .test_display import BRANCH, TOKEN, display_config, run_display, screenshot

    def call(ticket: str, poc: str, minutes_ago: int, priority: object = None) -> str:
        body: dict[str, object] = {
            "ticketId": ticket, "poc": {"label": poc}, "queue": {"name": "Atención"},
            "lang": "es", "at": (datetime.now(UTC) - timedelta(minutes=minutes_ago))
            .isoformat()}
        if priority is not None:
            body["priority"] = priority
        return json.dumps(body)

    async with SseStub(BRANCH, TOKEN) as relay:
        relay.push("AP-002", "Cabina 4", raw=call("AP-002", "Cabina 4", 9, "senior"))
        relay.push("A-041", "Cabina 1", raw=call("A-041", "Cabina 1", 6))
        relay.push("BP-001", "Cabina 2", raw=call("BP-001", "Cabina 2", 3, True))

        async def scenario(app: Any, feed: Any) -> None:
            screen = app.screen("home")
            await d.until(lambda: screen.ticket == "BP-001", what="the calls")
            await d.frames(3)
            assert screen.priority is True  # reason-less: still marked
            rows = {r.ticket: r.priority for r in screen.ids.rows.children}
            assert rows == {"AP-002": True, "A-041": False}
            assert screen.ids.mark.text == "Atención preferente" and screen.ids.mark.height > 0
            await screenshot("display-es-priority-calls")
        await run_display(display_config(tmp_path, relay.url, chime=False, speech=False),
                          scenario)
