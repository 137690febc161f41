"""The core of a calling screen (``kiosk.mode: display``), and the kiosk's call journal.

A display's core holds the display token and the relay's stream (:class:`CallFeed`) and
sends the UI the calls over the same link as a kiosk's core (see
:mod:`kiosk.service.link`); it has no API key, journal, printer or queues. A kiosk's core
with a ``calls`` section runs the same feed for its "now calling" strip, and
:class:`CallRecorder` writes into its journal when each of its own tickets was called.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kiosk import __version__
from kiosk.service.callfeed import CallFeed, call_wait_summary, probe_relay, relay_summary
from kiosk.service.calling import Call
from kiosk.service.link import CoreServer

if TYPE_CHECKING:
    from pydantic import SecretStr

    from kiosk.config import Config
    from kiosk.service.link import RemoteCore
    from kiosk.service.runtime import Runtime
    from kiosk.store import Journal

log = logging.getLogger(__name__)


async def check_calls(config: Config, config_file: str,
                      line: Callable[[bool, str, str], None],
                      journal: Journal | None = None) -> None:
    """``kiosk check``'s lines for the calls: the token file, the relay, the token
    accepted for this branch; with a kiosk's ``journal``, today's time from ticket to
    call."""
    from kiosk.config import load_display_token
    from kiosk.errors import ConfigError
    assert config.calls is not None
    try:
        token = load_display_token(config, config_file)
    except ConfigError as exc:
        line(False, "token", str(exc))
        return
    for ok, what, detail in await probe_relay(config.calls.url, config.branch, token):
        line(ok, what, detail)
    if journal is not None:
        waits = await asyncio.to_thread(journal.call_waits)
        line(True, "calls", f"today: {call_wait_summary(waits)}")


class CallRecorder:
    """Journals each call of one of this kiosk's tickets (off the event loop)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._tasks: set[asyncio.Task[Any]] = set()

    def __call__(self, feed: CallFeed, received: list[Call]) -> None:
        for call in received:
            task = asyncio.ensure_future(self._record(call))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _record(self, call: Call) -> None:
        moment = call.moment()
        if moment is None:
            return
        try:
            ours = await asyncio.to_thread(self.journal.record_call, call.ticket_id, call.poc,
                                           moment)
        except Exception:  # a full disk must not stop the calls on screen
            log.exception("the call of %s could not be journalled", call.ticket_id)
            return
        if ours:
            log.info("ticket %s called to %s", call.ticket_id, call.poc)

    async def drain(self) -> None:
        """Wait for the calls being written."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)


def open_call_feed(server: CoreServer, rt: Runtime, token: SecretStr,
                   **kw: Any) -> CallFeed:
    """A kiosk's feed of the relay's calls: sent to its UI (the "now calling" strip), and
    its own tickets' calls journalled; started here."""
    config = rt.config
    assert config.calls is not None
    feed = CallFeed.from_config(config, token, **kw)
    server.watch_calls(feed, config.calls.keep)
    feed.subscribe(CallRecorder(rt.journal))
    rt.calls = feed
    feed.start()
    return feed


class DisplayServer(CoreServer):
    """Serves a calling screen's UI: the calls, and the little a display is asked."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.feed: CallFeed | None = None
        self.display_config: Config | None = None

    async def serve_display(self, config: Config, feed: CallFeed, note: str = "") -> None:
        """Answer the UI until it closes the link; the feed runs meanwhile."""
        from kiosk.service.staff import StaffAccess
        self.display_config, self.feed = config, feed
        self._staff = StaffAccess(config.kiosk.data_dir, idle_s=config.ui.idle_timeout_s)
        self.hello(config, note)
        assert config.calls is not None
        self.watch_calls(feed, config.calls.keep)
        feed.start()
        try:
            await self._answer_until_closed()
        finally:
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=5)
            self._writer.close()

    async def _do(self, rid: int, op: str, args: dict[str, Any]) -> Any:
        config, feed = self.display_config, self.feed
        assert config is not None and feed is not None
        if op == "branch_label":
            return config.ticket.branch_label or ""
        if op in ("poll_soon", "warm_up"):
            if op == "poll_soon" and not feed.connected:
                feed.reconnect_now()
            return None
        if op == "check_pin":  # the kiosk's staff session and PIN lockout, the same rules
            assert self._staff is not None
            stored = config.ui.admin_pin_hash
            answer = await self._staff.check_pin(
                str(args["pin"]), stored.get_secret_value() if stored else None)
            return {"ok": answer.ok, "locked_s": answer.locked_s}
        if op == "admin_close":
            assert self._staff is not None
            self._staff.close()
            return None
        if op == "admin":
            assert self._staff is not None
            self._staff.require_session()
            note = ""
            if args.get("action") == "reload":
                note = "A display reads its config at start: restart it to apply changes"
            elif args.get("action") in ("test_print", "reprint_last"):
                note = "A display has no printer"
            return note, (f"Display {config.kiosk.id} · kiosk {__version__}\n"
                          f"{relay_summary(feed)}")
        if op == "reload":
            return "A display reads its config at start: restart it to apply changes"
        raise ValueError(f"unknown request {op!r}")


async def serve_display_in_process(config: Config, feed: CallFeed
                                   ) -> tuple[RemoteCore, asyncio.Task[None]]:
    """A calling screen's core in this process, over a real link (tests): the same
    messages as ``kiosk core`` in display mode sends."""
    import socket

    from kiosk.service.link import RemoteCore
    ui_end, core_end = socket.socketpair()
    server = await DisplayServer.connect(core_end)
    assert isinstance(server, DisplayServer)
    task = asyncio.ensure_future(server.serve_display(config, feed))
    return await RemoteCore.connect(ui_end), task
