"""Nobody holds the relay down: deadlines for a request's headers and body, a cap on open
connections below the open-file limit, idle keep-alive limits, and every refusal or accept
error counted in ``/metrics`` and logged at most once a minute per kind.

uvicorn's own options do not cover a client that trickles its headers a byte at a time
(each byte restarts nothing, and nothing ever ends it), and asyncio's accept loop takes
connections in batches before anyone counts them, then, out of files (EMFILE), logs a
traceback per attempt, thousands a second. So the relay accepts with its own loop
(:class:`Acceptor`: one connection at a time, counted from its accept), every connection
is served by :class:`GuardedProtocol` (uvicorn's h11 protocol, watched), and one
:class:`ConnectionGuard` per server keeps the books:

- a connection is **waiting** from its accept (or the end of its last answer) until its
  request has arrived whole: its headers within ``header_timeout_s``, then its body (a
  webhook's) within ``body_timeout_s``; past either it is closed;
- it is **busy** from then until its answer is sent: a webhook being stored, a health
  check, a screen's stream (for as long as the screen stays);
- at most ``max_connections`` are open (see :func:`kiosk.relay.config.connection_cap`:
  below the open-file limit, with room for the store's files and for the connections
  being closed). At the cap, a new connection takes the place of the one that has waited
  longest for its request to arrive (half-open attackers never starve a webhook or a
  screen: a real client's request comes in milliseconds, and each newcomer evicts the
  oldest waiting); only when every open connection is busy (or, in a burst past the cap
  within one turn of the loop, accepted a moment ago and not yet waiting) is the newcomer
  answered 503;
- an idle keep-alive connection is closed after ``keepalive_idle_s`` (uvicorn's timer);
  a peer that stops reading an answer (writes paused) for ``send_timeout_s`` plus a
  margin is reset (a stream's own deadline, in :mod:`kiosk.relay.app`, comes first);
- the event loop's errors (an accept refused by the kernel, EMFILE included),
  uvicorn's warnings (a malformed request) and its errors for a request that ended in an
  unhandled exception are counted and logged through the same
  :class:`~kiosk.relay.ratelog.RateLimitedLog`.

Metrics: ``relay_connections_refused_total{reason}`` (``header_timeout``,
``body_timeout``, ``evicted``, ``full``, ``send_stalled``, ``accept_error``,
``invalid_request``, ``server_warning``, ``loop_error``, ``setup_error``, ``app_error``),
``relay_connections{state}`` (``waiting``, ``busy``), ``relay_connections_max``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable
from typing import Any

import h11
from prometheus_client import CollectorRegistry, Counter, Gauge
from uvicorn.protocols.http.h11_impl import H11Protocol

from kiosk.relay.ratelog import RateLimitedLog

log = logging.getLogger("kiosk.relay.guard")

ACCEPT_BATCH = 64
"""Connections accepted in one go (one turn of the event loop). Each may evict one, whose
file is freed on the next turn: part of :data:`kiosk.relay.config.FD_RESERVE`."""
LISTEN_BACKLOG = 1024
"""Connections the kernel holds for the relay before it accepts them (they cost it no
file yet). Under a flood of connections a short queue overflows, and a real client's
connection then waits a second for its retry."""
ACCEPT_PAUSE_S = 1.0
"""After an accept refused for want of a resource (EMFILE...), accepting pauses this long."""
LOG_PERIOD_S = 60.0
"""At most one log line per this many seconds for each kind of refusal."""
STALL_MARGIN_S = 5.0
"""A stalled writer is reset this long after ``send_timeout_s`` (the stream's own
deadline, which counts it as a stalled screen, fires first)."""
BUSY_ANSWER = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n"
               b"content-length: 19\r\nretry-after: 5\r\nconnection: close\r\n\r\n"
               b"Service Unavailable")
"""The answer to a connection refused because every place is busy."""
_RESOURCE_ERRNOS = {errno.EMFILE: "EMFILE: the open-file limit",
                    errno.ENFILE: "ENFILE: the system's open-file limit",
                    errno.ENOBUFS: "ENOBUFS", errno.ENOMEM: "ENOMEM"}
_UVICORN_KINDS = {"Invalid HTTP request received.": "invalid_request"}
_REQUEST_ERRORS = frozenset({
    "Exception in ASGI application\n", "ASGI callable returned without starting response.",
    "ASGI callable returned without completing response.",
    "ASGI callable should return None, but returned '%s'."})
"""What uvicorn logs at ERROR for one request (its format strings): nothing else it logs
at ERROR (a failed start-up or shutdown, tasks cancelled at the deadline) is held back."""


class ConnectionGuard:
    """The books of one server's connections: who waits, since when, who is busy.

    ``registry``: the relay's Prometheus registry (its ``/metrics``)."""

    def __init__(self, max_connections: int, *, header_timeout_s: float,
                 body_timeout_s: float, send_timeout_s: float,
                 registry: CollectorRegistry | None = None) -> None:
        self.max_connections = max_connections
        self.header_timeout_s = header_timeout_s
        self.body_timeout_s = body_timeout_s
        self.stall_timeout_s = send_timeout_s + STALL_MARGIN_S
        self.waiting: dict[GuardedProtocol, None] = {}
        """Connections whose request has not arrived whole, longest waiting first."""
        self.open = 0
        """Connections served (:class:`GuardedProtocol` made)."""
        self.starting = 0
        """Connections accepted whose protocol is not made yet."""
        self.refused = Counter("relay_connections_refused", "Connections closed or refused "
                               "by the guard, and accept or server errors, by reason",
                               ["reason"], registry=registry)
        states = Gauge("relay_connections", "Open connections: waiting for their request, "
                       "or busy (a request being answered, a screen's stream)", ["state"],
                       registry=registry)
        states.labels("waiting").set_function(lambda: len(self.waiting))
        states.labels("busy").set_function(lambda: self.open - len(self.waiting))
        Gauge("relay_connections_max", "The cap on open connections (relay.max_connections)",
              registry=registry).set(max_connections)
        self.refusals = RateLimitedLog(log, LOG_PERIOD_S, counter=self.refused)
        self.loop: asyncio.AbstractEventLoop | None = None
        """The event loop of the server this guard keeps (set when it starts)."""

    # ---------------------------------------------------------------- the books

    def make_room(self) -> bool:
        """Before a newly accepted connection is served: at the cap, evict the one waiting
        longest for its request; False when every place is busy (refuse the newcomer)."""
        if self.open + self.starting < self.max_connections:
            return True
        victim = next(iter(self.waiting), None)
        if victim is None:  # (one just accepted is evictable once its protocol is made)
            self.refusals.warning(
                "full", "relay: connection refused (503): all %d places busy with "
                "requests, screens' streams%s (relay.max_connections)", self.max_connections,
                f" or {self.starting} connection(s) accepted a moment ago" if self.starting
                else "")
            return False
        self.refusals.warning(
            "evicted", "relay: at the cap of %d connections: the one waiting longest "
            "for its request was closed to make room (many clients sending slowly or "
            "nothing: an attack?)", self.max_connections)
        victim.close_now()
        return True

    def leave(self, conn: GuardedProtocol) -> None:
        self.waiting.pop(conn, None)
        self.open -= 1

    def accept_failed(self, exc: OSError) -> None:
        """An accept the kernel refused (once a period in the log, each one counted)."""
        why = _RESOURCE_ERRNOS.get(exc.errno or 0, f"{type(exc).__name__} {exc.errno}")
        self.refusals.log(logging.ERROR, "accept_error", "relay: accepting a connection "
                          "failed (%s); accepting again in %g s", why, ACCEPT_PAUSE_S,
                          more="like it")

    def protocol_class(self) -> type[GuardedProtocol]:
        """The protocol class uvicorn instantiates per connection (``Config(http=...)``)."""
        return type("Guarded", (GuardedProtocol,), {"guard": self})

    # ---------------------------------------------------------------- errors

    def loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The event loop's exception handler: its errors are counted and logged once a
        period (``loop_error``, the first with its traceback), and an accept refused by
        the kernel in asyncio's own accept loop as ``accept_error``."""
        exc = context.get("exception")
        if context.get("message") == "socket.accept() out of system resource" and \
                isinstance(exc, OSError):  # asyncio's own accept loop (not ours)
            self.accept_failed(exc)
            return
        if self.refusals.log(logging.ERROR, "loop_error", "relay: event loop error: %r",
                             context.get("message", ""), more="like it"):
            loop.default_exception_handler(context)

    def _on_our_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:  # logged from no event loop: not by this server
            return False

    def uvicorn_filter(self, record: logging.LogRecord) -> bool:
        """A filter for uvicorn's logger: its warnings (one per malformed request: anyone
        can send them) go through the rate-limited log instead; so do the errors it logs
        for a request that ended in an unhandled exception (its traceback a few KB: should
        an outsider find a way to cause one, the log does not grow with each) - the first
        of a period is logged with its traceback, every one counted (``app_error``). Its
        other errors (start-up, shutdown) all pass.

        The logger is the process's; a record is this server's only if it is logged on
        this server's event loop (:attr:`loop`). Another server's record passes on to
        that server's filter, and a filter left behind by a server that ended takes none.
        """
        if record.levelno < logging.WARNING or not self._on_our_loop():
            return True
        if record.levelno >= logging.ERROR:
            if record.msg not in _REQUEST_ERRORS:
                return True
            exc = record.exc_info[1] if record.exc_info else None
            return self.refusals.log(
                logging.ERROR, "app_error", "relay: a request ended in an unhandled error "
                "(its answer a 500, or cut; uvicorn's lines follow, once a period): %s",
                f"{type(exc).__name__}: {str(exc)[:200]!r}" if exc is not None
                else repr(record.getMessage()[:200]), more="like it")
        message = record.getMessage()
        self.refusals.warning(_UVICORN_KINDS.get(message, "server_warning"),
                              "relay: %s", message)
        return False


class GuardedProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol under a :class:`ConnectionGuard`'s deadlines and cap."""

    guard: ConnectionGuard  # set on the subclass ConnectionGuard.protocol_class makes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = ""
        """``headers`` or ``body`` (waiting for that part of the request), ``busy``."""
        self._deadline: asyncio.TimerHandle | None = None
        self._due = 0.0
        """When the current phase's deadline passes (loop time; 0: busy, none)."""
        self._stall: asyncio.TimerHandle | None = None
        self._counted = False
        """It holds one of the guard's places (until closed)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.guard.open += 1
        self._counted = True
        super().connection_made(transport)  # type: ignore[arg-type]
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall is None and self._counted:
            self._stall = self.loop.call_later(self.guard.stall_timeout_s, self._stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def close_now(self) -> None:
        """Close at once, unsent data dropped; its place is free when this returns."""
        if self._counted:
            self._release()
            self.transport.abort()  # uvicorn's connection_lost follows on the next turn

    # ---------------------------------------------------------------- the phases

    def _release(self) -> None:
        if self._counted:
            self._counted = False
            self._cancel()
            self.guard.leave(self)

    def _follow(self) -> None:
        """Move to the phase h11's state of the peer says, and set its deadline. One timer
        per connection, moved on lazily (:meth:`_check`): a request costs no timer."""
        if not self._counted or self.transport.is_closing():
            return
        state = self.conn.their_state
        phase = "headers" if state is h11.IDLE else "body" if state is h11.SEND_BODY \
            else "busy"
        if phase == self._phase:
            return
        was, self._phase = self._phase, phase
        if phase == "busy":
            self._due = 0.0
            self.guard.waiting.pop(self, None)
            return
        if was not in ("headers", "body"):  # it starts waiting now: last in the line
            self.guard.waiting[self] = None
        self._due = self.loop.time() + (self.guard.header_timeout_s if phase == "headers"
                                        else self.guard.body_timeout_s)
        if self._deadline is None or self._deadline.when() > self._due:
            self._cancel()
            self._deadline = self.loop.call_at(self._due, self._check)

    def _check(self) -> None:
        """The timer: close a connection past its phase's deadline, else wait on."""
        self._deadline = None
        if not self._counted or not self._due:  # busy: armed again when it waits again
            return
        if self.loop.time() < self._due:
            self._deadline = self.loop.call_at(self._due, self._check)
            return
        if self._phase == "headers":
            self.guard.refusals.warning(
                "header_timeout", "relay: a connection sent no whole request headers "
                "within %g s: closed (relay.header_timeout_s)", self.guard.header_timeout_s)
        else:
            self.guard.refusals.warning(
                "body_timeout", "relay: a request's body did not arrive within %g s: "
                "closed (relay.body_timeout_s)", self.guard.body_timeout_s)
        self.close_now()

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _stalled(self) -> None:
        self._stall = None
        self.guard.refusals.warning(
            "send_stalled", "relay: a client stopped reading its answer for %g s: reset",
            self.guard.stall_timeout_s)
        self.close_now()


