"""Sounds for the calling screen: a chime, and a call said aloud, as WAV files.

Speech is synthesised offline by espeak-ng (the Debian package ``espeak-ng``; nothing
leaves the machine), one WAV per announcement, in the voice of the ticket's language.
Both are plain files made by plain functions (no Kivy): the UI runs them on a worker
thread and plays the result, so no frame ever waits for them.
"""

from __future__ import annotations

import math
import os
import shutil
import struct
import subprocess
import tempfile
import wave
from pathlib import Path

from kiosk.errors import KioskError

RATE = 22050
SPEED_WPM = 140
"""espeak-ng's words per minute: a little slower than its default (175), for a lobby."""
TIMEOUT_S = 20.0


class SpeechUnavailable(KioskError):
    """No announcement could be made (espeak-ng missing or failing); the screen still
    shows and chimes the call."""


def sound_dir() -> Path:
    """A new private folder (0700, an unpredictable name) for this screen's sounds: never
    a fixed path in a shared temp dir that another user could prepare."""
    return Path(tempfile.mkdtemp(prefix="kiosk-sounds-"))


def espeak() -> str | None:
    """The espeak-ng program (or the older espeak), if installed."""
    return shutil.which("espeak-ng") or shutil.which("espeak")


def synthesize(text: str, voice: str, out: Path) -> Path:
    """Say ``text`` with espeak-ng voice ``voice`` into the WAV file ``out``."""
    program = espeak()
    if program is None:
        raise SpeechUnavailable("espeak-ng is not installed (apt-get install espeak-ng)")
    # "--" ends the options: a booth label from the relay can never become one.
    cmd = [program, "-v", voice, "-s", str(SPEED_WPM), "-w", str(out), "--", text]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT_S, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SpeechUnavailable(f"espeak-ng failed: {exc.__class__.__name__}") from exc
    if proc.returncode != 0 or not out.is_file() or out.stat().st_size <= 44:
        detail = proc.stderr.decode(errors="replace").strip()[:200]
        raise SpeechUnavailable(f"espeak-ng made no sound (voice {voice!r}: {detail})")
    return out


def wav_seconds(path: Path) -> float:
    """How long a WAV file plays."""
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate())


def chime(path: Path | None = None) -> Path:
    """A soft two-note chime (like an airport's "ding-dong") as a WAV; made once."""
    out = path or sound_dir() / "chime.wav"
    if out.is_file():
        return out
    notes = [(0.0, 880.0), (0.42, 659.25)]  # A5 then E5
    length = 1.5
    frames = bytearray()
    for i in range(int(RATE * length)):
        t = i / RATE
        value = 0.0
        for start, freq in notes:
            if t >= start:
                dt = t - start
                attack = min(1.0, dt / 0.01)
                envelope = attack * math.exp(-dt * 3.2)
                value += envelope * (math.sin(2 * math.pi * freq * dt)
                                     + 0.35 * math.sin(4 * math.pi * freq * dt)
                                     + 0.12 * math.sin(6 * math.pi * freq * dt))
        fade = min(1.0, (length - t) / 0.05)
        frames += struct.pack("<h", int(max(-1.0, min(1.0, 0.32 * value * fade)) * 32767))
    tmp = out.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(bytes(frames))
    os.replace(tmp, out)
    return out
