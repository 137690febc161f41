"""The calling screen's announcer (kiosk.ui.announcer) without a window: what runs where."""

from __future__ import annotations

import asyncio
import threading
import wave
from pathlib import Path
from typing import Any

from kiosk.ui.announcer import Announcer
from kiosk.view.calling import Call


class _Sound:
    length = 0.05

    def play(self) -> None: ...
    def stop(self) -> None: ...
    def unload(self) -> None: ...


def _wav(out: Path) -> Path:
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 400)
    return out


async def test_sounds_are_loaded_on_the_loops_thread_never_on_the_worker(tmp_path: Path) -> None:
    # SDL_mixer opening the audio device on the speech thread while Kivy's main thread
    # polled SDL's events deadlocked both (a calling-screen test hung in CI). Synthesis
    # stays on the worker; every SDL call (loading a WAV) is made on the loop's thread.
    loaded_on: list[threading.Thread] = []
    synth_on: list[threading.Thread] = []

    class Recording(Announcer):
        def _load(self, path: Path) -> Any:
            loaded_on.append(threading.current_thread())
            return _Sound()

    def synth(text: str, voice: str, out: Path) -> Path:
        synth_on.append(threading.current_thread())
        return _wav(out)

    a = Recording(default_lang="es", voices={}, synth=synth, folder=tmp_path)
    a.start()
    a.announce(Call("1", "A-042", "Cabina 3", "Atención", "2026-12-01T10:00:00+00:00", "es"))
    async with asyncio.timeout(10):
        while not a.spoken:
            await asyncio.sleep(0.02)
    a.close()
    assert len(loaded_on) == 2  # the chime and the words
    assert all(t is threading.main_thread() for t in loaded_on)
    assert synth_on and all(t is not threading.main_thread() for t in synth_on)
