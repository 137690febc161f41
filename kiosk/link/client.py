"""The UI's handle on the core: :class:`RemoteCore`, over the link.

``kiosk run`` and ``kiosk demo`` start the core (``kiosk core``, :mod:`kiosk.link.spawn`)
first thing, then load Kivy while the core loads its own libraries (pydantic, httpx,
SQLite, the printer), reads the config and asks for the queues: on a two-core machine
both start-ups run side by side, and the UI process never loads the core's libraries.
The core owns everything that must last or stay secret (the journal, the printer, the API
key, the admin PIN hash); the UI shows what it is told and asks for tickets.

The messages are :mod:`kiosk.link.protocol`'s. Every request has a deadline
(``tap_deadline_s`` in the hello's settings, from :mod:`kiosk.deadlines`), after which
the UI stops waiting (:class:`CoreTimeout`) and tells the customer what to do. When the
UI closes its end, the core lets a ticket in flight finish and exits; when the core ends
on its own, :attr:`RemoteCore.closed` resolves (``kiosk run`` then exits 1, and systemd
starts the kiosk again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from kiosk.deadlines import DEFAULT
from kiosk.errors import KioskError
from kiosk.link.codec import event_from_json, request_line, result_from_json, snapshot_of
from kiosk.link.protocol import (
    LINE_LIMIT,
    Admin,
    AdminClose,
    BadMessage,
    BranchLabel,
    Calls,
    CheckPin,
    Event,
    Fatal,
    Forms,
    GetForm,
    Hello,
    Issue,
    Ping,
    PollSoon,
    Printed,
    Queues,
    Reload,
    Request,
    Settings,
    SubmitForm,
    UiSettings,
    WarmUp,
)
from kiosk.view.calling import Call
from kiosk.view.devicestate import DeviceState
from kiosk.view.forms import FormAnswer, FormDef, problems_from_json
from kiosk.view.outcomes import IssueResult, QueueSnapshot, QueueView

if TYPE_CHECKING:
    import subprocess

log = logging.getLogger(__name__)

STOP_WAIT_S = DEFAULT.stop_wait_s
"""How long the UI waits for the core to finish a ticket in flight and exit, when the
core did not say (its hello carries the figure for its config: see kiosk.deadlines)."""


class CoreUnavailable(KioskError):
    """The core process is gone, or never started."""


class CoreTimeout(CoreUnavailable):
    """The core did not answer in time (it may still be working on the request)."""


class CoreFailed(CoreUnavailable):
    """The core stopped at start-up (a config error, usually: it said why on stderr)."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"the kiosk core stopped at start-up (exit status {status})")


# --------------------------------------------------------------------------- the UI's side


