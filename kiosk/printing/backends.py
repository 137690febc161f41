"""Where ticket bytes go: one small class per connection type.

Each backend has one job: :meth:`Backend.send` opens the connection, writes one whole
ticket and closes it again, raising :mod:`kiosk.errors` printer errors (never a foreign
exception). A fresh open per job means a printer that was unplugged, switched off or
reconnected is simply found again on the next ticket.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from kiosk.errors import PrinterUnavailable, PrintFailed


class Backend(Protocol):
    """A connection type."""

    name: str

    def send(self, payload: bytes, *, ticket_id: str) -> None:
        """Open, write ``payload`` (one whole ticket), close."""


class NoBackend:
    """``printer.type: none``: this kiosk has no printer; every job is 'not printed'."""

    name = "none"

    def send(self, payload: bytes, *, ticket_id: str) -> None:
        raise PrinterUnavailable("no printer is configured (printer.type: none)")


class FileBackend:
    """``printer.type: file``: append the raw ESC/POS bytes to a file (or a device node)."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(self, payload: bytes, *, ticket_id: str) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise PrinterUnavailable(f"cannot open {self.path}: {exc.strerror}") from exc
        try:
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd) if self.path.is_file() else None
        except OSError as exc:
            raise PrintFailed(f"writing to {self.path} failed: {exc.strerror}") from exc
        finally:
            os.close(fd)


class VirtualBackend:
    """``printer.type: virtual``: each ticket saved in a folder (``.bin``; the printer adds
    a ``.png`` preview), so a demo shows real tickets without paper."""

    name = "virtual"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_for(self, ticket_id: str, suffix: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in ticket_id)
        return self.folder / f"{safe}{suffix}"

    def send(self, payload: bytes, *, ticket_id: str) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.path_for(ticket_id, ".bin").write_bytes(payload)
        except OSError as exc:
            raise PrinterUnavailable(f"cannot write to {self.folder}: {exc.strerror}") from exc
