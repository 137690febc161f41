"""A calling screen restarted never announces again a call it already announced (the
relay replays the day's last calls to a fresh connection), but does announce the calls
it missed while it was down and every new one: the core's decision, over a real link,
against the loopback SSE stub, with the mark in a real file in the display's data dir."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiosk.calls.feed import Backoff, CallFeed
from kiosk.config import Config, load_config, load_display_token
from kiosk.core.server import serve_display_in_process

from .sse_stub import SseStub
from .test_callfeed import until as feed_until

BRANCH = "652720d479497a1b62df288b"
TOKEN = "tok-restart-12345"
MARK_FILE = "calls-announced.json"
"""Where a display keeps the newest call it announced (in kiosk.data_dir)."""
FAST = Backoff(initial_s=0.02, max_s=0.1, jitter=0.0, refused_s=0.1)


until = functools.partial(feed_until, timeout=15.0)  # a display core starts slower


def display_config(tmp_path: Path, url: str) -> Config:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    path = tmp_path / "display.yaml"
    path.write_text(f"branch: {BRANCH}\n"
                    f"kiosk: {{id: tv-1, mode: display, data_dir: {tmp_path / 'data'}}}\n"
                    f'calls: {{url: "{url}", token_file: {token}}}\n', encoding="utf-8")
    return load_config(path)


class Screen:
    """One run of a display's core (as `kiosk run` starts it), and what it announced."""

    def __init__(self) -> None:
        self.announced: list[str] = []
        self.shown: list[str] = []


@asynccontextmanager
async def display_core(cfg: Config) -> AsyncIterator[Screen]:
    screen = Screen()
    feed = CallFeed.from_config(cfg, load_display_token(cfg, "display.yaml"), backoff=FAST)
    core, served = await serve_display_in_process(cfg, feed)

    def on_calls(announce: list[object]) -> None:
        screen.announced.extend(c.ticket_id for c in announce)  # type: ignore[attr-defined]
        screen.shown[:] = [c.ticket_id for c in core.calls]
    core.subscribe_calls(on_calls)  # type: ignore[arg-type]
    try:
        await core.ready()
        yield screen
    finally:
        await core.aclose()
        await served
        await feed.aclose()


async def test_a_restarted_screen_announces_only_what_it_has_not(tmp_path: Path) -> None:
    async with SseStub(BRANCH, TOKEN) as stub:
        cfg = display_config(tmp_path, stub.url)
        async with display_core(cfg) as first:
            await until(lambda: stub.connected == 1)
            stub.push("A-001", "Cabina 1")
            stub.push("B-001", "Cabina 2")
            await until(lambda: first.announced == ["A-001", "B-001"])
        stub.push("A-002", "Cabina 3")  # while the screen restarts: missed, still recent
        async with display_core(cfg) as second:  # seconds later: the replay is all recent
            await until(lambda: second.shown == ["A-002", "B-001", "A-001"])
            assert second.announced == ["A-002"]
            stub.push("C-001", "Cabina 4")
            await until(lambda: second.announced == ["A-002", "C-001"])
    mark = json.loads((tmp_path / "data" / MARK_FILE).read_text(encoding="utf-8"))
    assert mark["id"] == 4 and TOKEN not in json.dumps(mark)

    async with SseStub(BRANCH, TOKEN) as new_relay:  # a relay rebuilt: its ids start at 1
        new_relay.push("A-001", "Cabina 1", at=datetime.now(UTC) - timedelta(minutes=30))
        cfg = display_config(tmp_path, new_relay.url)
        async with display_core(cfg) as third:
            await until(lambda: third.shown == ["A-001"])
            new_relay.push("D-001", "Cabina 5")  # id 2, below the mark, yet new
            await until(lambda: third.announced == ["D-001"])


@pytest.mark.parametrize("content", ["{not json", '{"id": "x"}', "[]", ""])
async def test_a_missing_or_broken_mark_is_no_obstacle(
        tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / MARK_FILE).write_text(content, encoding="utf-8")
    async with SseStub(BRANCH, TOKEN) as stub:
        cfg = display_config(tmp_path, stub.url)
        stub.push("A-001", "Cabina 1", at=datetime.now(UTC) - timedelta(minutes=30))
        async with display_core(cfg) as screen:
            await until(lambda: screen.shown == ["A-001"])
            stub.push("A-002", "Cabina 2")
            await until(lambda: screen.announced == ["A-002"])
    assert MARK_FILE in caplog.text
    mark = json.loads((tmp_path / "data" / MARK_FILE).read_text(encoding="utf-8"))
    assert mark["id"] == 2  # rewritten whole
