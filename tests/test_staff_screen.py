"""The staff screen for a person (issue 19): the device's state as large rows with a
colour and a word, what to do about each fault, today's figures, in the staff's language
and never a raw identifier; real Kivy windows (kiosk 1080x1920 and the tablet's
1280x800), a screenshot of each state in ``artifacts/screenshots/staff-*.png``."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kiosk.colours import contrast
from kiosk.core.runtime import Runtime
from kiosk.i18n import LANGUAGES, LOCALE_DIR, read_po
from kiosk.mock import ScriptedFault
from kiosk.ui.theme import LEVELS
from kiosk.view import devicestate as ds
from kiosk.view import staffwords
from kiosk.view.devicestate import DeviceState

from . import ui_driver as d
from .emulator import Emulator
from .test_ui import run, screen_texts

ATENCION = "652a1ae848880e168884e49b"
RAW_WORDS = {w for words in (ds.PRINTER, ds.API, ds.CLOCK, ds.JOURNAL, ds.NUMBERS, ds.HUB,
                             ds.REASONS) for w in words if w not in ("ok", "none")} | {
    "not_queried", "near_end", "no_agents", "form_required", "unprinted", "issued",
    "uncertain", "unauthorized", "senior", "pregnant"}
IDENTIFIER = re.compile(r"\b[a-z]+_[a-z_]+\b")


def raw_identifiers(texts: list[str], lang: str = "es") -> list[str]:
    """The texts that carry an identifier (``paper_low``) or are a bare enum word
    (``offline``) instead of words for a person; in Spanish and Portuguese, no enum word
    at all. A "For IT" detail is the core's own technical text (paths may hold
    underscores): only identifiers of the state's words are refused there."""
    bad = []
    for text in texts:
        it = text.startswith(("For IT", "Para TI", "Para a TI"))
        words = set(re.findall(r"[A-Za-z_]+", text))
        if it:
            wrong = bool(words & {w for w in RAW_WORDS if "_" in w})
        else:
            wrong = bool(IDENTIFIER.search(text)) or text.strip() in RAW_WORDS \
                or (lang != "en" and bool(words & RAW_WORDS))
        if wrong:
            bad.append(text)
    return bad


# --------------------------------------------------------------------------- the words


def every_state() -> Iterator[DeviceState]:
    """One state for each word of each concern (and one the words do not know), with
    every outcome, priority and figure."""
    base = DeviceState(role="kiosk", version="0.9.0", printer="ok",
                       tickets={"issued": 41, "unprinted": 2, "no_agents": 3,
                                "form_required": 1, "not_found": 1, "unauthorized": 1,
                                "rejected": 1, "unavailable": 2, "uncertain": 1,
                                "unknown": 1, "a_new_outcome": 1},
                       priority_today={"senior": 2, "": 1, "retired_reason": 1},
                       forms_sent=3, forms_refused=1, called_today=30,
                       call_wait_median_s=272.0, uptime_s=5231,
                       last_ticket_at=(datetime.now(UTC) - timedelta(minutes=3)).isoformat())
    for concern, words in (("printer", ds.PRINTER), ("api", ds.API), ("clock", ds.CLOCK),
                           ("journal", ds.JOURNAL), ("numbers", ds.NUMBERS),
                           ("hub", ds.HUB)):
        for word in (*words, "a_word_from_a_newer_core"):
            yield DeviceState(**{**base.__dict__, concern: word})
    yield DeviceState(role="display", version="0.9.0", printer="none", api="none",
                      journal="none", hub="unreachable")


REASONS = {"senior": {"es": "Persona mayor", "en": "Older person", "pt": "Pessoa idosa"}}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_label_of_every_state_is_for_a_person(lang: str) -> None:
    """Walks every label of every state: no identifier (``not_queried``, ``paper_low``)
    and no bare enum word anywhere; each fault says what to do."""
    seen = 0
    for state in every_state():
        rows = staffwords.rows(state, lang)
        texts = [staffwords.banner(state, lang)[1]]
        for row in rows:
            texts += [row.title, row.word, row.advice, staffwords.level_word(row.level, lang)]
            if row.level == staffwords.ERROR:
                assert row.advice, (lang, row)  # a fault always says what to do
            assert row.word not in RAW_WORDS | {"ok"}, row  # never the raw value
        for label, value in staffwords.today(state, lang, REASONS):
            texts += [label, value]
        bad = raw_identifiers([x for x in texts if x], lang)
        assert not bad, (lang, state, bad)
        seen += len(texts)
    assert seen > 500


