"""The processes the soaks start, stop and kill -9: ``redis-server`` and ``kiosk relay``,
each on a free loopback port it keeps across restarts (one copy for ``relay_soak.py`` and
``hub_soak.py``)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk.relay.server import free_port, wait_healthy


class RedisServer:
    """``redis-server`` on a free loopback port: AOF fsynced on every write
    (``persist``), or nothing kept; kill -9 (optionally wiping its folder), start again."""

    def __init__(self, folder: Path, persist: bool = True) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise SystemExit("redis-server is not installed (apt: redis-server)")
        self.folder = folder
        self.args = [exe, "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
                     "--maxmemory-policy", "noeviction",
                     *(("--appendonly", "yes", "--appendfsync", "always") if persist
                       else ("--appendonly", "no"))]
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([*self.args, "--port", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def kill(self, wipe: bool = False) -> None:
        """kill -9; ``wipe``: its files are gone too (a store that restarts empty)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if wipe:
            shutil.rmtree(self.folder)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class RelayProcess:
    """One ``kiosk relay`` process (its log appended to ``log``); kill -9 and start again
    on the same port. ``ready``: started once ``/healthz`` answers 200, or once the port
    listens (its ``/healthz`` may say 503 while its Redis is down)."""

    def __init__(self, config: Path, log: Path, name: str = "relay",
                 ready: Literal["healthz", "listening"] = "healthz") -> None:
        self.name = name
        self.config = config
        self.log = log
        self.ready = ready
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kiosk", "--config", str(self.config), "relay",
                 "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=subprocess.DEVNULL, stderr=log)
        if self.ready == "healthz":
            wait_healthy(self.url, self.proc, 30)
            return
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"relay {self.name} did not start: see {self.log}")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
