"""The calling relay's two speed goals, measured beside a baseline in the same run.

1. Ingest: signed webhooks per second into ``kiosk relay`` (SQLite store, each call
   committed before its answer; the default ``sqlite_sync: normal``, and ``full`` for
   comparison), beside a bare Starlette endpoint answering 204 on the same uvicorn
   settings. Signed as the default template signs them (``--auth jwt``: a bound RS256 JWT,
   checked with the public key, its replay key stored with the call), or with the HMAC
   template's signature (``--auth hmac``). Both run in their own process; the load comes
   from this process over raw keep-alive HTTP/1.1 connections (cheap, so the client is
   not what is measured).
   Rounds alternate between the two so a noisy machine slows both alike. With two cores
   or more, the servers run on one core and the load on another (``--no-pin``: wherever
   the kernel puts them): unpinned, a server that shares the client's core runs up to a
   quarter slower, and which one does changes from run to run.
   Goal: relay >= 0.5 x baseline.
2. Latency: webhook sent -> the event read by a screen, with 500 screens connected over
   50 branches (10 per branch), one call every few milliseconds spread over the branches.
   Goal: p99 < 50 ms on loopback. Then the same with two replicas on one Redis
   (``redis-server`` started here on a free port), screens split between the replicas
   and webhooks sent to both in turn.

   ``--against REV``: the relay of git revision ``REV`` too, in the same rounds (a change's
   before and after, measured while the machine is the same), from a copy of that
   revision made here (``git archive``) and run there (its own package, not this one's).

    .venv/bin/python benchmarks/bench_relay.py [--requests 3000] [--calls 300] [--auth hmac]
    .venv/bin/python benchmarks/bench_relay.py --skip-redis --calls 50 --against HEAD~2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from kiosk.relay.server import free_port, relay_process, wait_healthy
from tests.relay_helpers import rs256_pair

ROOT = Path(__file__).resolve().parent.parent

SECRET = b"bench-secret-0123456789abcdefghij"
AUTH = {"mode": "jwt"}
"""How webhooks are signed: ``jwt`` (the default template's) or ``hmac``."""
BRANCHES = [f"branch{i:02d}" for i in range(50)]
SCREENS_PER_BRANCH = 10
CONNECTIONS = 32
_TICKET_RE = re.compile(rb'"ticketId":"([^"]+)"')


# --------------------------------------------------------------------------- set-up


def _private(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def write_config(folder: Path, store: str = "sqlite",
                 sync: str = "normal") -> tuple[Path, dict[str, str]]:
    """A relay config with 50 branches' display tokens; the tokens by branch."""
    secret = _private(folder / "secret", SECRET.decode())
    tokens = {b: f"token-{b}-{hashlib.sha256(b.encode()).hexdigest()[:24]}" for b in BRANCHES}
    displays = [{"branch": b, "token_file": str(_private(folder / f"token-{b}", t))}
                for b, t in tokens.items()]
    relay: dict[str, object] = {
        "displays": displays, "store": store, "client_buffer": 1024, "sqlite_sync": sync,
        "max_streams_per_token": 2 * SCREENS_PER_BRANCH}  # a branch's screens share one
    if AUTH["mode"] == "jwt":
        public = folder / "webhook-jwt.pub"
        public.write_text(str(rs256_pair("bench")[1]), encoding="ascii")
        relay.update(jwt_public_key_file=str(public), require_jwt=True)
    else:
        relay["webhook_secret_file"] = str(secret)
    cfg = folder / "kiosk.yaml"
    cfg.write_text(yaml.safe_dump({"branch": BRANCHES[0], "kiosk": {
        "id": "bench", "data_dir": str(folder / "data")}, "relay": relay}), encoding="utf-8")
    return cfg, tokens


def pin(pid: int, cpu: int) -> None:
    """Run every thread of process ``pid`` (0: this one) on core ``cpu`` (threads it starts
    later inherit it from their parent)."""
    tasks = os.listdir(f"/proc/{pid}/task") if pid else [str(threading.get_native_id())]
    for task in tasks:
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task), {cpu})


