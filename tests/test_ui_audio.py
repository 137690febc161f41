"""Audio guidance in a real window (SDL offscreen), driven by keys: started by holding
the keypad's 5, every screen and each item in focus spoken in the customer's language,
repeat, back, the volume, speech cut off by the next key, the ticket's number twice,
the idle reset ending it; the on-screen button; no sound device, no guidance.

The synthesiser is stubbed at its edge (it records the text, the real one, and writes a
tone of about the speech's length); the sound is played for real, through SDL's ``disk``
driver, into a file whose samples are checked. Each test runs in a window of its own, its
SDL audio driver set before the process starts."""

from __future__ import annotations

import asyncio
import math
import os
import re
import struct
import time
import wave
from pathlib import Path
from typing import Any

import pytest

from kiosk.core.runtime import Runtime

from . import ui_driver as d
from .test_ui import ATENCION, card, run

pytestmark = pytest.mark.slow

KP0, KP2, KP5, KP8, KP_MINUS, KP_PLUS = 256, 258, 261, 264, 269, 270
K_ESCAPE, K_F12 = 27, 293


class Voice:
    """The synthesiser's stand-in: what it was asked to say (the real text), and a WAV
    of a soft tone, 40 ms a character (at most 4 s), for SDL to play."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def __call__(self, text: str, voice: str, out: Path) -> Path:
        self.asked.append((text, voice))
        rate, seconds = 22050, min(4.0, 0.3 + 0.04 * len(text))
        frames = b"".join(struct.pack("<h", int(6000 * math.sin(2 * math.pi * 440 * i / rate)))
                          for i in range(int(rate * seconds)))
        with wave.open(str(out), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(frames)
        return out


async def hold(code: int, seconds: float) -> None:
    """A key held down (with the repeats SDL sends while it is), then released."""
    from kivy.core.window import Window
    Window.dispatch("on_key_down", code, 0, "", [])
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await d.frames(1)
        Window.dispatch("on_key_down", code, 0, "", [])  # the key's repeats
    Window.dispatch("on_key_up", code, 0)
    await d.frames(1)


async def press(code: int) -> None:
    """A key pressed and released at once (no repeats)."""
    from kivy.core.window import Window
    Window.dispatch("on_key_down", code, 0, "", [])
    await d.frames(1)
    Window.dispatch("on_key_up", code, 0)
    await d.frames(1)


def last(app: Any) -> str:
    return str(app.guide.said[-1].text)


async def heard(app: Any, pattern: str, what: str = "") -> str:
    """Wait until guidance has begun to say something matching ``pattern`` (the last text
    handed to it)."""
    await d.until(lambda: app.guide is not None and app.guide.said
                  and re.fullmatch(pattern, last(app)) and app.guide.said[-1].started,
                  timeout=10, what=what or pattern)
    return last(app)


def audio_window(monkeypatch: pytest.MonkeyPatch, test_id: str, driver: str,
                 tmp_path: Path) -> bool:
    """Run ``test_id`` again in a window of its own, with SDL's audio ``driver`` (and, for
    ``disk``, what it plays in ``guidance-audio.raw`` beside ``tmp_path``)."""
    if os.environ.get("KIOSK_TEST_WINDOW") == f"audio-{driver}":
        return False  # the child: its environment is set already
    monkeypatch.setenv("SDL_AUDIODRIVER", driver)
    monkeypatch.setenv("SDL_DISKAUDIOFILE", str(tmp_path.parent / "guidance-audio.raw"))
    monkeypatch.delenv("AUDIODEV", raising=False)
    return d.in_a_window_of_its_own(__file__, test_id, f"audio-{driver}")


async def test_audio_guidance_by_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if audio_window(monkeypatch, "test_audio_guidance_by_keys", "disk", tmp_path):
        played = (tmp_path.parent / "guidance-audio.raw").read_bytes()
        assert len(played) > 44100 and max(played) > 0  # SDL played the voice, not silence
        return
    voice = Voice()

    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        app.guide_synth = voice
        await d.until(lambda: app.audio_checked, what="the sound output checked")
        assert app.audio_offered, app.audio_why
        home = app.screen("home")
        assert home.ids.audio in app.focus_items()  # the large on-screen button, offered
        await d.screenshot("kiosk-es-home-audio-offered")

        await hold(KP5, 0.6)  # a short press does not start it
        assert not app.audio_on
        await hold(KP5, 1.8)  # held: guidance starts, in the screen's language
        assert app.audio_on
        items = app.focus_items()
        n = len(items)
        intro = await heard(app, r"Guía por voz activada\..*", "the intro")
        assert intro == (
            "Guía por voz activada. Pulse 8, 4, 2, 6, flecha arriba o flecha abajo para "
            "moverse; 5 o Entrar para elegir; 0 o asterisco para escuchar de nuevo; Escape, "
            "borrar o barra para volver; más o menos para el volumen. ¡Bienvenido! Elija un "
            "servicio para obtener su número. Hay 4 servicios. Si tiene derecho a atención "
            f"preferente, elija Atención preferente. Español, botón 1 de {n}.")
        assert app.guide.said[-1].voice == "es-419"
        first = app.guide.said[-1]

        await press(KP2)  # the next item: what was being said stops at once
        assert await heard(app, "English.*") == f"English, botón 2 de {n}."
        assert first.started and not first.finished
        await press(KP2)
        await press(KP2)
        assert await heard(app, "Atención preferente.*") == (
            f"Atención preferente. Si tiene derecho a ser atendido primero, botón 4 de {n}.")
        await press(KP2)
        said = await heard(app, "Atención a clientes.*")
        assert re.fullmatch(r"Atención a clientes, 3 ejecutivos disponibles, espera \d+ "
                            rf"minutos?, botón 5 de {n}\.", said), said
        assert app._ring.widget is card(app, ATENCION)
        await d.screenshot("kiosk-es-home-audio-focus")
        await press(KP8)  # back up one
        assert (await heard(app, "Atención pref.*")).endswith(f"botón 4 de {n}.")

        await press(KP0)  # repeat: the screen, then the item in focus
        assert (await heard(app, "¡Bienvenido!.*")).endswith(
            f"Atención preferente. Si tiene derecho a ser atendido primero, botón 4 de {n}.")

        await press(KP_PLUS)  # louder: said, and the voice is louder
        assert await heard(app, "Volumen.*") == "Volumen 9 de 10"
        assert app.guide.volume == pytest.approx(0.9)
        await press(KP_MINUS)
        await press(KP_MINUS)
        assert await heard(app, "Volumen 7.*") == "Volumen 7 de 10"

        await press(KP2)  # to the first card, then 5 pressed briefly: chosen
        await press(KP5)
        await d.until(lambda: app.sm.current == "ticket", what="the ticket")
        ticket = app.screen("ticket")
        said = await heard(app, "Su número.*", "the ticket said")
        number = ", ".join(c for c in ticket.number if c.isalnum())
        assert said.startswith(f"Su número es: {number}. Repito: {number}. Atención a "
                               "clientes. Espera estimada:")
        assert number == "A, 0, 0, 1"
        await d.until(lambda: ticket.printed is True, what="printed")
        printed = await heard(app, "Retire su ticket aquí abajo.", "the paper said, after")
        assert printed and app.guide.said[-2].text.startswith("Su número")
        await d.screenshot("kiosk-es-ticket-audio")

        await press(K_ESCAPE)  # back: home, said again
        assert app.sm.current == "home"
        await heard(app, "¡Bienvenido!.*", "home again")

        # the language: from now on, in English
        await press(KP8)  # ...back round to the first items
        while app._ring.widget is not home.ids.langs.ids.lang_en:
            await press(KP2)
        await press(KP5)
        await d.until(lambda: app.lang == "en", what="English chosen")
        assert (await heard(app, "Welcome!.*")).endswith(f"English, button 2 of {n}.")
        assert app.guide.said[-1].voice == "en-us"

        app.last_activity = time.monotonic() - rt.config.ui.idle_timeout_s - 1
        await d.until(lambda: not app.audio_on, timeout=5, what="the idle reset")
        assert app.lang == "es" and app.guide.idle  # guidance ended with the visit
        count = len(app.guide.said)
        await press(KP2)  # keys move the focus again, silently
        assert len(app.guide.said) == count

        await d.tap(home.ids.audio)  # the on-screen button starts it too
        assert app.audio_on
        assert app.guide.volume == pytest.approx(0.8)  # each visit starts at the config's
        await heard(app, r"Guía por voz activada\..*", "the intro again")
        assert voice.asked and all(v in ("es-419", "en-us") for _, v in voice.asked)
    await run(tmp_path, scenario)


async def test_a_dedicated_key_starts_guidance(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    if audio_window(monkeypatch, "test_a_dedicated_key_starts_guidance", "disk", tmp_path):
        return

    def keys(data: dict[str, Any]) -> None:
        data["ui"]["audio"] = {"keys": {"start": [K_F12]}, "volume": 0.5}

    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        app.guide_synth = Voice()
        await d.until(lambda: app.audio_checked, what="the sound output checked")
        await press(K_F12)
        assert app.audio_on and app.guide.volume == 0.5
        await heard(app, r"Guía por voz activada\..*")
        await press(KP_MINUS)
        assert await heard(app, "Volumen.*") == "Volumen 4 de 10"
    await run(tmp_path, scenario, config=keys)


async def test_no_sound_device_no_guidance(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """SDL's dummy driver plays nothing: guidance is offered nowhere (no button, the keys
    do nothing) and the log says why."""
    if audio_window(monkeypatch, "test_no_sound_device_no_guidance", "dummy", tmp_path):
        return

    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        app.guide_synth = Voice()
        await d.until(lambda: app.audio_checked, what="the sound output checked")
        assert not app.audio_offered
        assert app.audio_why == ("no sound output: SDL's dummy audio driver plays nothing "
                                 "(SDL_AUDIODRIVER=dummy)")
        home = app.screen("home")
        assert home.ids.audio not in app.focus_items() and home.ids.audio.width == 0
        await hold(KP5, 1.8)
        app.start_audio()  # the button's action, had it been there
        assert not app.audio_on and app.guide is None
        await d.screenshot("kiosk-es-home-no-audio")
        await asyncio.sleep(0)
    await run(tmp_path, scenario)


async def test_the_form_is_guided_without_saying_what_was_typed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if audio_window(monkeypatch, "test_the_form_is_guided_without_saying_what_was_typed",
                    "disk", tmp_path):
        return
    from .test_ui import SEGUROS

    async def scenario(app: Any, rt: Runtime, mock: Any) -> None:
        from kivy.core.window import Window
        app.guide_synth = Voice()
        await d.until(lambda: app.audio_checked and SEGUROS in app.core.forms,
                      what="sound and forms known")
        app.start_audio()
        await d.tap(card(app, SEGUROS))
        await d.until(lambda: app.sm.current == "form", what="the form")
        n = len(app.focus_items())
        said = await heard(app, "Seguros.*", "the form said")
        assert said == ("Seguros. Unos datos primero y luego su número. 4 campos. Nombre y "
                        f"apellido, vacío, botón 1 de {n}.")
        for ch in "Bea Lima":
            Window.dispatch("on_textinput", ch)
        await d.frames(1)
        await press(9)  # Tab: the next field
        assert await heard(app, "Correo.*") == f"Correo electrónico, vacío, botón 2 de {n}."
        await press(9)  # a choice: its option, chosen or not
        assert await heard(app, "Tipo de seguro.*") == \
            f"Tipo de seguro: Auto, no elegido, botón 3 de {n}."
        await press(K_ESCAPE)  # back home: said, the form wiped
        await heard(app, "¡Bienvenido!.*", "home again")
        assert not any("Bea" in s.text or "Lima" in s.text for s in app.guide.said)
        assert not any("Bea" in text for text, _ in app.guide_synth.asked)
    await run(tmp_path, scenario)
