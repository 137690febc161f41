"""The journal: every ticket attempt in SQLite, and the ticket numbers it hands out.

One file, ``<data_dir>/journal.sqlite3``, in WAL mode. Numbers are committed with
``synchronous=FULL`` (fsynced), so a number survives a kill -9 and a power cut.

Numbers. :meth:`Journal.reserve` takes the next number *and* records the attempt in one
``BEGIN IMMEDIATE`` transaction, committed before anything is sent to the API. So:

- a number, once reserved, is never handed out again that day (whatever the API answers,
  and across restarts and crashes);
- two processes on the same ``data_dir`` are serialised by SQLite's write lock;
- the day is the local date in the branch's time zone, so counters restart at its midnight.

Two kiosks of one branch have two journals. Without a hub their numbers must differ by
format: give them different queue prefixes, or put ``{kiosk}`` in ``numbering.format``
(see README). With a hub (docs/hub.md) they share one sequence: the hub leases blocks of
numbers (:meth:`Journal.record_lease`, fsynced before a number of it is used; the
``leases`` table, by branch-local day), :meth:`Journal.reserve` takes the next number of
today's blocks in the same transaction as the attempt, and with none left it numbers on
this device's own sequence (``offline:A``) in the offline format. A block of another day
is never used; ``tickets.numbering`` says where each number came from.

Armed numbers keep the number's reservation off a tap's path: :meth:`Journal.arm`
reserves the next number of a prefix ahead of time (durably, ``synchronous=FULL``), and a
tap claims it (:meth:`Journal.claim`, also fsynced: a number is on disk as *sent* before
its POST leaves, so a power cut right after an accepted POST still finds it) and records
the answer (:meth:`Journal.finish`, ``synchronous=NORMAL``: it survives a kill -9 at once,
and a power cut from the next FULL commit on; lost, the attempt reads ``unknown``, never
``void``). WAL checkpoints run only in :meth:`Journal.arm`, in the background, before
its reservation (which then pays the WAL restart's fsync, not the tap).

Who may do what (``access``):

- ``"own"``: the long-lived core. It takes the owner lock (``journal.lock`` in the data
  folder, an ``flock`` held for the process's life); only the owner recovers the journal
  and arms numbers. A second process asking to own it while the first lives does neither
  (it reserves each number when it is used) until the first is gone.
- ``"write"``: a one-shot command (``kiosk ticket``, ``reprint``). It never recovers and
  never arms, so it neither voids the core's armed number nor skips one of its own; it
  holds ``journal.users`` shared while it lives, so the owner never recovers an attempt
  of a one-shot still waiting for its answer.
- ``"read"``: read-only commands (``check``, ``tickets``): SQLite opened read-only.

Recovery (:meth:`Journal.recover`, by the owner, with no one-shot writing): an attempt
left ``pending`` (claimed or reserved, maybe sent, no answer recorded) becomes
``unknown``, which staff see in ``kiosk check``; an ``armed`` number that was never
claimed becomes ``void``: never sent, never reused, a gap of at most one number per
prefix per restart.

Priority tickets (preferential attention) are numbered with a format of their own and a
sequence of their own per prefix (the counter ``priority:A`` beside ``A``), reserved on
the spot (never armed: they are few); ``tickets.priority`` holds the reason's id (``''``:
priority without a reason asked; NULL: a regular ticket).

Phone tokens (the link of a ticket's phone page, ``hub``): in ``phones`` (day, ticket,
token) for the ticket's day only, so that a reprint prints the same QR; the day after,
they are deleted (:meth:`Journal.forget_phones`: at start and with every outcome written)
with ``secure_delete`` on and the log checkpointed, so no byte of them stays in the file.

Schema versions: 1, then 2 (``tickets.priority``), then 3 (``tickets.numbering``, the
``leases`` table; ``phones`` is created where missing). A journal written by an older kiosk is
migrated when it is opened to write (one ``ALTER TABLE`` in the opening transaction);
read-only, it is read as it is (its tickets are all regular).

The day never goes backwards: a number is refused (:class:`~kiosk.errors.ClockBehind`)
when the clock's day is earlier than the latest day the journal has numbered on. A
journal that cannot be opened, or fails SQLite's integrity check, is never replaced by a
new one: the owner reports it (:meth:`Journal.unavailable`) and issues nothing.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from kiosk.errors import ClockBehind, StoreError

SCHEMA_VERSION = 3
JOURNAL_FILE = "journal.sqlite3"
OWNER_LOCK = "journal.lock"
"""Held (``flock`` exclusive) by the process that owns the journal, for its life."""
USERS_LOCK = "journal.users"
"""Held shared by one-shot writers while they live; the owner recovers only when it can
take it exclusive (no one-shot is waiting for an answer)."""

Access = Literal["own", "write", "read"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    day     TEXT NOT NULL,
    prefix  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    PRIMARY KEY (day, prefix)
);
CREATE TABLE IF NOT EXISTS tickets (
    row_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    day         TEXT NOT NULL,
    ticket_id   TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    queue_id    TEXT NOT NULL,
    queue_name  TEXT NOT NULL DEFAULT '',
    kiosk_id    TEXT NOT NULL,
    language    TEXT NOT NULL DEFAULT '',
    outcome     TEXT NOT NULL DEFAULT 'pending',
    videsk_id   TEXT,
    wait_min    REAL,
    printed     INTEGER NOT NULL DEFAULT 0,
    print_error TEXT NOT NULL DEFAULT '',
    detail      TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    answered_at TEXT,
    updated_at  TEXT NOT NULL,
    priority    TEXT,
    numbering   TEXT NOT NULL DEFAULT 'local',
    UNIQUE (day, ticket_id)
);
CREATE INDEX IF NOT EXISTS tickets_by_outcome ON tickets (day, outcome);
"""

