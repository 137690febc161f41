"""Nobody holds the relay down (kiosk/relay/guard.py), over real loopback TCP: deadlines
for headers and bodies, idle keep-alive, the cap on connections below the open-file limit
(the longest waiting evicted, busy ones kept), accept errors (a real EMFILE) and refusals
logged once a minute per kind with counts in /metrics; and the relay in its own process
with the default open-file limit (1024) answering a signed webhook and /healthz within a
second while 1,100 hostile connections idle or trickle their headers or bodies."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import resource
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from kiosk.relay import RelayServer
from kiosk.relay.config import FD_RESERVE, connection_cap
from kiosk.relay.server import free_port, relay_process
from tests.relay_helpers import (
    BRANCH_A,
    SECRET,
    TOKEN_A,
    SseReader,
    call_body,
    metric,
    post,
    raw_stream,
    settings,
    sign,
    write_private,
)
from tests.slowloris import BODY_HEAD, HEAD_TRICKLE, attack_process

from .conftest import REPO


def _wait(predicate: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _connect(relay: RelayServer, first: bytes = b"") -> socket.socket:
    sock = socket.create_connection((relay.host, relay.port), timeout=10)
    if first:
        sock.sendall(first)
    return sock


def _lifetimes(socks: dict[str, tuple[socket.socket, bytes]], limit_s: float = 10.0,
               every_s: float = 0.2) -> dict[str, float]:
    """Seconds from now until the relay closes each socket (``name: (sock, trickle)``:
    ``trickle`` is sent every ``every_s`` meanwhile, if any); what it answered before
    closing is read and dropped; ``inf`` for one still open after ``limit_s``."""
    began = time.monotonic()
    alive = dict(socks)
    out = dict.fromkeys(socks, float("inf"))
    for sock, _ in socks.values():
        sock.setblocking(False)
    next_trickle = began
    while alive and time.monotonic() - began < limit_s:
        readable, _, _ = select.select([s for s, _ in alive.values()], [], [], 0.02)
        for name, (sock, trickle) in list(alive.items()):
            gone = False
            if sock in readable:
                try:
                    gone = not sock.recv(4096)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    gone = True
            if not gone and trickle and time.monotonic() >= next_trickle:
                try:
                    sock.send(trickle)
                except BlockingIOError:
                    pass
                except OSError:
                    gone = True
            if gone:
                out[name] = time.monotonic() - began
                del alive[name]
        if time.monotonic() >= next_trickle:
            next_trickle += every_s
    return out


def _closed_after(sock: socket.socket, trickle: bytes = b"", limit_s: float = 10.0) -> float:
    return _lifetimes({"it": (sock, trickle)}, limit_s)["it"]


QUIET_HOST = "127.0.0.23"
"""A loopback address of its own for the tests that count connections: another program
on this machine that probes a port it thinks free (on 127.0.0.1) never adds one."""


def _connections(relay: RelayServer, screens: list[SseReader]) -> str:
    """What the relay holds, for a failure's message."""
    conns = [(c._phase, str(c.conn.their_state), c.client)
             for c in relay._server.server_state.connections]
    refusals = [ln for ln in httpx.get(relay.url + "/metrics").text.splitlines()
                if ln.startswith("relay_connections")]
    return f"screens {[s.status for s in screens]}; {refusals}; {conns}"


def refused(url: str, reason: str) -> float:
    return metric(url, f'relay_connections_refused_total{{reason="{reason}"}}')


# --------------------------------------------------------------------------- deadlines


