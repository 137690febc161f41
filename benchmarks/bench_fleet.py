"""The fleet on one relay: 2,000 devices of 400 branches heartbeating every 30 s.

The relay (``kiosk relay``, SQLite store, its own process) is configured with 2,000
devices (per branch: two kiosks, a greeter's tablet, two calling screens) and a fleet
token. For ``--seconds`` this process sends their heartbeats at the rate 2,000 devices
every 30 s make (66.7 a second, each device in its turn, a fresh connection each: the
relay closes idle ones after 5 s), with states changing now and then; meanwhile it
reads ``GET /v1/fleet`` (all 2,000) every second and scrapes ``/metrics`` every 15 s (as
Prometheus does), and 500 calling screens (50 branches, 10 each, with their display
tokens) receive a call every 20 ms, each call a signed webhook (HMAC).

Reported: the relay's CPU (share of one core) and RSS before and under the load;
``/v1/fleet`` latency (goal: < 200 ms at p99), ``/metrics`` latency; webhook -> screen
latency (goal: p99 < 50 ms), beside the same calls with no fleet load, measured in
alternating phases of the same run (the machine's other load slows both alike).

    .venv/bin/python benchmarks/bench_fleet.py [--seconds 30] [--rounds 2] [--devices 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_relay import _private, cpu_s, pct

from kiosk.relay.server import relay_process

SECRET = b"bench-secret-0123456789abcdefghij"
FLEET_TOKEN = "bench-fleet-token-0123456789abcdef"
EVERY_S = 30.0
ROLES = ("kiosk", "kiosk", "tablet", "display", "display")
"""The devices of one branch."""
SCREEN_BRANCHES = 50
SCREENS_PER_BRANCH = 10
_TICKET_RE = re.compile(rb'"ticketId":"([^"]+)"')


def token_of(device: str) -> str:
    return f"tok-{device}-{hashlib.sha256(device.encode()).hexdigest()[:24]}"


def device_list(devices: int) -> list[dict[str, str]]:
    """``devices`` devices of ``devices / 5`` branches: id, branch, role."""
    out = []
    for n in range(devices):
        branch = f"branch{n // len(ROLES):03d}"
        role = ROLES[n % len(ROLES)]
        out.append({"id": f"{branch}-{role}-{n % len(ROLES)}", "branch": branch,
                    "role": role})
    return out


def write_config(folder: Path, devices: int) -> tuple[Path, list[dict[str, str]]]:
    """A relay config with ``devices`` devices of ``devices / 5`` branches."""
    tokens = folder / "tokens"
    tokens.mkdir()
    listed = [{**d, "token_file": str(_private(tokens / d["id"], token_of(d["id"])))}
              for d in device_list(devices)]
    relay = {"webhook_secret_file": str(_private(folder / "secret", SECRET.decode())),
             "fleet_token_file": str(_private(folder / "fleet", FLEET_TOKEN)),
             "devices": listed, "heartbeat_s": EVERY_S, "client_buffer": 1024,
             "max_streams_per_token": SCREENS_PER_BRANCH}
    cfg = folder / "kiosk.yaml"
    cfg.write_text(yaml.safe_dump({"kiosk": {"data_dir": str(folder / "data")},
                                   "relay": relay}), encoding="utf-8")
    return cfg, listed


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def heartbeat(role: str, rng: random.Random) -> dict[str, Any]:
    """A heartbeat body; now and then a fault."""
    printer = "none" if role == "display" else rng.choices(
        ["ok", "paper_low", "paper_out", "unknown"], [90, 6, 2, 2])[0]
    api = "none" if role == "display" else rng.choices(["ok", "unreachable"], [98, 2])[0]
    reason = "api" if api == "unreachable" else "printer" if printer == "paper_out" else None
    return {"role": role, "version": "0.9.0", "in_service": reason is None, "reason": reason,
            "printer": printer, "api": api, "clock": "ok", "clock_skew_s": 0.3,
            "journal": "none" if role == "display" else "ok", "numbers": "shared",
            "tickets_today": rng.randint(0, 300), "forms_today": rng.randint(0, 20),
            "priority_today": {"senior": rng.randint(0, 9)},
            "last_ticket_at": "2026-12-02T12:00:00+00:00", "uptime_s": rng.randint(0, 10**6)}


async def request(port: int, raw: bytes) -> tuple[int, bytes]:
    """One request on a fresh connection; status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        m = re.search(rb"(?i)content-length:\s*(\d+)", head)
        body = await reader.readexactly(int(m.group(1))) if m else b""
        return int(head[9:12]), body
    finally:
        writer.close()


