"""Audio guidance's voice: what the screens and keys ask to be said, spoken one text at a
time, each interrupted by the next key.

The words come from :mod:`kiosk.view.guidance` (pure Python). Synthesis (espeak-ng,
:mod:`kiosk.view.speech`) runs on one worker thread, as the calling screen's announcer
does (:mod:`kiosk.ui.announcer`): no frame waits for it. The WAV is loaded and played on
the app's loop (Kivy's main thread: SDL's audio is never touched from another thread). A
new text said with ``interrupt`` (every key does) stops the one playing and drops any
waiting, even one still being synthesised; a text said without it (the paper came out)
waits its turn.
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

from kiosk.view.guidance import sentences
from kiosk.view.speech import sound_dir, synthesize, wav_seconds

log = logging.getLogger(__name__)

KEEP_FILES = 4
"""WAVs kept on disk at once (reused in turn)."""
VOLUME_STEP = 0.1

Synth = Callable[[str, str, Path], Path]


@dataclass
class Said:
    """One text handed to the voice: what, in which language and voice, and whether it
    was heard to the end (False: interrupted, or never played)."""

    text: str
    lang: str
    voice: str
    finished: bool = False
    started: bool = False


class Guide:
    """Speaks texts in the customer's language (see the module's docstring)."""

    def __init__(self, *, voices: dict[str, str], volume: float = 0.8,
                 synth: Synth = synthesize, folder: Path | None = None) -> None:
        self.voices = voices
        self.volume = volume
        self.synth = synth
        self.folder = folder
        self.said: list[Said] = []
        """Every text handed to the voice, oldest first (for the log and tests)."""
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="guide")
        self._waiting: list[Said] = []
        self._wake: asyncio.Event | None = None
        self._cut: asyncio.Event | None = None
        self._generation = 0
        self._task: asyncio.Task[None] | None = None
        self._playing: Any = None
        self._slots = itertools.cycle(range(KEEP_FILES))
        self._own_folder: Path | None = None
        self._warned = False

    def start(self) -> None:
        """Begin (on the running loop)."""
        if self._task is None:
            self._wake, self._cut = asyncio.Event(), asyncio.Event()
            self._task = asyncio.ensure_future(self._run())

    def say(self, text: str, lang: str, *, interrupt: bool = True) -> Said:
        """Say ``text`` in ``lang``: at once, cutting off what is being said
        (``interrupt``), or after it."""
        if interrupt:
            self.stop()
        said = Said(sentences(text), lang, self.voices.get(lang, lang))
        self.said.append(said)
        self._waiting.append(said)
        if self._wake is not None:
            self._wake.set()
        return said

    def stop(self) -> None:
        """Stop speaking: the text playing stops, the ones waiting are dropped."""
        self._generation += 1
        self._waiting.clear()
        if self._cut is not None:
            self._cut.set()
        if self._playing is not None:
            with contextlib.suppress(Exception):
                self._playing.stop()

    @property
    def idle(self) -> bool:
        """Nothing being said, nothing waiting."""
        return not self._waiting and self._playing is None

    def louder(self, step: float = VOLUME_STEP) -> float:
        """Raise (or, with a negative ``step``, lower) the volume: 0.1 to 1."""
        self.volume = round(min(1.0, max(0.1, self.volume + step)), 2)
        if self._playing is not None:
            self._playing.volume = self.volume
        return self.volume

    def close(self) -> None:
        """Stop for good (the app stops)."""
        self.stop()
        if self._task is not None:
            self._task.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._own_folder is not None:
            shutil.rmtree(self._own_folder, ignore_errors=True)

    # ----------------------------------------------------------------- the loop's side

    def _folder(self) -> Path:
        if self.folder is None:
            self.folder = self._own_folder = sound_dir()
        return self.folder

    def _make(self, said: Said) -> tuple[Path, float]:  # on the worker
        wav = self.synth(said.text, said.voice, self._folder() / f"say-{next(self._slots)}.wav")
        return wav, wav_seconds(wav)

    async def _run(self) -> None:
        assert self._wake is not None and self._cut is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._waiting:
                self._wake.clear()
                await self._wake.wait()
                continue
            said = self._waiting.pop(0)
            generation = self._generation
            try:
                wav, seconds = await loop.run_in_executor(self._pool, self._make, said)
                if generation != self._generation:
                    continue  # a key came meanwhile: this one is not wanted any more
                await self._play(said, wav, seconds, generation)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # no voice this time; the screen still works
                self._warn(exc)
            finally:
                self._playing = None

    async def _play(self, said: Said, wav: Path, seconds: float, generation: int) -> None:
        from kivy.core.audio import SoundLoader
        assert self._cut is not None
        sound = SoundLoader.load(str(wav))
        if sound is None or not sound.length:
            raise RuntimeError("no audio output (no sound device or provider)")
        sound.volume = self.volume
        self._cut.clear()
        self._playing = sound
        said.started = True
        sound.play()
        log.info("guidance (%s): %s", said.voice, said.text)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds + 0.15):
                await self._cut.wait()  # a key cuts it short
        said.finished = generation == self._generation
        sound.stop()
        sound.unload()

    def _warn(self, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            log.warning("audio guidance could not speak: %s", exc)
        else:
            log.debug("audio guidance could not speak: %s", exc)
