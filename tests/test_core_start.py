"""The core's start-up: the journal opens off the event loop."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from kiosk.api import QmsClient
from kiosk.core import main as core
from kiosk.core import server
from kiosk.store import journal as journal_module
from kiosk.tickets import queues

from .conftest import KEY, make_config


async def test_the_journal_is_checked_off_the_event_loop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening the journal runs SQLite's integrity check over the whole file (~0.6 s for
    50 MB): the core does it on a thread, so the link to the UI and the queue poll are
    served meanwhile. A real journal is opened (and recovered) by the real runtime."""
    config = make_config(tmp_path)
    loop_thread = threading.current_thread()
    opened_on: list[threading.Thread] = []
    served: list[Any] = []
    original = journal_module.Journal.__init__

    def spy(self: journal_module.Journal, *a: Any, **kw: Any) -> None:
        opened_on.append(threading.current_thread())
        original(self, *a, **kw)

    class Monitor:
        api = QmsClient(config.api.base_url, KEY)

        async def polled(self) -> None:
            return None

        async def stop(self) -> None:
            return None

    class Server:
        @classmethod
        async def connect(cls, sock: object, greeted: bool) -> Server:
            return cls()

        def watch(self, monitor: object, config: object) -> None:
            pass

        async def serve(self, rt: Any, config_path: str) -> None:
            served.append(rt)

    monkeypatch.setattr(journal_module.Journal, "__init__", spy)
    monkeypatch.setattr(queues, "open_monitor", lambda *a, **kw: Monitor())
    monkeypatch.setattr(server, "KioskServer", Server)
    await core._serve(None, config, KEY, "kiosk.yaml")  # type: ignore[arg-type]
    assert opened_on and loop_thread not in opened_on
    assert served and served[0].journal.owner is False  # closed again by rt.aclose()
    assert served[0].journal.path.exists()
