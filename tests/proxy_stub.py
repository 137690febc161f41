"""A little HTTP proxy on a free loopback port that records every byte a client sends it.

It forwards plain ``GET http://host:port/...`` requests (absolute form, as a client sends
them to an ``HTTP_PROXY``) to their target and pipes the answer back, as a real proxy
would; it records a ``CONNECT host:port`` (an ``https://`` URL through the proxy) and
refuses it with 502, so no test ever leaves this machine::

    async with RecordingProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        ...
        assert proxy.seen == b""
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit


class RecordingProxy:
    """``async with RecordingProxy() as proxy: proxy.url, proxy.seen, proxy.connects``."""

    def __init__(self) -> None:
        self.seen = b""
        """Every byte clients sent the proxy, in order."""
        self.connects: list[str] = []
        """The ``CONNECT`` targets asked for."""
        self.url = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RecordingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    record: bool) -> None:
        with contextlib.suppress(OSError):
            while chunk := await reader.read(65536):
                if record:
                    self.seen += chunk
                writer.write(chunk)
                await writer.drain()
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            writer.close()
            return
        self.seen += head
        method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        if method == "CONNECT":
            self.connects.append(target)
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        url = urlsplit(target)
        up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80)
        origin = (url.path or "/") + (f"?{url.query}" if url.query else "")
        rest = head.split(b"\r\n", 1)[1]
        up_writer.write(f"{method} {origin} HTTP/1.1\r\n".encode() + rest)
        await up_writer.drain()
        task = asyncio.ensure_future(self._pipe(reader, up_writer, record=True))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await self._pipe(up_reader, writer, record=False)
