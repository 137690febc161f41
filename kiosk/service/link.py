"""The kiosk's core in a process of its own, and the UI's handle on it.

``kiosk run`` and ``kiosk demo`` start the core (``kiosk core``) first thing, then load
Kivy while the core loads its own libraries (pydantic, httpx, SQLite, the printer), reads
the config and asks for the queues: on a two-core machine both start-ups run side by
side, and the UI process never loads the core's libraries. The core owns everything that
must last or stay secret (the journal, the printer, the API key, the admin PIN hash); the
UI shows what it is told and asks for tickets.

They talk over a socketpair, one JSON object per line::

    core -> UI  {"event": "hello", "settings": {...}, "note": "..."}   the config is loaded
                {"event": "fatal", "status": 2}          it is not (the core says why on
                                                         stderr and exits with that status)
                {"event": "queues", "snapshot": {...}, "views": {"es": [...], ...}}
                {"event": "settings", "settings": {...}}                after a reload
                {"event": "printed", "for": 7, "printed": true, "error": ""}
                {"event": "calls", "calls": [{...}, ...], "connected": true,
                 "announce": [{...}]}       the relay's last calls, newest first (as
                                            kiosk.service.calling.call_to_json), after every
                                            change; "announce": the calls just received
                                            that are new enough to chime and speak;
                                            "connected": the stream is open (display mode,
                                            and a kiosk with ui.calls)
                {"event": "forms", "forms": {"<queue id>": {FormDef} | null, ...}}
                                 which queues need a form, and their fields (no values);
                                 sent whenever that changes (kiosk.service.formflow)
                {"id": 7, "result": ...}  or  {"id": 7, "error": "..."}
    UI -> core  {"id": 7, "op": "issue", "args": {...}}
                         only a queue this kiosk offers, a language of ours; the UI's
                         integrationData cannot set source, kiosk, day or lang
                         (kiosk.service.staff)
                {"id": 10, "op": "check_pin", "args": {"pin"}} -> {"ok", "locked_s"}
                         a correct PIN opens the staff session; 5 wrong ones lock the
                         pad, with a growing wait, kept across restarts
                {"id": 11, "op": "admin", "args": {"action", "lang"}} -> [note, info]
                         refused without a staff session
                {"id": 12, "op": "admin_close"}   staff left the staff screen
                {"id": 8, "op": "form", "args": {"queue_id"}}
                         -> {"form": {FormDef} | null}   (asked now if not known: a 428)
                {"id": 9, "op": "submit_form", "args": {"queue_id", "language",
                          "values": {"<field id>": "text" | ["option", ...]},
                          "integration_data"}}
                         -> {"result": {...}, "printing": bool}   a ticket (or not), or
                         -> {"form": {FormDef}, "problems": {"<field id>": {Problem}},
                             "sent": bool}                   back to the form
                {"id": 13, "op": "ping"} -> "pong"   the watchdog's question: answered
                         at once by the core's loop (kiosk.service.watchdog)

Bounds (issue 9, items 5 and 6): every request of the UI has a deadline
(``tap_deadline_s`` in the hello's settings, from :mod:`kiosk.deadlines`), after which
the UI stops waiting (:class:`CoreTimeout`) and tells the customer what to do; all the
API calls the core makes for one request share one budget; the queues message carries
at most :data:`MAX_CARDS` queues a language (names capped at the API's edge), and a
message over :data:`LINE_LIMIT` is never sent (an answer becomes an error), so the link
never dies of a long message. No message carries a secret (scrubbed before sending).

What a customer types crosses the link only inside ``submit_form``'s args, and is never
logged on either side (a failed request logs its op and error, never its args).

When the UI closes its end, the core lets a ticket in flight finish and exits; when the
core ends on its own, the UI's :attr:`RemoteCore.closed` resolves (``kiosk run`` then
exits 1, and systemd starts the kiosk again). The core process itself is
:mod:`kiosk.service.core`.

This module stays light (no pydantic, httpx or SQLite at import): the UI process uses
:class:`RemoteCore` and :class:`CoreProcess` (started by :mod:`kiosk.service.spawn` before
anything else loads); the core process uses :class:`CoreServer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from kiosk.deadlines import DEFAULT
from kiosk.errors import KioskError
from kiosk.i18n import LANGUAGES
from kiosk.logs import redact_text
from kiosk.service.calling import Call, call_from_json, call_to_json
from kiosk.service.forms import FormAnswer, FormDef, problems_from_json, problems_to_json
from kiosk.service.outcomes import IssueResult, QueueSnapshot, QueueView
from kiosk.service.staff import NotAllowed, StaffAccess, check_request
from kiosk.service.wire import (
    UiSettings,
    deadlines_of,
    encode,
    hello_line,
    result_from_json,
    result_to_json,
    snapshot_from_json,
    snapshot_to_json,
    view_from_json,
)

if TYPE_CHECKING:
    import subprocess

    from kiosk.config import Config
    from kiosk.service.callfeed import CallFeed
    from kiosk.service.queues import QueueMonitor
    from kiosk.service.runtime import Runtime

log = logging.getLogger(__name__)

LINE_LIMIT = 1 << 20
"""Longest message accepted (bytes); a ticket's answer is well under 4 KB."""
MAX_CARDS = 60
"""Most queues sent to the UI per language (a screen shows far fewer; a branch with more
needs ``queues:`` in the config). Names are capped at the API's edge, so the queues
message stays far below :data:`LINE_LIMIT`."""
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
        self._listeners: list[Callable[[QueueSnapshot], None]] = []
        self._views: dict[str, list[QueueView]] = {}
        self._hello: asyncio.Future[UiSettings] = asyncio.get_running_loop().create_future()
        self._polled = asyncio.Event()
        self.settings: UiSettings | None = None
        self.note = ""
        """A line for the person starting it (the demo says where its tickets go)."""
        self.snapshot = QueueSnapshot()
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

    def views(self, lang: str) -> list[QueueView]:
        """The queues as the cards show them in ``lang``, from the last poll."""
        return list(self._views.get(lang, ()))

    def subscribe(self, listener: Callable[[QueueSnapshot], None]) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[QueueSnapshot], None]) -> None:
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
        self._fire("poll_soon")

    def warm_up(self) -> None:
        """Ask the core to load what the first ticket needs (answer not awaited)."""
        self._fire("warm_up")

    async def branch_label(self) -> str:
        label: str = await self._call("branch_label")
        return label

    async def issue(self, queue_id: str, *, language: str,
                    integration_data: dict[str, Any] | None = None) -> IssueResult:
        """Ask for a ticket; ``printing`` on the result resolves when the paper is out."""
        rid, answer = self._request("issue", {"queue_id": queue_id, "language": language,
                                              "integration_data": integration_data})
        printing: asyncio.Future[tuple[bool, str]] = \
            asyncio.get_running_loop().create_future()
        self._printing[rid] = printing
        try:
            data = await self._within(rid, "issue", answer)
        except BaseException:
            self._printing.pop(rid, None)
            raise
        if data["printing"]:
            return result_from_json(data["result"], printing)
        self._printing.pop(rid, None)
        return result_from_json(data["result"], None)

    def subscribe_forms(self, listener: Callable[[dict[str, FormDef | None]], None]) -> None:
        self._form_listeners.append(listener)

    async def form(self, queue_id: str) -> FormDef | None:
        """The queue's form (asked of the API now if the core does not know it)."""
        data = await self._call("form", {"queue_id": queue_id})
        return FormDef.from_json(data["form"]) if data["form"] else None

    async def submit_form(self, queue_id: str, values: dict[str, Any], *, language: str,
                          integration_data: dict[str, Any] | None = None,
                          ) -> IssueResult | FormAnswer:
        """Send the customer's form, then get the ticket; or the form back, with the
        problems to show next to its fields."""
        rid, answer = self._request("submit_form", {
            "queue_id": queue_id, "values": values, "language": language,
            "integration_data": integration_data})
        printing: asyncio.Future[tuple[bool, str]] = \
            asyncio.get_running_loop().create_future()
        self._printing[rid] = printing
        try:
            data = await self._within(rid, "submit_form", answer)
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

    async def check_pin(self, pin: str) -> tuple[bool, float]:
        """Whether the PIN opened the staff session, and how long the pad is locked."""
        answer = await self._call("check_pin", {"pin": pin})
        return bool(answer["ok"]), float(answer["locked_s"])

    def admin_close(self) -> None:
        """Close the staff session (answer not awaited)."""
        self._fire("admin_close")

    async def admin(self, action: str, lang: str) -> tuple[str, str]:
        """Run a staff action (test_print, reprint_last, reload, refresh): (note, info)."""
        note, info = await self._call("admin", {"action": action, "lang": lang})
        return str(note), str(info)

    async def reload(self) -> str:
        """Reload the config file (SIGHUP); says what happened."""
        message: str = await self._call("reload")
        return message

    async def aclose(self) -> None:
        """Close the link: the core finishes what it is doing and exits."""
        with contextlib.suppress(OSError):
            self._writer.close()
            await self._writer.wait_closed()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    # ----------------------------------------------------------------- plumbing

    def _request(self, op: str, args: dict[str, Any] | None = None
                 ) -> tuple[int, asyncio.Future[Any]]:
        if self.closed.done():
            raise CoreUnavailable("the kiosk core is not running")
        self._next_id += 1
        rid = self._next_id
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = answer
        self._writer.write(encode({"id": rid, "op": op, "args": args or {}}))
        return rid, answer

    async def _call(self, op: str, args: dict[str, Any] | None = None,
                    deadline_s: float | None = None) -> Any:
        rid, answer = self._request(op, args)
        return await self._within(rid, op, answer, deadline_s)

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
            return bool(await self._call("ping", deadline_s=deadline_s) == "pong")
        except CoreUnavailable:
            return False

    def _fire(self, op: str) -> None:
        with contextlib.suppress(CoreUnavailable):
            _, answer = self._request(op)
            answer.add_done_callback(_retrieve)

    async def _read(self) -> None:
        try:
            while line := await self._reader.readline():
                self._dispatch(json.loads(line))
        except (OSError, ValueError, KeyError, TypeError) as exc:  # a message we cannot read
            log.error("the link to the kiosk core broke: %r", exc)
        finally:
            self._gone()

    def _dispatch(self, msg: dict[str, Any]) -> None:
        event = msg.get("event")
        if event is None:
            fut = self._pending.pop(msg["id"], None)
            if fut is not None and not fut.done():
                if "error" in msg:
                    fut.set_exception(CoreUnavailable(msg["error"]))
                else:
                    fut.set_result(msg["result"])
        elif event == "queues":
            self._views = {lang: [view_from_json(v) for v in views]
                           for lang, views in msg["views"].items()}
            self.views_at = time.monotonic()
            self.snapshot = snapshot_from_json(msg["snapshot"], self.views_at)
            self._polled.set()
            for listener in list(self._listeners):
                listener(self.snapshot)
        elif event == "forms":
            self.forms = {qid: FormDef.from_json(f) if f else None
                          for qid, f in msg["forms"].items()}
            for form_listener in list(self._form_listeners):
                form_listener(self.forms)
        elif event == "printed":
            printing = self._printing.pop(msg["for"], None)
            if printing is not None and not printing.done():
                printing.set_result((bool(msg["printed"]), str(msg["error"])))
        elif event == "calls":
            self.calls = [call_from_json(c) for c in msg["calls"]]
            self.calls_connected = bool(msg["connected"])
            announce = [call_from_json(c) for c in msg["announce"]]
            for call_listener in list(self._call_listeners):
                call_listener(announce)
        elif event in ("hello", "settings"):
            self.settings = UiSettings.from_json(msg["settings"])
            self.note = msg.get("note", self.note)
            if not self._hello.done():
                self._hello.set_result(self.settings)
        elif event == "fatal" and not self._hello.done():
            self._hello.set_exception(CoreFailed(int(msg["status"])))

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
    """The core process :func:`kiosk.service.spawn.start_core` started, and its link."""

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