def cpu_s(pid: int) -> float:
    """CPU seconds ``pid`` has used (user + system, Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ticket_id(run: str, n: int) -> str:
    """Unique per run: a ticket repeated the same day would be a duplicate."""
    return f"{run}-{n:06d}"


def webhook_request(port: int, n: int, branch: str, run: str) -> bytes:
    """One signed webhook as raw HTTP/1.1 bytes (signed as :data:`AUTH` says)."""
    call = {"event": "qms.ticket.assigned", "ticketId": ticket_id(run, n),
            "callId": f"{run}-{n}", "branch": {"id": branch, "label": branch},
            "queue": {"id": "q", "name": "Caja"}, "poc": {"id": "p", "label": "Cabina 3"},
            "integrationData": {"lang": "es"}}
    body = json.dumps(call, separators=(",", ":")).encode()
    if AUTH["mode"] == "jwt":  # what the provider's #jwt renders from the default template
        import jwt
        now = int(time.time())
        token = jwt.encode({"iat": now, "exp": now + 60, "branch": branch,
                            "ticketId": call["ticketId"], "callId": call["callId"],
                            "queue": "Caja", "poc": {"id": "p", "label": "Cabina 3"},
                            "lang": "es", "priority": ""},
                           rs256_pair("bench")[0], algorithm="RS256")
        proof = f"Authorization: Bearer {token}"
    else:
        proof = f"X-Kiosk-Signature: sha256={hmac.new(SECRET, body, hashlib.sha256).hexdigest()}"
    return (f"POST /webhooks/videsk HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\n{proof}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


BASELINE_APP = '''
import sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from kiosk.relay.server import listening_socket

async def hook(request):
    await request.body()
    return Response(status_code=204)

app = Starlette(routes=[Route("/webhooks/videsk", hook, methods=["POST"])])
sock = listening_socket("127.0.0.1", int(sys.argv[1]))
uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                              timeout_graceful_shutdown=3, proxy_headers=False,
                              server_header=False)  # the relay's answers name no server
               ).run(sockets=[sock])
'''


@contextlib.contextmanager
def baseline_process() -> Iterator[tuple[int, int]]:
    """The bare 204 endpoint in its own process, on the relay's uvicorn settings; its port
    and pid."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", BASELINE_APP, str(port)])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with contextlib.closing(__import__("socket").create_connection(
                        ("127.0.0.1", port), timeout=0.5)):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the baseline did not start") from None
                time.sleep(0.05)
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def checkout(rev: str, into: Path) -> Path:
    """A copy of this repository at git revision ``rev`` in ``into`` (``git archive``)."""
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar",
                          "--end-of-options", rev],  # a REV is never read as an option
                         capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(into, filter="data")
    return into


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    exe = shutil.which("redis-server")
    if not exe:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", d],
                                stdout=subprocess.DEVNULL)
        try:
            import redis
            client = redis.Redis(port=port)
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            client.close()
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


# --------------------------------------------------------------------------- raw HTTP


