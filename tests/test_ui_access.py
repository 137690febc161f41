"""High contrast, low reach and whole texts, in a real window (SDL offscreen):

- the high-contrast theme: every text on every customer screen measured from the
  screenshot's pixels (at least 7:1), and the focus ring against both its neighbours and
  the control it surrounds (at least 3:1); kept until the idle reset;
- ``ui.reach: low``: every control a customer can reach sits in the lower 55% of the
  portrait screen, on every customer screen (the screenshots have the line drawn in);
- every queue card shows its whole text (no line cut, nothing shortened) at every
  supported size (kiosk, tablet, a small landscape window), in es, en and pt, with its
  badges, with large text and high contrast: the text's size as laid out against the
  label's box, as the layout tests measure it.

Screenshots go to ``artifacts/screenshots``."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from kiosk.colours import contrast
from kiosk.core.runtime import Runtime
from kiosk.mock import ScriptedFault

from . import ui_driver as d
from .test_ui import ATENCION, CREDITOS, SEGUROS, card, run

pytestmark = pytest.mark.slow

K_TAB = 9
LINE = 0.55
"""The reach line ``ui.reach: low`` promises (kiosk/ui/app.py: LOW_REACH_LINE)."""


# --------------------------------------------------------------------------- what is shown


def shown(widget: Any) -> bool:
    """Whether ``widget`` and all its parents are drawn (not see-through, not empty)."""
    from kivy.uix.widget import Widget
    w = widget
    while isinstance(w, Widget):
        if w.opacity <= 0 or w.width <= 0 or w.height <= 0:
            return False
        w = w.parent
    return True


def clip_of(widget: Any) -> tuple[float, float, float, float]:
    """The part of the window ``widget`` can be seen in: the window, or the scroll view
    it is inside."""
    from kivy.core.window import Window
    from kivy.uix.scrollview import ScrollView
    x0, y0, x1, y1 = 0.0, 0.0, float(Window.width), float(Window.height)
    w = widget.parent
    while w is not None and w is not w.parent:
        if isinstance(w, ScrollView):
            a, b = w.to_window(w.x, w.y)
            c, e = w.to_window(w.right, w.top)
            x0, y0, x1, y1 = max(x0, a), max(y0, b), min(x1, c), min(y1, e)
        w = getattr(w, "parent", None)
    return x0, y0, x1, y1


def labels(root: Any) -> list[Any]:
    """Every label with text drawn on ``root``'s screen, and within its clip."""
    from kivy.uix.label import Label
    found = []
    for w in root.walk(restrict=True):
        if isinstance(w, Label) and w.text.strip() and shown(w):
            cx0, cy0, cx1, cy1 = clip_of(w)
            x0, y0 = w.to_window(w.x, w.y)
            x1, y1 = w.to_window(w.right, w.top)
            if min(x1, cx1) - max(x0, cx0) > 4 and min(y1, cy1) - max(y0, cy0) > 4:
                found.append(w)
    return found


def text_box(w: Any) -> tuple[int, int, int, int]:
    """Where ``w``'s text is drawn (its texture, centred in it, as Kivy draws a label),
    within its clip, in window coordinates (y up)."""
    tw, th = w.texture_size
    cx, cy = w.to_window(w.center_x, w.center_y)
    cx0, cy0, cx1, cy1 = clip_of(w)
    x0, y0 = max(cx - tw / 2, cx0), max(cy - th / 2, cy0)
    x1, y1 = min(cx + tw / 2, cx1), min(cy + th / 2, cy1)
    return int(x0), int(y0), int(x1), int(y1)


def hexa(rgb: tuple[int, ...]) -> str:
    return "#{:02X}{:02X}{:02X}".format(*rgb[:3])


