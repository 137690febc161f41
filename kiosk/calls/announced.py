"""What this screen already announced, kept across restarts.

A screen that connects afresh gets the day's last calls from the relay again; the ones
of the last :data:`~kiosk.view.calling.ANNOUNCE_WINDOW_S` would be chimed and spoken a
second time after a restart. So the core keeps, in ``calls-announced.json`` in
``kiosk.data_dir`` (:data:`MARK_FILE`), the *mark*: the highest relay event id it
announced and the latest ``at`` among those calls, with the relay and branch they belong
to. A call is taken as already announced when its id is at or below the mark's **and**
its ``at`` is not later than the mark's: the relay's ids increase per branch (across
days, for both of its stores), so a call missed while the screen was down has a higher
id and is announced (if still recent); a relay rebuilt from scratch, whose ids start at
1 again, sends calls later than the mark, which are announced too.

The file is replaced atomically (written beside, fsynced, renamed), on a worker thread
and never on the event loop. A missing file means nothing announced yet; an unreadable
or malformed one is logged once and ignored (then only the time window applies, as
before the mark existed); a failed write is logged and the mark still holds in memory.
It holds no secret: the relay's URL (no user or password: see ``calls.url``), the
branch, an id and a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from datetime import datetime
from pathlib import Path

from kiosk.view.calling import Call

log = logging.getLogger(__name__)

MARK_FILE = "calls-announced.json"


def _event_id(call: Call) -> int | None:
    """The call's relay event id as a number (the relay's ids are integers)."""
    eid = call.event_id
    return int(eid) if eid.isascii() and eid.isdigit() and len(eid) <= 18 else None


class AnnouncedMark:
    """The newest call announced by this screen for one relay and branch (see the
    module's docstring). ``path`` None: kept in memory only."""

    def __init__(self, path: Path | None, scope: str) -> None:
        self.path = path
        self.scope = scope
        """Which relay and branch the ids belong to; a mark of another scope is ignored."""
        self.id: int | None = None
        self.at: datetime | None = None
        self._dirty = False
        self._writer: asyncio.Task[None] | None = None
        self._load()

    def covers(self, call: Call) -> bool:
        """Whether ``call`` was announced already (by this run or an earlier one)."""
        eid, moment = _event_id(call), call.moment()
        if self.id is None or self.at is None or eid is None or moment is None:
            return False
        return eid <= self.id and moment <= self.at

    def record(self, call: Call) -> None:
        """``call`` is being announced: move the mark and save it (in the background)."""
        eid, moment = _event_id(call), call.moment()
        if eid is None or moment is None:
            return
        self.id = eid if self.id is None else max(self.id, eid)
        self.at = moment if self.at is None else max(self.at, moment)
        if self.path is None:
            return
        self._dirty = True
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_while_dirty())

    async def flush(self) -> None:
        """Wait until the mark is on disk (at close)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._writer)

    # ----------------------------------------------------------------- the file

    def _load(self) -> None:
        if self.path is None:
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            scope, eid, at = data["scope"], data["id"], datetime.fromisoformat(data["at"])
            if not isinstance(scope, str) or not isinstance(eid, int) or at.tzinfo is None:
                raise ValueError("a malformed scope, id or time")
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s unreadable (%s): ignored; calls of the last minutes may be "
                        "announced again", self.path, exc.__class__.__name__)
            return
        if scope == self.scope:  # another relay's or branch's ids say nothing here
            self.id, self.at = eid, at

    async def _write_while_dirty(self) -> None:
        while self._dirty:
            self._dirty = False
            assert self.path is not None and self.id is not None and self.at is not None
            data = {"scope": self.scope, "id": self.id, "at": self.at.isoformat()}
            try:
                await asyncio.to_thread(_replace, self.path, data)
            except OSError as exc:
                log.error("could not save the last announced call in %s: %s (kept in "
                          "memory)", self.path, exc.__class__.__name__)


def _replace(path: Path, data: dict[str, object]) -> None:
    """Write ``data`` to ``path`` atomically and durably: readers and a power cut see the
    old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # the rename itself, on the folder
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
