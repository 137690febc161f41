"""Serve the relay with uvicorn: in the foreground (``kiosk relay``), on a background
thread on a free loopback port (:class:`RelayServer`), or in a process of its own
(:func:`relay_process`), for tests, the demo and benchmarks.

::

    with RelayServer(RelaySettings(secrets=(b"s" * 32,), displays={"t" * 32: "branch-1"},
                                   sqlite_path=tmp / "relay.sqlite3")) as relay:
        relay.url          # http://127.0.0.1:PORT

    with relay_process(config_file) as proc:       # `kiosk --config FILE relay --port P`
        proc.url; proc.kill()                      # kill -9, for the durability test
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.types import Scope
from uvicorn.config import STARTUP_FAILURE

from kiosk.relay.app import Relay, create_app
from kiosk.relay.collector import Collector
from kiosk.relay.config import RelaySettings, connection_cap, open_file_limit
from kiosk.relay.guard import Acceptor, ConnectionGuard
from kiosk.relay.phone import PhoneSource

log = logging.getLogger("kiosk.relay")

MAX_HEADERS = 16 * 1024
"""The largest request head (request line and headers) read; a larger one is a 400."""


class _Server(uvicorn.Server):
    """uvicorn under a :class:`~kiosk.relay.guard.ConnectionGuard` (deadlines, the cap on
    connections, rate-limited logs of refusals and accept errors), ending the SSE streams
    first when asked to stop (they never end alone)."""

    def __init__(self, app: Starlette, host: str, port: int, log_level: str,
                 collect: bool = False) -> None:
        self.relay: Relay = app.state.relay
        settings = self.relay.settings
        self.collector = Collector(settings.gc_freeze_s, settings.gc_full_pass_s,
                                   registry=self.relay.metrics.registry) if collect else None
        self.guard = ConnectionGuard(
            connection_cap(settings.max_connections, open_file_limit()),
            header_timeout_s=settings.header_timeout_s,
            body_timeout_s=settings.body_timeout_s, send_timeout_s=settings.send_timeout_s,
            registry=self.relay.metrics.registry)
        super().__init__(uvicorn.Config(
            app, host=host, port=port, log_level=log_level, access_log=False, lifespan="on",
            timeout_graceful_shutdown=3, http=self.guard.protocol_class(),
            # the relay reads forwarding headers itself, by its own rule (a loopback peer is
            # this machine's proxy); uvicorn's, under FORWARDED_ALLOW_IPS=*, would put an
            # address any client writes in the peer's place (and cost every request a pass)
            proxy_headers=False,
            timeout_keep_alive=settings.keepalive_idle_s,
            server_header=False,  # no "server: uvicorn": what runs here is nobody's business
            h11_max_incomplete_event_size=MAX_HEADERS))
        self.relay.transport_of = self.transport_of

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's start-up, with the guard's accept loop instead of asyncio's server."""
        if not sockets:
            raise ValueError("the relay serves sockets it was given (listening_socket)")
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            sys.exit(STARTUP_FAILURE)
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self.guard.loop_exception)
        self.guard.loop = loop
        logging.getLogger("uvicorn.error").addFilter(self.guard.uvicorn_filter)
        if self.collector is not None:
            self.collector.start()
        config = self.config

        def create_protocol() -> asyncio.Protocol:
            protocol: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state,
                app_state=self.lifespan.state, _loop=loop)
            return protocol

        # uvicorn calls close() and wait_closed() on these at shutdown, as on its servers
        self.servers = [Acceptor(sock, create_protocol, self.guard, loop)  # type: ignore[misc]
                        for sock in sockets]
        for sock in sockets:
            host, port = sock.getsockname()[:2]
            log.info("relay: listening on %s:%d (at most %d connections)", host, port,
                     self.guard.max_connections)
        self.started = True

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().serve(sockets)
        finally:  # however serving ended (shutdown may never have run)
            logging.getLogger("uvicorn.error").removeFilter(self.guard.uvicorn_filter)
            if self.collector is not None:
                await self.collector.stop()

    def transport_of(self, scope: Scope) -> asyncio.Transport | None:
        """The connection serving the request ``scope``, if it is still open."""
        for conn in list(self.server_state.connections):
            if getattr(getattr(conn, "cycle", None), "scope", None) is scope:
                transport: asyncio.Transport | None = getattr(conn, "transport", None)
                return transport
        return None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        loop = self.relay.loop
        if loop is not None and not loop.is_closed():
            # from a signal handler or another thread: the hub lives on the loop
            loop.call_soon_threadsafe(self.relay.hub.close_all)
        super().handle_exit(sig, frame)


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket; TCP_NODELAY on accepted sockets needs IPPROTO_TCP here (see
    kiosk.mock.server for the 40 ms it otherwise costs)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def serve_forever(settings: RelaySettings, log_level: str = "info") -> None:
    """Run the relay until interrupted (``kiosk relay``)."""
    app = create_app(settings)
    server = _Server(app, settings.host, settings.port, log_level, collect=True)
    sock = listening_socket(settings.host, settings.port)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


