"""Hostile answers of the mock API: the ways a real server (or what stands in front of it)
can answer badly while still answering.

Each is a fault kind (:data:`kiosk.mock.scenario.Answer`), usable by rate or scripted:

``trickle``
    The normal answer, its body sent one byte every ``faults.trickle_s`` seconds (the
    headers at once). ``httpx.Timeout`` bounds each read, so only a total deadline ends it.
``malformed``
    The normal answer (an enqueue is recorded as usual) with its body replaced by one of
    :data:`MALFORMED_BODIES` in turn: JSON of the wrong shape, ``null``, or text that is
    not JSON. The status is kept.
``bad_queue_items``
    A queue list where the first queue is intact and each other one gets one variant of
    :data:`BAD_QUEUE_VARIANTS` in order (a hostile name, ``avgWaitingTime`` null, ``1e999``
    and ``NaN``, negative ``users``, a 200 KB name, no ``id``), followed by one extra item
    per variant (ids ``bad…``). On ``GET /branches`` the branches' labels and names get
    the hostile name and the 200 KB name. Other endpoints answer normally.
``many_queues``
    The branch's queues followed by made-up ones up to ``faults.many_queues`` (2,000).
``paginated``
    Lists in Feathers' paginated shape ``{total, limit, skip, data}``, ``faults.page_size``
    items a page. A list request that carries ``$limit`` or ``$skip`` always gets this
    shape (the next pages of a paginated answer), whatever the faults.

Kept apart from :mod:`kiosk.mock.app` so the routes stay readable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

HOSTILE_NAME = "Caja\x1bp\x00\x19\xfa\x1dV\x00"
"""A queue name that is an ESC/POS program: ``ESC p 0 25 250`` pulses the cash drawer,
``GS V 0`` cuts the paper."""

BIDI_NAME = "\u202eajaC\u202c \u2066Caja\u2069\u200b\x07\x7f\x9b2"
"""A name full of bidi overrides, isolates, a zero-width space, BEL, DEL and a C1 CSI."""

HUGE_NAME = "Caja " + "x" * 200_000
"""A 200 KB name."""

_INF = "@@mock-1e999@@"
_NAN = "@@mock-nan@@"

BAD_QUEUE_VARIANTS: tuple[dict[str, Any], ...] = (
    {"name": HOSTILE_NAME},
    {"avgWaitingTime": None},
    {"avgWaitingTime": _INF},
    {"users": -3},
    {"name": HUGE_NAME},
    {"avgWaitingTime": _NAN},
    {"name": BIDI_NAME},
    {"id": None},
)
"""What ``bad_queue_items`` does to the queues after the first, in order (``id: None``
removes the id). ``_INF``/``_NAN`` are written as the JSON literals ``1e999`` and ``NaN``."""

MALFORMED_BODIES: tuple[bytes, ...] = (
    b'{"unexpected": true}',
    b'[1, "two", null, {"name": 3}]',
    b'{"id": "652a1ae848880e16',
    b"null",
    b'{"total": "many", "data": 7}',
    b"\xff\xfe{not json}",
)
"""The bodies ``malformed`` answers with, in turn."""


def dumps(data: Any) -> bytes:
    """JSON as the mock sends it, with the ``1e999``/``NaN`` placeholders as raw literals."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace(f'"{_INF}"', "1e999").replace(f'"{_NAN}"', "NaN").encode()


def json_answer(data: Any, status: int = 200) -> Response:
    """A JSON response whose body may hold ``1e999``/``NaN`` (JSONResponse refuses them)."""
    return Response(dumps(data), status_code=status, media_type="application/json")


def _apply(item: dict[str, Any], variant: dict[str, Any]) -> dict[str, Any]:
    out = {**item, **variant}
    return {k: v for k, v in out.items() if not (k == "id" and v is None)}


def bad_queue_items(queues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``bad_queue_items`` list made from the branch's real queue list."""
    out = [dict(queues[0])] if queues else []
    n = len(BAD_QUEUE_VARIANTS)
    out += [_apply(q, BAD_QUEUE_VARIANTS[i % n]) for i, q in enumerate(queues[1:])]
    out += [_apply({"name": f"Extra {i}", "id": f"bad{i:021x}", "users": 1,
                    "avgWaitingTime": 1.0}, v) for i, v in enumerate(BAD_QUEUE_VARIANTS)]
    return out


def bad_branches(branches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``bad_queue_items`` answer to ``GET /branches``: hostile labels and names."""
    names = (HOSTILE_NAME, HUGE_NAME, BIDI_NAME)
    return [{**b, "label": names[i % len(names)], "name": names[(i + 1) % len(names)]}
            for i, b in enumerate(branches)]


def many_queues(queues: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The branch's queues followed by made-up ones, ``count`` in all."""
    extra = [{"name": f"Cola {i:04d}", "id": f"{0xfeed00000000000000000000 + i:024x}",
              "users": i % 3, "avgWaitingTime": float(i % 17)}
             for i in range(max(0, count - len(queues)))]
    return list(queues) + extra


def wants_page(query: dict[str, str]) -> bool:
    """Whether a list request asked for a page (``$limit`` or ``$skip``)."""
    return "$limit" in query or "$skip" in query


def paginate(items: list[Any], query: dict[str, str], page_size: int) -> dict[str, Any]:
    """One Feathers page of ``items``: ``$limit`` (capped at ``page_size``) from ``$skip``."""
    def number(key: str, default: int) -> int:
        try:
            return max(0, int(query.get(key, default)))
        except ValueError:
            return default
    limit = min(number("$limit", page_size), page_size)
    skip = number("$skip", 0)
    return {"total": len(items), "limit": limit, "skip": skip,
            "data": items[skip:skip + limit]}


def malformed(response: Response, n: int) -> Response:
    """``response`` with its body replaced by the ``n``-th malformed body, status kept."""
    body = MALFORMED_BODIES[n % len(MALFORMED_BODIES)]
    return Response(body, status_code=response.status_code, media_type="application/json")


class Trickle(Response):
    """``inner`` sent with its headers at once and its body one byte every ``every_s``
    seconds; stops when the client goes away."""

    def __init__(self, inner: Response, every_s: float) -> None:
        super().__init__(status_code=inner.status_code)
        self.inner = inner
        self.every_s = every_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.Event()

        async def listen() -> None:
            while True:
                message: Message = await receive()
                if message["type"] == "http.disconnect":
                    gone.set()
                    return

        listener = asyncio.create_task(listen())
        try:
            await send({"type": "http.response.start", "status": self.inner.status_code,
                        "headers": self.inner.raw_headers})
            body = bytes(self.inner.body)
            if not body:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            for i in range(len(body)):
                last = i == len(body) - 1
                await send({"type": "http.response.body", "body": body[i:i + 1],
                            "more_body": not last})
                if last:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(gone.wait(), self.every_s)
                if gone.is_set():
                    return
        except OSError:
            return  # the client went away mid-send
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener


LIST_KINDS = ("bad_queue_items", "many_queues", "paginated")
"""Kinds that reshape a list answer."""
AFTER_KINDS = ("trickle", "malformed")
"""Kinds that spoil an answer once it is made."""

__all__ = ["AFTER_KINDS", "BAD_QUEUE_VARIANTS", "BIDI_NAME", "HOSTILE_NAME", "HUGE_NAME",
           "LIST_KINDS", "MALFORMED_BODIES", "Trickle", "bad_branches", "bad_queue_items",
           "dumps", "json_answer", "malformed", "many_queues", "paginate", "wants_page"]