class Acceptor:
    """The relay's accept loop on one listening socket, in place of asyncio's (which
    accepts in batches nobody counts, and cannot be told to make room first).

    Each accepted connection first gets a place from the guard (evicting the one waiting
    longest, at the cap) or is answered 503 and closed at once; it counts from its
    accept. An accept the kernel refuses (EMFILE...) pauses accepting for
    :data:`ACCEPT_PAUSE_S`. ``close``/``wait_closed`` as uvicorn calls them on a server.
    """

    def __init__(self, sock: socket.socket, factory: Callable[[], asyncio.Protocol],
                 guard: ConnectionGuard, loop: asyncio.AbstractEventLoop) -> None:
        self.sock = sock
        self.factory = factory
        self.guard = guard
        self.loop = loop
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._pause: asyncio.TimerHandle | None = None
        sock.setblocking(False)
        sock.listen(LISTEN_BACKLOG)
        loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                self.guard.accept_failed(exc)
                self.loop.remove_reader(self.sock.fileno())
                self._pause = self.loop.call_later(ACCEPT_PAUSE_S, self._resume)
                return
            conn.setblocking(False)
            if not self.guard.make_room():
                with contextlib.suppress(OSError):
                    conn.send(BUSY_ANSWER)
                conn.close()  # its file goes now
                continue
            self.guard.starting += 1
            task = self.loop.create_task(self._serve(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, conn: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(self.factory, conn)
        except Exception as exc:  # the peer reset it meanwhile: nothing to serve
            conn.close()
            self.guard.refusals.log(logging.INFO, "setup_error", "relay: a connection "
                                    "could not be set up: %s", type(exc).__name__,
                                    more="like it")
        finally:
            self.guard.starting -= 1

    def _resume(self) -> None:
        self._pause = None
        if not self._closed:
            self.loop.add_reader(self.sock.fileno(), self._accept)

    def close(self) -> None:
        """Stop accepting (the socket is its owner's to close)."""
        if not self._closed:
            self._closed = True
            if self._pause is not None:
                self._pause.cancel()
            else:
                self.loop.remove_reader(self.sock.fileno())

    async def wait_closed(self) -> None:
        """Until the connections being set up are served or dropped."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