# --------------------------------------------------------------------------- the core's side


class CoreServer:
    """Serves one UI over the link, from a :class:`~kiosk.service.runtime.Runtime`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 greeted: bool = False) -> None:
        self._reader = reader
        self._writer = writer
        self._tasks: set[asyncio.Task[None]] = set()
        self._rt: Runtime | None = None
        self._config: Config | None = None
        self._monitor: QueueMonitor | None = None
        self._config_path: str | None = None
        self._hello_sent = greeted
        self._warned_cards = False
        self._staff: StaffAccess | None = None

    @classmethod
    async def connect(cls, sock: socket.socket, *, greeted: bool = False) -> CoreServer:
        """Serve the UI on ``sock``; ``greeted``: :func:`hello_line` was sent already."""
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=LINE_LIMIT)
        return cls(reader, writer, greeted=greeted)

    def _send(self, message: dict[str, Any]) -> None:
        """Send one message; one too long for the link is never sent (the UI would drop
        the link): an answer becomes an error answer, an event is left out (logged)."""
        if self._writer.is_closing():
            return
        line = encode(message)
        text = line.decode()
        if (clean := redact_text(text)) != text:  # defence in depth
            log.error("a %s message carried a secret: redacted",
                      message.get("event") or "answer")
            line = clean.encode()
        if len(line) > LINE_LIMIT:
            what = message.get("event") or f"answer {message.get('id')}"
            log.error("a %s message of %d bytes is over the link's limit: not sent", what,
                      len(line))
            if "id" not in message:
                return
            line = encode({"id": message["id"], "error": "answer too long for the link"})
        self._writer.write(line)

    def hello(self, config: Config, note: str = "") -> None:
        """Tell the UI the config is good (once)."""
        if not self._hello_sent:
            self._hello_sent = True
            self._writer.write(hello_line(config, note))

    def watch(self, monitor: QueueMonitor, config: Config) -> None:
        """Start polling and send the queues to the UI after every poll: called as soon
        as the API client exists, before the rest of the core opens, because the UI's
        first frame waits for the queues."""
        self._monitor, self._config = monitor, config
        monitor.subscribe(self._on_snapshot)
        monitor.start()

    def watch_calls(self, feed: CallFeed, keep: int) -> None:
        """Send the UI the relay's last ``keep`` calls after every change of ``feed``."""
        def changed(feed: CallFeed, received: list[Call]) -> None:
            self._send({"event": "calls", "calls": [call_to_json(c) for c in feed.calls[:keep]],
                        "connected": feed.connected,
                        "announce": [call_to_json(c) for c in received if feed.fresh(c)]})
        feed.subscribe(changed)
        changed(feed, [])

    async def serve(self, rt: Runtime, *, config_path: str | None = None,
                    note: str = "") -> None:
        """Answer the UI until it closes the link; the queues are polled meanwhile."""
        from kiosk.service.status import StatusWriter
        self._rt = rt
        self._config_path = config_path
        self._staff = StaffAccess(rt.config.kiosk.data_dir, idle_s=rt.config.ui.idle_timeout_s)
        self.hello(rt.config, note)
        if self._monitor is not rt.monitor:
            self.watch(rt.monitor, rt.config)
        status = StatusWriter(rt)
        status.start()
        if rt.forms is not None:  # which queues need a form, learned ahead of time
            rt.forms.subscribe(self._on_forms)
            rt.forms.start()
        try:
            await self._answer_until_closed()
        finally:
            rt.monitor.unsubscribe(self._on_snapshot)
            if rt.forms is not None:
                rt.forms.unsubscribe(self._on_forms)
            await status.stop()
            if self._tasks:  # a ticket in flight is finished (and journalled), not dropped
                await asyncio.wait(self._tasks, timeout=deadlines_of(rt.config).finish_s)
            self._writer.close()

    async def _answer_until_closed(self) -> None:
        """Answer the UI's requests, each in a task of its own, until the UI closes the
        link; a link that breaks or a message that cannot be read ends it, logged."""
        try:
            while line := await self._reader.readline():
                task = asyncio.ensure_future(self._answer(json.loads(line)))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (ConnectionResetError, BrokenPipeError):
            log.info("the UI closed the link")
        except (OSError, ValueError, KeyError, TypeError) as exc:  # a message we cannot read
            log.error("the link to the UI broke: %r", exc)

    def _on_snapshot(self, snapshot: QueueSnapshot) -> None:
        from kiosk.service.queues import queue_views
        config = self._config
        assert config is not None

        def views(lang: str) -> list[QueueView]:
            if self._rt is not None:
                shown = self._rt.service.views(lang)
            else:
                shown = queue_views(config, list(snapshot.queues), lang)
            if len(shown) > MAX_CARDS and not self._warned_cards:
                self._warned_cards = True
                log.warning("the branch lists %d queues: the screen shows the first %d "
                            "(list the ones to show under queues: in the config)",
                            len(shown), MAX_CARDS)
            return shown[:MAX_CARDS]
        self._send({"event": "queues", "snapshot": snapshot_to_json(snapshot),
                    "views": {lang: [asdict(v) for v in views(lang)] for lang in LANGUAGES}})

    def _on_forms(self, forms: dict[str, FormDef | None]) -> None:
        self._send({"event": "forms", "forms": {qid: f.to_json() if f else None
                                                for qid, f in forms.items()}})
        if self._rt is not None:  # the cards' "a few details first" marks
            self._on_snapshot(self._rt.monitor.snapshot)

    async def _answer(self, msg: dict[str, Any]) -> None:
        from kiosk.api.client import api_budget
        rid = int(msg["id"])
        if msg.get("op") == "ping":  # the watchdog: this loop runs and reads the link
            self._send({"id": rid, "result": "pong"})
            return
        config = self._rt.config if self._rt is not None else self._config
        budget = deadlines_of(config).api_budget_s if config is not None else None
        try:
            # every API call for this request shares one budget (kiosk.deadlines)
            with api_budget(budget) if budget is not None else contextlib.nullcontext():
                result = await self._do(rid, msg["op"], msg.get("args") or {})
        except NotAllowed as exc:  # refused (and logged where it was decided)
            self._send({"id": rid, "error": f"not allowed: {exc}"})
        except Exception as exc:  # answered, never left hanging; the UI shows it kindly
            log.exception("link request %s failed", msg.get("op"))
            self._send({"id": rid, "error": f"{exc.__class__.__name__}: {exc}"})
        else:
            self._send({"id": rid, "result": result})

    async def _do(self, rid: int, op: str, args: dict[str, Any]) -> Any:
        rt = self._rt
        assert rt is not None
        if op == "issue":
            queue_id, lang, data = check_request(rt, args.get("queue_id"), args.get("language"),
                                                 args.get("integration_data"))
            r = await rt.service.issue(
                queue_id, language=lang, integration_data=data, wait_print=False,
                print_ticket=rt.config.printer.type != "none")
            if r.printing is not None:
                r.printing.add_done_callback(lambda f: self._printed(rid, f))
            return {"result": result_to_json(r), "printing": r.printing is not None}
        if op == "form":
            assert rt.forms is not None
            queue_id, _, _ = check_request(rt, args.get("queue_id"), rt.config.kiosk.language,
                                           None)
            form = await rt.forms.fetch(queue_id)
            return {"form": form.to_json() if form else None}
        if op == "submit_form":
            return await self._submit_form(rid, rt, args)
        if op == "branch_label":
            label = await rt.branch_label()
            rt.service.branch_label = label
            return label
        if op == "poll_soon":
            rt.monitor.poll_soon()
            return None
        if op == "warm_up":
            rt.warm_up()
            return None
        if op == "check_pin":
            assert self._staff is not None
            stored = rt.config.ui.admin_pin_hash
            answer = await self._staff.check_pin(
                str(args["pin"]), stored.get_secret_value() if stored else None)
            return {"ok": answer.ok, "locked_s": answer.locked_s}
        if op == "admin":
            assert self._staff is not None
            self._staff.require_session()
            return await self._admin(str(args["action"]), str(args["lang"]))
        if op == "admin_close":
            assert self._staff is not None
            self._staff.close()
            return None
        if op == "reload":
            return await self._reload()
        raise ValueError(f"unknown request {op!r}")

    async def _submit_form(self, rid: int, rt: Runtime, args: dict[str, Any]) -> Any:
        from kiosk.service.formflow import submit_and_issue
        assert rt.forms is not None
        values = args["values"]
        if not isinstance(values, dict):
            raise ValueError("values must be an object")  # the values stay out of the log
        queue_id, lang, data = check_request(rt, args.get("queue_id"), args.get("language"),
                                             args.get("integration_data"))
        answer = await submit_and_issue(
            rt.service, rt.forms, queue_id, values,
            language=lang, integration_data=data,
            wait_print=False, print_ticket=rt.config.printer.type != "none")
        if isinstance(answer, FormAnswer):
            assert answer.form is not None
            return {"form": answer.form.to_json(), "problems": problems_to_json(answer.problems),
                    "sent": answer.sent}
        if answer.printing is not None:
            answer.printing.add_done_callback(lambda f: self._printed(rid, f))
        return {"result": result_to_json(answer), "printing": answer.printing is not None}

    def _printed(self, rid: int, fut: asyncio.Future[tuple[bool, str]]) -> None:
        printed, error = (False, "cancelled") if fut.cancelled() else fut.result()
        self._send({"event": "printed", "for": rid, "printed": printed, "error": error})

    async def _admin(self, action: str, lang: str) -> tuple[str, str]:
        rt = self._rt
        assert rt is not None
        note = ""
        if action == "test_print":
            ok, err = await rt.test_print(lang)
            note = "Test ticket printed" if ok else f"Not printed: {err}"
        elif action == "reprint_last":
            number, ok, err = await rt.reprint_last()
            note = f"{number} printed again" if ok else f"Not printed: {err}"
        elif action == "reload":
            note = await self._reload()
        status = await rt.printer_status()
        return note, rt.admin_summary(status)

    async def _reload(self) -> str:
        assert self._rt is not None
        message = await self._rt.reload_from(self._config_path)
        self._config = self._rt.config
        self._send({"event": "settings", "settings": asdict(UiSettings.of(self._rt.config))})
        self._on_snapshot(self._rt.monitor.snapshot)  # names may have changed
        return message


async def serve_in_process(rt: Runtime, *, config_path: str | None = None
                           ) -> tuple[RemoteCore, asyncio.Task[None]]:
    """The UI's handle on ``rt`` through a real link in this process (tests, and the
    in-process fallback): the same messages as with a core process."""
    ui_end, core_end = socket.socketpair()
    server = await CoreServer.connect(core_end)
    task = asyncio.ensure_future(server.serve(rt, config_path=config_path))
    return await RemoteCore.connect(ui_end), task
