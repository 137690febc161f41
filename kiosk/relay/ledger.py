"""The branch's numbers and its day at the hub: blocks of ticket numbers leased to devices
(docs/hub.md, "Numbers: blocks leased ahead"), and the tickets every device reported
(docs/hub.md, "The branch's day"), each joined with its latest call from the webhook.

A **lease** is a block ``first..last`` of one counter: per branch, branch-local day and
sequence (``A``, ``priority:A``). Blocks of one counter never overlap, whichever device,
replica or restart asked for them.

:class:`SqliteLedger` (one relay): the counter is a row of ``hub.sqlite3`` (next to the
relay's ``relay.sqlite3``), raised in an ``IMMEDIATE`` transaction that is on the disk
(``synchronous=FULL``) before the 201; so a kill -9 or a power cut after the 201 never
hands the block out again.

:class:`RedisLedger` (replicas): ``INCRBY`` on ``kiosk:seq:{branch}:{day}:{sequence}``
(kept :data:`COUNTER_TTL_S`), so two replicas never hand out the same block. A Redis that
restarts without persistence (or comes back from an older snapshot) would count from
zero again, so each replica also keeps, on its own disk (``hub.sqlite3``, fsynced before
the 201), the **floor** of every counter it raised: the last number it handed out. A
Redis run that has not been seeded refuses every lease (503, ``Retry-After``; the devices
number offline meanwhile, :mod:`kiosk.relay.app`) until every replica seen in the last
:data:`REPLICA_MEMORY_S` has raised the counters to its floors. The run is Redis's
``run_id``: every Redis restart (even one that kept its data) is re-seeded. Each replica
checks every :data:`SEED_CHECK_S` and seeds at once when needed, under the same lock as
its leases, so no block it handed out is missing from its floors. A replica that is gone
for good keeps leases refused until it is forgotten: :data:`REPLICA_MEMORY_S` after its
last check (each check is stamped in Redis, by Redis's clock; the others write that time
down), or at once by ``kiosk forget-replica`` (README, "Numbers with replicas").

**Tickets.** A report is kept once per (branch, branch-local day of ``issuedAt``,
``ticketId``): :meth:`Ledger.report` answers :data:`NEW`, :data:`KNOWN` or
:data:`REPLACED` (an ``uncertain`` ticket later reported ``issued``; an ``uncertain``
after ``issued`` is a late redelivery and changes nothing). A report of a number already
reported that day by another device, or by the same device with other data (queue, time,
language, priority, or another phone token: a device's own retries never change them), is
:data:`CONFLICT`: a fault to see, not to hide (numbers never repeat across a branch's
devices), and never a report lost. It is kept beside the first (one per device and data,
its :func:`variant`), all of them listed marked ``conflict``, and its phone token opens
its own page: so a device that reports numbers it never issued (a stolen token, even the
kiosk's own) cannot take the real tickets' places. The phone-ticket token is kept only as
its SHA-256 (hex). A ticket's call is the latest call of its number that day: SQLite
reads the call store's ``events`` (``relay.sqlite3``, attached read-only), Redis the HASH
the call store keeps (``kiosk:relay:called:{b}:{d}``, :mod:`kiosk.relay.redis_store`).
Each stored report reaches :attr:`on_report` (with Redis, on every replica: a pub/sub
message).

Keys (Redis)::

    kiosk:seq:{b}:{d}:{s}          the counter: the last number handed out
    kiosk:hub:replica-checks       HASH: each replica's id -> the time of its last check
    kiosk:hub:replicas             SET: replica ids, for replicas of before 3 December 2026
    kiosk:hub:seeded               SET: the replicas that seeded this Redis run
    kiosk:hub:seeded-run           the Redis run_id the seeded set belongs to
    kiosk:hub:tickets:{b}:{d}      HASH ticketId -> the report (JSON, with the phone hash)
    kiosk:hub:conflicts:{b}:{d}    HASH "ticketId\ndevice\nvariant" -> a report kept beside
                                   the first of its number (:data:`CONFLICT`)
    kiosk:hub:queue:{b}:{d}:{q}    ZSET ticketId by issuedAt (epoch s, ms kept): a queue's order
    kiosk:hub:phone:{sha256}       the ticket a phone token opens: [branch, day, ticketId]
                                   (a conflict's: [branch, day, ticketId, device, variant])
    kiosk:hub:reports              pub/sub channel: "<branch> <ticketId>" per stored report
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from redis.exceptions import RedisError

from kiosk.errors import StoreError
from kiosk.relay.store import transaction
from kiosk.tasks import cancel, in_thread

log = logging.getLogger(__name__)

COUNTER_TTL_S = 4 * 24 * 3600
"""How long Redis keeps a day's counter (a lease is only ever for the branch's today)."""
KEEP_DAYS = 14
"""Counters and floors older than this many days are deleted."""
PRUNE_S = 3600.0
"""How often ``hub.sqlite3`` deletes what is past :data:`KEEP_DAYS` (and at start-up): a
relay may run for months."""
SEED_CHECK_S = 1.0
"""How often a replica checks that the Redis run is seeded (and seeds it when not)."""
REPLICA_MEMORY_S = 36 * 3600
"""A replica not seen for this long is no longer waited for when seeding."""
SEEN_WRITE_S = 60.0
"""A replica seen again is written down at most this often (a new one at once)."""
SEED_RETRY_AFTER_S = 2
"""``Retry-After`` of a lease refused while Redis is being seeded."""


@dataclass(frozen=True)
class Lease:
    """A block of numbers handed out: ``first..last`` of one counter."""

    sequence: str
    day: str
    first: int
    last: int

    def json(self) -> dict[str, Any]:
        """The 201's body."""
        return {"sequence": self.sequence, "day": self.day, "first": self.first,
                "last": self.last}


NEW = "new"
"""A report of a ticket the ledger did not have (201)."""
KNOWN = "known"
"""A report the ledger had already (200): nothing changed."""
REPLACED = "replaced"
"""A report that changed a known ticket's outcome (200)."""
CONFLICT = "conflict"
"""A report of a number already reported that day by another device, or with other data
(201): kept beside the first, all listed marked ``conflict``."""
OUTCOMES = ("issued", "uncertain")
"""What a report may say of its ticket."""
KEEP_TICKETS_S = 15 * 24 * 3600
"""How long Redis keeps a day's tickets (SQLite: :data:`KEEP_DAYS`)."""
PHONE_TTL_S = 2 * 24 * 3600
"""How long a phone token finds its ticket in Redis (its page expires with the day)."""


