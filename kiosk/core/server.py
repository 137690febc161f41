"""The core's end of the link: each request of the UI answered by its handler.

:class:`CoreServer` reads the UI's requests (:mod:`kiosk.link.protocol`), answers each in a
task of its own from a table of handlers, one per request class, and sends the core's
events. Its own table holds what every core answers the same way (the watchdog's ping, the
staff PIN and session); :class:`KioskServer` (a kiosk or a greeter's tablet) and
:class:`DisplayServer` (a calling screen) add theirs.

Bounds: all the API calls the core makes for one request share one budget
(:mod:`kiosk.deadlines`); a message over :data:`LINE_LIMIT` is never sent (an answer
becomes an error), so the link never dies of a long message; no message carries a secret
(scrubbed before sending, defence in depth). A failed request logs its op and error, never
its args (what a customer typed crosses inside :class:`SubmitForm`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from kiosk import __version__
from kiosk.core.settings import deadlines_of, ui_settings
from kiosk.i18n import LANGUAGES
from kiosk.link.codec import encode, event_line, hello_line, queues_event, result_to_json
from kiosk.link.protocol import (
    LINE_LIMIT,
    MAX_CARDS,
    Admin,
    AdminClose,
    BadMessage,
    BranchLabel,
    Calls,
    CheckPin,
    Event,
    Forms,
    GetForm,
    Issue,
    Ping,
    PollSoon,
    Printed,
    Reload,
    Request,
    Settings,
    SubmitForm,
    WarmUp,
    request_from_json,
)
from kiosk.logs import redact_text
from kiosk.tickets.staff import (
    NotAllowed,
    StaffAccess,
    check_priority,
    check_request,
    offered_queue_ids,
)
from kiosk.view.forms import FormAnswer, FormDef, problems_to_json
from kiosk.view.outcomes import IssueResult, QueueSnapshot, QueueView

if TYPE_CHECKING:
    from pydantic import SecretStr

    from kiosk.api.models import Queue
    from kiosk.calls.feed import CallFeed
    from kiosk.config import Config
    from kiosk.core.runtime import Runtime
    from kiosk.link.client import RemoteCore
    from kiosk.tickets.queues import QueueMonitor
    from kiosk.view.calling import Call

log = logging.getLogger(__name__)

Handler = Callable[[int, Any], Awaitable[Any]]
"""Answers one request: ``handler(request id, request) -> result`` (JSON-able)."""

DISPLAY_RELOAD = "A display reads its config at start: restart it to apply changes"


class CoreServer:
    """Serves one UI over the link (see the module's docstring); subclasses add their
    handlers in :meth:`handlers`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 greeted: bool = False) -> None:
        self._reader = reader
        self._writer = writer
        self._tasks: set[asyncio.Task[None]] = set()
        self._hello_sent = greeted
        self.staff: StaffAccess | None = None
        """The staff session and PIN lockout (made once the config is known)."""
        self.pin_hash: Callable[[], str | None] = lambda: None
        """The admin PIN's hash, as the config says now (it may be reloaded)."""
        self.budget_s: float | None = None
        """The API budget of one request (:mod:`kiosk.deadlines`)."""

    @classmethod
    async def connect(cls, sock: socket.socket, *, greeted: bool = False) -> Any:
        """Serve the UI on ``sock``; ``greeted``: the hello was sent already."""
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=LINE_LIMIT)
        return cls(reader, writer, greeted=greeted)

    # ----------------------------------------------------------------- sending

    def send(self, event: Event) -> None:
        """Send one event (one too long for the link is left out, logged)."""
        self._send_line(event_line(event), event.name, None)

    def _answer(self, rid: int, result: Any = None, error: str | None = None) -> None:
        msg = {"id": rid, "error": error} if error is not None else {"id": rid, "result": result}
        self._send_line(encode(msg), f"answer {rid}", rid)

    def _send_line(self, line: bytes, what: str, rid: int | None) -> None:
        """A message too long for the link is never sent (the UI would drop the link): an
        answer becomes an error answer, an event is left out (logged)."""
        if self._writer.is_closing():
            return
        text = line.decode()
        if (clean := redact_text(text)) != text:  # defence in depth
            log.error("a %s message carried a secret: redacted", what.split(maxsplit=1)[0])
            line = clean.encode()
        if len(line) > LINE_LIMIT:
            log.error("a %s message of %d bytes is over the link's limit: not sent", what,
                      len(line))
            if rid is None:
                return
            line = encode({"id": rid, "error": "answer too long for the link"})
        self._writer.write(line)

    def hello(self, config: Config, note: str = "") -> None:
        """Tell the UI the config is good (once)."""
        if not self._hello_sent:
            self._hello_sent = True
            self._writer.write(hello_line(ui_settings(config), note))

    def watch_calls(self, feed: CallFeed, keep: int) -> None:
        """Send the UI the relay's last ``keep`` calls after every change of ``feed``."""
        def changed(feed: CallFeed, received: list[Call]) -> None:
            self.send(Calls(feed.calls[:keep], feed.connected,
                            [c for c in received if feed.fresh(c)]))
        feed.subscribe(changed)
        changed(feed, [])

    def open_staff(self, config: Config) -> None:
        """The staff session and lockout for ``config``'s device."""
        self.staff = StaffAccess(config.kiosk.data_dir, idle_s=config.ui.idle_timeout_s)

    # ----------------------------------------------------------------- answering

    def handlers(self) -> dict[type[Request], Handler]:
        """The table: what answers each request. Every core answers these the same way."""
        return {Ping: self._ping, CheckPin: self._check_pin, AdminClose: self._admin_close}

    async def answer_until_closed(self) -> None:
        """Answer the UI's requests, each in a task of its own, until the UI closes the
        link; a link that breaks or a message that cannot be read ends it, logged."""
        table = self.handlers()
        try:
            while line := await self._reader.readline():
                msg = json.loads(line)
                task = asyncio.ensure_future(self._answer_one(table, int(msg["id"]), msg))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (ConnectionResetError, BrokenPipeError):
            log.info("the UI closed the link")
        except (OSError, ValueError, KeyError, TypeError) as exc:  # a message we cannot read
            log.error("the link to the UI broke: %r", exc)

    async def _answer_one(self, table: Mapping[type[Request], Handler], rid: int,
                          msg: dict[str, Any]) -> None:
        from kiosk.api.client import api_budget
        try:
            request = request_from_json(msg.get("op"), msg.get("args"))
            handler = table.get(type(request))
            if handler is None:
                raise BadMessage(f"{request.op} is not answered by this core")
            # every API call for this request shares one budget (kiosk.deadlines)
            with api_budget(self.budget_s) if self.budget_s is not None \
                    else contextlib.nullcontext():
                result = await handler(rid, request)
        except NotAllowed as exc:  # refused (and logged where it was decided)
            self._answer(rid, error=f"not allowed: {exc}")
        except BadMessage as exc:  # says which field, never its value
            log.error("link request refused: %s", exc)
            self._answer(rid, error=str(exc))
        except Exception as exc:  # answered, never left hanging; the UI shows it kindly
            log.exception("link request %s failed", str(msg.get("op"))[:40])
            self._answer(rid, error=f"{exc.__class__.__name__}: {exc}")
        else:
            self._answer(rid, result)

    async def finish(self, timeout_s: float) -> None:
        """Let requests in flight finish (a ticket is journalled, not dropped), then
        close the link."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout_s)
        self._writer.close()

    # ----------------------------------------------------------------- shared handlers

    async def _ping(self, rid: int, request: Ping) -> str:
        return "pong"  # the watchdog: this loop runs and reads the link

    async def _check_pin(self, rid: int, request: CheckPin) -> dict[str, Any]:
        assert self.staff is not None
        answer = await self.staff.check_pin(request.pin, self.pin_hash())
        return {"ok": answer.ok, "locked_s": answer.locked_s}

    async def _admin_close(self, rid: int, request: AdminClose) -> None:
        assert self.staff is not None
        self.staff.close()


# --------------------------------------------------------------------------- a kiosk


class KioskServer(CoreServer):
    """Serves a kiosk's (or a greeter tablet's) UI from a
    :class:`~kiosk.core.runtime.Runtime`: tickets, forms, queues, staff actions."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._rt: Runtime | None = None
        self._config: Config | None = None
        self._monitor: QueueMonitor | None = None
        self._config_path: str | None = None
        self._warned_cards = False

    def handlers(self) -> dict[type[Request], Handler]:
        return {**super().handlers(), Issue: self._issue, GetForm: self._form,
                SubmitForm: self._submit_form, BranchLabel: self._branch_label,
                PollSoon: self._poll_soon, WarmUp: self._warm_up, Admin: self._admin,
                Reload: self._reload_request}

    def open_call_feed(self, rt: Runtime, token: SecretStr, **kw: Any) -> CallFeed:
        """A kiosk's feed of the relay's calls (its config's ``calls`` section): sent to
        its UI (the "now calling" strip), and its own tickets' calls journalled; started
        here."""
        from kiosk.calls.feed import CallFeed
        from kiosk.calls.recorder import CallRecorder
        config = rt.config
        assert config.calls is not None
        if rt.hub is not None:  # one connection pool to the hub per core
            kw.setdefault("client", rt.hub.http)
        feed = CallFeed.from_config(config, token, **kw)
        self.watch_calls(feed, config.calls.keep)
        feed.subscribe(CallRecorder(rt.journal))
        rt.calls = feed
        feed.start()
        return feed

    def watch(self, monitor: QueueMonitor, config: Config) -> None:
        """Start polling and send the queues to the UI after every poll: called as soon
        as the API client exists, before the rest of the core opens, because the UI's
        first frame waits for the queues."""
        self._monitor, self._config = monitor, config
        monitor.subscribe(self._on_snapshot)
        monitor.start()

    async def serve(self, rt: Runtime, *, config_path: str | None = None,
                    note: str = "") -> None:
        """Answer the UI until it closes the link; the queues are polled meanwhile."""
        from kiosk.core.status import StatusWriter
        self._rt = rt
        self._config_path = config_path
        self.open_staff(rt.config)
        self.pin_hash = lambda: _secret(rt.config.ui.admin_pin_hash)
        self.budget_s = deadlines_of(rt.config).api_budget_s
        self.hello(rt.config, note)
        if self._monitor is not rt.monitor:
            self.watch(rt.monitor, rt.config)
        status = StatusWriter(rt)
        status.start()
        if rt.forms is not None:  # which queues need a form, learned ahead of time
            rt.forms.subscribe(self._on_forms)
            rt.forms.start()
        try:
            await self.answer_until_closed()
        finally:
            rt.monitor.unsubscribe(self._on_snapshot)
            if rt.forms is not None:
                rt.forms.unsubscribe(self._on_forms)
            await status.stop()
            await self.finish(deadlines_of(rt.config).finish_s)

    # ----------------------------------------------------------------- events

    def _on_snapshot(self, snapshot: QueueSnapshot[Queue]) -> None:
        from kiosk.tickets.queues import queue_views
        config = self._config
        assert config is not None

        def views(lang: str, priority: bool = False) -> list[QueueView]:
            if self._rt is not None:
                shown = self._rt.service.views(lang, priority=priority)
            else:
                shown = queue_views(config, list(snapshot.queues), lang, priority=priority)
            if len(shown) > MAX_CARDS and not self._warned_cards:
                self._warned_cards = True
                log.warning("the branch lists %d queues: the screen shows the first %d "
                            "(list the ones to show under queues: in the config)",
                            len(shown), MAX_CARDS)
            return shown[:MAX_CARDS]
        priority = {lang: views(lang, True) for lang in LANGUAGES} \
            if config.priority.enabled else None
        self.send(queues_event(snapshot, {lang: views(lang) for lang in LANGUAGES}, priority))

    def _on_forms(self, forms: dict[str, FormDef | None]) -> None:
        self.send(Forms(dict(forms)))
        if self._rt is not None:  # the cards' "a few details first" marks
            self._on_snapshot(self._rt.monitor.snapshot)

    def _printed(self, rid: int, fut: asyncio.Future[tuple[bool, str]]) -> None:
        printed, error = (False, "cancelled") if fut.cancelled() else fut.result()
        self.send(Printed(rid, printed, error))

    def _ticket_answer(self, rid: int, result: IssueResult) -> dict[str, Any]:
        if result.printing is not None:
            result.printing.add_done_callback(lambda f: self._printed(rid, f))
        return {"result": result_to_json(result), "printing": result.printing is not None}

    # ----------------------------------------------------------------- handlers

    def _runtime(self) -> Runtime:
        assert self._rt is not None
        return self._rt

    async def _issue(self, rid: int, request: Issue) -> dict[str, Any]:
        rt = self._runtime()
        queue_id, lang, data = check_request(offered_queue_ids(rt.config, rt.monitor),
                                             request.queue_id, request.language,
                                             request.integration_data)
        priority = check_priority(rt.config, request.priority)
        r = await rt.service.issue(
            queue_id, language=lang, integration_data=data, wait_print=False,
            print_ticket=rt.config.printer.type != "none", priority=priority)
        return self._ticket_answer(rid, r)

    async def _form(self, rid: int, request: GetForm) -> dict[str, Any]:
        rt = self._runtime()
        assert rt.forms is not None
        queue_id, _, _ = check_request(offered_queue_ids(rt.config, rt.monitor),
                                       request.queue_id, rt.config.kiosk.language, None)
        form = await rt.forms.fetch(queue_id)
        return {"form": form.to_json() if form else None}

    async def _submit_form(self, rid: int, request: SubmitForm) -> dict[str, Any]:
        from kiosk.tickets.formflow import submit_and_issue
        rt = self._runtime()
        assert rt.forms is not None
        queue_id, lang, data = check_request(offered_queue_ids(rt.config, rt.monitor),
                                             request.queue_id, request.language,
                                             request.integration_data)
        priority = check_priority(rt.config, request.priority)
        answer = await submit_and_issue(
            rt.service, rt.forms, queue_id, request.values,
            language=lang, integration_data=data, priority=priority,
            wait_print=False, print_ticket=rt.config.printer.type != "none")
        if isinstance(answer, FormAnswer):
            assert answer.form is not None
            return {"form": answer.form.to_json(), "problems": problems_to_json(answer.problems),
                    "sent": answer.sent}
        return self._ticket_answer(rid, answer)

    async def _branch_label(self, rid: int, request: BranchLabel) -> str:
        rt = self._runtime()
        label = await rt.branch_label()
        rt.service.branch_label = label
        return label

    async def _poll_soon(self, rid: int, request: PollSoon) -> None:
        self._runtime().monitor.poll_soon()

    async def _warm_up(self, rid: int, request: WarmUp) -> None:
        self._runtime().warm_up()

    async def _admin(self, rid: int, request: Admin) -> tuple[str, str]:
        from kiosk.core import admin
        assert self.staff is not None
        self.staff.require_session()
        rt = self._runtime()
        note = ""
        if request.action == "test_print":
            ok, err = await admin.test_print(rt, request.lang)
            note = "Test ticket printed" if ok else f"Not printed: {err}"
        elif request.action == "reprint_last":
            number, ok, err = await admin.reprint_last(rt)
            note = f"{number} printed again" if ok else f"Not printed: {err}"
        elif request.action == "reload":
            note = await self._reload()
        status = await admin.printer_status(rt)
        return note, admin.summary(rt, status)

    async def _reload_request(self, rid: int, request: Reload) -> str:
        return await self._reload()

    async def _reload(self) -> str:
        from kiosk.core.reload import reload_from
        rt = self._runtime()
        message = await reload_from(rt, self._config_path)
        self._config = rt.config
        self.budget_s = deadlines_of(rt.config).api_budget_s
        self.send(Settings(ui_settings(rt.config)))
        self._on_snapshot(rt.monitor.snapshot)  # names may have changed
        return message