# Blocks of numbers leased from the branch's hub (docs/hub.md), each recorded (fsynced)
# before a number of it is used; ``next`` is the next number of the block to hand out.
_LEASES_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    day       TEXT NOT NULL,
    sequence  TEXT NOT NULL,
    first     INTEGER NOT NULL,
    last      INTEGER NOT NULL,
    next      INTEGER NOT NULL,
    leased_at TEXT NOT NULL,
    PRIMARY KEY (day, sequence, first)
);
"""

# Reports of this device's tickets to the hub, written in the transaction that records
# the ticket's outcome and deleted once the hub has them (at least once: docs/hub.md).
_OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    day        TEXT NOT NULL,
    ticket_id  TEXT NOT NULL,
    payload    TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    refused    INTEGER NOT NULL DEFAULT 0
);
"""

# When each of this kiosk's tickets was called, and to which booth (from the relay's
# stream); apart from the tickets table, so that a ticket's row never changes for it.
_CALLS_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    day       TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    poc       TEXT NOT NULL,
    called_at TEXT NOT NULL,
    PRIMARY KEY (day, ticket_id, called_at, poc)
);
"""

# The phone page's token of each ticket that has one, for its day only (forget_phones).
_PHONES_SCHEMA = """
CREATE TABLE IF NOT EXISTS phones (
    day       TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    token     TEXT NOT NULL,
    PRIMARY KEY (day, ticket_id)
);
"""


@dataclass(frozen=True, slots=True)
class TicketRow:
    """One attempt as the journal holds it."""

    row_id: int
    day: str
    ticket_id: str
    seq: int
    queue_id: str
    queue_name: str
    kiosk_id: str
    language: str
    outcome: str
    videsk_id: str | None
    wait_min: float | None
    """The estimated wait shown to the customer, in minutes (for a reprint)."""
    printed: bool
    print_error: str
    detail: str
    created_at: str
    answered_at: str | None
    """When the API's answer was recorded (UTC, ISO 8601)."""
    updated_at: str
    priority: str | None = None
    """A priority ticket's reason id (``""``: no reason asked); None: a regular ticket."""
    numbering: str = "local"
    """Where its number came from: ``local`` (no hub), ``shared`` (a block leased from the
    hub), ``offline`` (the hub away and the block used up: ``numbering.offline_format``)."""


