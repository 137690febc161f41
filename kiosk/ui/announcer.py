"""Chime and speak each new call, one after the other, without ever blocking a frame.

Synthesis (espeak-ng, :mod:`kiosk.view.speech`) runs on one worker thread; the app's
asyncio loop (Kivy's main thread) loads the finished WAV (a few milliseconds) and starts
and stops playback. SDL is not called from the worker: SDL_mixer opening the audio
device on another thread while the main thread polls SDL's events deadlocked both.
A call arriving while another is being announced waits its turn. A machine without sound
or without espeak-ng still shows and flashes the call (logged once).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiosk.view.calling import Call, announce_language, speech_text
from kiosk.view.speech import SpeechUnavailable, chime, sound_dir, synthesize, wav_seconds

log = logging.getLogger(__name__)

PAUSE_S = 0.35
"""Silence between the chime and the words, and after the words."""
KEEP_FILES = 4
"""Spoken WAVs kept on disk (the oldest are reused)."""


@dataclass(frozen=True)
class Spoken:
    """One announcement made: what was said, in which voice, from which WAV."""

    ticket_id: str
    text: str
    voice: str
    wav: Path
    seconds: float


Synth = Callable[[str, str, Path], Path]


class Announcer:
    """Announces calls in order: chime, then the call in the ticket's language."""

    def __init__(self, *, default_lang: str, voices: dict[str, str], chime_on: bool = True,
                 speech_on: bool = True, synth: Synth = synthesize,
                 folder: Path | None = None) -> None:
        self.default_lang = default_lang
        self.voices = voices
        self.chime_on = chime_on
        self.speech_on = speech_on
        self.synth = synth
        self.folder = folder
        self.spoken: list[Spoken] = []
        """What was said (newest last): for the log and tests."""
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="speech")
        self._queue: asyncio.Queue[Call] | None = None
        self._task: asyncio.Task[None] | None = None
        self._chime: Any = None
        self._chime_s = 0.0
        self._slots = itertools.cycle(range(KEEP_FILES))
        self._warned = False
        self._playing: Any = None
        self._own_folder: Path | None = None

    def start(self) -> None:
        """Begin (on the running loop): the chime is made and loaded in the background."""
        self._queue = asyncio.Queue()
        self._task = asyncio.ensure_future(self._run())

    def announce(self, call: Call) -> None:
        """Queue ``call`` for announcing."""
        if self._queue is not None and (self.chime_on or self.speech_on):
            self._queue.put_nowait(call)

    @property
    def idle(self) -> bool:
        return self._queue is None or (self._queue.empty() and self._playing is None)

    def close(self) -> None:
        """Stop announcing (a sound playing is stopped)."""
        if self._task is not None:
            self._task.cancel()
        if self._playing is not None:
            with contextlib.suppress(Exception):
                self._playing.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._own_folder is not None:
            shutil.rmtree(self._own_folder, ignore_errors=True)

    # ----------------------------------------------------------------- worker side

    def _folder(self) -> Path:
        if self.folder is None:
            self.folder = self._own_folder = sound_dir()
        return self.folder

    def _load(self, path: Path) -> Any:
        from kivy.core.audio import SoundLoader
        sound = SoundLoader.load(str(path))
        if sound is None or not sound.length:
            raise SpeechUnavailable("no audio output here (no sound device or provider)")
        return sound

    def _prepare_chime(self) -> Path:
        return chime(self._folder() / "chime.wav")

    def _prepare_speech(self, call: Call) -> Spoken:
        lang = announce_language(call, self.default_lang)
        text = speech_text(call, lang)
        voice = self.voices.get(lang, lang)
        wav = self.synth(text, voice, self._folder() / f"call-{next(self._slots)}.wav")
        return Spoken(call.ticket_id, text, voice, wav, wav_seconds(wav))

    # ----------------------------------------------------------------- loop side

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._queue is not None
        if self.chime_on:
            try:
                path = await loop.run_in_executor(self._pool, self._prepare_chime)
                self._chime, self._chime_s = self._load(path), wav_seconds(path)
            except Exception as exc:
                self._warn(exc)
        while True:
            call = await self._queue.get()
            try:
                await self._announce(loop, call)
            except Exception as exc:  # no sound this time; the screen shows the call anyway
                self._warn(exc)
            finally:
                self._playing = None

    async def _announce(self, loop: asyncio.AbstractEventLoop, call: Call) -> None:
        speech = (loop.run_in_executor(self._pool, self._prepare_speech, call)
                  if self.speech_on else None)
        if self._chime is not None:
            self._play(self._chime)
            await asyncio.sleep(self._chime_s * 0.8)
        if speech is None:
            return
        spoken = await speech
        sound = self._load(spoken.wav)
        await asyncio.sleep(PAUSE_S)
        self._play(sound)
        log.info("called %s aloud (%s): %s", call.ticket_id, spoken.voice, spoken.text)
        self.spoken.append(spoken)
        await asyncio.sleep(spoken.seconds + PAUSE_S)
        sound.stop()
        sound.unload()

    def _play(self, sound: Any) -> None:
        self._playing = sound
        sound.stop()
        sound.play()

    def _warn(self, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            log.warning("calls are shown but not heard: %s", exc)
        else:
            log.debug("announcement failed: %s", exc)
