"""The core process: ``kiosk core``, started by ``kiosk run`` (``kiosk demo`` starts the
demo's: :mod:`kiosk.demo.core`).

It says hello to the UI as soon as its config is loaded and checked (before it loads
asyncio, httpx or SQLite: the UI opens its window meanwhile), then polls the queues
before it opens the journal and the printer (the UI's first frame waits for the queues),
then serves the UI until the UI closes the link (:mod:`kiosk.core.server`).

Not for people: ``kiosk core [--config PATH] [-v] --link-fd N``.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from typing import TYPE_CHECKING

from kiosk.core.settings import ui_settings
from kiosk.errors import ConfigError, KioskError
from kiosk.link.codec import fatal_line, hello_line
from kiosk.link.spawn import core_end
from kiosk.logs import Redact, setup_logging

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
    p.add_argument("--link-fd", type=int, required=True)
    args = p.parse_args(argv)
    sock = core_end(args.link_fd)  # the UI's stop ends this process, not a signal
    setup_logging(args.verbose)
    from kiosk.config import load_api_key, load_config, load_display_token, resolve_path
    try:
        path = resolve_path(args.config)
        config = load_config(path)
        display = config.kiosk.mode == "display"  # no API key: only the relay's token
        key = None if display else load_api_key(config, str(path))
        token = None if config.hub is None else load_display_token(config, str(path))
    except ConfigError as exc:
        print(f"kiosk: config error: {exc}", file=sys.stderr)
        sock.sendall(fatal_line(2))
        return 2
    # the UI opens its window while this process goes on
    sock.sendall(hello_line(ui_settings(config)))
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

    from kiosk.core.server import KioskServer
    from kiosk.tickets.queues import open_monitor
    server = await KioskServer.connect(sock, greeted=True)
    # The first poll goes out before the journal and the printer open: the UI's first
    # frame waits for the queues, and tickets can wait for the rest a moment longer.
    monitor = open_monitor(config, key)
    server.watch(monitor, config)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(FIRST_POLL_WAIT_S):
            await monitor.polled()
    from kiosk.core.runtime import open_runtime
    # Off the loop: the journal's integrity check and recovery read the whole file
    # (~0.6 s for 50 MB), while the link and the poll go on.
    hub = None
    if token is not None:  # the hub: numbers, reports, the calls
        from kiosk.hub.client import HubClient
        hub = HubClient.from_config(config, token)
    rt = await asyncio.to_thread(open_runtime, config, key, monitor=monitor, hub=hub)
    rt.start_hub()
    feed = None
    if token is not None:  # the calls: the home's strip, the journal's records
        feed = server.open_call_feed(rt, token)
    try:
        await server.serve(rt, config_path=path)
    finally:
        if feed is not None:
            await feed.aclose()
        await rt.aclose()


async def _serve_display(sock: socket.socket, config: Config, token: SecretStr) -> None:
    from kiosk.calls.feed import CallFeed
    from kiosk.core.server import DisplayServer
    server = await DisplayServer.connect(sock, greeted=True)
    from kiosk.hub.client import HubClient
    hub = HubClient.from_config(config, token)
    feed = CallFeed.from_config(config, token, client=hub.http)
    try:
        await server.serve_display(config, feed)
    finally:
        await feed.aclose()
        await hub.aclose()
