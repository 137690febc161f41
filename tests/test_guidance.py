"""What audio guidance says (kiosk/view/guidance.py), without a window: every screen and
each item in focus, in es, en and pt, from the data the screen shows; whether a sound can
be played (kiosk/view/sound.py, SDL forced into each state); and one real espeak-ng WAV."""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from kiosk.view import guidance as g
from kiosk.view.outcomes import QueueView
from kiosk.view.speech import espeak, synthesize

from .conftest import REPO

ATENCION = QueueView(id="q1", name="Atención a clientes", api_name="Atención a clientes",
                     users=3, avg_waiting_time=2.4, wait_minutes=2.4, prefix="A")
CREDITOS = QueueView(id="q3", name="Créditos e hipotecas", api_name="x", users=0,
                     avg_waiting_time=12, wait_minutes=12, prefix="C")
SEGUROS = QueueView(id="q4", name="Seguros", api_name="x", users=1, avg_waiting_time=80,
                    wait_minutes=80, prefix="D", needs_form=True)
KEYS = {"hold_start": [261], "start": [], "previous": [264, 260], "next": [258, 262],
        "repeat": [256, 268], "back": [27, 8, 267], "volume_up": [270], "volume_down": [269]}


@pytest.mark.parametrize(("lang", "said"), [
    ("es", "Atención a clientes, 3 ejecutivos disponibles, espera 2 minutos, botón 1 de 4."),
    ("en", "Atención a clientes, 3 agents available, wait 2 minutes, button 1 of 4."),
    ("pt", "Atención a clientes, 3 atendentes disponíveis, espera 2 minutos, botão 1 de 4."),
])
def test_a_card_in_focus(lang: str, said: str) -> None:
    assert g.item(g.queue_item(ATENCION, lang), 0, 4, lang) == said


def test_what_a_card_says_follows_what_it_shows() -> None:
    assert g.queue_item(CREDITOS, "es") == \
        "Créditos e hipotecas, Sin ejecutivos disponibles ahora"  # no wait: nobody there
    assert g.queue_item(SEGUROS, "es") == ("Seguros, 1 ejecutivo disponible, espera 1 hora "
                                           "y 15 minutos, pide unos datos primero")
    assert g.queue_item(SEGUROS, "en").endswith("wait 1 hour and 15 minutes, "
                                                "a few details first")


@pytest.mark.parametrize(("minutes", "es", "en", "pt"), [
    (0.3, "menos de un minuto", "less than a minute", "menos de um minuto"),
    (1.2, "1 minuto", "1 minute", "1 minuto"),
    (7.6, "8 minutos", "8 minutes", "8 minutos"),
    (23, "25 minutos", "25 minutes", "25 minutos"),
    (61, "1 hora", "1 hour", "1 hora"),
    (140, "2 horas y 15 minutos", "2 hours and 15 minutes", "2 horas e 15 minutos"),
    (float("nan"), "", "", ""),
])
def test_waits_are_said_in_words_rounded_as_shown(minutes: float, es: str, en: str,
                                                  pt: str) -> None:
    assert (g.spoken_wait(minutes, "es"), g.spoken_wait(minutes, "en"),
            g.spoken_wait(minutes, "pt")) == (es, en, pt)


def test_the_number_twice_digit_by_digit() -> None:
    assert g.spell("A-042") == "A, 0, 4, 2"
    assert g.spell("AP-007") == "A, P, 0, 0, 7"
    assert g.ticket("AP-007", "Atención a clientes", 2.4, "es", priority=True) == (
        "Su número es: A, P, 0, 0, 7. Repito: A, P, 0, 0, 7. Atención preferente. "
        "Atención a clientes. Espera estimada: 2 minutos.")
    assert g.ticket("B-011", "New accounts", None, "en") == (
        "Your number is: B, 0, 1, 1. Again: B, 0, 1, 1. New accounts.")
    assert g.ticket("B-011", "Abertura de conta", 4, "pt").startswith(
        "Sua senha é: B, 0, 1, 1. Repito: B, 0, 1, 1.")


