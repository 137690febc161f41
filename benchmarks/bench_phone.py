"""The phone ticket at scale (issue 18): 10,000 open phone pages and 500 calling screens on
one relay, then on two replicas sharing one Redis.

Set-up: 50 branches, each with a kiosk device (its token reports tickets) and a display
token for its 10 screens; 200 tickets a branch reported to the hub (``POST
/v1/branches/{b}/tickets``, each with its phone token), 10,000 in all; a phone page
(``GET /t/{token}/events``, Server-Sent Events) open for each, every page from an address
of its own group of 100 (``127.1.x.y``: the relay limits requests per address, as phones
have their own); 500 screens (``GET /v1/branches/{b}/calls``). Then signed webhooks call
the branches' tickets in order, one every ``--gap-ms``, spread over the branches.

The load: each call moves every open page of its branch (200 here: "ahead" one lower), so
10 calls a second (the default, ``--gap-ms 100``) are 2,000 page updates a second, six
times a busy hour of 50 branches of 10 booths (a booth calls about every 5 minutes).
``--gap-ms 10`` (100 calls a second, 20,000 page updates) is a stress run: the relay's core
is then saturated by the pages, and the screens' p99 sits at the goal's edge (README).

Measured in the same run:

- webhook → screen: the time from sending a webhook to its call read by each of its
  branch's screens. Goal: p99 < 50 ms.
- webhook → phone: the time from sending a webhook to each page's new state (the called
  ticket's "called", every later ticket's "ahead" one lower) read by the page. Goal:
  p99 < 250 ms.
- the relay's resident memory (``VmRSS`` with everything open, and its peak ``VmHWM``).
  Goal: < 400 MB a process.

The pages and screens are raw sockets in this process (asyncio protocols: cheap, so the
client is not what is measured). Its open-file limit is raised to its hard limit, and each
relay's (``relay_process(nofile=)``).

    .venv/bin/python benchmarks/bench_phone.py [--calls 300] [--gap-ms 100] [--pages 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import resource
import secrets
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_relay import (
    SCREENS_PER_BRANCH,
    Screens,
    _read_answer,
    pct,
    redis_server,
    webhook_request,
)

from kiosk.relay.server import relay_process, wait_healthy

BRANCHES = [f"branch{i:02d}" for i in range(50)]
ZONE = "America/Santiago"
ADDRESSES = 100
"""Pages per source address (127.1.x.y): below the relay's burst per address."""


