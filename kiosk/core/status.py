"""The running kiosk's state in one JSON file, for monitoring and ``kiosk check``.

``<data_dir>/status.json`` is rewritten atomically every few seconds: ticket counts, API
and printer state, where numbers come from (``numbers``: ``local``, ``shared`` through the
hub, ``offline``), journal, clock and numbers faults, the last error, the kiosk's id and version.
No secret is ever in it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kiosk import __version__
from kiosk.core.runtime import Runtime
from kiosk.errors import StoreError
from kiosk.logs import redact_text
from kiosk.tasks import cancel

log = logging.getLogger(__name__)

STATUS_FILE = "status.json"


def snapshot(rt: Runtime) -> dict[str, Any]:
    """What the status file says now."""
    snap = rt.monitor.snapshot
    age = snap.age()
    printer = rt.printer.last_status
    calls = rt.calls
    return {
        **({"calls": {"connected": calls.connected, "error": calls.error or None,
                      "on_screen": len(calls.calls)}} if calls is not None else {}),
        "kiosk": rt.config.kiosk.id,
        "version": __version__,
        "pid": os.getpid(),
        "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "api": {"ok": snap.error is None and snap.fetched_at is not None,
                "queues": len(snap.queues),
                "data_age_s": round(age, 1) if age is not None else None,
                "error": str(snap.error) if snap.error else None},
        "printer": {"type": rt.config.printer.type, "state": printer.state.value,
                    "detail": printer.detail},
        "numbers": _numbers(rt),
        **({"reports": {"waiting": _outbox(rt), "refused": _outbox(rt, refused=True),
                        "hub_error": rt.reports.error or None}}
           if rt.reports is not None else {}),
        "tickets_today": rt.counts(),
        "faults": rt.faults(),
        "last_error": str(snap.error) if snap.error else (
            printer.detail if not printer.can_print else None),
    }


def _numbers(rt: Runtime) -> dict[str, Any]:
    """Where numbers come from (``local``, ``shared``, ``offline``) and, with a hub, why
    it gave none last time."""
    keeper = rt.leases
    return {"state": rt.numbers(),
            **({"hub_error": keeper.error or None, "blocks_leased": keeper.leases}
               if keeper is not None else {})}


def _outbox(rt: Runtime, refused: bool = False) -> int | None:
    """Reports waiting for the hub, or refused by it for good (None when the journal
    cannot say)."""
    try:
        return rt.journal.outbox_size(refused)
    except StoreError:  # the journal's fault is reported with the faults
        return None


def write(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically (readers never see half a file)."""
    tmp = path.with_suffix(".tmp")
    text = redact_text(json.dumps(data, ensure_ascii=False, indent=1))  # never a secret
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read(data_dir: Path) -> tuple[dict[str, Any] | None, float | None]:
    """The status file and its age in seconds (None, None if there is none)."""
    path = data_dir / STATUS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data, time.time() - path.stat().st_mtime
    except (OSError, ValueError):
        return None, None


class StatusWriter:
    """Rewrites the status file every ``period_s`` seconds on the app's loop."""

    def __init__(self, rt: Runtime, period_s: float = 5.0) -> None:
        self.rt = rt
        self.period_s = period_s
        self.path = rt.config.kiosk.data_dir / STATUS_FILE
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="status")

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(write, self.path, snapshot(self.rt))
            except OSError as exc:
                log.warning("status file %s not written: %s", self.path, exc)
            await asyncio.sleep(self.period_s)

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
