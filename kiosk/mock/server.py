"""Serve the mock API with uvicorn: in the foreground (``kiosk mock-api``) or on a
background thread with a free loopback port (:class:`MockServer`, for the demo, tests and
benchmarks)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx
import uvicorn

from kiosk.mock.app import create_app
from kiosk.mock.scenario import MockState, Scenario


def _config(state: MockState, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(create_app(state), host=host, port=port, log_level=log_level,
                          access_log=log_level == "debug", lifespan="off")


def serve_forever(scenario: Scenario, host: str = "127.0.0.1", port: int = 8080,
                  log_level: str = "info") -> None:
    """Run the mock API until interrupted."""
    uvicorn.Server(_config(MockState(scenario), host, port, log_level)).run()


@contextlib.contextmanager
def mock_process(scenario: Path | None = None, env: Mapping[str, str] | None = None,
                 timeout_s: float = 15.0, log: IO[bytes] | None = None) -> Iterator[str]:
    """``kiosk mock-api`` in its own process on a free loopback port; yields its URL once
    it answers (benchmarks use it: the real API is not in the kiosk's process either).
    Its log goes to ``log`` (a file: a long run with faults writes a lot), else nowhere."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [sys.executable, "-m", "kiosk", "mock-api", "--port", str(port)]
    if scenario is not None:
        args += ["--scenario", str(scenario)]
    proc = subprocess.Popen(args, env=dict(env) if env is not None else dict(os.environ),  # noqa: S603
                            stdout=subprocess.DEVNULL,
                            stderr=log if log is not None else subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                httpx.get(url + "/_mock/state", timeout=0.5)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the mock API process did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class MockServer:
    """The mock API on ``127.0.0.1:<free port>`` in a background thread.

    ``with MockServer(scenario) as mock: mock.url, mock.state``
    """

    def __init__(self, scenario: Scenario | MockState, host: str = "127.0.0.1") -> None:
        self.state = scenario if isinstance(scenario, MockState) else MockState(scenario)
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when
        # the listening socket says so, and without it every answer stalls ~40 ms
        # (Nagle holding the body until the client's delayed ACK of the headers).
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self.host, self.port = self._sock.getsockname()[:2]
        self._server = uvicorn.Server(_config(self.state, host, self.port, "warning"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="mock-api", daemon=True)

    @property
    def url(self) -> str:
        """Base URL to give the client (``http://127.0.0.1:PORT``)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> MockServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the mock API did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
