"""The relay's work per webhook beside the bare endpoint's, counted in CPU instructions.

``bench_relay.py`` measures the ingest goal (webhooks a second, relay >= 0.5 x a bare
Starlette endpoint) in wall-clock time, and on a shared machine its figure moves by a
quarter from run to run with the neighbours (the bare endpoint's own rate too). This
counts what does not move: each server runs under valgrind (``cachegrind``, no cache
simulation) in its own process, takes 200 webhooks to warm up and then ``--webhooks``
more, and its instructions are counted; a run with none is subtracted, so what is left
is the work of a webhook. Two runs of the same code agree to within 0.1 %.

What it does not see: time in the kernel (the relay's SQLite writes, every socket call),
and how well the CPU's caches serve each server (the relay's path through pydantic,
OpenSSL and SQLite is wider than the bare endpoint's: it runs at a lower rate of
instructions a second). And under valgrind OpenSSL checks RSA on its generic code path,
several times the instructions it runs natively (about 0.34 M of the relay's count). So
the ratio here is a yardstick for changes, not the goal itself: fewer instructions a
webhook is less work, whatever the machine.

    .venv/bin/python benchmarks/relay_work.py [--webhooks 1000] [--auth hmac]

Needs ``valgrind`` (Debian: ``apt-get install valgrind``); a minute or two.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_relay as bench

from kiosk.relay.server import free_port

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 200


def instructions(side: str, webhooks: int) -> int:
    """Instructions the server ``side`` (``relay`` or ``bare``) ran in its whole life,
    having taken the warm-up and then ``webhooks`` webhooks."""
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        command = ["valgrind", "--tool=cachegrind", "--cache-sim=no",
                   "--cachegrind-out-file=/dev/null", sys.executable]
        if side == "bare":
            command += ["-c", bench.BASELINE_APP, str(port)]
        else:
            config, _ = bench.write_config(Path(d))
            command += ["-m", "kiosk", "--config", str(config), "relay", "--host",
                        "127.0.0.1", "--port", str(port)]
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)))
        try:
            deadline = time.monotonic() + 300  # a relay starts in about 20 s under valgrind
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError(f"the {side} server did not start") from None
                    time.sleep(0.5)
            time.sleep(2)  # whatever it does once up (the relay's first prune, its GC freeze)
            for run, count in (("warm", WARM_UP), ("run", webhooks)):
                if not count:
                    continue
                requests = [bench.webhook_request(port, n, bench.BRANCHES[n % 50], run)
                            for n in range(count)]
                _, statuses = asyncio.run(bench.throughput(port, requests))
                refused = [s for s in statuses if s not in (201, 204)]
                if refused:
                    raise RuntimeError(f"the {side} server refused {len(refused)} webhooks: "
                                       f"{sorted(set(refused))}")
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    found = re.search(r"I\s+refs:\s+([\d,]+)", err.decode(errors="replace"))
    if not found:
        raise RuntimeError(f"no instruction count from valgrind for the {side} server")
    return int(found.group(1).replace(",", ""))


def per_webhook(side: str, webhooks: int) -> float:
    """Instructions a webhook costs ``side``: a run with ``webhooks`` less one with none."""
    return (instructions(side, webhooks) - instructions(side, 0)) / webhooks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--webhooks", type=int, default=1000)
    ap.add_argument("--auth", choices=["jwt", "hmac"], default="jwt",
                    help="how webhooks are signed (jwt: the default template's)")
    args = ap.parse_args()
    if not shutil.which("valgrind"):
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    bench.AUTH["mode"] = args.auth
    bare = per_webhook("bare", args.webhooks)
    relay = per_webhook("relay", args.webhooks)
    print(f"instructions per webhook ({args.webhooks} after {WARM_UP} to warm up; "
          f"signed: {args.auth}): bare 204 endpoint {bare:,.0f}, relay {relay:,.0f} "
          f"-> bare/relay {bare / relay:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