def test_the_screens() -> None:
    assert g.home("¡Bienvenido! Elija un servicio para obtener su número.",
                  [ATENCION, CREDITOS], "es", priority=True) == (
        "¡Bienvenido! Elija un servicio para obtener su número. Hay 2 servicios. Si tiene "
        "derecho a atención preferente, elija Atención preferente.")
    assert g.home("Welcome!", [ATENCION], "en", priority=False) == \
        "Welcome! There is 1 service."
    assert g.priority_reasons(4, "pt") == \
        "Atendimento preferencial. Escolha o motivo: 4 opções."
    assert g.priority_queues("Persona mayor (60 años o más)", "es") == (
        "Atención preferente: Persona mayor (60 años o más). Elija un servicio para obtener "
        "su número.")
    assert g.priority_queues("", "en") == "Priority service. Choose a service to get your number."
    assert g.message("Lo sentimos", "No hay nadie.") == "Lo sentimos. No hay nadie."
    assert g.form("Seguros", 4, "es") == \
        "Seguros. Unos datos primero y luego su número. 4 campos."
    assert g.volume(0.7, "es") == "Volumen 7 de 10" and g.volume(0.04, "en") == "Volume 1 of 10"


@pytest.mark.parametrize(("lang", "said"), [
    ("es", "Guía por voz activada. Pulse 8, 4, 2, 6, flecha arriba o flecha abajo para "
           "moverse; 5 o Entrar para elegir; 0 o asterisco para escuchar de nuevo; Escape, "
           "borrar o barra para volver; más o menos para el volumen."),
    ("en", "Audio guidance is on. Press 8, 4, 2, 6, up arrow or down arrow to move; 5 or "
           "Enter to choose; 0 or asterisk to hear this again; Escape, Backspace or slash to "
           "go back; plus or minus for the volume."),
])
def test_guidance_says_which_key_does_what_from_the_config(lang: str, said: str) -> None:
    assert g.started(KEYS, lang) == said
    other = {**KEYS, "hold_start": [53], "repeat": [282]}  # the row's 5; F1 has no name
    assert "5 o Entrar para elegir" in g.started(other, "es")
    assert "escuchar de nuevo" not in g.started(other, "es")


def test_sentences_are_tidied_for_the_synthesiser() -> None:
    assert g.sentences("  Hola.\n\n  Adiós. . ") == "Hola. Adiós."


@pytest.mark.skipif(espeak() is None, reason="espeak-ng is not installed")
def test_one_real_wav_of_the_ticket_said_twice(tmp_path: Path) -> None:
    text = g.ticket("AP-007", "Atención a clientes", 2.4, "es", priority=True)
    wav = synthesize(text, "es-419", tmp_path / "ticket.wav")
    with wave.open(str(wav), "rb") as w:
        seconds = w.getnframes() / w.getframerate()
        frames = w.readframes(w.getnframes())
    assert seconds > 5  # the number twice, letter by letter: not a blip
    assert max(frames) > 0  # not silence


def _sound(env: dict[str, str], device: str = "") -> str:
    code = f"from kiosk.view.sound import sound_output; print(sound_output({device!r}, quiet=True))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       cwd=REPO, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_whether_a_sound_can_be_played_is_asked_of_sdl(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SDL_", "AUDIODEV"))}
    disk = {**base, "SDL_AUDIODRIVER": "disk", "SDL_DISKAUDIOFILE": str(tmp_path / "out.raw")}
    assert _sound(disk) == ""  # an output that plays (into a file)
    assert _sound({**base, "SDL_AUDIODRIVER": "dummy"}) == (
        "no sound output: SDL's dummy audio driver plays nothing (SDL_AUDIODRIVER=dummy)")
    assert _sound({**base, "SDL_AUDIODRIVER": "nosuch"}).startswith(
        "no sound output: Audio target 'nosuch' not available")
    missing = _sound({**base, "SDL_AUDIODRIVER": "alsa"}, device="hw:97,0")
    assert missing.startswith("no sound device 'hw:97,0': ALSA")
    no_espeak = {**disk, "PATH": str(tmp_path)}  # no espeak-ng on the PATH
    assert _sound(no_espeak) == "espeak-ng is not installed (apt-get install espeak-ng)"
