"""One device of a branch, in a process of its own, heartbeating to a hub: the device's
own sender (:class:`kiosk.hub.heartbeat.Heartbeat`) and state words
(:class:`kiosk.view.devicestate.DeviceState`, :func:`kiosk.core.state.printer_word`),
with its printer asked over ESC/POS (``DLE EOT``, a real or emulated printer on TCP) and
its API's reachability probed over HTTP before each heartbeat. The end-to-end test and
the fleet bench start it; kill -9 is a device that died.

    python -m tests.fleet_device URL ID TOKEN_FILE ROLE EVERY_S [--printer PORT] [--api URL]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import httpx
from pydantic import SecretStr

from kiosk.config import PrinterConfig, TicketConfig
from kiosk.core.state import printer_word
from kiosk.hub.client import HubClient
from kiosk.hub.heartbeat import Heartbeat
from kiosk.printing.printer import TicketPrinter
from kiosk.view.devicestate import DeviceState


async def run(args: argparse.Namespace) -> None:
    token = Path(args.token_file).read_text(encoding="utf-8").strip()
    started = time.monotonic()
    printer = None
    if args.printer:
        printer = TicketPrinter(PrinterConfig(type="network", host="127.0.0.1",  # type: ignore[arg-type]
                                              port=args.printer, timeout_s=0.5),
                                TicketConfig())
    last: list[tuple[str, ...]] = [()]
    async with httpx.AsyncClient(timeout=2.0) as client:

        async def api_word() -> str:
            if not args.api:
                return "none" if args.role == "display" else "ok"
            try:
                await client.get(args.api, timeout=0.5)
            except httpx.HTTPError:
                return "unreachable"
            return "ok"

        async def state() -> DeviceState:
            word = "none"
            if printer is not None:
                word = printer_word(await asyncio.to_thread(printer.status))
            s = DeviceState(role=args.role, version="0.9.0", printer=word,
                            api=await api_word(), numbers="shared",
                            journal="none" if args.role == "display" else "ok",
                            tickets={"issued": 7}, uptime_s=int(time.monotonic() - started))
            last[0] = s.words()
            return s

        hub = HubClient(args.url, "-", args.id, SecretStr(token))  # the device's client
        beat = Heartbeat(state, lambda: last[0], hub.put_state, every_s=args.every,
                         check_s=0.25)
        beat.start()
        try:
            await asyncio.Event().wait()
        finally:
            await hub.aclose()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("id")
    p.add_argument("token_file")
    p.add_argument("role")
    p.add_argument("every", type=float)
    p.add_argument("--printer", type=int, default=0)
    p.add_argument("--api", default="")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