def derive_prefix(name: str, fallback: str = "T") -> str:
    """A one-letter prefix from a queue's name: its first letter without accents."""
    for ch in unicodedata.normalize("NFKD", name):
        if ch.isascii() and ch.isalnum():
            return ch.upper()
    return fallback


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Journal:
    """The SQLite journal of one kiosk. Safe to share between threads."""

    def __init__(self, data_dir: Path, *, kiosk_id: str, timezone: str = "UTC",
                 clock: Callable[[], datetime] = _utcnow, access: Access = "own",
                 busy_timeout_s: float = 15.0) -> None:
        self.kiosk_id = kiosk_id
        self.tz = ZoneInfo(timezone)
        self._clock = clock
        self._lock = threading.Lock()
        self.access: Access = access
        self.path = Path(data_dir) / JOURNAL_FILE
        self.fault: str | None = None
        """Why this journal cannot be used (see :meth:`unavailable`); None when it can."""
        self.owner = False
        """This process owns the journal (took the owner lock and recovered it)."""
        self._owner_fd: int | None = None
        self._users_fd: int | None = None
        self._db: sqlite3.Connection | None = None
        self._priority_column = True
        try:
            if access == "read":
                self._db = self._open_read_only(busy_timeout_s)
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if access == "write":
                self._users_fd = _lock_file(self.path.parent / USERS_LOCK, fcntl.LOCK_SH)
            db = self._db = sqlite3.connect(self.path, timeout=busy_timeout_s,
                                            isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            db.execute("PRAGMA secure_delete=ON")  # a deleted phone token is overwritten
            if access == "own":  # never build a new journal over a damaged one
                problem = db.execute("PRAGMA quick_check(1)").fetchone()[0]
                if problem != "ok":
                    raise StoreError(f"the journal {self.path} is damaged ({problem}); it "
                                     "was left as it is: move it aside (not delete it) "
                                     "once today's numbers are accounted for")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            # Checkpoints (which fsync) run in arm(), off the tap's path; not at any commit.
            db.execute("PRAGMA wal_autocheckpoint=0")
            with self._tx():
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise StoreError(f"{self.path} was written by a newer kiosk "
                                     f"(schema {version} > {SCHEMA_VERSION})")
                for statement in filter(str.strip, (_SCHEMA + _LEASES_SCHEMA + _OUTBOX_SCHEMA
                                                    + _CALLS_SCHEMA + _PHONES_SCHEMA
                                                    ).split(";")):
                    db.execute(statement)
                columns = _columns(db, "tickets")
                if "priority" not in columns:  # schema 1: migrated
                    db.execute("ALTER TABLE tickets ADD COLUMN priority TEXT")
                if "numbering" not in columns:  # schema 1 or 2: migrated
                    db.execute("ALTER TABLE tickets ADD COLUMN numbering TEXT NOT NULL "
                               "DEFAULT 'local'")
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            self._release()
            raise StoreError(f"cannot open the journal {self.path}: {exc}") from exc
        except OSError as exc:
            self._release()
            raise StoreError(f"cannot create {self.path.parent}: {exc}") from exc
        except BaseException:
            self._release()
            raise

    @classmethod
    def unavailable(cls, data_dir: Path, *, kiosk_id: str, reason: str,
                    timezone: str = "UTC") -> Journal:
        """A journal that could not be opened: every use raises StoreError(``reason``).
        The core runs on with it, out of service and saying why, instead of exiting
        (and being restarted by systemd, again and again)."""
        j = cls.__new__(cls)
        j.kiosk_id, j.tz, j._clock, j._lock = kiosk_id, ZoneInfo(timezone), _utcnow, \
            threading.Lock()
        j.access, j.path, j.fault, j.owner = "own", Path(data_dir) / JOURNAL_FILE, reason, False
        j._owner_fd = j._users_fd = None
        j._db = None
        j._priority_column = True
        return j

    def _open_read_only(self, busy_timeout_s: float) -> sqlite3.Connection:
        if not self.path.exists():
            raise StoreError(f"no journal at {self.path} (no ticket issued here yet)")
        db = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, timeout=busy_timeout_s,
                             isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # fails if not a database
        self._priority_column = "priority" in _columns(db, "tickets")  # not in schema 1
        return db

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(self.fault or f"the journal {self.path} is closed")
        return self._db

    def _release(self) -> None:
        for fd in (self._owner_fd, self._users_fd):
            if fd is not None:
                os.close(fd)  # closing the descriptor drops its flock
        self._owner_fd = self._users_fd = None
        if self._db is not None:
            self._db.close()
            self._db = None

    def close(self) -> None:
        """Close the database (and give up ownership)."""
        with self._lock:
            self._release()
            self.owner = False

    # ------------------------------------------------------------------ ownership

    def recover(self) -> int | None:
        """Own the journal and recover it, if this process may: ``pending`` attempts become
        ``unknown`` (returns how many; staff should check them), ``armed`` numbers
        ``void`` (never sent).

        Returns None, changing nothing, when another process owns the journal, a one-shot
        command is writing to it, or this journal was not opened to own (``access``). Call
        it only with no ticket of this process in flight. Once it returned a number, this
        process is the :attr:`owner` (and may :meth:`arm`) until :meth:`close`.
        """
        if self.access != "own" or self.fault is not None:
            return None
        if self.owner:
            return 0
        dir_ = self.path.parent
        try:
            if self._owner_fd is None:
                self._owner_fd = _lock_file(dir_ / OWNER_LOCK, fcntl.LOCK_EX | fcntl.LOCK_NB)
            users = _lock_file(dir_ / USERS_LOCK, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        except OSError as exc:
            raise StoreError(f"journal {self.path}: lock: {exc}") from exc
        try:
            with self._tx() as db:
                now = self._now()
                db.execute("UPDATE tickets SET outcome = 'void', detail = 'armed, never used', "
                           "updated_at = ? WHERE outcome = 'armed'", (now,))
                cur = db.execute("UPDATE tickets SET outcome = 'unknown', detail = "
                                 "'interrupted before the API answer was recorded', "
                                 "updated_at = ? WHERE outcome = 'pending'", (now,))
                count = cur.rowcount
        finally:
            os.close(users)
        self.owner = True
        self.forget_phones()
        return count

    def today(self) -> str:
        """The branch's local date, ISO formatted."""
        return self._clock().astimezone(self.tz).date().isoformat()

    @contextmanager
    def _tx(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed, or rolled back on any error.

        ``durable``: fsync at commit (``synchronous=FULL``); else WAL's ``NORMAL``.
        """
        with self._lock:
            db = self._conn
            try:
                db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                if db.in_transaction:  # a failed COMMIT (disk full, busy) may leave it open
                    with suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                raise StoreError(f"journal {self.path}: {exc}") from exc

    def _now(self) -> str:
        return self._clock().astimezone(UTC).isoformat(timespec="milliseconds")

    # ------------------------------------------------------------------ numbers

    def reserve(self, *, queue_id: str, queue_name: str, prefix: str, fmt: str,
                language: str = "", outcome: str = "pending", priority: str | None = None,
                offline_fmt: str | None = None) -> TicketRow:
        """Take the next number for ``prefix`` today and record the attempt as ``outcome``.
        A priority ticket (``priority``: its reason id, ``""`` for none) takes the next
        number of the prefix's priority sequence (:func:`sequence_of`).

        With a hub (``offline_fmt`` given), the number is the next of today's leased
        blocks of that sequence (:meth:`record_lease`), read with ``fmt``; with none left,
        the next of this device's own offline sequence, read with ``offline_fmt``. Without
        a hub, the next of this journal's own counter.

        Committed durably before it returns: the number is spent whatever happens next.
        """
        now = self._now()
        counter = sequence_of(prefix, priority)
        with self._tx() as db:
            day = self.today()
            seen = db.execute("SELECT max(day) FROM counters").fetchone()[0]
            if seen is not None and day < seen:
                raise ClockBehind(day, seen)
            numbering = "local" if offline_fmt is None else "shared"
            while True:  # a format that ignores the prefix could repeat another's id
                seq = self._leased(db, day, counter) if numbering == "shared" else None
                if seq is None:
                    if numbering == "shared":
                        numbering = "offline"
                    key = counter if numbering == "local" else f"offline:{counter}"
                    seq = self._counted(db, day, key)
                else:
                    self._counted(db, day, f"shared:{counter}", seq)  # the day's mark
                shown = fmt if numbering != "offline" else offline_fmt
                assert shown is not None
                ticket_id = shown.format(prefix=prefix, seq=seq, kiosk=self.kiosk_id)
                if not db.execute("SELECT 1 FROM tickets WHERE day = ? AND ticket_id = ?",
                                  (day, ticket_id)).fetchone():
                    break
            cur = db.execute(
                "INSERT INTO tickets (day, ticket_id, seq, queue_id, queue_name, kiosk_id, "
                "language, outcome, created_at, updated_at, priority, numbering) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (day, ticket_id, seq, queue_id, queue_name, self.kiosk_id, language, outcome,
                 now, now, priority, numbering))
            row_id = cur.lastrowid
        assert row_id is not None
        return self._get_row(row_id)

    @staticmethod
    def _counted(db: sqlite3.Connection, day: str, key: str, at_least: int | None = None
                 ) -> int:
        """The next number of counter ``key`` on ``day`` (or, with ``at_least``, the
        counter raised to it: a day's mark)."""
        if at_least is not None:
            db.execute("INSERT INTO counters (day, prefix, seq) VALUES (?, ?, ?) ON CONFLICT "
                       "(day, prefix) DO UPDATE SET seq = max(seq, excluded.seq)",
                       (day, key, at_least))
            return at_least
        row = db.execute("UPDATE counters SET seq = seq + 1 WHERE day = ? AND prefix = ? "
                         "RETURNING seq", (day, key)).fetchone()
        if row is not None:
            return int(row[0])
        db.execute("INSERT INTO counters (day, prefix, seq) VALUES (?, ?, 1)", (day, key))
        return 1

    @staticmethod
    def _leased(db: sqlite3.Connection, day: str, sequence: str) -> int | None:
        """The next number of ``day``'s oldest block of ``sequence`` with numbers left,
        taken (inside the caller's transaction); None when none is left. A block of
        another day is never used."""
        row = db.execute("SELECT first, next FROM leases WHERE day = ? AND sequence = ? AND "
                         "next <= last ORDER BY first LIMIT 1", (day, sequence)).fetchone()
        if row is None:
            return None
        db.execute("UPDATE leases SET next = next + 1 WHERE day = ? AND sequence = ? AND "
                   "first = ?", (day, sequence, row[0]))
        return int(row[1])

    def record_lease(self, sequence: str, day: str, first: int, last: int) -> bool:
        """Record a block the hub leased (fsynced, before any number of it is used);
        False when it was recorded already. A block overlapping one recorded for that
        day and sequence is refused (StoreError): the hub handed a number out twice."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM leases WHERE day = ? AND sequence = ? AND first = ? "
                          "AND last = ?", (day, sequence, first, last)).fetchone():
                return False
            clash = db.execute("SELECT first, last FROM leases WHERE day = ? AND sequence = ? "
                               "AND first <= ? AND last >= ?",
                               (day, sequence, last, first)).fetchone()
            if clash:
                raise StoreError(f"the hub leased {sequence} {first}-{last} on {day}, over "
                                 f"the block {clash[0]}-{clash[1]} it leased before: refused")
            db.execute("INSERT INTO leases (day, sequence, first, last, next, leased_at) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       (day, sequence, first, last, first, self._now()))
        return True

    def lease_left(self, sequence: str, day: str | None = None) -> int:
        """Numbers of ``sequence`` still unused in ``day``'s (today's) leased blocks."""
        with self._reading() as db:
            left: int = db.execute(
                "SELECT COALESCE(sum(last - next + 1), 0) FROM leases WHERE day = ? AND "
                "sequence = ? AND next <= last", (day or self.today(), sequence)).fetchone()[0]
        return left

    def arm(self, *, prefix: str, fmt: str, offline_fmt: str | None = None) -> TicketRow:
        """Reserve the next number of ``prefix`` ahead of a tap (durably; outcome ``armed``),
        after folding the write-ahead log back into the database while nobody waits. Only
        the :attr:`owner` arms (anyone else's armed number would be voided by its recovery).

        The checkpoint comes first: the next write after a complete checkpoint restarts
        the WAL, and SQLite fsyncs the new WAL header then (at any ``synchronous`` but
        OFF). Here that write is this reservation, in the background; checkpointing after
        it would leave the restart, and its extra fsync, to the tap's claim."""
        if not self.owner:
            raise StoreError(f"journal {self.path}: only its owner arms numbers")
        self.checkpoint()
        return self.reserve(queue_id="", queue_name="", prefix=prefix, fmt=fmt,
                            outcome="armed", offline_fmt=offline_fmt)

    def checkpoint(self, truncate: bool = False) -> None:
        """Copy the write-ahead log into the database (a passive checkpoint; ``truncate``:
        all of it, and the log emptied, when no reader holds it)."""
        with self._reading() as db:
            db.execute(f"PRAGMA wal_checkpoint({'TRUNCATE' if truncate else 'PASSIVE'})")

    def claim(self, row_id: int, *, queue_id: str, queue_name: str, language: str) -> None:
        """Turn an armed number into a pending attempt for ``queue_id``, before sending it:
        fsynced, so the number is on disk as possibly sent before the POST leaves."""
        with self._tx() as db:
            cur = db.execute("UPDATE tickets SET outcome = 'pending', queue_id = ?, "
                             "queue_name = ?, language = ?, updated_at = ? "
                             "WHERE row_id = ? AND outcome = 'armed'",
                             (queue_id, queue_name, language, self._now(), row_id))
            if cur.rowcount != 1:
                raise StoreError(f"number {row_id} is not armed (already used?)")

    # ------------------------------------------------------------------ outcomes

    def finish(self, row_id: int, outcome: str, *, videsk_id: str | None = None,
               detail: str = "", wait_min: float | None = None,
               report: dict[str, Any] | None = None, phone: str | None = None) -> None:
        """Record the API's answer to an attempt; with ``report`` (a ticket report for
        the hub, docs/hub.md), put it in the outbox in the same transaction; ``phone``: the
        ticket's phone token, kept for its day."""
        with self._tx(durable=False) as db:
            now = self._now()
            db.execute("UPDATE tickets SET outcome = ?, videsk_id = ?, detail = ?, wait_min = ?, "
                       "answered_at = ?, updated_at = ? WHERE row_id = ?",
                       (outcome, videsk_id, detail[:500], wait_min, now, now, row_id))
            if report is not None:
                day = db.execute("SELECT day, ticket_id FROM tickets WHERE row_id = ?",
                                 (row_id,)).fetchone()
                db.execute("INSERT INTO outbox (day, ticket_id, payload, created_at) VALUES "
                           "(?, ?, ?, ?)", (day[0], day[1], json.dumps(report,
                                                                       ensure_ascii=False),
                                            now))
            if phone is not None:
                db.execute("INSERT OR REPLACE INTO phones (day, ticket_id, token) SELECT day, "
                           "ticket_id, ? FROM tickets WHERE row_id = ?", (phone, row_id))
            stale = self._forget(db)
        if stale:
            self.checkpoint(truncate=True)

    def _forget(self, db: sqlite3.Connection) -> int:
        """Delete the phone tokens of the days before today, in the ``phones`` table and in
        the reports still waiting in the outbox (delivered without it: its page has
        expired); how many rows held one."""
        today = self.today()
        gone = db.execute("DELETE FROM phones WHERE day < ?", (today,)).rowcount
        gone += db.execute("UPDATE outbox SET payload = json_set(payload, '$.phone', json('null')) "
                           "WHERE day < ? AND json_extract(payload, '$.phone') IS NOT NULL",
                           (today,)).rowcount
        return int(gone)

    def phone_token(self, ticket_id: str, day: str | None = None) -> str | None:
        """The phone token of ``ticket_id`` (today by default), while its day lasts."""
        d = day or self.today()
        if d < self.today():
            return None
        with self._reading() as db:
            row = db.execute("SELECT token FROM phones WHERE day = ? AND ticket_id = ?",
                             (d, ticket_id)).fetchone()
        return str(row[0]) if row else None

    def forget_phones(self) -> int:
        """Delete the phone tokens of the days before today (overwritten in the file, the
        log checkpointed); how many."""
        with self._tx(durable=False) as db:
            gone = self._forget(db)
        if gone:
            self.checkpoint(truncate=True)
        return int(gone)

    def outbox(self, limit: int = 50) -> list[tuple[int, dict[str, Any]]]:
        """The oldest reports not yet delivered: ``(id, payload)``."""
        with self._reading() as db:
            rows = db.execute("SELECT id, payload FROM outbox WHERE refused = 0 ORDER BY id "
                              "LIMIT ?", (limit,)).fetchall()
        return [(r[0], json.loads(r[1])) for r in rows]

    def outbox_size(self, refused: bool = False) -> int:
        """How many reports wait for the hub (``refused``: how many it refused for good,
        kept here for staff)."""
        with self._reading() as db:
            if not self._outbox_table(db):
                return 0
            size: int = db.execute("SELECT count(*) FROM outbox WHERE refused = ?",
                                   (int(refused),)).fetchone()[0]
        return size

    def refused(self, report_id: int, error: str) -> None:
        """The hub refused report ``report_id`` for good (a 400, a 409): kept, with why,
        never sent again."""
        with self._tx(durable=False) as db:
            db.execute("UPDATE outbox SET refused = 1, attempts = attempts + 1, "
                       "last_error = ? WHERE id = ?", (error[:300], report_id))

    def delivered(self, report_id: int) -> None:
        """The hub has report ``report_id``: out of the outbox."""
        with self._tx(durable=False) as db:
            db.execute("DELETE FROM outbox WHERE id = ?", (report_id,))

    def not_delivered(self, report_id: int, error: str) -> None:
        """Report ``report_id`` failed once more (kept, with why)."""
        with self._tx(durable=False) as db:
            db.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                       (error[:300], report_id))

    @staticmethod
    def _outbox_table(db: sqlite3.Connection) -> bool:
        return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                          "name = 'outbox'").fetchone() is not None

    def set_printed(self, row_id: int, printed: bool, error: str = "") -> None:
        """Record whether the paper ticket came out."""
        with self._tx(durable=False) as db:
            db.execute("UPDATE tickets SET printed = ?, print_error = ?, updated_at = ? "
                       "WHERE row_id = ?", (int(printed), error[:500], self._now(), row_id))

    def void(self, row_id: int) -> None:
        """Give up an armed number without sending it (e.g. it belongs to yesterday)."""
        with self._tx(durable=False) as db:
            db.execute("UPDATE tickets SET outcome = 'void', detail = 'armed, never used', "
                       "updated_at = ? WHERE row_id = ? AND outcome = 'armed'",
                       (self._now(), row_id))

    # ------------------------------------------------------------------ reading

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The connection for a read, under the lock, SQLite's errors translated."""
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise StoreError(f"journal {self.path}: {exc}") from exc

    def _get_row(self, row_id: int) -> TicketRow:
        with self._reading() as db:
            row = db.execute("SELECT * FROM tickets WHERE row_id = ?", (row_id,)).fetchone()
        return _row(row)

    def integrity(self) -> str:
        """SQLite's quick integrity check: ``"ok"``, or the first problem found."""
        with self._reading() as db:
            result: str = db.execute("PRAGMA quick_check(1)").fetchone()[0]
        return result

    def latest_day(self) -> str | None:
        """The latest day the journal has numbered tickets on (its high-water mark: the
        day never goes back behind it)."""
        with self._reading() as db:
            day: str | None = db.execute("SELECT max(day) FROM counters").fetchone()[0]
        return day

    def find(self, ticket_id: str, day: str | date | None = None) -> TicketRow | None:
        """The attempt with this number (today by default; the latest if ``day`` is "any")."""
        with self._reading() as db:
            if day == "any":
                row = db.execute("SELECT * FROM tickets WHERE ticket_id = ? "
                                 "ORDER BY row_id DESC LIMIT 1", (ticket_id,)).fetchone()
            else:
                d = day.isoformat() if isinstance(day, date) else (day or self.today())
                row = db.execute("SELECT * FROM tickets WHERE day = ? AND ticket_id = ?",
                                 (d, ticket_id)).fetchone()
        return _row(row) if row else None

    def last_issued(self) -> TicketRow | None:
        """The most recent ticket the API accepted."""
        with self._reading() as db:
            row = db.execute("SELECT * FROM tickets WHERE outcome = 'issued' "
                             "ORDER BY row_id DESC LIMIT 1").fetchone()
        return _row(row) if row else None

    def rows(self, day: str | None = None) -> list[TicketRow]:
        """Every attempt of ``day`` (today by default), oldest first; not armed or void
        numbers, which were never sent."""
        with self._reading() as db:
            rows = db.execute("SELECT * FROM tickets WHERE day = ? AND outcome NOT IN "
                              "('armed', 'void') ORDER BY row_id",
                              (day or self.today(),)).fetchall()
        return [_row(r) for r in rows]

    def counts(self, day: str | None = None) -> dict[str, int]:
        """Attempts of ``day`` by outcome, plus ``unprinted`` issued tickets."""
        with self._reading() as db:
            d = day or self.today()
            out = {r[0]: r[1] for r in db.execute(
                "SELECT outcome, COUNT(*) FROM tickets WHERE day = ? AND outcome NOT IN "
                "('armed', 'void') GROUP BY outcome", (d,))}
            out["unprinted"] = db.execute(
                "SELECT COUNT(*) FROM tickets WHERE day = ? AND outcome = 'issued' "
                "AND printed = 0", (d,)).fetchone()[0]
        return out

    def priority_counts(self, day: str | None = None) -> dict[str, int]:
        """Issued priority tickets of ``day`` (today by default) by reason id (``""``: no
        reason asked); empty for a journal of schema 1, read as it is."""
        if not self._priority_column:
            return {}
        with self._reading() as db:
            rows = db.execute("SELECT priority, COUNT(*) FROM tickets WHERE day = ? AND "
                              "outcome = 'issued' AND priority IS NOT NULL GROUP BY priority "
                              "ORDER BY priority", (day or self.today(),)).fetchall()
        return {r[0]: r[1] for r in rows}

    # ------------------------------------------------------------------ calls

    def record_call(self, ticket_id: str, poc: str, called_at: datetime) -> bool:
        """Record that ``ticket_id`` was called to booth ``poc``, if it is one of this
        kiosk's tickets issued that (local) day; a repeated delivery is recorded once.
        Returns whether it was this kiosk's ticket."""
        day = called_at.astimezone(self.tz).date().isoformat()
        at = called_at.astimezone(UTC).isoformat(timespec="milliseconds")
        with self._tx(durable=False) as db:
            if not db.execute("SELECT 1 FROM tickets WHERE day = ? AND ticket_id = ? AND "
                              "outcome = 'issued'", (day, ticket_id)).fetchone():
                return False
            db.execute("INSERT OR IGNORE INTO calls (day, ticket_id, poc, called_at) "
                       "VALUES (?, ?, ?, ?)", (day, ticket_id, poc[:100], at))
        return True

    def calls_of(self, ticket_id: str, day: str | None = None) -> list[tuple[str, str]]:
        """``(poc, called_at)`` of each call of ``ticket_id`` (today by default), oldest
        first."""
        with self._reading() as db:
            rows = db.execute("SELECT poc, called_at FROM calls WHERE day = ? AND "
                              "ticket_id = ? ORDER BY called_at",
                              (day or self.today(), ticket_id)).fetchall()
        return [(r[0], r[1]) for r in rows]

    def call_waits(self, day: str | None = None) -> list[float]:
        """Seconds from ticket to first call, for each of the day's called tickets."""
        with self._reading() as db:
            rows = db.execute(
                "SELECT COALESCE(t.answered_at, t.created_at), MIN(c.called_at) FROM calls c "
                "JOIN tickets t ON t.day = c.day AND t.ticket_id = c.ticket_id "
                "WHERE c.day = ? GROUP BY c.ticket_id", (day or self.today(),)).fetchall()
        return [max(0.0, (datetime.fromisoformat(called) - datetime.fromisoformat(issued))
                    .total_seconds()) for issued, called in rows]


def sequence_of(prefix: str, priority: str | None) -> str:
    """The counter a number is taken from: the prefix's, or its priority sequence's (a
    key no prefix can be: prefixes are letters and digits)."""
    return prefix if priority is None else f"priority:{prefix}"


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in db.execute(f"PRAGMA table_info({table})")}


def _lock_file(path: Path, operation: int) -> int:
    """Open ``path`` (created if missing) and ``flock`` it; the descriptor holds the lock."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, operation)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _row(r: sqlite3.Row) -> TicketRow:
    values: dict[str, Any] = {k: r[k] for k in r.keys()}  # noqa: SIM118
    values["printed"] = bool(values["printed"])
    return TicketRow(**values)
