"""A tiny Server-Sent Events endpoint on a free loopback port, speaking the relay's
screen protocol (``GET /v1/branches/{branch}/calls``, bearer token, ``Last-Event-ID``),
with levers the real relay does not have: drop every connection, refuse with a status,
flood the next stream with one endless line or event, send a compressed stream.
Used by the call feed's own tests; the end-to-end tests use the real relay."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import Any


class SseStub:
    """``async with SseStub(branch, token) as stub: stub.url, stub.push(...)``."""

    def __init__(self, branch: str, token: str, *, backlog: int = 10) -> None:
        self.branch = branch
        self.token = token
        self.backlog = backlog
        self.events: list[tuple[str, str]] = []
        self.requests: list[dict[str, str]] = []
        self.refuse_with: int | None = None
        self.retry_after: str | None = None
        """With :attr:`refuse_with`: this ``Retry-After`` header (a 429's, a 503's)."""
        self.flood: bytes | None = None
        """The next stream only: after the replay, this chunk again and again, with no
        end of event, until the screen hangs up or :attr:`flood_limit` bytes went out."""
        self.flood_limit = 32 * 1024 * 1024
        self.flood_sent = 0
        self.flood_cut = False
        """Whether the screen hung up on the flood before its end."""
        self.encoding: str | None = None
        """The next stream only: this ``content-encoding`` header (the body stays plain)."""
        self.always_encoding = False
        """Keep :attr:`encoding` for every stream, not only the next."""
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self._next = 0
        self.url = ""

    async def __aenter__(self) -> SseStub:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.drop()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def connected(self) -> int:
        return len(self._writers)

    def push(self, ticket: str, poc: str, *, queue: str = "Atención", lang: str | None = "es",
             at: datetime | None = None, raw: str | None = None) -> str:
        """Store a call and send it to every connected screen; returns its id."""
        self._next += 1
        eid = str(self._next)
        body: dict[str, Any] = {"ticketId": ticket, "poc": {"label": poc},
                                "queue": {"name": queue},
                                "at": (at or datetime.now(UTC)).isoformat()}
        if lang:
            body["lang"] = lang
        data = raw if raw is not None else json.dumps(body)
        self.events.append((eid, data))
        for w in list(self._writers):
            self._write(w, eid, data)
        return eid

    def drop(self) -> None:
        """Close every open stream (as a relay restart would)."""
        for w in self._writers:
            w.close()
        self._writers.clear()

    def _write(self, w: asyncio.StreamWriter, eid: str, data: str) -> None:
        w.write(f"event: call\nid: {eid}\ndata: {data}\n\n".encode())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = (await reader.readline()).decode()
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        headers["request"] = request.strip()
        self.requests.append(headers)
        path = request.split()[1]
        if path == "/healthz":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            await writer.drain()
            writer.close()
            return
        status = self.refuse_with
        if status is None and path != f"/v1/branches/{self.branch}/calls":
            status = 404
        if status is None and headers.get("authorization") != f"Bearer {self.token}":
            status = 401
        if status is not None:
            later = f"retry-after: {self.retry_after}\r\n" if self.retry_after else ""
            writer.write(f"HTTP/1.1 {status} No\r\ncontent-length: 0\r\n{later}"
                         "connection: close\r\n\r\n".encode())
            await writer.drain()
            writer.close()
            return
        encoding = self.encoding
        if not self.always_encoding:
            self.encoding = None
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     + (f"content-encoding: {encoding}\r\n".encode() if encoding else b"")
                     + b"cache-control: no-cache\r\nconnection: close\r\n\r\n: hello\n\n")
        last = headers.get("last-event-id")
        replay = ([e for e in self.events if int(e[0]) > int(last)] if last
                  else self.events[-self.backlog:])
        for eid, data in replay:
            self._write(writer, eid, data)
        self._writers.append(writer)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        flood, self.flood = self.flood, None
        if flood is not None:
            await self._flood(writer, flood)

    async def _flood(self, writer: asyncio.StreamWriter, chunk: bytes) -> None:
        self._writers.remove(writer)  # no call reaches this one: it is busy
        try:
            while self.flood_sent < self.flood_limit:
                writer.write(chunk)
                await writer.drain()
                self.flood_sent += len(chunk)
        except ConnectionError:
            self.flood_cut = True
            return
        self._writers.append(writer)  # all sent: kept open, as a stuck relay would