def _private(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def write_config(folder: Path, store: str = "sqlite") -> tuple[Path, dict[str, str],
                                                                  dict[str, str]]:
    """A relay config: per branch a kiosk device and a display token; the display and
    device tokens by branch."""
    from bench_relay import AUTH, SECRET
    AUTH["mode"] = "hmac"  # the signature is not what this measures
    secret = _private(folder / "secret", SECRET.decode())
    displays, devices = {}, {}
    for b in BRANCHES:
        displays[b] = f"display-{b}-{hashlib.sha256(b.encode()).hexdigest()[:24]}"
        devices[b] = f"kiosk-{b}-{hashlib.sha256(b'k' + b.encode()).hexdigest()[:24]}"
    relay: dict[str, Any] = {
        "displays": [{"branch": b, "token_file": str(_private(folder / f"d-{b}", t))}
                     for b, t in displays.items()],
        "devices": [{"id": f"kiosk-{b}", "branch": b, "role": "kiosk",
                     "token_file": str(_private(folder / f"k-{b}", t))}
                    for b, t in devices.items()],
        "store": store, "client_buffer": 1024, "timezone": ZONE,
        "webhook_secret_file": str(secret),
        "max_streams_per_token": 2 * SCREENS_PER_BRANCH}
    cfg = folder / "kiosk.yaml"
    cfg.write_text(yaml.safe_dump({"branch": BRANCHES[0], "kiosk": {
        "id": "bench", "data_dir": str(folder / "data")}, "relay": relay}), encoding="utf-8")
    return cfg, displays, devices


def ticket(run: str, branch: str, k: int) -> str:
    return f"{run}{BRANCHES.index(branch):02d}-{k:04d}"


async def report_all(url: str, devices: dict[str, str], per_branch: int,
                     run: str) -> dict[str, list[str]]:
    """Report ``per_branch`` tickets a branch, each with a phone token; the tokens by
    branch, in issue order."""
    tokens: dict[str, list[str]] = {b: [] for b in BRANCHES}
    start = datetime.now(ZoneInfo(ZONE)) - timedelta(hours=2)
    jobs: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    for k in range(per_branch):
        for b in BRANCHES:
            token = secrets.token_urlsafe(16)
            tokens[b].append(token)
            jobs.put_nowait((b, k))
    bad: list[str] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while not jobs.empty():
            b, k = jobs.get_nowait()
            body = {"ticketId": ticket(run, b, k), "queue": {"id": "q", "name": "Caja"},
                    "lang": "es", "issuedAt": (start + timedelta(seconds=k)).isoformat(
                        timespec="seconds"), "outcome": "issued", "device": f"kiosk-{b}",
                    "priority": None, "phone": tokens[b][k], "wait_min": 30}
            for attempt in range(5):  # reports are idempotent: resent, as the outbox does
                try:
                    r = await client.post(f"{url}/v1/branches/{b}/tickets", json=body,
                                          headers={"Authorization": f"Bearer {devices[b]}"})
                    break
                except httpx.TransportError:
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.2)
            if r.status_code not in (200, 201):
                bad.append(f"{r.status_code} {r.text[:120]}")

    async with httpx.AsyncClient(timeout=60, trust_env=False,
                                 limits=httpx.Limits(max_connections=64)) as client:
        await asyncio.gather(*(worker(client) for _ in range(64)))
    if bad:
        raise SystemExit(f"{len(bad)} reports refused, e.g. {bad[0]}")
    return tokens


class PageProtocol(asyncio.Protocol):
    """One phone page's stream: every ``event: state`` timed against its branch's last
    webhook."""

    def __init__(self, pages: Pages, branch: str) -> None:
        self.pages = pages
        self.branch = branch
        self.buf = b""
        self.head = False
        self.ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buf += data
        if not self.head:
            if b"\r\n\r\n" not in self.buf:
                return
            head, _, self.buf = self.buf.partition(b"\r\n\r\n")
            self.head = True
            if not self.ready.done():
                self.ready.set_result(int(head[9:12]))
        while b"\n\n" in self.buf:
            frame, _, self.buf = self.buf.partition(b"\n\n")
            if b"event: state" in frame and self.pages.measuring:
                sent = self.pages.sent.get(self.branch)
                if sent is not None:
                    self.pages.latencies.append(now - sent)
                if b'"state":"called"' in frame:
                    self.pages.called += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self.pages.measuring:
            self.pages.lost += 1
        if not self.ready.done():
            self.ready.set_result(0)


class Pages:
    """The open phone pages."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.latencies: list[float] = []
        self.called = 0
        self.lost = 0
        self.measuring = False
        self.protocols: list[PageProtocol] = []

    async def open(self, port: int, branch: str, token: str, n: int) -> None:
        loop = asyncio.get_running_loop()
        source = f"127.1.{(n // ADDRESSES) // 250}.{(n // ADDRESSES) % 250 + 1}"
        _, proto = await loop.create_connection(lambda: PageProtocol(self, branch),
                                                "127.0.0.1", port, local_addr=(source, 0))
        assert proto.transport is not None
        proto.transport.write(f"GET /t/{token}/events HTTP/1.1\r\nHost: x\r\n"
                              "Accept: text/event-stream\r\n\r\n".encode())
        status = await asyncio.wait_for(proto.ready, 30)
        if status != 200:
            raise RuntimeError(f"a page was answered {status}")
        self.protocols.append(proto)

    def close(self) -> None:
        for p in self.protocols:
            if p.transport is not None:
                p.transport.close()


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MB."""
    fields: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