@dataclass(frozen=True)
class Report:
    """A ticket as a device reported it, checked (``kiosk.relay.app``)."""

    ticket_id: str
    queue_id: str
    queue_name: str
    lang: str | None
    issued_at: str
    """As the device wrote it (ISO 8601, with its offset)."""
    issued_ts: float
    """The same in seconds (a queue's order)."""
    day: str
    """The branch-local day of ``issued_at``."""
    outcome: str
    device: str
    priority: str | bool | None
    phone: str | None = None
    """SHA-256 (hex) of the phone-ticket token, never the token."""
    wait_min: float | None = None
    """The wait the device showed the customer at issue, in minutes (the phone page's
    first estimate), if any."""

    def record(self) -> dict[str, Any]:
        """What Redis keeps (the phone's hash included: never served)."""
        return {"ticketId": self.ticket_id, "queue": {"id": self.queue_id,
                                                        "name": self.queue_name},
                "lang": self.lang, "issuedAt": self.issued_at, "ts": self.issued_ts,
                "outcome": self.outcome, "device": self.device, "priority": self.priority,
                "phone": self.phone, "wait_min": self.wait_min}


@dataclass(frozen=True)
class Ticket:
    """A ticket of the ledger, with its latest call."""

    branch: str
    day: str
    ticket_id: str
    queue_id: str
    queue_name: str
    lang: str | None
    issued_at: str
    issued_ts: float
    outcome: str
    device: str
    priority: str | bool | None
    call: dict[str, Any] | None
    """``{"booth", "at", "recall"}`` of its latest call that day, or None."""
    wait_min: float | None = None
    """The wait its device showed at issue (minutes), if any (the phone page's)."""
    conflict: bool = False
    """The number was reported more than once that day (each report is listed)."""
    second: bool = False
    """A report kept beside the first of its number (:data:`CONFLICT`)."""
    variant: str = ""
    """Which of a device's reports of the number it is ("" for its first; the phone page
    tells reports apart by ticket, device and this)."""

    def json(self) -> dict[str, Any]:
        """One entry of ``GET /v1/branches/{b}/tickets`` (never the phone's hash)."""
        return {"ticketId": self.ticket_id,
                "queue": {"id": self.queue_id, "name": self.queue_name},
                "lang": self.lang, "issuedAt": self.issued_at, "outcome": self.outcome,
                "device": self.device, "priority": self.priority, "call": self.call,
                "conflict": self.conflict}


def call_of(data: str | None) -> dict[str, Any] | None:
    """A ticket's call from a stored call's SSE data: ``{booth, at, recall}``."""
    if not data:
        return None
    try:
        event = json.loads(data)
        return {"booth": str(event["poc"]["label"]), "at": str(event["at"]),
                "recall": bool(event.get("recall", False))}
    except (ValueError, KeyError, TypeError):
        return None


class NotSeeded(StoreError):
    """Redis restarted and not every replica has raised the counters to its floors yet:
    no lease until then (the devices number offline)."""


class Ledger(Protocol):
    """What the relay needs from the branch's ledger."""

    async def start(self) -> None:
        """Open (and, with Redis, start keeping the run seeded)."""

    async def close(self) -> None:
        """Close."""

    async def lease(self, branch: str, day: str, sequence: str, count: int) -> Lease:
        """The next ``count`` numbers of the counter, durably handed out;
        :class:`StoreError` (:class:`NotSeeded`) when they cannot be."""

    async def report(self, branch: str, report: Report) -> tuple[str, str]:
        """Keep a device's report: :data:`NEW`, :data:`KNOWN`, :data:`REPLACED`, or
        :data:`CONFLICT` when another device reported that number first that day (kept
        beside it; the same device's later reports of it are known or replaced), and the
        device that reported it first ("" when not a conflict)."""

    async def tickets(self, branch: str, day: str) -> list[Ticket]:
        """The day's tickets of ``branch`` in the order they were issued, with their calls."""

    async def ticket_by_phone(self, phone_sha256: str) -> Ticket | None:
        """The ticket whose phone token hashes to ``phone_sha256`` (hex), or None."""

    async def ahead(self, ticket: Ticket) -> int:
        """Tickets of the same branch, day and queue issued before ``ticket`` and not
        called yet."""

    on_report: Callable[[str, str], None]
    """Told ``(branch, ticketId)`` after each stored (new or replaced) report."""


def _cutoff(moment: float) -> str:
    return (date.fromtimestamp(moment) - timedelta(days=KEEP_DAYS)).isoformat()


async def _pruning(file: _Db, prune: Callable[[sqlite3.Connection], None]) -> None:
    """Run ``prune`` on ``file`` every :data:`PRUNE_S` (a failure is retried then)."""
    while True:
        await asyncio.sleep(PRUNE_S)
        try:
            await file.run(prune)
        except StoreError as exc:
            log.warning("relay: deleting old numbers and tickets failed: %s (retried later)",
                        exc)