async def _read_answer(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
    if m and int(m.group(1)):
        await reader.readexactly(int(m.group(1)))
    return status


async def _worker(port: int, requests: list[bytes], statuses: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for req in requests:
            writer.write(req)
            statuses.append(await _read_answer(reader))
    finally:
        writer.close()


async def throughput(port: int, requests: list[bytes]) -> tuple[float, list[int]]:
    """Requests per second over :data:`CONNECTIONS` keep-alive connections."""
    shares = [requests[i::CONNECTIONS] for i in range(CONNECTIONS)]
    statuses: list[int] = []
    t0 = time.perf_counter()
    await asyncio.gather(*(_worker(port, s, statuses) for s in shares))
    return len(requests) / (time.perf_counter() - t0), statuses


# --------------------------------------------------------------------------- screens


class Screens:
    """Raw SSE connections; records when each call's event reached each screen."""

    def __init__(self) -> None:
        self.sent: dict[bytes, float] = {}
        self.latencies: list[float] = []
        self.received = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = 0

    async def connect(self, port: int, branch: str, token: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write((f"GET /v1/branches/{branch}/calls HTTP/1.1\r\nHost: x\r\n"
                      f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
                      ).encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head[:16]:
            raise RuntimeError(f"screen refused: {head[:40]!r}")
        self._tasks.append(asyncio.create_task(self._read(reader, writer)))

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = b""
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                now = time.perf_counter()
                buf += chunk
                cut = buf.rfind(b"\n\n")
                if cut < 0:
                    continue
                for m in _TICKET_RE.finditer(buf, 0, cut):
                    t0 = self.sent.get(m.group(1))
                    if t0 is not None:
                        self.latencies.append(now - t0)
                        self.received += 1
                buf = buf[cut + 2:]
        finally:
            writer.close()

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def latency(ports: list[int], tokens: dict[str, str], calls: int, run: str,
                  gap_s: float) -> tuple[list[float], int, int]:
    """Latencies (s), events received, events expected."""
    screens = Screens()
    for i, branch in enumerate(BRANCHES):
        for k in range(SCREENS_PER_BRANCH):
            await screens.connect(ports[(i + k) % len(ports)], branch, tokens[branch])
    await asyncio.sleep(1.0)  # every replica's reader follows its branches
    conns = [await asyncio.open_connection("127.0.0.1", p) for p in ports]
    try:
        for n in range(calls):
            branch = BRANCHES[n % len(BRANCHES)]
            reader, writer = conns[n % len(conns)]
            req = webhook_request(ports[n % len(ports)], n, branch, run)
            screens.sent[ticket_id(run, n).encode()] = time.perf_counter()
            writer.write(req)
            status = await _read_answer(reader)
            if status != 201:
                raise RuntimeError(f"webhook answered {status}")
            await asyncio.sleep(gap_s)
        await asyncio.sleep(1.0)
    finally:
        for _, w in conns:
            w.close()
        await screens.close()
    return screens.latencies, screens.received, calls * SCREENS_PER_BRANCH


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))] if s else float("nan")


def report_latency(title: str, lat: list[float], got: int, want: int) -> bool:
    ms = [x * 1000 for x in lat]
    p99 = pct(ms, 99)
    print(f"{title}: {got}/{want} events; p50 {pct(ms, 50):.1f} ms, p90 {pct(ms, 90):.1f} ms, "
          f"p99 {p99:.1f} ms, max {max(ms) if ms else float('nan'):.1f} ms "
          f"-> goal p99 < 50 ms: {'met' if p99 < 50 and got == want else 'NOT met'}")
    return p99 < 50 and got == want


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000, help="webhooks per ingest round")
    ap.add_argument("--rounds", type=int, default=7, help="ingest rounds per side")
    ap.add_argument("--no-pin", action="store_true",
                    help="leave the processes where the kernel puts them")
    ap.add_argument("--calls", type=int, default=300, help="calls in each latency run")
    ap.add_argument("--gap-ms", type=float, default=5.0, help="pause between two calls")
    ap.add_argument("--sync", choices=("normal", "full"), default="normal",
                    help="relay.sqlite_sync of the relay measured against the goals")
    ap.add_argument("--skip-redis", action="store_true")
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--auth", choices=("jwt", "hmac"), default="jwt",
                    help="sign as the default template (a bound RS256 JWT) or with the HMAC")
    ap.add_argument("--against", metavar="REV",
                    help="also measure the relay of git revision REV in the same rounds")
    args = ap.parse_args()
    AUTH["mode"] = args.auth
    ok = True
    other = "full" if args.sync == "normal" else "normal"
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        (folder / "main").mkdir()
        (folder / "other").mkdir()
        cfg, tokens = write_config(folder / "main", sync=args.sync)
        cfg_other, _ = write_config(folder / "other", sync=other)
        cores = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout
        print(f"machine: {cores.strip()} cores (shared); loopback; uvicorn, one process each; "
              f"webhooks signed with {'a bound RS256 JWT' if args.auth == 'jwt' else 'HMAC'}")
        with baseline_process() as (base_port, base_pid), relay_process(cfg) as relay, \
                relay_process(cfg_other) as relay_other, contextlib.ExitStack() as more:
            relay_port = int(relay.url.rsplit(":", 1)[1])
            sides = {"baseline": base_port, "relay": relay_port,
                     "other": int(relay_other.url.rsplit(":", 1)[1])}
            pids = {"baseline": base_pid, "relay": relay.proc.pid,
                    "other": relay_other.proc.pid}
            if args.against:
                tree = checkout(args.against, folder / "against")
                (folder / "against-config").mkdir()
                cfg_against, _ = write_config(folder / "against-config", sync=args.sync)
                old = more.enter_context(relay_process(
                    cfg_against, env=dict(os.environ, PYTHONPATH=str(tree)), cwd=tree))
                sides["against"] = int(old.url.rsplit(":", 1)[1])
                pids["against"] = old.proc.pid
            cores = sorted(os.sched_getaffinity(0))
            pinned = not args.no_pin and len(cores) >= 2
            if pinned:  # the load on one core, each server on another (the same for all)
                pin(0, cores[0])
                for pid in pids.values():
                    pin(pid, cores[1])
            rates: dict[str, list[float]] = {name: [] for name in sides}
            cpus: dict[str, list[float]] = {name: [] for name in sides}
            """CPU ms per webhook of the process measured (what a busy machine disturbs
            least: its rate also depends on what else runs)."""
            for r in range(0 if args.skip_ingest else args.rounds + 1):  # round 0: warm-up
                for name, port in sides.items():
                    reqs = [webhook_request(port, r * args.requests + n,
                                            BRANCHES[n % len(BRANCHES)], f"ingest{r}")
                            for n in range(args.requests)]
                    before = cpu_s(pids[name])
                    rate, statuses = asyncio.run(throughput(port, reqs))
                    used = cpu_s(pids[name]) - before
                    want = 204 if name == "baseline" else 201
                    bad = sum(1 for s in statuses if s != want)
                    if bad:
                        print(f"  {name}: {bad} answers were not {want}")
                        ok = False
                    if r:
                        rates[name].append(rate)
                        cpus[name].append(used * 1000 / args.requests)
            if not args.skip_ingest:
                base = statistics.median(rates["baseline"])
                rel = statistics.median(rates["relay"])
                alt = statistics.median(rates["other"])
                where = (f"servers on core {cores[1]}, load on core {cores[0]}" if pinned
                         else "not pinned")
                print(f"ingest ({args.rounds} interleaved rounds of {args.requests} webhooks, "
                      f"{CONNECTIONS} connections, {where}; medians): bare 204 endpoint "
                      f"{base:,.0f}/s")
                verdict = "met" if rel / base >= 0.5 else "NOT met"
                print(f"  relay, sqlite_sync={args.sync}: {rel:,.0f}/s -> ratio "
                      f"{rel / base:.2f} (goal >= 0.5: {verdict})")
                print(f"  relay, sqlite_sync={other}: {alt:,.0f}/s -> ratio {alt / base:.2f} "
                      "(for comparison)")
                if args.against:
                    was = statistics.median(rates["against"])
                    print(f"  relay at {args.against}, sqlite_sync={args.sync}: {was:,.0f}/s -> "
                          f"ratio {was / base:.2f}; this code / that: {rel / was:.2f}")
                cpu = {name: statistics.median(v) for name, v in cpus.items()}
                print(f"  CPU per webhook (medians): bare {cpu['baseline']:.2f} ms, relay "
                      f"{cpu['relay']:.2f} ms ({args.sync}), {cpu['other']:.2f} ms ({other}"
                      + (f"), {cpu['against']:.2f} ms (at {args.against}" if args.against
                         else "") + ") "
                      f"-> bare/relay {cpu['baseline'] / cpu['relay']:.2f} (what a quiet "
                      "machine's ratio tends to)")
                ok &= rel / base >= 0.5
            lat, got, want = asyncio.run(latency([relay_port], tokens, args.calls, "lat1",
                                                 args.gap_ms / 1000))
            ok &= report_latency(f"latency, one relay (SQLite, {args.sync}), 500 screens / 50 "
                                 "branches", lat, got, want)
        if not args.skip_redis:
            with redis_server() as url:
                (folder / "redis").mkdir()
                rcfg, tokens = write_config(folder / "redis", store=url)
                with relay_process(rcfg) as a, relay_process(rcfg) as b:
                    ports = [int(a.url.rsplit(":", 1)[1]), int(b.url.rsplit(":", 1)[1])]
                    for u in (a.url, b.url):
                        wait_healthy(u)
                    lat, got, want = asyncio.run(latency(ports, tokens, args.calls, "lat2",
                                                         args.gap_ms / 1000))
                    ok &= report_latency("latency, two replicas on Redis, 500 screens / 50 "
                                         "branches", lat, got, want)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