def test_slow_headers_slow_bodies_and_idle_keep_alive_are_closed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Each kind of slow client is closed at its deadline however many bytes it trickles
    (before: all of them stayed open for good); a stream that sent its request whole
    outlives every deadline."""
    caplog.set_level("INFO")
    s = settings(tmp_path, header_timeout_s=1.0, body_timeout_s=1.0, keepalive_idle_s=0.5)
    with RelayServer(s) as relay:
        screen = SseReader(relay.url, BRANCH_A, TOKEN_A).start_connected()
        lived = _lifetimes({"silent": (_connect(relay), b""),
                            "headers": (_connect(relay, HEAD_TRICKLE), b"a"),
                            "body": (_connect(relay, BODY_HEAD + b"{"), b" ")})
        # bytes keep coming, a byte every 0.2 s: closed all the same
        assert all(0.7 < seconds < 3 for seconds in lived.values()), lived
        idle = _connect(relay, b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
        began = time.monotonic()
        assert idle.recv(4096).startswith(b"HTTP/1.1 200")
        assert _closed_after(idle) + (time.monotonic() - began) < 2  # keep-alive: 0.5 s
        # a second request on a keep-alive connection gets the header deadline again
        again = _connect(relay, b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
        assert again.recv(4096).startswith(b"HTTP/1.1 200")
        again.sendall(b"GET /healthz HTTP/1.1\r\n")
        assert 0.7 < _closed_after(again, trickle=b"X") < 3
        # the screen's stream, busy all along, still carries calls
        assert post(relay.url, call_body("A-1", "c-1")).status_code == 201
        assert screen.take(1)[0][1]["ticketId"] == "A-1"
        assert refused(relay.url, "header_timeout") == 3
        assert refused(relay.url, "body_timeout") == 1
        screen.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "kiosk.relay.guard"]
    assert sum("no whole request headers" in line for line in lines) == 1  # once a minute
    assert sum("body did not arrive" in line for line in lines) == 1


@pytest.mark.slow
def test_each_phase_keeps_its_own_deadline_on_one_timer(tmp_path: Path) -> None:
    """A connection has one timer, moved on lazily (no timer per request): a body deadline
    shorter than the header deadline still closes at the body's, and a keep-alive
    connection's many quick requests never count toward either."""
    s = settings(tmp_path, header_timeout_s=4.0, body_timeout_s=0.5, keepalive_idle_s=4.0)
    with RelayServer(s) as relay:
        body = _connect(relay, BODY_HEAD + b"{")  # headers at once, then the body trickles
        assert 0.3 < _closed_after(body, trickle=b" ") < 2.5  # 0.5 s, not the 4 s
        busy = _connect(relay)
        began = time.monotonic()
        while time.monotonic() - began < 5:  # requests for longer than either deadline
            busy.sendall(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
            answer = b""
            while not answer.endswith(b"}"):  # its head and its body may come apart
                answer += busy.recv(4096)
            assert answer.startswith(b"HTTP/1.1 200")
            time.sleep(0.05)
        assert refused(relay.url, "body_timeout") == 1
        assert refused(relay.url, "header_timeout") == 0


@pytest.mark.slow
def test_a_client_that_never_reads_its_answers_is_reset(tmp_path: Path) -> None:
    """Requests pipelined by a client that reads nothing: the answers fill the buffers,
    the relay's writes pause, and the connection held its place for good (a busy one,
    never evicted). Now reset ``send_timeout_s`` + 5 s after the writes paused."""
    with RelayServer(settings(tmp_path, send_timeout_s=0.5)) as relay:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((relay.host, relay.port))
        requests = b"GET /metrics HTTP/1.1\r\nHost: relay\r\n\r\n" * 3000
        sender = threading.Thread(target=_send_quietly, args=(sock, requests), daemon=True)
        sender.start()
        assert _wait(lambda: refused(relay.url, "send_stalled") == 1.0, timeout=30)
        with pytest.raises(OSError):
            for _ in range(1000):  # what the buffers hold, then the reset
                if not sock.recv(65536):
                    raise ConnectionResetError
        sock.close()
        sender.join(timeout=10)


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(data)


# --------------------------------------------------------------------------- the cap


def test_at_the_cap_the_longest_waiting_is_evicted_and_busy_ones_are_kept(
        tmp_path: Path) -> None:
    """20 places: 3 screens' streams and 17 silent connections fill them; each newcomer
    closes the silent one that waited longest, never a stream; a webhook still gets in.
    With every place busy (20 streams) a newcomer is answered 503 at once."""
    s = settings(tmp_path, max_connections=20, max_streams_per_token=50)
    with RelayServer(s, host=QUIET_HOST) as relay:
        screens = [SseReader(relay.url, BRANCH_A, TOKEN_A).start_connected() for _ in range(3)]
        silent = [_connect(relay) for _ in range(17)]
        gauge = relay.relay.metrics.registry.get_sample_value
        if not _wait(lambda: gauge("relay_connections", {"state": "waiting"}) == 17):
            raise AssertionError(_connections(relay, screens))
        newcomer = _connect(relay)
        assert _closed_after(silent[0], limit_s=3) < 3  # the oldest silent one made room
        others = _lifetimes({str(i): (sock, b"") for i, sock in enumerate(silent[1:3])},
                            limit_s=0.3)
        assert set(others.values()) == {float("inf")}  # the others stay
        r = post(relay.url, call_body("A-1", "c-1"))  # evicts the next oldest
        assert r.status_code == 201
        for screen in screens:
            assert screen.take(1)[0][1]["ticketId"] == "A-1"
        assert refused(relay.url, "evicted") >= 2
        for sock in [*silent, newcomer]:
            sock.close()
        for screen in screens:
            screen.stop()
        assert _wait(lambda: gauge("relay_connections", {"state": "busy"}) in (0.0, 3.0)), \
            (gauge("relay_connections", {"state": "busy"}),
             gauge("relay_connections", {"state": "waiting"}))

    s = settings(tmp_path, max_connections=20, max_streams_per_token=50)
    with RelayServer(s, host=QUIET_HOST) as relay:
        streams = [raw_stream(relay.url, BRANCH_A, TOKEN_A) for _ in range(20)]
        assert [status for _, status in streams] == [200] * 20
        with _connect(relay) as late:
            late.settimeout(5)
            answer = late.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503") and b"retry-after: 5" in answer
        streams[0][0].close()
        assert _wait(lambda: refused(relay.url, "full") == 1.0)
        for sock, _ in streams[1:]:
            sock.close()


def test_a_burst_past_the_cap_in_one_turn_says_what_holds_the_places(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """60 connections at once at a cap of 50: those accepted in the same turn are not
    waiting yet (their protocol is made on the next), so the last are answered 503; the
    log said every place was busy with requests and streams, which none was."""
    caplog.set_level("WARNING", "kiosk.relay")
    with RelayServer(settings(tmp_path, max_connections=50), host=QUIET_HOST) as relay:
        loop = relay.relay.loop
        assert loop is not None
        loop.call_soon_threadsafe(time.sleep, 2.5)  # a busy turn: they wait in the backlog
        socks = [_connect(relay) for _ in range(60)]
        sample = relay.relay.metrics.registry.get_sample_value  # (/metrics has no place)
        assert _wait(lambda: sample("relay_connections_refused_total", {"reason": "full"})
                     == 10)
        for sock in socks:
            sock.close()
    full = [r.getMessage() for r in caplog.records if "refused (503)" in r.getMessage()]
    assert full and "accepted a moment ago" in full[0], full


def test_the_cap_must_fit_under_the_open_file_limit(tmp_path: Path) -> None:
    """``relay.max_connections`` above the open-file limit less the reserve stops
    start-up (exit 2) naming the key, the limit and what to do; unset, the cap is the
    limit less the reserve."""
    assert connection_cap(None, 1024) == 1024 - FD_RESERVE
    assert connection_cap(500, 1024) == 500
    with pytest.raises(ValueError, match="at most 832 with the open-file limit of 1024"):
        connection_cap(5000, 1024)
    secret = write_private(tmp_path / "secret", SECRET.decode() + "\n")
    config = tmp_path / "relay.yaml"
    config.write_text(yaml.safe_dump({"relay": {"webhook_secret_file": str(secret),
                                                "max_connections": 5000},
                                      "kiosk": {"data_dir": str(tmp_path)}}))

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

    p = subprocess.run([sys.executable, "-m", "kiosk", "--config", str(config), "relay",
                        "--port", str(free_port())], capture_output=True, text=True,
                       timeout=60, preexec_fn=limit, cwd=REPO)
    assert p.returncode == 2, p.stderr
    assert "relay.max_connections: at most 832 with the open-file limit of 1024" in p.stderr
    assert "LimitNOFILE" in p.stderr


# --------------------------------------------------------------------------- errors


def test_accept_errors_from_the_open_file_limit_are_logged_once_and_counted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A real EMFILE: the relay's process runs out of files while clients connect.
    asyncio reported every failed accept with a traceback, thousands a second (60 MB of
    log in 13 s); now one line, every one counted, and the relay serves again after."""
    caplog.set_level("INFO")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with RelayServer(settings(tmp_path, max_connections=16)) as relay:
        connector = subprocess.Popen(  # started now: it needs no new file of ours later
            [sys.executable, "-c", "import socket, sys, time\n"
             "sys.stdin.readline()\n"
             "socks = []\n"
             "for _ in range(40):\n"
             f"    socks.append(socket.create_connection(('127.0.0.1', {relay.port})))\n"
             "time.sleep(3)\n"], stdin=subprocess.PIPE)
        assert connector.stdin is not None
        hoard: list[int] = []
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
            with contextlib.suppress(OSError):
                while True:
                    hoard.append(os.open(os.devnull, os.O_RDONLY))
            connector.stdin.write(b"go\n")
            connector.stdin.flush()
            time.sleep(2.0)  # the relay tries to accept them all along
        finally:
            for fd in hoard:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        connector.wait(timeout=30)
        assert httpx.get(relay.url + "/healthz", timeout=10).status_code == 200
        assert refused(relay.url, "accept_error") >= 2
    lines = [r for r in caplog.records if "accepting a connection failed" in r.getMessage()]
    assert len(lines) == 1 and "EMFILE" in lines[0].getMessage()
    assert "Traceback" not in caplog.text and "out of system resource" not in caplog.text


def test_malformed_requests_are_answered_400_and_logged_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    with RelayServer(settings(tmp_path)) as relay:
        for _ in range(50):
            with _connect(relay, b"GARBAGE\x00 / HTTP/9\r\n\r\n") as sock:
                sock.settimeout(5)
                assert sock.recv(4096).startswith(b"HTTP/1.1 400")
        assert refused(relay.url, "invalid_request") == 50
    assert caplog.text.count("Invalid HTTP request received.") == 1


def test_unhandled_errors_are_logged_once_a_period_with_one_traceback(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A request that ends in an exception nobody handled is a 500, and uvicorn logs its
    traceback (a few KB) each time: an outsider who finds such a request could grow the
    log without end. One line and one traceback a period, every one counted."""
    from kiosk.relay.app import Relay

    async def broken(self: Relay, request: object) -> None:
        raise ValueError("Exceeds the limit (4300 digits) \n W forged line")

    monkeypatch.setattr(Relay, "healthz", broken)
    caplog.set_level("INFO")
    uvicorn_log = logging.getLogger("uvicorn.error")  # it does not reach the root logger
    with RelayServer(settings(tmp_path)) as relay:
        uvicorn_log.addHandler(caplog.handler)  # (once uvicorn has set its logging up)
        try:
            for _ in range(30):
                assert httpx.get(relay.url + "/healthz", timeout=10).status_code == 500
        finally:
            uvicorn_log.removeHandler(caplog.handler)
        assert refused(relay.url, "app_error") == 30
    assert caplog.text.count("Exception in ASGI application") == 1
    assert caplog.text.count("Traceback") == 1
    lines = [r.getMessage() for r in caplog.records if "unhandled error" in r.getMessage()]
    assert len(lines) == 1 and "ValueError" in lines[0] and "\n W forged" not in lines[0]


def test_a_failed_shutdown_is_logged_whole_after_a_request_error(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn's other errors are not a request's: a store that fails to close (its last
    writes lost) is logged with its traceback even within a minute of a request error."""
    from kiosk.relay.app import Relay
    from kiosk.relay.store import SqliteStore

    async def broken(self: Relay, request: object) -> None:
        raise ValueError("a request's error")

    close = SqliteStore.close

    async def failing_close(self: SqliteStore) -> None:
        await close(self)
        raise OSError(5, "the last calls were not written")

    monkeypatch.setattr(Relay, "healthz", broken)
    monkeypatch.setattr(SqliteStore, "close", failing_close)
    caplog.set_level("INFO")
    uvicorn_log = logging.getLogger("uvicorn.error")
    relay = RelayServer(settings(tmp_path))
    relay.start()
    uvicorn_log.addHandler(caplog.handler)
    try:
        assert httpx.get(relay.url + "/healthz", timeout=10).status_code == 500
        relay.stop()
    finally:
        uvicorn_log.removeHandler(caplog.handler)
    assert "the last calls were not written" in caplog.text
    assert "Application shutdown failed" in caplog.text
    assert caplog.text.count("unhandled error") == 1  # the request's; not the shutdown


def test_a_body_that_never_arrives_whole_leaves_no_traceback(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A client that stops mid-body (or that the guard closes at the body deadline):
    Starlette's ClientDisconnect escaped the form and JSON readers, an unhandled error
    (a traceback a request) on the fleet sign-in, a heartbeat, a lease and a report."""
    from tests.fleet_helpers import TOKENS, fleet_settings

    token = TOKENS["lobby-1"].encode()
    caplog.set_level("INFO")
    uvicorn_log = logging.getLogger("uvicorn.error")
    with RelayServer(fleet_settings(tmp_path)) as relay:
        uvicorn_log.addHandler(caplog.handler)
        try:
            for target, auth in ((b"POST /fleet/login", b""),
                                 (b"PUT /v1/devices/lobby-1/state", token),
                                 (b"POST /v1/branches/" + BRANCH_A.encode() + b"/leases", token),
                                 (b"POST /v1/branches/" + BRANCH_A.encode() + b"/tickets",
                                  token)):
                head = (target + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                        + (b"Authorization: Bearer " + auth + b"\r\n" if auth else b"")
                        + b"Content-Type: application/json\r\n\r\n{\"token\": ")
                for _ in range(3):
                    with _connect(relay, head):
                        time.sleep(0.05)  # then closed, 91 bytes short
            # every one of them handled (and its error, if any, logged) before looking
            assert _wait(lambda: not relay._server.server_state.connections)
            assert httpx.get(relay.url + "/healthz").status_code == 200
        finally:
            uvicorn_log.removeHandler(caplog.handler)
        assert refused(relay.url, "app_error") == 0
    assert "Exception in ASGI application" not in caplog.text
    assert "ClientDisconnect" not in caplog.text


def test_two_relays_in_one_process_each_count_their_own_malformed_requests(
        tmp_path: Path) -> None:
    """uvicorn logs every malformed request to one process-wide logger, and each relay's
    guard filters it. CI saw a relay whose malformed requests all went uncounted (0, not
    50): another relay's filter, left on the logger, took them as its own and dropped
    them. Here two relays run side by side; each counts only what it was sent."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with RelayServer(settings(tmp_path / "a")) as first, \
            RelayServer(settings(tmp_path / "b")) as second:
        for relay, times in ((second, 7), (first, 3)):
            for _ in range(times):
                with _connect(relay, b"GARBAGE\x00 / HTTP/9\r\n\r\n") as sock:
                    sock.settimeout(5)
                    assert sock.recv(4096).startswith(b"HTTP/1.1 400")
        assert (refused(first.url, "invalid_request"),
                refused(second.url, "invalid_request")) == (3, 7)


# --------------------------------------------------------------------------- the attack


def _timed(call: Callable[[], httpx.Response]) -> tuple[float, int]:
    began = time.monotonic()
    try:
        status = call().status_code
    except httpx.HTTPError as exc:
        return time.monotonic() - began, -len(type(exc).__name__)
    return time.monotonic() - began, status


@pytest.mark.slow
def test_a_webhook_and_healthz_answer_within_a_second_under_1100_hostile_connections(
        tmp_path: Path) -> None:
    """The relay in its own process, open-file limit 1024 (the default), under 400
    silent connections, 350 trickling their headers and 350 their bodies (each one the
    relay closes is opened again, up to 500 a second; in a process of its own).
    Before: ~1,100 such connections made a signed
    webhook time out and /healthz hang, and the log grew 60 MB in 13 s."""
    secret = write_private(tmp_path / "secret", SECRET.decode() + "\n")
    token = write_private(tmp_path / "display", TOKEN_A + "\n")
    config = tmp_path / "relay.yaml"
    config.write_text(yaml.safe_dump({
        "kiosk": {"data_dir": str(tmp_path / "data")},
        "relay": {"webhook_secret_file": str(secret),
                  "displays": [{"branch": BRANCH_A, "token_file": str(token)}]}}))
    log = tmp_path / "relay.log"
    with relay_process(config, nofile=1024, log_path=log) as relay:
        url = relay.url
        port = int(url.rsplit(":", 1)[1])
        screen = SseReader(url, BRANCH_A, TOKEN_A).start_connected()
        timings: list[tuple[str, float, int]] = []
        most_files = 0
        def webhook(n: int) -> httpx.Response:
            body = call_body(f"A-{n:03d}", f"c-{n}")
            return httpx.post(url + "/webhooks/videsk", content=body, headers=sign(body),
                              timeout=5)

        def healthz() -> httpx.Response:
            return httpx.get(url + "/healthz", timeout=5)

        with attack_process(port, idle=400, headers=350, body=350, interval_s=0.5,
                            reconnect_per_s=500, wait_open=1000) as attack:
            began = time.monotonic()
            i = 0
            while time.monotonic() - began < 14:  # past the header and body deadlines
                i += 1
                timings.append(("webhook", *_timed(functools.partial(webhook, i))))
                timings.append(("healthz", *_timed(healthz)))
                most_files = max(most_files, len(os.listdir(f"/proc/{relay.proc.pid}/fd")))
                time.sleep(0.3)
            fresh = SseReader(url, BRANCH_A, TOKEN_A)
            opened = time.monotonic()
            fresh.start_connected()
            fresh_s = time.monotonic() - opened
            figures = attack()
        slow = [(what, round(s, 2), status) for what, s, status in timings
                if s >= 1.0 or status not in (200, 201)]
        assert not slow, slow
        assert i >= 10
        assert fresh.status == 200 and fresh_s < 1.0
        got = [data["ticketId"] for _, data in screen.take(i, timeout=20)]
        assert got == [f"A-{n:03d}" for n in range(1, i + 1)]  # the screen missed nothing
        # 1,000 and more held at once; each one closed came back (a second's worth at least)
        assert figures["most_held"] >= 1000 and figures["reopened"] > 1000, figures
        assert most_files < 1024
        assert metric(url, "relay_connections_max") == 1024 - FD_RESERVE
        assert refused(url, "evicted") > 1000
        assert refused(url, "accept_error") == 0
        screen.stop()
        fresh.stop()
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    assert len(lines) <= 10, lines[:20]
    assert not any(re.search(r"Traceback|Too many open files", line) for line in lines)
