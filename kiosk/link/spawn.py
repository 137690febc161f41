"""Start the kiosk's core process: the first thing ``kiosk run`` does, before it loads
asyncio or Kivy, so this module imports nothing else (see :mod:`kiosk.link.client`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

API_KEY_ENV = "VIDESK_API_KEY"  # kiosk.config's; not imported: this module starts light


def core_command() -> list[str]:
    """How to run ``kiosk`` again: the frozen build's binary, or this Python."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "kiosk"]


def start_core(args: list[str], *, entry: str = "core",
               ) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """Start ``kiosk core ARGS --link-fd N`` (:mod:`kiosk.core.main`: ``--config``,
    ``-v``), or the demo's (``entry="demo-core"``, :mod:`kiosk.demo.core`: ``--mode``,
    ``--data-dir``). Returns the process and this side's socket."""
    ours, theirs = socket.socketpair()
    cmd = [*core_command(), entry, *args, "--link-fd", str(theirs.fileno())]
    # The API key is the core's alone: it leaves this (the UI's) environment, so nothing
    # the UI might start inherits it; the core reads it and drops it in turn.
    env = dict(os.environ)
    os.environ.pop(API_KEY_ENV, None)
    proc = subprocess.Popen(cmd, pass_fds=(theirs.fileno(),), env=env)  # noqa: S603 - ourselves
    theirs.close()
    return proc, ours


def core_end(link_fd: int) -> socket.socket:
    """In the core process: its end of the link (the fd ``start_core`` passed), with
    Ctrl+C and systemd's stop ignored. They reach the whole process group: the UI stops
    and closes the link, and the core then ends by itself (a ticket in flight finished)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return socket.socket(fileno=link_fd)