async def run(ports: list[int], pids: list[int], displays: dict[str, str],
              devices: dict[str, str], pages_n: int, calls: int, gap_s: float,
              run_id: str) -> bool:
    per_branch = pages_n // len(BRANCHES)
    base = f"http://127.0.0.1:{ports[0]}"
    began = time.monotonic()
    tokens = await report_all(base, devices, per_branch, run_id)
    print(f"  {per_branch * len(BRANCHES):,} tickets reported in "
          f"{time.monotonic() - began:.1f} s")
    screens = Screens()
    for i, branch in enumerate(BRANCHES):
        for k in range(SCREENS_PER_BRANCH):
            await screens.connect(ports[(i + k) % len(ports)], branch, displays[branch])
    pages = Pages()
    began = time.monotonic()
    n = 0
    opening: list[asyncio.Task[None]] = []
    for k in range(per_branch):
        for branch in BRANCHES:
            opening.append(asyncio.create_task(
                pages.open(ports[n % len(ports)], branch, tokens[branch][k], n)))
            n += 1
            if len(opening) >= 200:
                await asyncio.gather(*opening)
                opening.clear()
    await asyncio.gather(*opening)
    print(f"  {len(pages.protocols):,} phone pages and {SCREENS_PER_BRANCH * len(BRANCHES)} "
          f"screens open in {time.monotonic() - began:.1f} s")
    await asyncio.sleep(2.0)
    idle = [rss_mb(pid) for pid in pids]
    conns = [await asyncio.open_connection("127.0.0.1", p) for p in ports]
    expected_pages = 0
    try:
        # the same calls with the pages open and, before them, with none following them
        # (tickets of no page): the screens' figures side by side, in the same run
        alone_lat: list[float] = []
        alone_got = 0
        for phase in ("alone", "pages"):
            screens.latencies.clear()
            screens.received = 0
            pages.measuring = phase == "pages"
            for c in range(calls):
                branch = BRANCHES[c % len(BRANCHES)]
                k = c // len(BRANCHES)
                if phase == "pages":
                    number = ticket(run_id, branch, k)
                    expected_pages += per_branch - k  # the called page and every later one
                else:
                    number = f"{run_id}W{BRANCHES.index(branch):02d}-{k:04d}"
                reader, writer = conns[c % len(conns)]
                body = json.loads(webhook_request(ports[0], 0, branch, "x").split(
                    b"\r\n\r\n")[1])
                body.update(ticketId=number, callId=f"{run_id}-{phase}-{c}")
                req = _signed(ports[c % len(ports)], body)
                now = time.perf_counter()
                screens.sent[number.encode()] = now
                if phase == "pages":
                    pages.sent[branch] = now
                writer.write(req)
                status = await _read_answer(reader)
                if status != 201:
                    raise RuntimeError(f"webhook answered {status}")
                await asyncio.sleep(gap_s)
            await asyncio.sleep(2.0)
            if phase == "alone":
                alone_lat = list(screens.latencies)
                alone_got = screens.received
    finally:
        for _, w in conns:
            w.close()
    busy = [rss_mb(pid) for pid in pids]
    pages.measuring = False
    pages.close()
    await screens.close()
    ok = True
    want = calls * SCREENS_PER_BRANCH
    ms0 = [x * 1000 for x in alone_lat]
    print(f"  webhook -> screen, pages not called: {alone_got}/{want} events; p50 "
          f"{pct(ms0, 50):.1f} ms, p99 {pct(ms0, 99):.1f} ms (for comparison)")
    ms = [x * 1000 for x in screens.latencies]
    good = pct(ms, 99) < 50 and screens.received == want
    print(f"  webhook -> screen, every call moving pages: {screens.received}/{want} events; "
          f"p50 {pct(ms, 50):.1f} ms, p99 {pct(ms, 99):.1f} ms, max "
          f"{max(ms, default=float('nan')):.1f} ms -> goal p99 < 50 ms: "
          f"{'met' if good else 'NOT met'}")
    ok &= good
    ms = [x * 1000 for x in pages.latencies]
    good = pct(ms, 99) < 250 and len(ms) >= expected_pages and pages.called == calls
    print(f"  webhook -> phone: {len(ms):,}/{expected_pages:,} page updates "
          f"({pages.called}/{calls} pages called, {pages.lost} streams lost); p50 "
          f"{pct(ms, 50):.1f} ms, p99 {pct(ms, 99):.1f} ms, max "
          f"{max(ms, default=float('nan')):.1f} ms -> goal p99 < 250 ms: "
          f"{'met' if good else 'NOT met'}")
    ok &= good
    for i in range(len(pids)):
        rss, peak = max(busy[i][0], idle[i][0]), busy[i][1]
        good = peak < 400
        print(f"  relay {i + 1} memory: {idle[i][0]:.0f} MB all open, {busy[i][0]:.0f} MB "
              f"after the calls, peak {peak:.0f} MB -> goal < 400 MB: "
              f"{'met' if good else 'NOT met'} (now {rss:.0f} MB)")
        ok &= good
    return ok


