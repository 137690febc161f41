"""Helpers for the phone ticket's tests: tickets reported to a relay, a page's state."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

from kiosk.relay.phone import PhoneTicket, digest
from kiosk.relay.store import Store


class CallsJoined:
    """A phone source over the relay's real call store: the reports are kept here (as the
    ledger keeps them), each joined with its latest call read from the store."""

    def __init__(self) -> None:
        self.store: Store | None = None
        self.reports: dict[tuple[str, str], dict[str, PhoneTicket]] = {}
        self.by_hash: dict[str, PhoneTicket] = {}

    def report(self, ticket: PhoneTicket, token: str | None) -> None:
        self.reports.setdefault((ticket.branch, ticket.day), {})[ticket.ticket_id] = ticket
        if token is not None:
            self.by_hash[digest(token)] = ticket

    async def _joined(self, branch: str, day: str) -> dict[str, PhoneTicket]:
        assert self.store is not None
        out = dict(self.reports.get((branch, day), {}))
        for ev in await self.store.since(branch, day, None, 10_000):
            data = json.loads(ev.data)
            ticket = out.get(data["ticketId"])
            if ticket is not None:
                out[ticket.ticket_id] = replace(ticket, booth=data["poc"]["label"],
                                                called_at=data["at"])
        return out

    async def ticket_by_phone(self, sha256_hex: str) -> PhoneTicket | None:
        ticket = self.by_hash.get(sha256_hex)
        if ticket is None:
            return None
        return (await self._joined(ticket.branch, ticket.day))[ticket.ticket_id]

    async def day_tickets(self, branch: str, day: str) -> Sequence[PhoneTicket]:
        return list((await self._joined(branch, day)).values())
