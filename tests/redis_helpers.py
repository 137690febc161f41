"""A real ``redis-server`` for the relay's tests that can be killed (-9) and started again
on the same port, with or without persistence (``packaging/dev.sh test`` installs it)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from kiosk.relay.server import free_port


class RedisProcess:
    """``redis-server`` on a free loopback port, its files in ``folder``.

    ``persistence``: ``none`` (nothing kept: a restart is an empty Redis), ``aof`` (AOF,
    ``appendfsync always``) or ``rdb`` (no AOF, no automatic saves: a restart brings back
    the last :meth:`save`, an older state)."""

    def __init__(self, folder: Path, persistence: str = "none") -> None:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is not installed (packaging/dev.sh test installs it as root)"
        self.exe = exe
        self.folder = folder
        self.persistence = persistence
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def args(self) -> list[str]:
        base = [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                str(self.folder), "--save", "", "--maxmemory-policy", "noeviction"]
        if self.persistence == "aof":
            return [*base, "--appendonly", "yes", "--appendfsync", "always"]
        return [*base, "--appendonly", "no"]

    def start(self) -> RedisProcess:
        self.proc = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 15
        try:
            while True:
                try:
                    if client.ping():
                        return self
                except redis.exceptions.BusyLoadingError:
                    pass
                except redis.ConnectionError:
                    pass
                assert self.proc.poll() is None and time.monotonic() < deadline, \
                    "redis did not start"
                time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        """kill -9: what was not persisted is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def save(self) -> None:
        """A snapshot (``SAVE``): what an ``rdb`` Redis comes back with."""
        client = redis.Redis.from_url(self.url)
        try:
            client.save()
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> RedisProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
