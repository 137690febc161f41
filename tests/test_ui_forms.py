"""The form screen in a real window (SDL offscreen): a queue that needs a form, filled in
on the on-screen keyboard, from a physical keyboard, sent back by the provider, changed
since it was fetched, wiped by the idle reset. Screenshots in kiosk and tablet sizes, in
Spanish and English, go to ``artifacts/screenshots``."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kiosk.core.runtime import Runtime
from kiosk.mock import ScriptedFault

from . import ui_driver as d
from .conftest import REPO
from .escpos_text import decode
from .test_ui import card, run

pytestmark = pytest.mark.slow

ATENCION = "652a1ae848880e168884e49b"
SEGUROS = "652a1ae848880e168884e4a2"
NAME, EMAIL, INSURANCE, MESSAGE = ("60f652f1cfa34fc3157ef5c6", "60f652f1cfa34fc3157ef5c7",
                                   "60f652f1cfa34fc3157ef5c8", "60f652f1cfa34fc3157ef5c9")
K_TAB, K_ENTER, K_BACKSPACE, K_SPACE = 9, 13, 8, 32


def rerun_with_a_window_of_its_own(test_id: str, window: str) -> bool:
    return d.in_a_window_of_its_own(__file__, test_id, window)


async def forms_known(app: Any) -> None:
    await d.until(lambda: app.core.forms.get(SEGUROS) is not None, what="forms learned")
    await d.until(lambda: card(app, SEGUROS).needs_form, what="card marked")


async def on_form(app: Any) -> None:
    """Wait for the form screen, laid out (its boxes settle over a few frames)."""
    await d.until(lambda: app.sm.current == "form", what="form screen")
    await d.frames(4)


def block(app: Any, fid: str) -> Any:
    return app.screen("form").blocks[fid]


def box(app: Any, fid: str) -> Any:
    return block(app, fid).text_input


async def type_on_screen(app: Any, text: str) -> None:
    """Tap the on-screen keys that spell ``text`` (⇧ for capitals)."""
    kb = app.screen("form").ids.keyboard
    for ch in text:
        keys = {b.key: b for b in kb.keys}
        if ch == " ":
            await d.tap(keys["space"])
            continue
        if ch.isupper() and ch.lower() in keys:
            if not kb.shift:
                await d.tap(keys["⇧"])
            await d.tap(keys[ch.lower()])
            continue
        if kb.shift and ch.isalpha():
            await d.tap(keys["⇧"])  # the keyboard starts a name with a capital
        await d.tap(keys[ch])


def sent_values(mock: Any) -> dict[str, Any]:
    return {v["_id"]: v["value"] for v in mock.state.form_posts[-1]["values"]}


async def test_form_on_screen_keyboard_to_ticket(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        await forms_known(app)
        await d.screenshot("kiosk-es-home-form-card")
        before = rt.journal.counts()
        await d.tap(card(app, SEGUROS))
        await on_form(app)
        assert rt.journal.counts() == before  # no number is taken before the form
        await d.screenshot("kiosk-es-form")
        assert app._ring.widget is box(app, NAME) and box(app, NAME).focus  # first field
        await type_on_screen(app, "Ana Núñez")
        assert box(app, NAME).text == "Ana Núñez"
        await d.tap(app.screen("form").ids.keyboard.keys[-1])  # ⏎: next field
        assert app._ring.widget is box(app, EMAIL)
        assert app.screen("form").keyboard_layout == "email"
        await type_on_screen(app, "ana@ejemplo")
        await choose(app, INSURANCE, 1)  # leaving the email checks it
        assert "correo" in block(app, EMAIL).error  # next to its field, in Spanish
        await d.screenshot("kiosk-es-form-email-error")
        await tap_box(app, EMAIL)
        await type_on_screen(app, ".com")  # the .com key
        assert box(app, EMAIL).text == "ana@ejemplo.com"
        assert block(app, EMAIL).error == ""  # cleared as soon as it is right
        await d.screenshot("kiosk-es-form-filled")
        await d.tap(app.screen("form").ids.send)
        await d.until(lambda: app.sm.current == "ticket", what="ticket screen")
        number = app.screen("ticket").number
        assert number == "D-001"
        await d.until(lambda: app.screen("ticket").printed is True, what="printed")
        # the mock got the submission, then the enqueue with its id
        assert sent_values(mock)[NAME] == "Ana Núñez"
        assert sent_values(mock)[EMAIL] == "ana@ejemplo.com"
        assert sent_values(mock)[INSURANCE] == "hogar"
        assert sent_values(mock)["videsk_essential"] == ""
        assert mock.state.tickets[-1].ticket_id == number
        assert mock.state.tickets[-1].form == mock.state.form_posts[-1]["submission"]
        # nothing typed stays: not on screen, not on paper, not in the journal, not logged
        from kiosk.ui.form import FormInput  # Kivy loads once the window is configured
        s = app.screen("form")
        assert s.blocks == {} and s.values() == {}
        assert not [w.text for w in s.walk(restrict=False) if isinstance(w, FormInput)
                    and w.text]
        assert not [k for made in s._made.values() for b in made.values()  # kept, empty
                    for k in ([b.text_input.text] if b.text_input else []) if k]
        paper = "\n".join(decode((tmp_path / "tickets" / f"{number}.bin").read_bytes())[0])
        journal = (tmp_path / "journal.sqlite3").read_bytes()
        for secret in ("Ana Núñez", "ana@ejemplo.com"):
            assert secret not in paper and secret.encode() not in journal
            assert secret not in caplog.text
    await run(tmp_path, scenario)


async def test_a_form_made_ahead_after_the_app_stopped_is_not_made(tmp_path: Path) -> None:
    # Forms are made ahead on Clock events a few tenths of a second after they arrive;
    # one that fired after the app had stopped built widgets with no app to style them
    # and crashed the next run (seen in CI: BuilderException on `app.c_on_brand`).
    kept: dict[str, Any] = {}

    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        await forms_known(app)
        kept["screen"], kept["form"] = app.screen("form"), app.core.forms[SEGUROS]
    await run(tmp_path, scenario)
    screen = kept["screen"]
    screen.prepare(kept["form"], "pt")  # as a late Clock event would, with no app running
    assert not any(lang == "pt" for _, lang, _ in screen._made)


async def test_form_keyboard_only(tmp_path: Path) -> None:
    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        from kivy.core.window import Window
        await forms_known(app)
        for _ in range(3 + 1 + 4):  # languages, priority, the cards: Seguros is the fourth
            await d.key(K_TAB)
        assert app._ring.widget is card(app, SEGUROS)
        await d.key(K_ENTER)
        await on_form(app)
        assert box(app, NAME).focus  # the first field takes the keys at once

        async def typed(text: str) -> None:
            for ch in text:
                Window.dispatch("on_textinput", ch)
            await d.frames(1)
        await typed("Bea Lima")
        await d.key(K_TAB)
        await typed("bea@")
        await d.key(K_TAB)  # to the first choice: leaving the email shows its problem
        assert block(app, EMAIL).error
        await d.key(K_TAB, ["shift"])
        assert app._ring.widget is box(app, EMAIL)
        await typed("lima.pt")
        assert not block(app, EMAIL).error
        await d.key(K_TAB)
        await d.key(K_TAB)  # the choices are one stop: on to the comment
        assert app._ring.widget is box(app, MESSAGE)
        await d.key(K_TAB, ["shift"])
        await d.key(K_SPACE)  # choose "Auto"
        await d.key(K_TAB)
        await typed("Tarde")
        await d.key(K_ENTER)  # Enter on the last field sends
        await d.until(lambda: app.sm.current == "ticket", what="ticket screen")
        assert sent_values(mock)[INSURANCE] == "auto"
        assert sent_values(mock)[MESSAGE] == "Tarde"
        assert mock.state.tickets[-1].form == mock.state.form_posts[-1]["submission"]
    await run(tmp_path, scenario)


async def tap_box(app: Any, fid: str) -> None:
    """Scroll to a text box, tap it and wait until it takes the keys."""
    app.screen("form").ids.scroll.scroll_to(block(app, fid), animate=False)
    await d.frames(2)
    await d.tap(box(app, fid))
    await d.until(lambda: box(app, fid).focus, what="the box focused")


async def choose(app: Any, fid: str, i: int) -> None:
    """Tap a choice (in a view that scrolls, the tap lands a moment after the finger)."""
    option = block(app, fid).inputs[i]
    app.screen("form").ids.scroll.scroll_to(block(app, fid), animate=False)
    await d.frames(2)
    await d.tap(option)
    await d.until(lambda: option.selected, what="choice taken")


async def fill_good(app: Any) -> None:
    box(app, NAME).text = "Ana Pérez"
    box(app, EMAIL).text = "ana@example.com"
    await choose(app, INSURANCE, 0)


async def test_provider_400_brings_the_customer_back(tmp_path: Path) -> None:
    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        app.set_language("en")
        await forms_known(app)
        await d.tap(card(app, SEGUROS))
        await on_form(app)
        await d.screenshot("kiosk-en-form")
        await fill_good(app)
        mock.state.push_faults(ScriptedFault(on="submit", answer=400))
        await d.tap(app.screen("form").ids.send)
        await d.until(lambda: block(app, NAME).error != "", what="the provider's reason")
        s = app.screen("form")
        assert app.sm.current == "form" and "10 characters" in block(app, NAME).error
        assert box(app, EMAIL).text == "ana@example.com"  # what was typed is kept
        assert s.values()[INSURANCE] == "auto"
        assert mock.state.tickets == []
        await d.screenshot("kiosk-en-form-provider-refused")
        box(app, NAME).text = "Ana"
        await d.tap(s.ids.send)
        await d.until(lambda: app.sm.current == "ticket", what="ticket screen")
    await run(tmp_path, scenario)


async def test_no_agents_after_the_form_offers_queues_without_asking_again(
        tmp_path: Path) -> None:
    """The form is sent, then the queue has no agent (406): the customer is offered the
    queues with agents, and one that needs no form gives a number at once; nothing typed
    stays on screen."""
    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        await forms_known(app)
        await d.tap(card(app, SEGUROS))
        await on_form(app)
        await fill_good(app)
        mock.state.push_faults(ScriptedFault(on="enqueue", answer=406))
        await d.tap(app.screen("form").ids.send)
        await d.until(lambda: app.sm.current == "noagents", what="no-agents screen")
        assert len(mock.state.form_posts) == 1 and mock.state.tickets == []
        assert app.screen("form").values() == {}  # wiped: the form is done with
        offered = {c.queue_id for c in app.screen("noagents").cards}
        assert ATENCION in offered and SEGUROS not in offered
        await d.screenshot("kiosk-es-form-then-noagents")
        await d.tap(card(app, ATENCION, "noagents"))
        await d.until(lambda: app.sm.current == "ticket", what="ticket screen")
        assert app.screen("ticket").number.startswith("A-")
        assert len(mock.state.form_posts) == 1  # no form asked for again
        assert mock.state.tickets[-1].form is None
    await run(tmp_path, scenario)


async def test_form_changed_since_fetched(tmp_path: Path) -> None:
    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        await forms_known(app)
        await d.tap(card(app, SEGUROS))
        await on_form(app)
        await fill_good(app)
        mock.state.change_form(SEGUROS)  # the account's admin edits the form meanwhile
        await d.tap(app.screen("form").ids.send)
        s = app.screen("form")
        await d.until(lambda: s.form is not None and len(s.blocks) == 3, what="new form")
        assert "actualizado" in s.note or "cambiar" in s.note
        names = [s.field(f).name for f in s.blocks]
        assert names == ["firstname", "email", "age"]
        assert box(app, NAME).text == "Ana Pérez"  # kept: same field
        email_id = next(f for f in s.blocks if s.field(f).name == "email")
        assert box(app, email_id).text == "ana@example.com"  # kept: same name, new id
        await d.screenshot("kiosk-es-form-changed")
        age = next(f for f in s.blocks if s.field(f).name == "age")
        await tap_box(app, age)
        assert s.keyboard_layout == "number"
        await d.screenshot("kiosk-es-form-number-keypad")
        for k in "17":
            await d.tap(next(b for b in s.ids.keyboard.keys if b.key == k))
        await d.tap(s.ids.send)
        assert "18" in block(app, age).error  # the minimum, before anything is sent
        await d.tap(next(b for b in s.ids.keyboard.keys if b.key == "⌫"))
        await d.tap(next(b for b in s.ids.keyboard.keys if b.key == "9"))
        await d.tap(s.ids.send)
        await d.until(lambda: app.sm.current == "ticket", what="ticket screen")
        assert sent_values(mock)[age] == 19
    await run(tmp_path, scenario)


async def test_idle_reset_wipes_a_half_filled_form(tmp_path: Path) -> None:
    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        await forms_known(app)
        await d.tap(card(app, SEGUROS))
        await on_form(app)
        await type_on_screen(app, "Ana")
        ti = box(app, NAME)
        app.last_activity = time.monotonic() - rt.config.ui.idle_timeout_s - 1
        await d.until(lambda: app.sm.current == "home", timeout=5, what="idle reset")
        assert ti.text == "" and app.screen("form").values() == {}
        assert mock.state.form_posts == []
        await d.tap(card(app, SEGUROS))  # the next customer gets a blank form
        await on_form(app)
        assert box(app, NAME).text == ""
    await run(tmp_path, scenario)


async def test_a_428_met_anyway_opens_the_form(tmp_path: Path) -> None:
    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        await forms_known(app)
        app.core.forms.clear()  # as if the form appeared after the kiosk last asked
        await d.tap(card(app, SEGUROS))
        await d.until(lambda: app.sm.current == "form", what="form after a 428")
        assert any(r[2] == 428 for r in mock.state.requests)
    await run(tmp_path, scenario)


@pytest.mark.parametrize("lang", ["es", "en"])
async def test_form_on_the_tablet(tmp_path: Path, lang: str) -> None:
    if rerun_with_a_window_of_its_own(f"test_form_on_the_tablet[{lang}]", "tablet"):
        return

    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        from kivy.core.window import Window
        assert tuple(Window.size) == (1280, 800)
        app.set_language(lang)
        await forms_known(app)
        app.screen("home").ids.customer.text = "Carla"
        await d.tap(card(app, SEGUROS))
        await on_form(app)
        assert app.screen("form").landscape
        assert d.costly_drawing(Window) == []  # kiosk/ui/drawing.py
        assert d.costly_drawing(app.screen("home")) == []  # the greeter's
        await d.screenshot(f"tablet-{lang}-form")
        await type_on_screen(app, "Carla Ruiz")
        await tap_box(app, EMAIL)
        await type_on_screen(app, "carla@")
        await d.tap(app.screen("form").ids.send)
        await d.screenshot(f"tablet-{lang}-form-errors")
        await type_on_screen(app, "ejemplo.com")
        await choose(app, INSURANCE, 2)
        await d.tap(app.screen("form").ids.send)
        await d.until(lambda: app.sm.current == "ticket", what="ticket screen")
        assert mock.state.tickets[-1].integration_data["customer"] == "Carla"
        assert sent_values(mock)[EMAIL] == "carla@ejemplo.com"
    await run(tmp_path, scenario, mode="tablet")


def test_text_fields_start_quietly(tmp_path: Path) -> None:
    """The greeter's tablet has text boxes from its first frame: Kivy must not probe for
    xclip/xsel (CRITICAL with tracebacks where they are missing), nor warn at all."""
    p = subprocess.run([sys.executable, "-m", "kiosk", "demo", "--mode", "tablet", "--smoke",
                        "--data-dir", str(tmp_path / "d")], capture_output=True, text=True,
                       timeout=120, cwd=REPO,
                       env=dict(os.environ, KIVY_HOME=str(tmp_path / "kivy")))
    assert p.returncode == 0, p.stderr[-3000:]
    assert "first frame with live queue data" in p.stdout
    for alarming in ("CRITICAL", "ERROR", "WARNING", "Traceback", "xclip", "xsel"):
        assert alarming not in p.stderr, p.stderr[-3000:]


async def test_a_forms_ticket_never_waits_on_a_stuck_printer(tmp_path: Path) -> None:
    """A form's ticket goes through the same flow as a tap: the paper is waited for within
    the print deadline. Before, the form awaited the printer with no deadline: a printer
    that never answered left "Printing your ticket…" on screen for good."""
    from concurrent.futures import Future
    from dataclasses import replace

    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        never: list[Future[None]] = []

        def stuck(*args: Any, **kw: Any) -> Future[None]:
            never.append(Future())  # a job the printer took and never finishes
            return never[-1]
        rt.printer.submit = stuck  # type: ignore[method-assign]
        app.core.settings = replace(app.core.settings, print_deadline_s=1.0)
        await forms_known(app)
        await d.tap(card(app, SEGUROS))
        await on_form(app)
        await fill_good(app)
        await d.tap(app.screen("form").ids.send)
        await d.until(lambda: app.sm.current == "ticket", what="ticket screen")
        assert app.screen("ticket").printed is None  # "Printing your ticket…"
        await d.until(lambda: app.screen("ticket").printed is False, timeout=10,
                      what="the print deadline")
        s = app.screen("ticket")
        assert s.number in s.message  # "please note your number"
        assert never and not never[0].done()
        never[0].set_result(None)  # let the core's side end
    await run(tmp_path, scenario)
