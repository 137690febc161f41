"""Whether this machine can play a sound: asked of SDL (the library the UI plays sounds
with), without loading Kivy, so ``kiosk check`` and the UI ask the same question.

SDL picks its audio driver from ``SDL_AUDIODRIVER`` (else the first that works: PulseAudio,
ALSA...) and ALSA's device from ``AUDIODEV`` (``ui.audio.device``). A machine with no
sound card, a driver that plays nothing (``dummy``) or a device that cannot be opened
has no sound output: audio guidance is then offered nowhere, and :func:`sound_output`
says why. Tests force either state through those two variables (``SDL_AUDIODRIVER=disk``
writes what is played to ``SDL_DISKAUDIOFILE``).

Call it from the thread that runs SDL's events (the UI's main thread): SDL's audio must
not be opened from another thread while the main one polls its events.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import importlib.util
import os
import sys
from pathlib import Path

from kiosk.view.speech import espeak

SDL_INIT_AUDIO = 0x10
AUDIO_S16LSB = 0x8010


class _Spec(ctypes.Structure):
    _fields_ = [("freq", ctypes.c_int), ("format", ctypes.c_uint16),
                ("channels", ctypes.c_uint8), ("silence", ctypes.c_uint8),
                ("samples", ctypes.c_uint16), ("padding", ctypes.c_uint16),
                ("size", ctypes.c_uint32), ("callback", ctypes.c_void_p),
                ("userdata", ctypes.c_void_p)]


def sdl_library() -> str | None:
    """The SDL library Kivy plays sounds with (its wheel's own copy, else the system's)."""
    places = []
    spec = importlib.util.find_spec("kivy")  # found, not imported
    if spec is not None and spec.origin:
        places.append(Path(spec.origin).resolve().parent.parent / "Kivy.libs")
    if frozen := getattr(sys, "_MEIPASS", None):  # the one-folder build
        places += [Path(frozen), Path(frozen) / "Kivy.libs"]
    for place in places:
        libs = sorted(glob.glob(str(place / "libSDL2-2*.so*")))
        if libs:
            return libs[0]
    return ctypes.util.find_library("SDL2-2.0") or ctypes.util.find_library("SDL2")


def sound_output(device: str = "", *, quiet: bool = False) -> str:
    """"" when a sound can be played here (on ALSA's ``device`` if given), else why not,
    in a line for staff. Opens the output for a moment and closes it again. ``quiet``:
    what the sound libraries print on stderr meanwhile is dropped (``kiosk check``; not
    in a process whose other threads log there)."""
    if not quiet:
        return _probe(device)
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        return _probe(device)
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _probe(device: str) -> str:
    if espeak() is None:
        return "espeak-ng is not installed (apt-get install espeak-ng)"
    name = sdl_library()
    if name is None:
        return "no SDL library to play sound with"
    if device:
        os.environ["AUDIODEV"] = device  # ALSA's device, read by SDL as it opens it
    try:
        sdl = ctypes.CDLL(name)
        sdl.SDL_GetError.restype = ctypes.c_char_p
        sdl.SDL_GetCurrentAudioDriver.restype = ctypes.c_char_p
        if sdl.SDL_InitSubSystem(SDL_INIT_AUDIO) != 0:
            return f"no sound output: {_error(sdl)}{_driver_note()}"
        try:
            driver = (sdl.SDL_GetCurrentAudioDriver() or b"").decode(errors="replace")
            if driver == "dummy":
                return "no sound output: SDL's dummy audio driver plays nothing " \
                       "(SDL_AUDIODRIVER=dummy)"
            want, have = _Spec(22050, AUDIO_S16LSB, 1, 0, 1024), _Spec()
            dev = sdl.SDL_OpenAudioDevice(None, 0, ctypes.byref(want), ctypes.byref(have), 0)
            if dev == 0:
                where = f" {device!r}" if device else ""
                return f"no sound device{where}: {_error(sdl)} ({driver})"
            sdl.SDL_CloseAudioDevice(dev)
        finally:
            sdl.SDL_QuitSubSystem(SDL_INIT_AUDIO)
    except (OSError, AttributeError) as exc:
        return f"no sound output: SDL cannot be used ({exc.__class__.__name__})"
    return ""


def _error(sdl: ctypes.CDLL) -> str:
    return (sdl.SDL_GetError() or b"unknown error").decode(errors="replace")[:200]


def _driver_note() -> str:
    driver = os.environ.get("SDL_AUDIODRIVER", "")
    return f" (SDL_AUDIODRIVER={driver})" if driver else ""