class RemoteCore:
    """The core as the UI sees it, over the link. Make it with :meth:`connect`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._printing: dict[int, asyncio.Future[tuple[bool, str]]] = {}
        self._listeners: list[Callable[[QueueSnapshot[Any]], None]] = []
        self._views: dict[str, list[QueueView]] = {}
        self._priority_views: dict[str, list[QueueView]] = {}
        self._hello: asyncio.Future[UiSettings] = asyncio.get_running_loop().create_future()
        self._polled = asyncio.Event()
        self.settings: UiSettings | None = None
        self.note = ""
        """A line for the person starting it (the demo says where its tickets go)."""
        self.snapshot: QueueSnapshot[Any] = QueueSnapshot()
        self.views_at = time.monotonic()
        """When the last views arrived (their ``age_s`` grows from then on)."""
        self.forms: dict[str, FormDef | None] = {}
        """The forms the core knows (None: the queue needs none); sent ahead of time."""
        self._form_listeners: list[Callable[[dict[str, FormDef | None]], None]] = []
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Resolves when the core's end of the link closes."""
        self.calls: list[Call] = []
        """The relay's last calls, newest first (display mode, ui.calls)."""
        self.calls_connected = False
        """Whether the core's stream from the relay is open."""
        self._call_listeners: list[Callable[[list[Call]], None]] = []
        self._task = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, sock: socket.socket) -> RemoteCore:
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=LINE_LIMIT)
        return cls(reader, writer)

    # ----------------------------------------------------------------- state

    async def ready(self) -> UiSettings:
        """The settings, once the core has loaded its config; CoreFailed if it could not."""
        return await asyncio.shield(self._hello)

    async def polled(self) -> None:
        """Return once the core has sent the queues (or a failed poll) the first time."""
        await self._polled.wait()

    def views(self, lang: str, *, priority: bool = False) -> list[QueueView]:
        """The queues as the cards show them in ``lang``, from the last poll; ``priority``:
        as a priority customer sees them (the regular ones where the core sent none)."""
        if priority and lang in self._priority_views:
            return list(self._priority_views[lang])
        return list(self._views.get(lang, ()))

    def subscribe(self, listener: Callable[[QueueSnapshot[Any]], None]) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[QueueSnapshot[Any]], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def subscribe_calls(self, listener: Callable[[list[Call]], None]) -> None:
        """``listener(announce)`` after every calls event (``self.calls`` is updated)."""
        self._call_listeners.append(listener)

    def unsubscribe_calls(self, listener: Callable[[list[Call]], None]) -> None:
        if listener in self._call_listeners:
            self._call_listeners.remove(listener)

    # ----------------------------------------------------------------- requests

    def poll_soon(self) -> None:
        """Ask the core to poll the queues now (answer not awaited)."""
        self._fire(PollSoon())

    def warm_up(self) -> None:
        """Ask the core to load what the first ticket needs (answer not awaited)."""
        self._fire(WarmUp())

    async def branch_label(self) -> str:
        return str(await self.call(BranchLabel()))

    async def issue(self, queue_id: str, *, language: str,
                    integration_data: dict[str, Any] | None = None,
                    priority: str | None = None) -> IssueResult:
        """Ask for a ticket (``priority``: a priority ticket, for this reason id);
        ``printing`` on the result resolves when the paper is out."""
        answer = await self._ticket(Issue(queue_id, language, integration_data, priority))
        assert isinstance(answer, IssueResult)
        return answer

    def subscribe_forms(self, listener: Callable[[dict[str, FormDef | None]], None]) -> None:
        self._form_listeners.append(listener)

    async def form(self, queue_id: str) -> FormDef | None:
        """The queue's form (asked of the API now if the core does not know it)."""
        data = await self.call(GetForm(queue_id))
        return FormDef.from_json(data["form"]) if data["form"] else None

    async def submit_form(self, queue_id: str, values: dict[str, Any], *, language: str,
                          integration_data: dict[str, Any] | None = None,
                          priority: str | None = None) -> IssueResult | FormAnswer:
        """Send the customer's form, then get the ticket; or the form back, with the
        problems to show next to its fields."""
        return await self._ticket(SubmitForm(queue_id, language, values, integration_data,
                                             priority))

    async def check_pin(self, pin: str) -> tuple[bool, float]:
        """Whether the PIN opened the staff session, and how long the pad is locked."""
        answer = await self.call(CheckPin(pin))
        return bool(answer["ok"]), float(answer["locked_s"])

    def admin_close(self) -> None:
        """Close the staff session (answer not awaited)."""
        self._fire(AdminClose())

    async def admin(self, action: str, lang: str) -> tuple[str, DeviceState]:
        """Run a staff action (test_print, reprint_last, reload, refresh): (note, the
        device's state as the core composed it after the action)."""
        note, state = await self.call(Admin(action, lang))
        if not isinstance(state, dict):
            raise CoreUnavailable("the core's answer to a staff action is not a state")
        return str(note), DeviceState.from_json(state)

    async def reload(self) -> str:
        """Reload the config file (SIGHUP); says what happened."""
        return str(await self.call(Reload()))

    async def aclose(self) -> None:
        """Close the link: the core finishes what it is doing and exits."""
        with contextlib.suppress(OSError):
            self._writer.close()
            await self._writer.wait_closed()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    # ----------------------------------------------------------------- plumbing

    async def _ticket(self, request: Issue | SubmitForm) -> IssueResult | FormAnswer:
        """An :class:`Issue` or :class:`SubmitForm` answer: the result, its ``printing``
        future resolved by the :class:`Printed` event; or the form back."""
        rid, answer = self._send(request)
        printing: asyncio.Future[tuple[bool, str]] = \
            asyncio.get_running_loop().create_future()
        self._printing[rid] = printing
        try:
            data = await self._within(rid, request.op, answer)
        except BaseException:
            self._printing.pop(rid, None)
            raise
        if "problems" in data:
            self._printing.pop(rid, None)
            return FormAnswer(FormDef.from_json(data["form"]),
                              problems_from_json(data["problems"]), bool(data["sent"]))
        if data["printing"]:
            return result_from_json(data["result"], printing)
        self._printing.pop(rid, None)
        return result_from_json(data["result"], None)

    def _send(self, request: Request) -> tuple[int, asyncio.Future[Any]]:
        if self.closed.done():
            raise CoreUnavailable("the kiosk core is not running")
        self._next_id += 1
        rid = self._next_id
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = answer
        self._writer.write(request_line(rid, request))
        return rid, answer

    async def call(self, request: Request, deadline_s: float | None = None) -> Any:
        """Send ``request`` and return the core's answer (its JSON ``result``);
        :class:`CoreUnavailable` for its ``error``, :class:`CoreTimeout` after the
        deadline."""
        rid, answer = self._send(request)
        return await self._within(rid, request.op, answer, deadline_s)

    def deadline_s(self) -> float:
        """How long a request waits for the core's answer (from the core's hello)."""
        return self.settings.tap_deadline_s if self.settings else DEFAULT.ui_tap_s

    async def _within(self, rid: int, op: str, answer: asyncio.Future[Any],
                      deadline_s: float | None = None) -> Any:
        """The answer, or :class:`CoreTimeout` once the deadline passes (a late answer is
        then dropped)."""
        seconds = self.deadline_s() if deadline_s is None else deadline_s
        try:
            async with asyncio.timeout(seconds):
                return await answer
        except TimeoutError:
            self._pending.pop(rid, None)
            log.error("the kiosk core did not answer %s within %.1f s", op, seconds)
            raise CoreTimeout(f"no answer to {op} within {seconds:.1f} s") from None

    async def ping(self, deadline_s: float = 5.0) -> bool:
        """Whether the core answers (within ``deadline_s``): the watchdog's question."""
        try:
            return bool(await self.call(Ping(), deadline_s=deadline_s) == "pong")
        except CoreUnavailable:
            return False

    def _fire(self, request: Request) -> None:
        with contextlib.suppress(CoreUnavailable):
            _, answer = self._send(request)
            answer.add_done_callback(_retrieve)

    async def _read(self) -> None:
        try:
            while line := await self._reader.readline():
                msg = json.loads(line)
                if "event" not in msg:
                    self._on_answer(msg)
                    continue
                try:
                    event = event_from_json(msg)
                except BadMessage as exc:  # never ends the link: the rest still works
                    log.error("a message from the kiosk core was not understood: %s", exc)
                    continue
                self._on_event(event)
        except (OSError, ValueError, KeyError, TypeError) as exc:  # a message we cannot read
            log.error("the link to the kiosk core broke: %r", exc)
        finally:
            self._gone()

    def _on_answer(self, msg: dict[str, Any]) -> None:
        fut = self._pending.pop(msg["id"], None)
        if fut is not None and not fut.done():
            if "error" in msg:
                fut.set_exception(CoreUnavailable(msg["error"]))
            else:
                fut.set_result(msg["result"])

    def _on_event(self, event: Event) -> None:
        handler = self._event_handlers.get(type(event))
        if handler is not None:
            handler(self, event)

    def _on_queues(self, event: Queues) -> None:
        self._views = event.views
        self._priority_views = event.priority_views
        self.views_at = time.monotonic()
        self.snapshot = snapshot_of(event, self.views_at)
        self._polled.set()
        for listener in list(self._listeners):
            listener(self.snapshot)

    def _on_forms(self, event: Forms) -> None:
        self.forms = event.forms
        for form_listener in list(self._form_listeners):
            form_listener(self.forms)

    def _on_printed(self, event: Printed) -> None:
        printing = self._printing.pop(event.for_id, None)
        if printing is not None and not printing.done():
            printing.set_result((event.printed, event.error))

    def _on_calls(self, event: Calls) -> None:
        self.calls = event.calls
        self.calls_connected = event.connected
        for call_listener in list(self._call_listeners):
            call_listener(event.announce)

    def _on_settings(self, event: Hello | Settings) -> None:
        self.settings = event.settings
        if isinstance(event, Hello):
            self.note = event.note
        if not self._hello.done():
            self._hello.set_result(self.settings)

    def _on_fatal(self, event: Fatal) -> None:
        if not self._hello.done():
            self._hello.set_exception(CoreFailed(event.status))

    _event_handlers: ClassVar[dict[type[Event], Callable[[RemoteCore, Any], None]]] = {
        Queues: _on_queues, Forms: _on_forms, Printed: _on_printed, Calls: _on_calls,
        Hello: _on_settings, Settings: _on_settings, Fatal: _on_fatal}
    """What each event does to the UI's copy of the core's state."""

    def _gone(self) -> None:
        gone = CoreUnavailable("the kiosk core stopped")
        if not self._hello.done():
            self._hello.set_exception(CoreFailed(1))
        for fut in (*self._pending.values(), *self._printing.values()):
            if not fut.done():
                fut.set_exception(gone)
                # whoever awaits it still gets the error; one nobody awaits any more (a
                # ticket's print answer after the screen moved on) is not logged at exit
                fut.add_done_callback(_retrieve)
        self._pending.clear()
        self._printing.clear()
        if not self.closed.done():
            self.closed.set_result(None)


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Mark a future's error as seen (asyncio logs errors nobody retrieved)."""
    if not fut.cancelled():
        fut.exception()


class CoreProcess:
    """The core process :func:`kiosk.link.spawn.start_core` started, and its link."""

    def __init__(self, proc: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self.proc = proc
        self._sock = sock

    async def connect(self) -> RemoteCore:
        return await RemoteCore.connect(self._sock)

    async def wait(self, timeout_s: float = STOP_WAIT_S) -> int:
        """The core's exit status once the link is closed (killed after ``timeout_s``)."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.proc.wait), timeout_s)
        except TimeoutError:
            log.error("the kiosk core did not stop in %.0f s: killed", timeout_s)
            self.proc.kill()
            return await asyncio.to_thread(self.proc.wait)