@pytest.mark.parametrize("lang", ["es", "pt"])
def test_every_staff_word_is_translated(lang: str) -> None:
    catalog = read_po(LOCALE_DIR / lang / "LC_MESSAGES" / "kiosk.po")
    ids = {*staffwords._TITLES.values(), *staffwords._OUTCOMES.values(),
           "Warning", "Fault", "Not in use",
           *(x for words in staffwords._WORDS.values() for _, w, a in words.values()
             for x in (w, a) if x)}
    missing = sorted(ids - set(catalog))
    assert not missing, missing


def test_the_words_say_what_the_issue_asks() -> None:
    paper = DeviceState(role="kiosk", version="1", printer="paper_out")
    assert staffwords.banner(paper, "es") == ("error", "Fuera de servicio: Impresora, "
                                                       "Sin papel")
    row = next(r for r in staffwords.rows(paper, "es") if r.concern == "printer")
    assert (row.level, row.advice) == ("error", "Cargue papel.")
    clock = DeviceState(role="kiosk", version="1", printer="ok", clock="wrong")
    row = next(r for r in staffwords.rows(clock, "es") if r.concern == "clock")
    assert row.advice.startswith("Llame a TI: la hora está mal")
    low = DeviceState(role="kiosk", version="1", printer="paper_low")
    assert staffwords.banner(low, "en") == ("warning", "In service, with warnings")
    figures = dict(staffwords.today(DeviceState(
        role="kiosk", version="1", tickets={"issued": 12, "no_agents": 2},
        priority_today={"senior": 3}, called_today=10, call_wait_median_s=270), "es",
        REASONS))
    assert figures["Turnos entregados"] == "12"
    assert figures["Sin ejecutivo disponible"] == "2"
    assert figures["Atención preferente: Persona mayor"] == "3"
    assert figures["Tiempo mediano del turno al llamado"] == "4,5 min"


def test_each_levels_colour_is_readable() -> None:
    for level, (bg, fg) in LEVELS.items():
        assert contrast(fg, bg) >= 4.5, level


# --------------------------------------------------------------------------- the screen


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with Emulator(tmp_path_factory.mktemp("emupos")) as e:
        yield e


def on_the_emulator(emu: Emulator) -> Any:
    def changes(data: dict[str, Any]) -> None:
        data["printer"] = {"type": "network", "host": "127.0.0.1", "port": emu.port,
                           "profile": "TM-T20II", "timeout_s": 2}
    return changes


async def a_morning(rt: Runtime) -> None:
    """Tickets through the real use case, one of them priority, two of them called."""
    now = datetime.now(UTC)
    for i, priority in enumerate([None, "senior", None]):
        r = await rt.service.issue(ATENCION, language="es", priority=priority)
        if i < 2:
            rt.journal.record_call(r.ticket_id, "Cabina 3", now + timedelta(minutes=4 + i))


async def staff_screen(app: Any) -> Any:
    assert (await app.core.check_pin("123456"))[0]
    app.show_screen("admin")
    app.admin_action("refresh")
    admin = app.screen("admin")
    await d.until(lambda: admin.state is not None, what="the staff screen's state")
    return admin


async def refreshed(app: Any, admin: Any, check: Any, what: str) -> None:
    admin.state = None
    app.admin_action("refresh")

    def shown() -> bool:
        if admin.state is not None and not check(admin.state):  # not yet: ask again
            admin.state = None
            app.admin_action("refresh")
        return admin.state is not None and bool(check(admin.state))
    await d.until(shown, timeout=20, what=what)
    await d.frames(3)


def nothing_cut(admin: Any) -> list[str]:
    """Labels whose text does not fit their box (the rows grow with their texts)."""
    from kivy.uix.label import Label
    return [w.text for w in admin.walk(restrict=True) if isinstance(w, Label) and w.text
            and not getattr(w, "shorten", False) and w.texture_size[1] > w.height + 2]


def hub_away(rt: Runtime) -> None:
    """The kiosk's config with a hub, whose last heartbeat was not taken."""
    from kiosk.config import HubConfig
    hub = HubConfig(url="http://127.0.0.1:9", token_file=Path("/nonexistent"))
    rt.config = rt.config.model_copy(update={"hub": hub})
    rt.hub_word = "unreachable"