def _signed(port: int, call: dict[str, Any]) -> bytes:
    import hmac

    from bench_relay import SECRET
    body = json.dumps(call, separators=(",", ":")).encode()
    sig = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    return (f"POST /webhooks/videsk HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nX-Kiosk-Signature: sha256={sig}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=10_000, help="phone pages open at once")
    ap.add_argument("--calls", type=int, default=300, help="calls in each run")
    ap.add_argument("--gap-ms", type=float, default=100.0, help="pause between two calls "
                    "(10: the stress run)")
    ap.add_argument("--skip-redis", action="store_true")
    args = ap.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    need = args.pages + SCREENS_PER_BRANCH * len(BRANCHES) + 200
    if hard < need:
        raise SystemExit(f"open-file limit {hard} < {need} (ulimit -Hn)")
    nofile = hard
    ok = True
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        (folder / "one").mkdir()
        cfg, displays, devices = write_config(folder / "one")
        print(f"one relay (SQLite): {args.pages:,} phone pages, "
              f"{SCREENS_PER_BRANCH * len(BRANCHES)} screens, {len(BRANCHES)} branches, "
              f"{args.calls} calls {args.gap_ms:g} ms apart")
        with relay_process(cfg, nofile=nofile, log_path=folder / "one.log") as relay:
            port = int(relay.url.rsplit(":", 1)[1])
            try:
                ok &= asyncio.run(run([port], [relay.proc.pid], displays, devices,
                                      args.pages, args.calls, args.gap_ms / 1000, "P"))
            finally:
                if os.environ.get("BENCH_LOGS"):
                    print("one.log", (folder / "one.log").read_text()[-3000:])
        if not args.skip_redis:
            with redis_server() as url:
                (folder / "redis").mkdir()
                rcfg, displays, devices = write_config(folder / "redis", store=url)
                print("two replicas on one Redis: the same, pages and screens split")
                with relay_process(rcfg, nofile=nofile, log_path=folder / "a.log") as a, \
                        relay_process(rcfg, nofile=nofile, log_path=folder / "b.log") as b:
                    for u in (a.url, b.url):
                        wait_healthy(u)
                    ports = [int(a.url.rsplit(":", 1)[1]), int(b.url.rsplit(":", 1)[1])]
                    try:
                        ok &= asyncio.run(run(ports, [a.proc.pid, b.proc.pid], displays,
                                              devices, args.pages, args.calls,
                                              args.gap_ms / 1000, "R"))
                    finally:
                        for name in ("a.log", "b.log"):
                            if os.environ.get("BENCH_LOGS"):
                                print(name, (folder / name).read_text()[-3000:])
    print("all goals met" if ok else "SOME GOALS NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