class _Db:
    """``hub.sqlite3``: one connection, used on a worker thread under a lock (its own
    transactions are short: one lease, one batch of reports)."""

    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        self.schema = schema
        self._db: sqlite3.Connection | None = None
        self.lock = asyncio.Lock()

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # a lease is on the disk before its 201
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(self.schema)
        columns = {r[1] for r in db.execute("PRAGMA table_info(tickets)")}
        if columns and "wait_min" not in columns:  # a ledger from before the phone page's
            db.execute("ALTER TABLE tickets ADD COLUMN wait_min REAL")
        self._db = db

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("the ledger is closed")
        return self._db

    def transaction(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        with transaction(self.db) as db:
            return work(db)

    async def run(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """``work`` in one transaction on a worker thread; :class:`StoreError` on failure."""
        async with self.lock:
            try:
                return await in_thread(self.transaction, work)
            except sqlite3.Error as exc:
                raise StoreError(f"the ledger: {exc}") from None

    def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            db.close()


_REPORT_COLUMNS = """\
    branch TEXT NOT NULL,
    day TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    queue_id TEXT NOT NULL,
    queue_name TEXT NOT NULL,
    lang TEXT,
    issued_at TEXT NOT NULL,
    issued_ts REAL NOT NULL,
    outcome TEXT NOT NULL,
    device TEXT NOT NULL,
    priority TEXT,
    phone TEXT,
    wait_min REAL,
"""
"""The columns of a report, in ``tickets`` and in ``conflicts``."""

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS counters (
    branch TEXT NOT NULL,
    day TEXT NOT NULL,
    sequence TEXT NOT NULL,
    last INTEGER NOT NULL,
    PRIMARY KEY (branch, day, sequence)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tickets (
{_REPORT_COLUMNS}    PRIMARY KEY (branch, day, ticket_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tickets_in_order ON tickets (branch, day, issued_ts);
CREATE INDEX IF NOT EXISTS tickets_by_queue ON tickets (branch, day, queue_id, issued_ts);
CREATE INDEX IF NOT EXISTS tickets_by_phone ON tickets (phone) WHERE phone IS NOT NULL;
CREATE TABLE IF NOT EXISTS conflicts (
{_REPORT_COLUMNS}    variant TEXT NOT NULL,
    PRIMARY KEY (branch, day, ticket_id, device, variant)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conflicts_by_phone ON conflicts (phone) WHERE phone IS NOT NULL;
CREATE TABLE IF NOT EXISTS replicas (
    id TEXT PRIMARY KEY,
    seen REAL NOT NULL,
    me INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
"""
"""``counters``: on one relay, the counter itself; on a replica, its floor (the last
number it handed out). ``tickets``: the reports (one relay), the first of each number;
``conflicts``: the others of a number (:data:`CONFLICT`). ``replicas``: the
replicas seen in Redis (``me``: this one)."""


def _priority_in(value: str | bool | None) -> str | None:
    return None if value is None else ("true" if value is True else str(value))


def _priority_out(value: str | None) -> str | bool | None:
    return True if value == "true" else value


def _data(report: Report) -> tuple[str, str, float, str | None, str | None]:
    """What a device's retries of a report never change: its queue id and name, issued
    instant, language and (stored) priority."""
    return (report.queue_id, report.queue_name, report.issued_ts, report.lang,
            _priority_in(report.priority))


def _kind_of(report: Report, device: str, fixed: tuple[Any, ...], phone: str | None) -> str:
    """How ``report`` stands to the first report of its number (by ``device``, with its
    queue id and name, issued instant, lang and stored priority, and its phone hash): ``same``
    (its device's own report again: an outbox retry, or its outcome or phone token
    now known), ``other`` (another device's), ``data`` (its device, other data), or
    ``phone`` (its device and data, another phone token). A device's retries resend its
    journal's report as it was: only the outcome, and a phone token missing before, may
    change."""
    if device != report.device:
        return "other"
    if fixed != _data(report):
        return "data"
    if phone and report.phone and phone != report.phone:
        return "phone"
    return "same"


def variant(report: Report, kind: str) -> str:
    """The key of a report kept beside the first of its number (:data:`CONFLICT`), with
    its device: "" for another device's (its own retries fill it in); for the same
    device's with other data, a digest of that data (and of its phone token, for
    ``phone``), so its own retries find it."""
    if kind == "other":
        return ""
    data = [*_data(report), *([report.phone] if kind == "phone" else [])]
    return hashlib.sha256(json.dumps(data, ensure_ascii=False).encode()).hexdigest()[:16]


def _raise(db: sqlite3.Connection, branch: str, day: str, sequence: str, last: int) -> None:
    db.execute("INSERT INTO counters (branch, day, sequence, last) VALUES (?, ?, ?, ?) "
               "ON CONFLICT (branch, day, sequence) DO UPDATE SET last = max(last, "
               "excluded.last)", (branch, day, sequence, last))


_COLUMNS = ("branch, day, ticket_id, queue_id, queue_name, lang, issued_at, issued_ts, "
            "outcome, device, priority")
_SELECT_TICKETS = "SELECT " + _COLUMNS + ", wait_min, '', 0 FROM tickets"  # noqa: S608 (constants)
_SELECT_CONFLICTS = "SELECT " + _COLUMNS + ", wait_min, variant, 1 FROM conflicts"  # noqa: S608


@dataclass(frozen=True)
class _Table:
    """The statements of a report kept in ``tickets`` (the first report of its number) or
    in ``conflicts`` (the others, keyed by device and variant too). Each takes the report's
    key: (branch, day, ticketId) or (branch, day, ticketId, device, variant)."""

    held: str
    insert: str
    set_phone: str
    set_outcome: str
    phone_elsewhere: str
    """Whether a phone hash is held by another report of this table than this one."""
    phone_anywhere: str
    """Whether a phone hash is held by any report of this table."""


_FIRST = _Table(
    held="SELECT outcome, phone FROM tickets WHERE branch = ? AND day = ? AND ticket_id = ?",
    insert="INSERT INTO tickets (branch, day, ticket_id, device, queue_id, queue_name, "
           "lang, issued_at, issued_ts, outcome, priority, phone, wait_min) VALUES "
           "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    set_phone="UPDATE tickets SET phone = ? WHERE branch = ? AND day = ? AND ticket_id = ?",
    set_outcome="UPDATE tickets SET outcome = ? WHERE branch = ? AND day = ? AND "
                "ticket_id = ?",
    phone_elsewhere="SELECT 1 FROM tickets WHERE phone = ? AND NOT (branch = ? AND day = ? "
                    "AND ticket_id = ?) LIMIT 1",
    phone_anywhere="SELECT 1 FROM tickets WHERE phone = ? LIMIT 1")
_CONFLICT = _Table(
    held="SELECT outcome, phone FROM conflicts WHERE branch = ? AND day = ? AND "
         "ticket_id = ? AND device = ? AND variant = ?",
    insert="INSERT INTO conflicts (branch, day, ticket_id, device, variant, queue_id, "
           "queue_name, lang, issued_at, issued_ts, outcome, priority, phone, wait_min) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    set_phone="UPDATE conflicts SET phone = ? WHERE branch = ? AND day = ? AND "
              "ticket_id = ? AND device = ? AND variant = ?",
    set_outcome="UPDATE conflicts SET outcome = ? WHERE branch = ? AND day = ? AND "
                "ticket_id = ? AND device = ? AND variant = ?",
    phone_elsewhere="SELECT 1 FROM conflicts WHERE phone = ? AND NOT (branch = ? AND "
                    "day = ? AND ticket_id = ? AND device = ? AND variant = ?) LIMIT 1",
    phone_anywhere="SELECT 1 FROM conflicts WHERE phone = ? LIMIT 1")


class SqliteLedger:
    """The ledger of one relay, in ``hub.sqlite3``; calls read from ``calls_path``."""

    def __init__(self, path: Path, calls_path: Path | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._file = _Db(path, _SCHEMA)
        self._calls = calls_path
        self._clock = clock
        self._pruner: asyncio.Task[None] | None = None
        self.on_report: Callable[[str, str], None] = lambda branch, ticket: None

    async def start(self) -> None:
        await asyncio.to_thread(self._file.open)
        await self._file.run(self._prune)
        self._pruner = asyncio.create_task(_pruning(self._file, self._prune),
                                           name="hub-ledger-prune")

    def _prune(self, db: sqlite3.Connection) -> None:
        cutoff = _cutoff(self._clock())
        db.execute("DELETE FROM counters WHERE day < ?", (cutoff,))
        db.execute("DELETE FROM tickets WHERE day < ?", (cutoff,))
        db.execute("DELETE FROM conflicts WHERE day < ?", (cutoff,))

    async def report(self, branch: str, report: Report) -> tuple[str, str]:
        def work(db: sqlite3.Connection) -> tuple[str, str]:
            key = (branch, report.day, report.ticket_id)
            row = db.execute("SELECT device, queue_id, queue_name, issued_ts, lang, priority, "
                             "phone FROM tickets WHERE branch = ? AND day = ? AND "
                             "ticket_id = ?", key).fetchone()
            kind = "" if row is None else _kind_of(report, str(row[0]), tuple(row[1:6]),
                                                   row[6])
            first = "" if row is None or kind == "same" else str(row[0])
            table, other = (_CONFLICT, _FIRST) if first else (_FIRST, _CONFLICT)
            me = (*key, report.device, variant(report, kind)) if first else key
            held = db.execute(table.held, me).fetchone()
            new_phone = report.phone
            if new_phone and (db.execute(table.phone_elsewhere, (new_phone, *me)).fetchone()
                              or db.execute(other.phone_anywhere, (new_phone,)).fetchone()):
                log.info("relay: ticket %r of %s (branch %s) from %s carries a phone token "
                         "another ticket holds: kept without it", report.ticket_id,
                         report.day, branch, report.device)
                new_phone = None  # a customer's page is the ticket that first had it
            if held is None:
                db.execute(table.insert,
                           (*me, *(() if first else (report.device,)), report.queue_id,
                            report.queue_name, report.lang, report.issued_at,
                            report.issued_ts, report.outcome, _priority_in(report.priority),
                            new_phone, report.wait_min))
                return (CONFLICT if first else NEW), first
            outcome, phone = held
            if new_phone and not phone:  # a later report may bring the phone's hash
                db.execute(table.set_phone, (new_phone, *me))
            if outcome in (report.outcome, "issued"):
                return KNOWN, first
            db.execute(table.set_outcome, (report.outcome, *me))
            return REPLACED, first
        result: tuple[str, str] = await self._file.run(work)
        if result[0] != KNOWN:
            self.on_report(branch, report.ticket_id)
        return result

    def _read(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """``work`` on a reader connection of its own, the call store attached read-only
        as ``calls`` (an empty table when there is none)."""
        db = sqlite3.connect(f"file:{quote(str(self._file.path))}", uri=True,
                             check_same_thread=False)
        try:
            if self._calls is not None and self._calls.exists():
                db.execute("ATTACH DATABASE ? AS calls",
                           (f"file:{quote(str(self._calls))}?mode=ro",))
            else:
                db.execute("CREATE TEMP TABLE events (branch TEXT, id INTEGER, day TEXT, "
                           "ticket_id TEXT, data TEXT)")
            return work(db)
        finally:
            db.close()

    async def _reading(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        try:
            return await asyncio.to_thread(self._read, work)
        except sqlite3.Error as exc:
            raise StoreError(f"the ledger: {exc}") from None

    @staticmethod
    def _ticket(row: tuple[Any, ...], call: str | None, conflict: bool) -> Ticket:
        b, d, t, qid, qname, lang, at, ts, outcome, device, priority, wait, var, second = row
        return Ticket(b, d, t, qid, qname, lang, at, float(ts), outcome, device,
                      _priority_out(priority), call_of(call),
                      None if wait is None else float(wait), conflict, bool(second), str(var))

    @staticmethod
    def _latest_call(db: sqlite3.Connection, branch: str, day: str, ticket: str) -> str | None:
        row = db.execute("SELECT data FROM events WHERE branch = ? AND day = ? AND "
                         "ticket_id = ? ORDER BY id DESC LIMIT 1",
                         (branch, day, ticket)).fetchone()
        return str(row[0]) if row else None

    async def tickets(self, branch: str, day: str) -> list[Ticket]:
        def work(db: sqlite3.Connection) -> list[Ticket]:
            calls: dict[str, str] = {}
            for ticket, data in db.execute("SELECT ticket_id, data FROM events WHERE "
                                           "branch = ? AND day = ? ORDER BY id",
                                           (branch, day)):
                calls[ticket] = data  # the latest wins
            rows = db.execute(_SELECT_TICKETS + " WHERE branch = ? AND day = ? UNION ALL "
                              + _SELECT_CONFLICTS + " WHERE branch = ? AND day = ? "
                              "ORDER BY issued_ts, ticket_id, 14, device, 13",
                              (branch, day, branch, day)).fetchall()
            conflicted = {r[2] for r in rows if r[13]}
            return [self._ticket(r, calls.get(r[2]), r[2] in conflicted) for r in rows]
        out: list[Ticket] = await self._reading(work)
        return out

    async def ticket_by_phone(self, phone_sha256: str) -> Ticket | None:
        def work(db: sqlite3.Connection) -> Ticket | None:
            row = db.execute(_SELECT_TICKETS + " WHERE phone = ? UNION ALL "
                             + _SELECT_CONFLICTS + " WHERE phone = ? ORDER BY issued_ts LIMIT 1",
                             (phone_sha256, phone_sha256)).fetchone()  # (one: reports keep it so)
            if row is None:
                return None
            conflict = bool(row[13]) or db.execute(
                "SELECT 1 FROM conflicts WHERE branch = ? AND day = ? AND ticket_id = ? LIMIT 1",
                row[:3]).fetchone() is not None
            return self._ticket(row, self._latest_call(db, row[0], row[1], row[2]), conflict)
        found: Ticket | None = await self._reading(work)
        return found

    async def ahead(self, ticket: Ticket) -> int:
        def work(db: sqlite3.Connection) -> int:
            row = db.execute(
                "SELECT count(*) FROM tickets t WHERE t.branch = ? AND t.day = ? AND "
                "t.queue_id = ? AND (t.issued_ts < ? OR (t.issued_ts = ? AND "
                "t.ticket_id < ?)) AND t.ticket_id NOT IN (SELECT ticket_id FROM events "
                "WHERE branch = ? AND day = ?)",  # the day's calls read once, not per ticket
                (ticket.branch, ticket.day, ticket.queue_id, ticket.issued_ts,
                 ticket.issued_ts, ticket.ticket_id, ticket.branch, ticket.day)).fetchone()
            return int(row[0])
        n: int = await self._reading(work)
        return n

    async def close(self) -> None:
        await cancel(self._pruner)
        async with self._file.lock:
            await asyncio.to_thread(self._file.close)

    async def lease(self, branch: str, day: str, sequence: str, count: int) -> Lease:
        def work(db: sqlite3.Connection) -> int:
            row = db.execute("SELECT last FROM counters WHERE branch = ? AND day = ? AND "
                             "sequence = ?", (branch, day, sequence)).fetchone()
            last = (int(row[0]) if row else 0) + count
            _raise(db, branch, day, sequence, last)
            return last
        last: int = await self._file.run(work)
        return Lease(sequence, day, last - count + 1, last)


_LEASE = """
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or '?'
if redis.call('GET', KEYS[3]) ~= run then
  redis.call('DEL', KEYS[2])
  redis.call('SET', KEYS[3], run)
end
for i = 3, #ARGV do
  if redis.call('SISMEMBER', KEYS[2], ARGV[i]) == 0 then return {-1, ARGV[i]} end
end
local last = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {last, ''}
"""
"""KEYS: the counter, the seeded set, the seeded run. ARGV: count, the counter's TTL, the
replicas that must have seeded this run. ``{last, ''}``, or ``{-1, id}``: ``id`` has not."""

_SEED = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') or '?'
if redis.call('GET', KEYS[2]) ~= run then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], run)
end
if ARGV[2] == '1' then
  for i = 5, #KEYS do
    local held = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
    if held < tonumber(ARGV[i]) then
      redis.call('SET', KEYS[i], ARGV[i], 'EX', ARGV[3])
    end
  end
  redis.call('SADD', KEYS[1], ARGV[1])
end
redis.call('HSET', KEYS[3], ARGV[1], string.format('%.3f', now))
redis.call('SADD', KEYS[4], ARGV[1])
local heard, kept = redis.call('HGETALL', KEYS[3]), {}
for i = 1, #heard, 2 do
  local at = string.match(heard[i + 1], '^%d+%.?%d*$') and tonumber(heard[i + 1])
  if not at or at < now - tonumber(ARGV[4]) then
    redis.call('HDEL', KEYS[3], heard[i])
  else
    kept[#kept + 1] = heard[i]
    kept[#kept + 1] = heard[i + 1]
  end
end
return {redis.call('SISMEMBER', KEYS[1], ARGV[1]), kept}
"""
"""KEYS: the seeded set, the seeded run, the replicas' last checks (:data:`REPLICAS`), the
older replicas' set (:data:`OLDER_REPLICAS`), then the counters to raise. ARGV: this
replica's id, '1' to seed ('0': only look), the counters' TTL, :data:`REPLICA_MEMORY_S`,
then each counter's floor (ARGV[i] for KEYS[i], i from 5). This replica's check is
stamped with Redis's clock (one clock for every replica's time); an entry older than the
memory, or not a time, is dropped. Returns ``{seeded, {id, time, id, time...}}``."""


def counter_key(branch: str, day: str, sequence: str) -> str:
    """The Redis key of a counter."""
    return f"kiosk:seq:{branch}:{day}:{sequence}"


_REPORT = """
local hash, field, pointer, first = KEYS[1], ARGV[1], ARGV[7], ''
local held = redis.call('HGET', hash, field)
if held then  -- the number was reported: this report is the same one, or kept beside it
  local rec = cjson.decode(held)
  local pick = 0
  if rec['device'] ~= ARGV[3] then
    pick = 12  -- another device's
  elseif rec['fixed'] and rec['fixed'] ~= ARGV[11] then
    pick = 14  -- its device's, other data (a record without 'fixed': an older relay's)
  elseif ARGV[6] ~= '' and type(rec['phone']) == 'string' and rec['phone'] ~= ARGV[6] then
    pick = 16  -- its device's and data, another phone token
  end
  if pick > 0 then
    first = rec['device']
    hash, field, pointer = KEYS[5], ARGV[pick], ARGV[pick + 1]
    held = redis.call('HGET', hash, field)
  end
end
local phone_ok = ARGV[6] ~= ''
if phone_ok then
  local holder = redis.call('GET', KEYS[3])
  if holder and holder ~= pointer then phone_ok = false end
end
if held then
  local rec = cjson.decode(held)
  local changed = false
  if phone_ok and (rec['phone'] == nil or rec['phone'] == cjson.null) then
    rec['phone'] = ARGV[6]
    redis.call('SET', KEYS[3], pointer, 'EX', ARGV[9])
    changed = true
  end
  local result = 'known'
  if rec['outcome'] ~= ARGV[4] and rec['outcome'] ~= 'issued' then
    rec['outcome'] = ARGV[4]
    result = 'replaced'
    changed = true
  end
  if changed then redis.call('HSET', hash, field, cjson.encode(rec)) end
  if result == 'replaced' then redis.call('PUBLISH', KEYS[4], ARGV[10]) end
  return {result, first}
end
local record = ARGV[2]
if ARGV[6] ~= '' and not phone_ok then
  local rec = cjson.decode(record)
  rec['phone'] = cjson.null
  record = cjson.encode(rec)
end
redis.call('HSET', hash, field, record)
redis.call('EXPIRE', hash, ARGV[8])
if first == '' then
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[8])
end
if phone_ok then redis.call('SET', KEYS[3], pointer, 'EX', ARGV[9]) end
redis.call('PUBLISH', KEYS[4], ARGV[10])
if first ~= '' then return {'conflict', first} end
return {'new', ''}
"""
"""KEYS: the day's tickets, the queue's order, the phone key, the reports channel, the
day's conflicts. ARGV: ticketId, the record (JSON), device, outcome, issued (seconds),
phone hash (or ''), the phone key's value, the tickets' TTL, the phone key's TTL, the
channel message, the digest of the report's data (:func:`variant`, also the record's
``fixed``), then the report's field and phone key's value among the conflicts as another
device's, as its device's with other data, and with another phone token. Returns
``{result, device}``: ``new``, ``known``, ``replaced`` or ``conflict``, and the device
that reported the number first when it is another ('' otherwise). A phone hash another
ticket holds stays that ticket's: this one is kept without it (a customer's page is the
ticket that first had the token). A conflict's report is not in the queue's order (its
number is there already)."""

_AHEAD = """
local before = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local n = 0
for _, t in ipairs(before) do
  if t ~= ARGV[2] and (tonumber(redis.call('ZSCORE', KEYS[1], t)) < tonumber(ARGV[1])
                       or t < ARGV[2])
     and redis.call('HEXISTS', KEYS[2], t) == 0 then
    n = n + 1
  end
end
return n
"""
"""KEYS: the queue's order, the day's latest calls. ARGV: the ticket's issued seconds, its
id. The tickets ahead of it not called yet."""

REPORTS = "kiosk:hub:reports"


def tickets_key(branch: str, day: str) -> str:
    """The Redis HASH of a branch's day of tickets."""
    return f"kiosk:hub:tickets:{branch}:{day}"


def conflicts_key(branch: str, day: str) -> str:
    """The Redis HASH of the reports of numbers another device of the branch reported
    first that day (:func:`conflict_field` -> the report)."""
    return f"kiosk:hub:conflicts:{branch}:{day}"


def conflict_field(ticket_id: str, device: str, variant: str) -> str:
    """A report's field in :func:`conflicts_key` (none of the three holds a control
    character: ``ticketId`` is refused with one, device ids are ``[A-Za-z0-9_-]``)."""
    return f"{ticket_id}\n{device}\n{variant}"


def queue_key(branch: str, day: str, queue: str) -> str:
    """The Redis ZSET of a queue's tickets in the order they were issued."""
    return f"kiosk:hub:queue:{branch}:{day}:{queue}"


def phone_key(phone_sha256: str) -> str:
    """The Redis key a phone token's hash finds its ticket by."""
    return f"kiosk:hub:phone:{phone_sha256}"


SEEDED = "kiosk:hub:seeded"
SEEDED_RUN = "kiosk:hub:seeded-run"
REPLICAS = "kiosk:hub:replica-checks"
"""HASH: each replica's id -> the time (Redis's clock) of its last check."""
OLDER_REPLICAS = "kiosk:hub:replicas"
"""The SET of replica ids replicas installed before 3 December 2026 read (and nothing
trims: one gone for good stayed in it, counted seen for ever, and after a restart of a
Redis that kept it leases waited for it for ever). Written, never read: so an older
replica still running during an upgrade waits for the newer ones' floors too."""
ALIVE_S = 120.0
"""A replica checked within this long is running: ``kiosk forget-replica`` refuses it."""


class _RedisTickets:
    """The ticket half of :class:`RedisLedger` (mixed in below)."""

    _redis: Any
    _report: Any
    _ahead: Any
    on_report: Callable[[str, str], None]

    async def _listen(self) -> None:
        """Tell :attr:`on_report` of every report stored by any replica (pub/sub: a
        message lost while Redis is away is a page that polls a little longer)."""
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(REPORTS)
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    branch, _, ticket = str(message.get("data", "")).partition(" ")
                    try:
                        self.on_report(branch, ticket)
                    except Exception:
                        log.exception("relay: a report's subscriber failed")
            except (RedisError, OSError) as exc:
                log.debug("relay: the reports channel broke: %s (again in 1 s)", exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(1.0)

    async def report(self, branch: str, report: Report) -> tuple[str, str]:
        fixed = variant(report, "data")
        record = json.dumps({**report.record(), "fixed": fixed}, ensure_ascii=False,
                            separators=(",", ":"))
        pointer = [branch, report.day, report.ticket_id]
        beside: list[str] = []  # (field, phone key's value) of each kind of conflict
        for kind in ("other", "data", "phone"):
            v = variant(report, kind)
            beside += [conflict_field(report.ticket_id, report.device, v),
                       json.dumps([*pointer, report.device, v], ensure_ascii=False)]
        try:
            result, first = await self._report(
                keys=[tickets_key(branch, report.day),
                      queue_key(branch, report.day, report.queue_id),
                      phone_key(report.phone or "-"), REPORTS,
                      conflicts_key(branch, report.day)],
                args=[report.ticket_id, record, report.device, report.outcome,
                      repr(report.issued_ts), report.phone or "",
                      json.dumps(pointer, ensure_ascii=False), KEEP_TICKETS_S,
                      PHONE_TTL_S, f"{branch} {report.ticket_id}", fixed, *beside])
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: {exc}") from None
        return str(result), str(first)

    @staticmethod
    def _ticket(branch: str, day: str, raw: str, call: str | None,
                conflict: bool = False, beside: str | None = None) -> Ticket | None:
        """The ticket of a stored record; ``beside``: its variant, for a report kept beside
        the first of its number."""
        try:
            r = json.loads(raw)
            at = str(r["issuedAt"])
            try:  # the text as sent: the record's ts, once Lua rewrote the record (an
                ts = datetime.fromisoformat(at).timestamp()  # outcome, a phone), has only
            except ValueError:  # 14 digits (cjson): 11:02:12.12349 before .12346
                ts = float(r["ts"])
            return Ticket(branch, day, str(r["ticketId"]), str(r["queue"]["id"]),
                          str(r["queue"]["name"]), r.get("lang"), at,
                          ts, str(r["outcome"]), str(r["device"]),
                          r.get("priority"), call_of(call),
                          float(r["wait_min"]) if r.get("wait_min") is not None else None,
                          conflict, beside is not None, beside or "")
        except (ValueError, KeyError, TypeError):
            log.error("relay: an unreadable ticket in Redis (%s, %s): skipped", branch, day)
            return None

    async def tickets(self, branch: str, day: str) -> list[Ticket]:
        from kiosk.relay.redis_store import called_key
        try:
            raw = await self._redis.hgetall(tickets_key(branch, day))
            calls = await self._redis.hgetall(called_key(branch, day)) if raw else {}
            others = await self._redis.hgetall(conflicts_key(branch, day)) if raw else {}
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: {exc}") from None
        conflicted = {field.partition("\n")[0] for field in others}
        found = [(0, self._ticket(branch, day, r, calls.get(t), t in conflicted))
                 for t, r in raw.items()]
        found += [(1, self._ticket(branch, day, r, calls.get(f.partition("\n")[0]), True,
                                   f.rpartition("\n")[2]))
                  for f, r in others.items()]  # each after the first report of its number
        ordered = sorted(((t.issued_ts, t.ticket_id, rank, t.device, t.variant), t)
                         for rank, t in found if t is not None)
        return [t for _, t in ordered]

    async def ticket_by_phone(self, phone_sha256: str) -> Ticket | None:
        from kiosk.relay.redis_store import called_key
        try:
            pointer = await self._redis.get(phone_key(phone_sha256))
            if pointer is None:
                return None
            branch, day, ticket, *beside = json.loads(pointer)  # a conflict's: + device,
            if beside:                                              # variant
                device, which = beside
                raw = await self._redis.hget(conflicts_key(branch, day),
                                             conflict_field(ticket, device, which))
                conflict = True
            else:
                raw = await self._redis.hget(tickets_key(branch, day), ticket)
                conflict = any(f.partition("\n")[0] == ticket for f in await
                               self._redis.hkeys(conflicts_key(branch, day)))
            call = await self._redis.hget(called_key(branch, day), ticket)
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: {exc}") from None
        except (ValueError, TypeError):
            return None
        return None if raw is None else self._ticket(branch, day, raw, call, conflict,
                                                     beside[1] if beside else None)

    async def ahead(self, ticket: Ticket) -> int:
        from kiosk.relay.redis_store import called_key
        try:
            n = await self._ahead(keys=[queue_key(ticket.branch, ticket.day, ticket.queue_id),
                                        called_key(ticket.branch, ticket.day)],
                                  args=[repr(ticket.issued_ts), ticket.ticket_id])
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: {exc}") from None
        return int(n)


class RedisLedger(_RedisTickets):
    """The ledger shared by replicas in Redis; each replica's floors in its ``hub.sqlite3``."""

    def __init__(self, url: str, path: Path, clock: Callable[[], float] = time.time) -> None:
        from kiosk.relay.redis_store import client
        self.url = url
        self._redis: Any = client(url)
        self._lease = self._redis.register_script(_LEASE)
        self._seed = self._redis.register_script(_SEED)
        self._file = _Db(path, _SCHEMA)
        self._clock = clock
        self.id = ""
        """This replica's id (made once, kept in ``hub.sqlite3``)."""
        self._checker: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._pruner: asyncio.Task[None] | None = None
        self._report = self._redis.register_script(_REPORT)
        self._ahead = self._redis.register_script(_AHEAD)
        self.seeded = asyncio.Event()
        """Set while this replica knows the Redis run is seeded by it."""
        self.on_report: Callable[[str, str], None] = lambda branch, ticket: None
        self._noted: dict[str, float] = {}
        """When each replica was last written down as seen (by this run)."""

    async def start(self) -> None:
        await asyncio.to_thread(self._file.open)

        def me(db: sqlite3.Connection) -> str:
            self._prune(db)
            row = db.execute("SELECT id FROM replicas WHERE me = 1").fetchone()
            if row:
                return str(row[0])
            new = uuid.uuid4().hex
            db.execute("INSERT INTO replicas (id, seen, me) VALUES (?, ?, 1)",
                       (new, self._clock()))
            return new
        self.id = await self._file.run(me)
        self._checker = asyncio.create_task(self._check_loop(), name="hub-ledger-seed")
        self._listener = asyncio.create_task(self._listen(), name="hub-ledger-reports")
        self._pruner = asyncio.create_task(_pruning(self._file, self._prune),
                                           name="hub-ledger-prune")

    def _prune(self, db: sqlite3.Connection) -> None:
        """This replica's floors of days past :data:`KEEP_DAYS`."""
        db.execute("DELETE FROM counters WHERE day < ?", (_cutoff(self._clock()),))

    async def close(self) -> None:
        for task in (self._checker, self._listener, self._pruner):
            with contextlib.suppress(Exception):
                await cancel(task)
        async with self._file.lock:
            await asyncio.to_thread(self._file.close)
        await self._redis.aclose()

    async def _check_loop(self) -> None:
        failing = False
        while True:
            try:
                await self.check()
            except StoreError as exc:
                if not failing:  # one line when it starts failing, one when it is back
                    log.warning("relay: the lease counters cannot be checked: %s (no leases "
                                "until Redis answers)", exc)
                failing = True
                self.seeded.clear()
            else:
                if failing:
                    log.info("relay: the lease counters answer again")
                failing = False
            await asyncio.sleep(SEED_CHECK_S)

    async def check(self) -> bool:
        """Make sure this Redis run has this replica's floors; whether it has. Remembers
        every replica seen (leases wait for each to seed after a Redis restart)."""
        async with self._file.lock:
            seeded, members = await self._call_seed(seed=False)
            if not seeded:
                floors = await in_thread(self._floors)
                seeded, members = await self._call_seed(seed=True, floors=floors)
                log.warning("relay: Redis is a new run (restarted): the lease counters were "
                            "raised to this replica's %d floor(s)", len(floors))
            # each replica as seen by its own last check (a new one at once, the others
            # once a minute): one gone for good stops being seen, wherever Redis kept it
            moment = self._clock()
            due = [(m, at) for m, at in members.items()
                   if at - self._noted.get(m, at - SEEN_WRITE_S) >= SEEN_WRITE_S]
            if due:  # (never written down as seen later than a minute ahead of this clock)
                await in_thread(self._file.transaction, lambda db: db.executemany(
                    "INSERT INTO replicas (id, seen) VALUES (?, ?) ON CONFLICT (id) DO "
                    "UPDATE SET seen = max(seen, excluded.seen)",
                    [(m, min(at, moment + SEEN_WRITE_S)) for m, at in due]))
                self._noted.update(due)
        if seeded:
            self.seeded.set()
        else:
            self.seeded.clear()
        return seeded

    async def _call_seed(self, *, seed: bool, floors: list[Any] | None = None
                         ) -> tuple[bool, dict[str, float]]:
        """Whether this run is seeded by this replica, and every replica heard from
        (:data:`REPLICAS`) with the time of its last check."""
        keys: list[str] = [SEEDED, SEEDED_RUN, REPLICAS, OLDER_REPLICAS]
        args: list[Any] = [self.id, "1" if seed else "0", COUNTER_TTL_S, REPLICA_MEMORY_S]
        for branch, day, sequence, last in floors or []:
            keys.append(counter_key(branch, day, sequence))
            args.append(int(last))
        try:
            seeded, heard = await self._seed(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: {exc}") from None
        # id, time, id, time... (the script keeps only times: a stray value is skipped)
        members = {str(heard[i]): at for i in range(0, len(heard) - 1, 2)
                   if (at := _check_time(heard[i + 1])) is not None}
        return bool(int(seeded)), members

    def _floors(self) -> list[Any]:
        """This replica's floors of the days a lease may still be used (two days back:
        time zones ahead of this machine's)."""
        since = (date.fromtimestamp(self._clock()) - timedelta(days=2)).isoformat()
        return self._file.db.execute("SELECT branch, day, sequence, last FROM counters "
                                     "WHERE day >= ?", (since,)).fetchall()

    def _required(self, db: sqlite3.Connection) -> list[str]:
        since = self._clock() - REPLICA_MEMORY_S
        return [str(r[0]) for r in db.execute(
            "SELECT id FROM replicas WHERE seen >= ? OR me = 1", (since,)).fetchall()]

    async def lease(self, branch: str, day: str, sequence: str, count: int) -> Lease:
        async with self._file.lock:  # a seed never misses a block handed out meanwhile
            required = await in_thread(self._required, self._file.db)
            try:
                last, missing = await self._lease(
                    keys=[counter_key(branch, day, sequence), SEEDED, SEEDED_RUN],
                    args=[count, COUNTER_TTL_S, *required])
            except (RedisError, OSError) as exc:
                raise StoreError(f"Redis: {exc}") from None
            last = int(last)
            if last < 0:
                self.seeded.clear()
                raise NotSeeded(f"Redis restarted: waiting for replica {missing} to raise "
                                "the lease counters to the last numbers it handed out (the "
                                "devices number offline meanwhile; a replica gone for good: "
                                "packaging/README.md, \"Numbers with replicas\")")
            try:
                await in_thread(self._file.transaction, lambda db: _raise(
                    db, branch, day, sequence, last))
            except sqlite3.Error as exc:
                raise StoreError(f"the floors: {exc}") from None
        return Lease(sequence, day, last - count + 1, last)


@dataclass(frozen=True)
class Replica:
    """A replica as one replica knows it (``kiosk forget-replica``)."""

    id: str
    seen: float | None
    """When this replica last wrote it down as seen (None: not in its file)."""
    checked: float | None
    """The time of its last check, as Redis holds it (None: not in Redis)."""
    me: bool
    """This replica."""


def _replica_file(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise StoreError(f"no {path.name} in {path.parent}: not the data_dir of a replica "
                         "that ran (kiosk.data_dir of its config)")
    db = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    db.execute("PRAGMA busy_timeout=5000")
    return db


def _check_time(value: Any) -> float | None:
    """A replica's check time as :data:`REPLICAS` holds it; None when there is none, or
    what is there is not a number."""
    try:
        return float(value) if value is not None else None
    except (ValueError, TypeError):
        return None


@contextlib.contextmanager
def _translated(path: Path) -> Iterator[None]:
    """SQLite's (``path``) and Redis's errors as :class:`StoreError`."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: {exc}") from None
    except (RedisError, OSError) as exc:
        raise StoreError(f"Redis: {exc}") from None


def _sync_redis(url: str) -> Any:
    import redis

    from kiosk.relay.redis_store import SOCKET_TIMEOUT_S
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=SOCKET_TIMEOUT_S,
                                socket_connect_timeout=SOCKET_TIMEOUT_S)


def known_replicas(url: str, path: Path) -> list[Replica]:
    """Every replica this one (its ``hub.sqlite3`` at ``path``) or Redis knows, this one
    first, then by last seen."""
    with _translated(path):
        db = _replica_file(path)
        try:
            rows = db.execute("SELECT id, seen, me FROM replicas").fetchall()
        finally:
            db.close()
        client = _sync_redis(url)
        try:
            checks = client.hgetall(REPLICAS)
        finally:
            client.close()
    found = {str(i): Replica(str(i), float(seen), None, bool(me)) for i, seen, me in rows}
    for i, at in checks.items():
        before = found.get(i)
        found[i] = Replica(i, before.seen if before else None, _check_time(at),
                           bool(before and before.me))
    return sorted(found.values(), key=lambda r: (not r.me, -(r.seen or r.checked or 0.0)))


RECENT_S = 26 * 3600
"""A replica seen within this may have handed out numbers of some branch's current day."""


class RiskyForget(StoreError):
    """Forgetting the replica may hand its numbers out again (``--force`` to do it)."""


def forget_replica(url: str, path: Path, replica: str, *, force: bool = False,
                   clock: Callable[[], float] = time.time) -> bool:
    """Forget ``replica``, gone for good, at once: out of Redis and out of this replica's
    file (``path``), so leases no longer wait for it to raise the counters to its floors
    after a Redis restart. Run on every replica left (each keeps its own file). Whether it
    was known here or there.

    :class:`StoreError` for this replica's own id, for one that checked within
    :data:`ALIVE_S` (it is running), or a store that does not answer;
    :class:`RiskyForget`, unless ``force``, for one seen within :data:`RECENT_S`: its
    floors (the last numbers it handed out) go with it, so if Redis lost its counters
    those numbers may be handed out again."""
    with _translated(path):
        db = _replica_file(path)
        try:
            row = db.execute("SELECT seen, me FROM replicas WHERE id = ?",
                             (replica,)).fetchone()
            if row and row[1]:
                raise StoreError(f"{replica} is this replica: run the command on the others")
            client = _sync_redis(url)
            try:
                last_check = _check_time(client.hget(REPLICAS, replica))
                moment = clock()
                if last_check is not None and moment - last_check < ALIVE_S:
                    raise StoreError(f"{replica} checked {moment - last_check:.0f} s ago: it "
                                     "is running (stop it first)")
                seen = max((t for t in (last_check, row[0] if row else None)
                            if t is not None), default=None)
                if seen is not None and moment - seen < RECENT_S and not force:
                    raise RiskyForget(
                        f"{replica} was last seen {(moment - seen) / 3600:.1f} h ago: the last "
                        "numbers it handed out today are only on its disk. Forget it only if "
                        "Redis kept its data (AOF) or after the day it was last seen; then "
                        "again with --force")
                there = int(client.hdel(REPLICAS, replica))  # first: then no check
            finally:  # writes it down again
                client.close()
            here = db.execute("DELETE FROM replicas WHERE id = ? AND me = 0",
                              (replica,)).rowcount
        finally:
            db.close()
    return bool(here or there)


def ledger_path(sqlite_path: Path) -> Path:
    """``hub.sqlite3``, next to the relay's call store."""
    return sqlite_path.with_name("hub.sqlite3")


def open_ledger(store: str, sqlite_path: Path) -> Ledger:
    """The ledger for the relay's ``store`` setting (``sqlite`` or a Redis URL)."""
    if store == "sqlite":
        return SqliteLedger(ledger_path(sqlite_path), sqlite_path)
    return RedisLedger(store, ledger_path(sqlite_path))