def measured_contrast(img: Image.Image, box: tuple[int, int, int, int]) -> tuple[float, str,
                                                                                 str]:
    """The text's contrast in ``box`` of the screenshot: the background is the box's most
    common colour; the text, of the colours that cover at least a few pixels, the one
    furthest from it (the glyphs' solid cores; their antialiased edges lie between)."""
    x0, y0, x1, y1 = box
    h = img.height
    region = img.crop((x0, h - y1, x1, h - y0))
    raw = region.tobytes()
    counts = Counter(tuple(raw[i:i + 3]) for i in range(0, len(raw), 3))
    bg = counts.most_common(1)[0][0]
    least = max(3, sum(counts.values()) // 500)
    inks = [c for c, n in counts.items() if n >= least and c != bg]
    if not inks:
        return 21.0, hexa(bg), hexa(bg)  # no text pixels there to judge (a space)
    fg = max(inks, key=lambda c: contrast(hexa(c), hexa(bg)))
    return contrast(hexa(fg), hexa(bg)), hexa(fg), hexa(bg)


def hints(root: Any) -> list[tuple[Any, tuple[int, int, int, int]]]:
    """The placeholders shown in empty text boxes (not the one being typed into: its
    cursor is drawn there), each with the line its text sits on, in window coordinates."""
    from kivy.uix.textinput import TextInput
    found = []
    for w in root.walk(restrict=True):
        if isinstance(w, TextInput) and not w.text and w.hint_text and not w.focus \
                and shown(w):
            x0, y0 = w.to_window(w.x + w.padding[0], w.top - w.padding[1] - w.line_height)
            x1, y1 = w.to_window(w.right - w.padding[2], w.top - w.padding[1])
            found.append((w, (int(x0), int(y0), int(x1), int(y1))))
    return found


async def contrast_problems(app: Any, name: str) -> list[str]:
    """Every text on the current screen below 7:1 (placeholders included), measured from
    a screenshot's pixels."""
    shot = await d.screenshot(name)
    img = Image.open(shot).convert("RGB")
    bad = []
    measured = 0
    screen = app.sm.current_screen
    for w, box in [(w, text_box(w)) for w in labels(screen)] + hints(screen):
        if box[2] - box[0] < 3 or box[3] - box[1] < 3:
            continue
        ratio, fg, bg = measured_contrast(img, box)
        measured += 1
        if ratio < 7:
            text = w.text or f"(placeholder) {w.hint_text}"
            bad.append(f"{name}: {text[:40]!r} {fg} on {bg}: {ratio:.2f}:1")
    assert measured >= 2, f"{name}: no text measured"
    return bad


def ring_problems(app: Any, img: Image.Image) -> list[str]:
    """The focus ring against its neighbours on both sides (outside it, and the gap
    between it and the control), from the screenshot's pixels (the ring: 4 px wide, 6 px
    out of the control)."""
    from kivy.metrics import dp
    w = app._ring.widget
    x, y = w.to_window(w.x, w.y)
    mid = int(y + w.height / 2)
    px = img.load()

    def at(xx: float) -> str:
        return hexa(px[int(xx), img.height - 1 - mid])
    ring, outside, gap = at(x - dp(6)), at(x - dp(11)), at(x - dp(2))
    bad = [f"ring {ring} vs {what} {c}: {contrast(ring, c):.2f}:1"
           for what, c in (("outside", outside), ("gap", gap)) if contrast(ring, c) < 3]
    if ring in (outside, gap):
        bad.append(f"no ring drawn at {x - dp(6):.0f}, {mid} ({ring})")
    return bad


# --------------------------------------------------------------------------- high contrast


async def test_high_contrast_every_text_7_to_1_from_the_pixels(tmp_path: Path) -> None:
    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        home = app.screen("home")
        assert home.ids.contrast in app.focus_items()  # one tap from home...
        await d.tap(home.ids.contrast)
        assert app.high_contrast and home.ids.contrast.active
        bad = await contrast_problems(app, "kiosk-es-home-high-contrast")
        for _ in range(5):  # languages, priority, then the first card
            await d.key(K_TAB)
        assert app._ring.widget is card(app, ATENCION)
        img = Image.open(await d.screenshot("kiosk-es-home-high-contrast-focus"))
        bad += ring_problems(app, img.convert("RGB"))
        await d.tap(home.ids.large_text)  # ...beside large text: both at once
        bad += await contrast_problems(app, "kiosk-es-home-high-contrast-large-text")

        await d.tap(home.ids.priority)
        await d.until(lambda: app.sm.current == "priority", what="the reasons")
        bad += await contrast_problems(app, "kiosk-es-priority-high-contrast")
        await d.tap(app.screen("priority").buttons[0])
        await d.until(lambda: app.sm.current == "priority_queues", what="the services")
        bad += await contrast_problems(app, "kiosk-es-priority-queues-high-contrast")
        await d.tap(card(app, CREDITOS, "priority_queues"))
        await d.until(lambda: app.sm.current == "noagents", what="no agents")
        bad += await contrast_problems(app, "kiosk-es-noagents-high-contrast")
        await d.tap(card(app, ATENCION, "noagents"))
        await d.until(lambda: app.sm.current == "ticket", what="the ticket")
        await d.until(lambda: app.screen("ticket").printed is True, what="printed")
        await d.frames(3)
        bad += await contrast_problems(app, "kiosk-es-ticket-high-contrast")
        await d.tap(app.screen("ticket").ids.done)

        await d.until(lambda: SEGUROS in app.core.forms, what="forms learned")
        await d.tap(card(app, SEGUROS))  # the form: its labels, hints and placeholders
        await d.until(lambda: app.sm.current == "form", what="the form")
        await d.frames(4)
        bad += await contrast_problems(app, "kiosk-es-form-high-contrast")
        await d.tap(app.screen("form").ids.back)
        app.set_language("en")
        await d.frames(3)
        mock.state.push_faults(ScriptedFault(on="enqueue", answer=503))
        await d.tap(card(app, ATENCION))
        await d.until(lambda: app.sm.current == "message", what="a message")
        bad += await contrast_problems(app, "kiosk-en-message-high-contrast")
        await d.tap(app.screen("message").ids.back)
        assert app.high_contrast and app.scale != 1  # kept through the visit...
        app.last_activity = time.monotonic() - rt.config.ui.idle_timeout_s - 1
        await d.until(lambda: not app.high_contrast, timeout=5, what="the idle reset")
        assert app.scale == 1 and app.c_brand[:3] != [0, 0, 0]  # ...until the idle reset
        assert bad == [], "\n".join(bad)
    await run(tmp_path, scenario)


def test_the_high_contrast_palette_reaches_7_to_1() -> None:
    from kiosk.ui.theme import Theme
    th = Theme.high_contrast()
    assert th.check(7.0) == []
    assert min(contrast(th.focus, c) for c in (th.brand, th.brand_light)) >= 3
    assert Theme().check() == []  # the regular theme: 4.5:1, as before


# --------------------------------------------------------------------------- low reach


def reach_top(widget: Any) -> float:
    """How high a finger must reach for ``widget``: its top, or, inside a scroll view, the
    scroll view's (its content comes down to the finger by scrolling)."""
    from kivy.uix.scrollview import ScrollView
    w = widget.parent
    top = widget.to_window(widget.right, widget.top)[1]
    while w is not None and w is not w.parent:
        if isinstance(w, ScrollView):
            top = w.to_window(w.right, w.top)[1]
        w = getattr(w, "parent", None)
    return float(top)


async def reach_problems(app: Any, name: str) -> list[str]:
    """The controls of the current screen above the line, and a screenshot with the line
    drawn in (a copy: ``<name>-line.png``)."""
    from kivy.core.window import Window
    shot = await d.screenshot(name)
    line = LINE * Window.height
    img = Image.open(shot).convert("RGB")
    y = img.height - 1 - int(line)
    ImageDraw.Draw(img).line([(0, y), (img.width, y)], fill=(255, 40, 40), width=3)
    img.save(shot.with_name(f"{name}-line.png"))
    items = app.focus_items()
    assert items, f"{name}: no controls"
    return [f"{name}: {type(w).__name__} {getattr(w, 'text', '')!r} reaches "
            f"{reach_top(w):.0f} > {line:.0f}" for w in items if reach_top(w) > line + 1]


async def test_low_reach_every_control_below_the_line(tmp_path: Path) -> None:
    def low(data: dict[str, Any]) -> None:
        data["ui"]["reach"] = "low"

    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        from kivy.core.window import Window
        assert Window.height > Window.width and app.low_reach
        await d.until(lambda: SEGUROS in app.core.forms, what="forms learned")
        await d.frames(3)
        bad = await reach_problems(app, "kiosk-es-home-low-reach")
        home = app.screen("home")
        assert home.ids.info.height > 0.35 * Window.height  # the top: information
        app.toggle_large_text()
        await d.frames(3)
        bad += await reach_problems(app, "kiosk-es-home-low-reach-large-text")
        app.toggle_large_text()
        await d.tap(home.ids.priority)
        await d.until(lambda: app.sm.current == "priority", what="the reasons")
        bad += await reach_problems(app, "kiosk-es-priority-low-reach")
        await d.tap(app.screen("priority").buttons[0])
        await d.until(lambda: app.sm.current == "priority_queues", what="the services")
        bad += await reach_problems(app, "kiosk-es-priority-queues-low-reach")
        await d.tap(card(app, CREDITOS, "priority_queues"))
        await d.until(lambda: app.sm.current == "noagents", what="no agents")
        bad += await reach_problems(app, "kiosk-es-noagents-low-reach")
        await d.tap(card(app, ATENCION, "noagents"))
        await d.until(lambda: app.sm.current == "ticket", what="the ticket")
        bad += await reach_problems(app, "kiosk-es-ticket-low-reach")
        await d.tap(app.screen("ticket").ids.done)
        await d.tap(card(app, SEGUROS))
        await d.until(lambda: app.sm.current == "form", what="the form")
        await d.frames(4)
        bad += await reach_problems(app, "kiosk-es-form-low-reach")
        await d.tap(app.screen("form").ids.back)
        mock.state.push_faults(ScriptedFault(on="enqueue", answer=503))
        await d.tap(card(app, ATENCION))
        await d.until(lambda: app.sm.current == "message", what="a message")
        bad += await reach_problems(app, "kiosk-es-message-low-reach")
        assert bad == [], "\n".join(bad)
    await run(tmp_path, scenario, config=low)


async def test_normal_reach_is_not_low(tmp_path: Path) -> None:
    """The line is a promise of ``ui.reach: low`` only: without it, the languages sit
    above it (the test above would fail on the regular layout)."""
    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        from kivy.core.window import Window
        assert not app.low_reach
        langs = app.screen("home").ids.langs
        assert reach_top(langs.ids.lang_es) > LINE * Window.height
    await run(tmp_path, scenario)


# --------------------------------------------------------------------------- whole texts


def cut_texts(card_: Any) -> list[str]:
    """The texts of a card that do not fit their label as laid out: the size its text
    needs (laid out again at the label's width, without a height or shortening) against
    the label's box."""
    from kivy.core.text import Label as CoreLabel
    from kivy.uix.label import Label
    bad = []
    for w in card_.walk(restrict=True):
        if not isinstance(w, Label) or not w.text.strip() or not shown(w):
            continue
        width = w.text_size[0]
        core = CoreLabel(text=w.text, font_size=w.font_size, font_name=w.font_name,
                         bold=w.bold, halign=w.halign,
                         text_size=(width, None) if width else (None, None))
        core.refresh()
        need_w, need_h = core.texture.size
        if need_h > w.height + 1 or need_w > w.width + 1:
            bad.append(f"{card_.title!r}: {w.text!r} needs {need_w}x{need_h}, its box is "
                       f"{w.width:.0f}x{w.height:.0f}")
    return bad


async def whole_cards(app: Any, size: str) -> list[str]:
    """Every card's texts, in es, en and pt, regular, large text, high contrast; with the
    form badge (Seguros) and a staleness badge on each card."""
    app.ticked = lambda: None  # the clock's tick would take the staleness badges away
    bad: list[str] = []
    for lang in ("es", "en", "pt"):
        app.set_language(lang)
        for large, high in ((False, False), (True, False), (True, True)):
            if (app.scale != 1) != large:
                app.toggle_large_text()
            if app.high_contrast != high:
                app.toggle_contrast()
            cards = app.screen("home").cards
            for c in cards:
                c.stale = app.tr("Updated {n} min ago", lang, n=12)
            await d.frames(4)
            assert any(c.needs_form for c in cards)
            for c in cards:
                bad += [f"{size} {lang} large={large} contrast={high}: {b}"
                        for b in cut_texts(c)]
            if lang == "es" or large:
                await d.screenshot(f"{size}-{lang}-cards-{'large' if large else 'regular'}"
                                   f"{'-high-contrast' if high else ''}")
    return bad


def rerun_with_a_window_of_its_own(test_id: str, window: str) -> bool:
    return d.in_a_window_of_its_own(__file__, test_id, window)


@pytest.mark.parametrize("size", ["kiosk", "tablet", "small"])
async def test_every_card_shows_its_whole_text(tmp_path: Path, size: str) -> None:
    if size != "kiosk" and rerun_with_a_window_of_its_own(
            f"test_every_card_shows_its_whole_text[{size}]", size):
        return

    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        await d.until(lambda: SEGUROS in app.core.forms, what="forms learned")
        await d.until(lambda: card(app, SEGUROS).needs_form, what="the form badge")
        bad = await whole_cards(app, size)
        assert bad == [], "\n".join(bad)
    await run(tmp_path, scenario, mode="tablet" if size == "tablet" else "kiosk",
              **({"size": (960, 540)} if size == "small" else {}))