class RelayServer:
    """The relay on ``127.0.0.1:<free port>`` in a background thread.

    ``with RelayServer(settings) as relay: relay.url, relay.relay (the routes' state)``
    """

    def __init__(self, settings: RelaySettings, host: str = "127.0.0.1",
                 phone_source: PhoneSource | None = None) -> None:
        self.settings = settings
        self.app = create_app(settings, phone_source=phone_source)
        self.relay: Relay = self.app.state.relay
        self._sock = listening_socket(host, 0)
        self.host, self.port = self._sock.getsockname()[:2]
        self._server = _Server(self.app, host, self.port, "warning")
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._sock]},
                                        name="relay", daemon=True)

    @property
    def url(self) -> str:
        """Base URL (``http://127.0.0.1:PORT``)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> RelayServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the relay did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving and wait for the relay's shutdown (its streams closed, its store's
        pending writes done). RuntimeError if it is still running after ``timeout_s``:
        a caller told nothing would take a relay that still writes for one that ended."""
        self._server.handle_exit(signal.SIGTERM, None)
        self._thread.join(timeout=timeout_s)
        if self._thread.is_alive():
            raise RuntimeError(f"the relay did not stop within {timeout_s:g} s (its "
                               "shutdown is still running)")
        self._sock.close()

    def __enter__(self) -> RelayServer:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.stop()
        except RuntimeError as exc:
            if e is None:
                raise
            log.error("relay: %s", exc)  # the block's own error is the one to see


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class RelayProcess:
    """A ``kiosk relay`` process started by :func:`relay_process`."""

    url: str
    proc: subprocess.Popen[bytes]

    def kill(self) -> None:
        """SIGKILL, no goodbye (the durability test)."""
        self.proc.kill()
        self.proc.wait(timeout=10)


def wait_healthy(url: str, proc: subprocess.Popen[bytes] | None = None,
                 timeout_s: float = 20.0) -> None:
    """Return once ``url/healthz`` answers 200."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=0.5, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            raise RuntimeError("the relay did not start")
        time.sleep(0.05)


def _limit_open_files(nofile: int) -> Callable[[], None]:
    def limit() -> None:  # in the child, before exec
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    return limit


@contextlib.contextmanager
def relay_process(config: Path, port: int | None = None, env: Mapping[str, str] | None = None,
                  timeout_s: float = 20.0, *, nofile: int | None = None,
                  log_path: Path | None = None, cwd: Path | None = None
                  ) -> Iterator[RelayProcess]:
    """``kiosk --config CONFIG relay`` in its own process on a free loopback port; yields
    once ``/healthz`` answers, stops it (SIGTERM) at the end unless it was killed.

    ``nofile``: its open-file limit (soft and hard, as systemd's ``LimitNOFILE``);
    ``log_path``: where its log (stderr) goes, appended (default: a temporary file);
    ``cwd``: its working folder (``-m`` puts it first on its path: the relay of another
    checkout runs there, or this one's package would shadow that one's)."""
    port = port or free_port()
    args = [sys.executable, "-m", "kiosk", "--config", str(config), "relay",
            "--host", "127.0.0.1", "--port", str(port)]
    # a file, not a pipe: a pipe nobody reads could fill and stall the relay
    log = (log_path.open("ab") if log_path is not None
           else tempfile.TemporaryFile())  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(args, env=dict(env) if env is not None else dict(os.environ),  # noqa: S603
                            stdout=subprocess.DEVNULL, stderr=log, cwd=cwd,
                            preexec_fn=_limit_open_files(nofile) if nofile else None)  # noqa: PLW1509
    handle = RelayProcess(f"http://127.0.0.1:{port}", proc)
    try:
        try:
            wait_healthy(handle.url, proc, timeout_s)
        except RuntimeError:
            log.flush()
            with (log_path.open("rb") if log_path is not None else contextlib.nullcontext(log)
                  ) as f:
                f.seek(0)
                tail = f.read().decode(errors="replace").strip()[-800:]
            raise RuntimeError(f"the relay did not start: {tail}") from None
        yield handle
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