def put_raw(port: int, device: dict[str, str], body: dict[str, Any]) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    return (f"PUT /v1/devices/{device['id']}/state HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token_of(device['id'])}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            f"Connection: close\r\n\r\n").encode() + data


def get_raw(port: int, path: str, token: str | None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}"
            f"Connection: close\r\n\r\n").encode()


def webhook_raw(port: int, n: int, branch: str, run: str) -> bytes:
    call = {"event": "qms.ticket.assigned", "ticketId": f"{run}-{n:06d}",
            "callId": f"{run}-{n}", "branch": {"id": branch, "label": branch},
            "queue": {"id": "q", "name": "Caja"}, "poc": {"id": "p", "label": "Cabina 3"},
            "integrationData": {"lang": "es"}}
    body = json.dumps(call, separators=(",", ":")).encode()
    sig = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    return (f"POST /webhooks/videsk HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nX-Kiosk-Signature: sha256={sig}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class Screens:
    """Raw SSE connections; when each call's event reached each screen."""

    def __init__(self) -> None:
        self.sent: dict[bytes, float] = {}
        self.latencies: list[float] = []
        self._tasks: list[asyncio.Task[None]] = []

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
            while chunk := await reader.read(65536):
                now = time.perf_counter()
                buf += chunk
                cut = buf.rfind(b"\n\n")
                if cut < 0:
                    continue
                for m in _TICKET_RE.finditer(buf, 0, cut):
                    t0 = self.sent.get(m.group(1))
                    if t0 is not None:
                        self.latencies.append(now - t0)
                buf = buf[cut + 2:]
        finally:
            writer.close()

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def fleet_load(port: int, devices: list[dict[str, str]], seconds: float, rate: float,
                     parts: set[str], seed: int) -> dict[str, Any]:
    """The fleet's load for ``seconds``: heartbeats at ``rate``, ``/v1/fleet`` every
    second, ``/metrics`` every 15 s (``parts`` says which). Run in a process of its own
    (``--fleet-load``), so what it costs this side does not show in the screens'
    latency measured by the other."""
    rng = random.Random(seed)
    out: dict[str, Any] = {"beats": 0, "refused": 0, "fleet_ms": [], "metrics_ms": [],
                           "fleet_devices": 0, "metrics_lines": 0}
    stop = time.perf_counter() + seconds

    def count(task: asyncio.Task[tuple[int, bytes]]) -> None:
        taken = task.exception() is None and task.result()[0] == 204
        out["beats" if taken else "refused"] += 1

    async def beats() -> None:
        n = rng.randrange(len(devices))
        gap = 1.0 / rate
        due = time.perf_counter()
        pending: set[asyncio.Task[tuple[int, bytes]]] = set()
        while time.perf_counter() < stop:
            d = devices[n % len(devices)]
            task = asyncio.create_task(request(port, put_raw(port, d, heartbeat(d["role"], rng))))
            pending.add(task)
            task.add_done_callback(pending.discard)
            task.add_done_callback(count)
            n += 1
            due += gap
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        await asyncio.gather(*pending, return_exceptions=True)

    async def fleet_reads() -> None:
        while time.perf_counter() < stop:
            began = time.perf_counter()
            status, body = await request(port, get_raw(port, "/v1/fleet", FLEET_TOKEN))
            out["fleet_ms"].append((time.perf_counter() - began) * 1000)
            assert status == 200, status
            out["fleet_devices"] = body.count(b'"branch":')
            await asyncio.sleep(1.0)

    async def scrapes() -> None:
        while time.perf_counter() < stop:
            began = time.perf_counter()
            status, body = await request(port, get_raw(port, "/metrics", None))
            out["metrics_ms"].append((time.perf_counter() - began) * 1000)
            out["metrics_lines"] = body.count(b"\nkiosk_")
            assert status == 200, status
            await asyncio.sleep(15.0)

    jobs = {"beats": beats, "fleet": fleet_reads, "metrics": scrapes}
    await asyncio.gather(*(job() for name, job in jobs.items() if name in parts))
    return out


async def load(port: int, pid: int, devices: list[dict[str, str]], seconds: float,
               rate: float, rounds: int, parts: set[str]) -> dict[str, Any]:
    """Alternating phases of ``seconds``: the screens' calls alone (the baseline), then the
    same with the fleet's load (from another process); ``rounds`` of each."""
    rng = random.Random(7)
    out: dict[str, Any] = {"beats": 0, "refused": 0, "fleet_ms": [], "metrics_ms": [],
                           "fleet_devices": 0, "metrics_lines": 0, "cpu": [],
                           "cpu_base": [], "calls": 0, "calls_base": 0}
    # every device heard once first (the fleet at its full size), not measured
    first = [put_raw(port, d, heartbeat(d["role"], rng)) for d in devices]
    for i in range(0, len(first), 100):
        await asyncio.gather(*(request(port, r) for r in first[i:i + 100]))
    screens = Screens()
    displays = {d["branch"]: d for d in devices if d["role"] == "display"}
    branches = sorted(displays)[:SCREEN_BRANCHES]
    for b in branches:
        for _ in range(SCREENS_PER_BRANCH):
            await screens.connect(port, b, token_of(displays[b]["id"]))
    await asyncio.sleep(1.0)
    n_call = [0]

    async def calls(stop: float) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        n = 0
        try:
            while time.perf_counter() < stop:
                branch = branches[n_call[0] % len(branches)]
                req = webhook_raw(port, n_call[0], branch, "fleetbench")
                screens.sent[f"fleetbench-{n_call[0]:06d}".encode()] = time.perf_counter()
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
                if head[9:12] != b"201":
                    raise RuntimeError(f"webhook answered {head[:20]!r}")
                n += 1
                n_call[0] += 1
                await asyncio.sleep(0.02)
        finally:
            writer.close()
        return n

    async def other_process(stop: float, r: int) -> dict[str, Any]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--fleet-load", str(port), "--seconds",
            str(stop - time.perf_counter()), "--devices", str(len(devices)), "--load",
            ",".join(sorted(parts)), "--seed", str(r), stdout=asyncio.subprocess.PIPE)
        answer, _ = await proc.communicate()
        result: dict[str, Any] = json.loads(answer)
        return result

    by_phase: dict[bool, list[float]] = {True: [], False: []}
    for r in range(rounds):
        for with_fleet in (False, True):
            stop = time.perf_counter() + seconds
            cpu0, t0 = cpu_s(pid), time.perf_counter()
            mark = len(screens.latencies)
            jobs: list[Any] = [calls(stop)]
            if with_fleet:
                jobs.append(other_process(stop, r))
            done = await asyncio.gather(*jobs)
            await asyncio.sleep(0.5)  # the last calls arrive
            out["cpu" if with_fleet else "cpu_base"].append(
                (cpu_s(pid) - cpu0) / (time.perf_counter() - t0))
            out["calls" if with_fleet else "calls_base"] += done[0]
            by_phase[with_fleet] += screens.latencies[mark:]
            if with_fleet:
                got = done[1]
                for key in ("beats", "refused"):
                    out[key] += got[key]
                for key in ("fleet_ms", "metrics_ms"):
                    out[key] += got[key]
                out["fleet_devices"] = got["fleet_devices"] or out["fleet_devices"]
                out["metrics_lines"] = got["metrics_lines"] or out["metrics_lines"]
    out["rss"] = rss_mb(pid)
    out["screen_ms"] = [x * 1000 for x in by_phase[True]]
    out["screen_base_ms"] = [x * 1000 for x in by_phase[False]]
    await screens.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    ap.add_argument("--rounds", type=int, default=2, help="phases of each kind")
    ap.add_argument("--load", default="beats,fleet,metrics",
                    help="the fleet's load: heartbeats, /v1/fleet reads, /metrics scrapes")
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--fleet-load", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    rate = args.devices / EVERY_S
    if args.fleet_load:  # the other process: the fleet's load on that port, JSON out
        got = asyncio.run(fleet_load(args.fleet_load, device_list(args.devices), args.seconds,
                                     rate, set(args.load.split(",")), args.seed))
        print(json.dumps(got))
        return 0
    with tempfile.TemporaryDirectory() as d:
        cfg, devices = write_config(Path(d), args.devices)
        cores = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout
        print(f"machine: {cores.strip()} cores (shared); loopback; one relay process (SQLite)")
        print(f"{args.devices} devices of {args.devices // len(ROLES)} branches, a heartbeat "
              f"every {EVERY_S:g} s each: {rate:.1f}/s for {args.seconds:g} s; /v1/fleet every "
              f"1 s, /metrics every 15 s, {SCREEN_BRANCHES * SCREENS_PER_BRANCH} screens, a "
              f"call every 20 ms")
        with relay_process(cfg, nofile=8192) as relay:
            port = int(relay.url.rsplit(":", 1)[1])
            pid = relay.proc.pid
            time.sleep(1.0)
            idle_rss = rss_mb(pid)
            out = asyncio.run(load(port, pid, devices, args.seconds, rate, args.rounds,
                                   set(args.load.split(","))))
    fleet_ms, metrics_ms, screen_ms = out["fleet_ms"], out["metrics_ms"], out["screen_ms"]
    base_ms = out["screen_base_ms"]
    want = out["calls"] * SCREENS_PER_BRANCH
    cpu = sum(out["cpu"]) / len(out["cpu"])
    cpu_base = sum(out["cpu_base"]) / len(out["cpu_base"])
    print(f"heartbeats taken: {out['beats']} ({out['refused']} not taken); "
          f"/v1/fleet listed {out['fleet_devices']} devices; /metrics "
          f"{out['metrics_lines']} kiosk_ series")
    print(f"relay CPU (share of one core): {cpu_base * 100:.0f} % with the screens' calls "
          f"alone, {cpu * 100:.0f} % with the fleet's load too (+{(cpu - cpu_base) * 100:.0f}"
          f" points); RSS {idle_rss:.0f} MB idle ({args.devices:,} devices configured), "
          f"{out['rss']:.0f} MB at the end")
    ok_fleet = pct(fleet_ms, 99) < 200
    fleet_ms = fleet_ms or [float("nan")]
    metrics_ms = metrics_ms or [float("nan")]
    print(f"/v1/fleet (all {args.devices:,} devices, {len(fleet_ms)} reads): p50 "
          f"{pct(fleet_ms, 50):.0f} "
          f"ms, p99 {pct(fleet_ms, 99):.0f} ms, max {max(fleet_ms):.0f} ms -> goal p99 < 200 "
          f"ms: {'met' if ok_fleet else 'NOT met'}")
    print(f"/metrics ({len(metrics_ms)} scrapes): p50 {pct(metrics_ms, 50):.0f} ms, max "
          f"{max(metrics_ms):.0f} ms")
    print(f"webhook -> screen, calls alone: {len(base_ms)}/{out['calls_base'] * SCREENS_PER_BRANCH}"
          f" events; p50 {pct(base_ms, 50):.1f} ms, p99 {pct(base_ms, 99):.1f} ms")
    ok_screen = pct(screen_ms, 99) < 50 and len(screen_ms) == want
    print(f"webhook -> screen, with the fleet: {len(screen_ms)}/{want} events; p50 "
          f"{pct(screen_ms, 50):.1f} ms, p99 {pct(screen_ms, 99):.1f} ms, max "
          f"{max(screen_ms):.1f} ms -> goal p99 < 50 ms: {'met' if ok_screen else 'NOT met'}")
    return 0 if ok_fleet and ok_screen else 1


if __name__ == "__main__":
    raise SystemExit(main())