STATES: list[tuple[str, Any, Any]] = [
    ("in-service", lambda rt, mock, emu: None, lambda s: s.printer == "ok" and s.in_service),
    ("paper-low", lambda rt, mock, emu: emu.fault("paper-near-end"),
     lambda s: s.printer == "paper_low" and s.in_service),
    ("paper-out", lambda rt, mock, emu: emu.fault("paper-out"),
     lambda s: s.printer == "paper_out" and s.reason == "printer"),
    ("cover-open", lambda rt, mock, emu: emu.fault("cover-open"),
     lambda s: s.printer == "cover_open"),
    ("clock-wrong", lambda rt, mock, emu: rt.service.health.set(
        "clock", "it is 2026-12-01 here but the journal has tickets of 2026-12-02: the "
        "kiosk issues nothing until the clock is right"), lambda s: s.clock == "wrong"),
    ("journal-fault", lambda rt, mock, emu: rt.service.health.set(
        "journal", "2 record(s) not written: disk full"), lambda s: s.journal == "fault"),
    ("hub-away", lambda rt, mock, emu: hub_away(rt),
     lambda s: s.hub == "unreachable" and s.numbers == "shared"),
    ("api-refused", lambda rt, mock, emu: (mock.state.push_faults(
        ScriptedFault(on="queues", answer=401, times=1000)), rt.monitor.poll_soon()),
     lambda s: s.api == "refused"),
]


async def api_back(rt: Runtime, mock: Any) -> None:
    """No refusal pending at the mock, and the monitor has seen it answer again."""
    with mock.state._lock:
        mock.state._script.clear()
    if rt.monitor.snapshot.error is not None:
        def back() -> bool:
            rt.monitor.poll_soon()
            return rt.monitor.snapshot.error is None
        await d.until(back, timeout=20, what="the API back")


async def walk_the_states(app: Any, rt: Runtime, mock: Any, emu: Emulator, prefix: str,
                          states: list[tuple[str, Any, Any]], langs: tuple[str, ...]) -> None:
    await a_morning(rt)
    admin = await staff_screen(app)
    for (name, setup, check), lang in itertools.product(states, langs):
        await api_back(rt, mock)
        emu.clear_faults()
        rt.service.health.clear("clock")
        rt.service.health.clear("journal")
        rt.hub_word = "waiting"
        setup(rt, mock, emu)
        app.lang = lang
        await refreshed(app, admin, check, f"{name} shown")
        texts = screen_texts(admin)
        assert not raw_identifiers(texts, lang), raw_identifiers(texts, lang)
        assert not nothing_cut(admin), nothing_cut(admin)
        await d.screenshot(f"staff-{prefix}-{lang}-{name}")


@pytest.mark.slow
async def test_the_staff_screen_in_each_state(tmp_path: Path, emu: Emulator) -> None:
    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        from kivy.core.window import Window
        assert tuple(Window.size) == (1080, 1920)
        await walk_the_states(app, rt, mock, emu, "kiosk", STATES, ("es",))
        app.lang = "es"
        await api_back(rt, mock)
        emu.clear_faults()
        emu.fault("paper-out")
        await refreshed(app, app.screen("admin"), lambda s: s.printer == "paper_out",
                        "paper out")
        texts = screen_texts(app.screen("admin"))
        assert "Fuera de servicio: Impresora, Sin papel" in texts
        assert "Cargue papel." in texts and "Falla" in texts
        assert "Turnos entregados" in texts and "Llamados" in texts
        assert "Atención preferente: Persona mayor (60 años o más)" in texts
        figures = {f.label: f.value for f in app.screen("admin").ids.figures.children}
        assert figures["Turnos entregados"] == "3"
        assert figures["Tiempo mediano del turno al llamado"].endswith("min")
        await walk_the_states(app, rt, mock, emu, "kiosk", STATES[2:3], ("en", "pt"))
    await run(tmp_path, scenario, config=on_the_emulator(emu))


@pytest.mark.slow
async def test_the_staff_screen_on_the_tablet(tmp_path: Path,
                                              request: pytest.FixtureRequest) -> None:
    if d.in_a_window_of_its_own(__file__, "test_the_staff_screen_on_the_tablet", "tablet"):
        return
    emu: Emulator = request.getfixturevalue("emu")

    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        from kivy.core.window import Window
        assert tuple(Window.size) == (1280, 800)
        assert app.screen("admin").landscape if app.sm.has_screen("admin") else True
        await walk_the_states(app, rt, mock, emu, "tablet", STATES[:3] + STATES[4:5],
                              ("es",))
        assert app.screen("admin").landscape
    await run(tmp_path, scenario, mode="tablet", config=on_the_emulator(emu))


def test_a_calling_screen_shows_only_what_it_has() -> None:
    screen = DeviceState(role="display", version="1", printer="none", api="none",
                         journal="none", hub="unreachable")
    assert [r.concern for r in staffwords.rows(screen, "es")] == ["clock", "hub"]
    assert staffwords.banner(screen, "es") == ("warning", "En servicio, con avisos")