# --------------------------------------------------------------------------- a display


class DisplayServer(CoreServer):
    """Serves a calling screen's UI: the calls, and the little a display is asked."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.feed: CallFeed | None = None
        self.display_config: Config | None = None

    def handlers(self) -> dict[type[Request], Handler]:
        return {**super().handlers(), BranchLabel: self._branch_label,
                PollSoon: self._poll_soon, WarmUp: self._warm_up, Admin: self._admin,
                Reload: self._reload}

    async def serve_display(self, config: Config, feed: CallFeed, note: str = "") -> None:
        """Answer the UI until it closes the link; the feed runs meanwhile."""
        self.display_config, self.feed = config, feed
        self.open_staff(config)
        self.pin_hash = lambda: _secret(config.ui.admin_pin_hash)
        self.hello(config, note)
        assert config.calls is not None
        self.watch_calls(feed, config.calls.keep)
        feed.start()
        try:
            await self.answer_until_closed()
        finally:
            await self.finish(5)

    def _parts(self) -> tuple[Config, CallFeed]:
        config, feed = self.display_config, self.feed
        assert config is not None and feed is not None
        return config, feed

    async def _branch_label(self, rid: int, request: BranchLabel) -> str:
        return self._parts()[0].ticket.branch_label or ""

    async def _poll_soon(self, rid: int, request: PollSoon) -> None:
        feed = self._parts()[1]
        if not feed.connected:
            feed.reconnect_now()

    async def _warm_up(self, rid: int, request: WarmUp) -> None:
        return None

    async def _admin(self, rid: int, request: Admin) -> tuple[str, str]:
        from kiosk.calls.feed import relay_summary
        assert self.staff is not None
        self.staff.require_session()
        config, feed = self._parts()
        note = ""
        if request.action == "reload":
            note = DISPLAY_RELOAD
        elif request.action in ("test_print", "reprint_last"):
            note = "A display has no printer"
        return note, f"Display {config.kiosk.id} · kiosk {__version__}\n{relay_summary(feed)}"

    async def _reload(self, rid: int, request: Reload) -> str:
        return DISPLAY_RELOAD


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


# --------------------------------------------------------------------------- in one process


async def serve_in_process(rt: Runtime, *, config_path: str | None = None
                           ) -> tuple[RemoteCore, asyncio.Task[None]]:
    """The UI's handle on ``rt`` through a real link in this process (tests, and the
    in-process fallback): the same messages as with a core process."""
    from kiosk.link.client import RemoteCore
    ui_end, core_end = socket.socketpair()
    server = await KioskServer.connect(core_end)
    task = asyncio.ensure_future(server.serve(rt, config_path=config_path))
    return await RemoteCore.connect(ui_end), task


async def serve_display_in_process(config: Config, feed: CallFeed
                                   ) -> tuple[RemoteCore, asyncio.Task[None]]:
    """A calling screen's core in this process, over a real link (tests): the same
    messages as ``kiosk core`` in display mode sends."""
    from kiosk.link.client import RemoteCore
    ui_end, core_end = socket.socketpair()
    server = await DisplayServer.connect(core_end)
    task = asyncio.ensure_future(server.serve_display(config, feed))
    return await RemoteCore.connect(ui_end), task
