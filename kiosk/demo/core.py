"""The demo's core process: ``kiosk demo-core``, started by ``kiosk demo``.

The mock API, a relay its agents call tickets through, and the kiosk's core serving the UI
as ``kiosk core`` does; ``--mode display`` serves a calling screen while customers keep
arriving by themselves.

Not for people: ``kiosk demo-core [-v] [--mode kiosk|tablet|display] [--data-dir DIR]
--link-fd N``.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
from pathlib import Path

from kiosk.link.spawn import core_end
from kiosk.logs import setup_logging


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="kiosk demo-core")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--mode", default="kiosk")
    p.add_argument("--link-fd", type=int, required=True)
    args = p.parse_args(argv)
    sock = core_end(args.link_fd)  # the UI's stop ends this process, not a signal
    setup_logging(args.verbose)
    asyncio.run(serve_demo(sock, args.data_dir, args.mode))
    return 0


async def serve_demo(sock: socket.socket, data_dir: Path | None, mode: str = "kiosk") -> None:
    """Serve the demo's UI on ``sock`` until it closes the link."""
    from kiosk.calls.feed import CallFeed
    from kiosk.config import load_display_token
    from kiosk.core.server import DisplayServer, KioskServer
    from kiosk.demo.calls import demo_relay, display_config, lobby
    from kiosk.demo.headless import BRANCH, demo_runtime
    from kiosk.tasks import cancel
    folder = data_dir or Path(tempfile.mkdtemp(prefix="kiosk-demo-"))
    with demo_relay(folder, BRANCH, "America/Santiago") as relay:
        async with demo_runtime(folder, relay=relay) as (rt, mock):
            note = (f"kiosk demo: mock Videsk API at {mock.url}; numbers and calls through "
                    f"the branch's hub at {relay.url}; tickets saved as PNG in "
                    f"{rt.config.printer.path}; staff screen: hold the top-left corner 2 s, "
                    "PIN 123456")
            if mode == "display":  # the lobby TV, customers arriving
                display = await DisplayServer.connect(sock)
                arrivals = asyncio.ensure_future(lobby(rt))
                tv = display_config(rt.config, relay)
                feed = CallFeed.from_config(tv, load_display_token(tv, "(demo display)"))
                try:
                    await display.serve_display(tv, feed, note=note)
                finally:
                    await cancel(arrivals)
                    await feed.aclose()
                return
            def phone_link(number: str, link: str) -> None:
                rt.demo_phone_link = (number, link)
                print(f"kiosk demo: {number} on the phone (open it in a browser and watch "
                      f"it call): {link}", file=sys.stderr, flush=True)
            rt.service.on_phone_link = phone_link
            server = await KioskServer.connect(sock)
            feed = server.open_call_feed(rt, relay.token)  # the strip, and the journal,
            # through the hub client's connection pool
            try:
                await server.serve(rt, note=note)
            finally:
                await feed.aclose()
