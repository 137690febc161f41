"""Start the kiosk's core process: the first thing ``kiosk run`` does, before it loads
asyncio or Kivy, so this module imports nothing else (see :mod:`kiosk.service.link`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

API_KEY_ENV = "VIDESK_API_KEY"  # kiosk.config's; not imported: this module starts light


def core_command() -> list[str]:
    """How to run ``kiosk`` again: the frozen build's binary, or this Python."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "kiosk"]


def start_core(args: list[str]) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """Start ``kiosk core ARGS --link-fd N`` (:mod:`kiosk.service.core`: ``--config``,
    ``-v``, ``--demo``, ``--data-dir``). Returns the process and this side's socket."""
    ours, theirs = socket.socketpair()
    cmd = [*core_command(), "core", *args, "--link-fd", str(theirs.fileno())]
    # The API key is the core's alone: it leaves this (the UI's) environment, so nothing
    # the UI might start inherits it; the core reads it and drops it in turn.
    env = dict(os.environ)
    os.environ.pop(API_KEY_ENV, None)
    proc = subprocess.Popen(cmd, pass_fds=(theirs.fileno(),), env=env)  # noqa: S603 - ourselves
    theirs.close()
    return proc, ours
