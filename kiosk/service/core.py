"""The kiosk's core process: ``kiosk core``, started by ``kiosk run`` and ``kiosk demo``.

It says hello to the UI as soon as its config is loaded and checked (before it loads
asyncio, httpx or SQLite: the UI opens its window meanwhile), then polls the queues
before it opens the journal and the printer (the UI's first frame waits for the queues),
then serves the UI until the UI closes the link (see :mod:`kiosk.service.link`).

Not for people: ``kiosk core [--config PATH] [-v] [--demo [--data-dir DIR]] --link-fd N``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kiosk.errors import ConfigError, KioskError
from kiosk.logs import Redact, setup_logging
from kiosk.service.wire import fatal_line, hello_line

if TYPE_CHECKING:
    from pydantic import SecretStr

    from kiosk.config import Config

log = logging.getLogger(__name__)

FIRST_POLL_WAIT_S = 1.0
"""How long the core waits for its first poll before it opens the rest anyway."""


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="kiosk core")
    p.add_argument("--config")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("--demo", action="store_true")
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--demo-mode", default="kiosk")
    p.add_argument("--link-fd", type=int, required=True)
    args = p.parse_args(argv)
    # Ctrl+C and systemd's stop reach the whole process group: the UI stops and closes
    # the link, and this process then ends by itself (a ticket in flight is finished).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    setup_logging(args.verbose)
    sock = socket.socket(fileno=args.link_fd)
    if args.demo:
        import asyncio
        asyncio.run(_serve_demo(sock, args.data_dir, args.demo_mode))
        return 0
    from kiosk.config import load_api_key, load_config, load_display_token, resolve_path
    try:
        path = resolve_path(args.config)
        config = load_config(path)
        display = config.kiosk.mode == "display"  # no API key: only the relay's token
        key = None if display else load_api_key(config, str(path))
        token = None if config.calls is None else load_display_token(config, str(path))
    except ConfigError as exc:
        print(f"kiosk: config error: {exc}", file=sys.stderr)
        sock.sendall(fatal_line(2))
        return 2
    sock.sendall(hello_line(config))  # the UI opens its window while this process goes on
    setup_logging(args.verbose, service=True, kiosk_id=config.kiosk.id)
    secrets = [s.get_secret_value() for s in (key, token) if s is not None]
    for handler in logging.getLogger().handlers:
        handler.addFilter(Redact(*secrets))  # defence in depth
    import asyncio
    try:
        if key is None:
            assert token is not None
            asyncio.run(_serve_display(sock, config, token))
        else:
            asyncio.run(_serve(sock, config, key, str(path), token))
    except KioskError as exc:  # e.g. the data folder cannot be written: said, not a traceback
        print(f"kiosk: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(sock: socket.socket, config: Config, key: SecretStr, path: str,
                 token: SecretStr | None = None) -> None:
    import asyncio
    import contextlib

    from kiosk.service.link import CoreServer
    from kiosk.service.queues import open_monitor
    server = await CoreServer.connect(sock, greeted=True)
    # The first poll goes out before the journal and the printer open: the UI's first
    # frame waits for the queues, and tickets can wait for the rest a moment longer.
    monitor = open_monitor(config, key)
    server.watch(monitor, config)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(FIRST_POLL_WAIT_S):
            await monitor.polled()
    from kiosk.service.runtime import open_runtime
    rt = open_runtime(config, key, monitor=monitor)
    feed = None
    if token is not None:  # the relay's calls: the home's strip, and the journal's records
        from kiosk.service.display import open_call_feed
        feed = open_call_feed(server, rt, token)
    try:
        await server.serve(rt, config_path=path)
    finally:
        if feed is not None:
            await feed.aclose()
        await rt.aclose()


async def _serve_display(sock: socket.socket, config: Config, token: SecretStr) -> None:
    from kiosk.service.callfeed import CallFeed
    from kiosk.service.display import DisplayServer
    server = await DisplayServer.connect(sock, greeted=True)
    assert isinstance(server, DisplayServer)
    feed = CallFeed.from_config(config, token)
    try:
        await server.serve_display(config, feed)
    finally:
        await feed.aclose()


async def _serve_demo(sock: socket.socket, data_dir: Path | None, mode: str = "kiosk") -> None:
    """The demo's core: the mock API, a relay its agents call tickets through, and the
    kiosk; ``mode`` display serves a calling screen while customers keep arriving."""
    import asyncio
    import tempfile

    from kiosk.service.demo import BRANCH, demo_runtime
    from kiosk.service.demo_calls import demo_relay, display_config, lobby
    from kiosk.service.display import DisplayServer, open_call_feed
    from kiosk.service.link import CoreServer
    from kiosk.service.tasks import cancel
    folder = data_dir or Path(tempfile.mkdtemp(prefix="kiosk-demo-"))
    server = await (DisplayServer if mode == "display" else CoreServer).connect(sock)
    with demo_relay(folder, BRANCH, "America/Santiago") as relay:
        async with demo_runtime(folder, relay=relay) as (rt, mock):
            note = (f"kiosk demo: mock Videsk API at {mock.url}; calls through the relay at "
                    f"{relay.url}; tickets saved as PNG in {rt.config.printer.path}; staff "
                    "screen: hold the top-left corner 2 s, PIN 123456")
            if isinstance(server, DisplayServer):  # the lobby TV, customers arriving
                from kiosk.service.callfeed import CallFeed
                arrivals = asyncio.ensure_future(lobby(rt))
                feed = CallFeed.from_config(rt.config, relay.token)
                try:
                    await server.serve_display(display_config(rt.config, relay), feed,
                                               note=note)
                finally:
                    await cancel(arrivals)
                    await feed.aclose()
                return
            feed = open_call_feed(server, rt, relay.token)  # the strip, and the journal
            try:
                await server.serve(rt, note=note)
            finally:
                await feed.aclose()
