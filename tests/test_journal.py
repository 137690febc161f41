"""Ticket numbers and the journal: per-day sequences in the branch's time zone, never reused,
across restarts, crashes (kill -9) and two processes at once."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiosk.errors import StoreError
from kiosk.store import Journal, derive_prefix

from .conftest import WallClock

FMT = "{prefix}-{seq:03d}"


def reserve(j: Journal, prefix: str = "A", queue: str = "q1") -> str:
    return j.reserve(queue_id=queue, queue_name="Q", prefix=prefix, fmt=FMT).ticket_id


def test_numbers_count_up_per_prefix(tmp_path: Path) -> None:
    j = Journal(tmp_path, kiosk_id="k1")
    assert [reserve(j) for _ in range(3)] == ["A-001", "A-002", "A-003"]
    assert reserve(j, "B", "q2") == "B-001"
    assert reserve(j) == "A-004"


def test_queues_sharing_a_prefix_never_share_a_number(tmp_path: Path) -> None:
    j = Journal(tmp_path, kiosk_id="k1")
    assert [reserve(j, "A", "q1"), reserve(j, "A", "q2")] == ["A-001", "A-002"]


def test_reset_at_local_midnight_of_the_branch(tmp_path: Path) -> None:
    # 23:58 in Santiago (UTC-3 in November) is 02:58 UTC the next day.
    clock = WallClock(datetime(2026, 11, 28, 2, 58, tzinfo=UTC))
    j = Journal(tmp_path, kiosk_id="k1", timezone="America/Santiago", clock=clock)
    assert j.today() == "2026-11-27"
    assert [reserve(j), reserve(j)] == ["A-001", "A-002"]
    clock.advance(minutes=1)
    assert reserve(j) == "A-003"       # 23:59, still the same local day
    clock.advance(minutes=1, seconds=1)
    assert j.today() == "2026-11-28"   # 00:00:01 local
    assert reserve(j) == "A-001"
    assert [r.ticket_id for r in j.rows("2026-11-27")] == ["A-001", "A-002", "A-003"]


def test_utc_midnight_is_not_the_branch_midnight(tmp_path: Path) -> None:
    clock = WallClock(datetime(2026, 11, 27, 23, 59, tzinfo=UTC))  # 20:59 in Santiago
    j = Journal(tmp_path, kiosk_id="k1", timezone="America/Santiago", clock=clock)
    reserve(j)
    clock.advance(minutes=2)  # 00:01 UTC, 21:01 Santiago
    assert reserve(j) == "A-002"


def test_numbers_continue_after_restart(tmp_path: Path) -> None:
    j = Journal(tmp_path, kiosk_id="k1")
    reserve(j), reserve(j)
    j.close()
    j2 = Journal(tmp_path, kiosk_id="k1")
    assert reserve(j2) == "A-003"


def test_a_spent_number_is_never_reused_whatever_the_outcome(tmp_path: Path) -> None:
    j = Journal(tmp_path, kiosk_id="k1")
    row = j.reserve(queue_id="q", queue_name="Q", prefix="A", fmt=FMT)
    j.finish(row.row_id, "no_agents", detail="406")
    assert reserve(j) == "A-002"
    assert j.find("A-001").outcome == "no_agents"  # type: ignore[union-attr]


def test_kiosk_id_in_the_format(tmp_path: Path) -> None:
    j = Journal(tmp_path, kiosk_id="L2")
    assert j.reserve(queue_id="q", queue_name="Q", prefix="A",
                     fmt="{prefix}{kiosk}-{seq:03d}").ticket_id == "AL2-001"


def test_outcome_print_and_counts(tmp_path: Path) -> None:
    j = Journal(tmp_path, kiosk_id="k1")
    r1 = j.reserve(queue_id="q", queue_name="Q", prefix="A", fmt=FMT)
    r2 = j.reserve(queue_id="q", queue_name="Q", prefix="A", fmt=FMT)
    j.finish(r1.row_id, "issued", videsk_id="v1")
    j.set_printed(r1.row_id, False, "PrinterNotReady: paper out")
    j.finish(r2.row_id, "issued", videsk_id="v2")
    j.set_printed(r2.row_id, True)
    row = j.find("A-001")
    assert row is not None and (row.outcome, row.videsk_id, row.printed) == ("issued", "v1", False)
    assert row.print_error == "PrinterNotReady: paper out"
    assert j.counts() == {"issued": 2, "unprinted": 1}
    assert j.last_issued().ticket_id == "A-002"  # type: ignore[union-attr]


def test_wal_and_full_sync(tmp_path: Path) -> None:
    j = Journal(tmp_path, kiosk_id="k1")
    assert j._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert j._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Journal(tmp_path, kiosk_id="k1").close()
    db = sqlite3.connect(tmp_path / "journal.sqlite3")
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(StoreError, match="newer kiosk"):
        Journal(tmp_path, kiosk_id="k1")


def test_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError):
        Journal(blocker / "sub", kiosk_id="k1")


def test_prefix_from_name() -> None:
    assert derive_prefix("Atención a clientes") == "A"
    assert derive_prefix("Émission de cartes") == "E"
    assert derive_prefix("¿Ñandú?") == "N"
    assert derive_prefix("123") == "1"
    assert derive_prefix("—") == "T"


def _worker(data_dir: str, n: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    j = Journal(Path(data_dir), kiosk_id="k1")
    out.put([reserve(j) for _ in range(n)])


@pytest.mark.slow
def test_two_processes_at_once_never_collide(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), 40, out)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    numbers = got[0] + got[1]
    assert len(numbers) == len(set(numbers)) == 80
    assert sorted(numbers) == [f"A-{i:03d}" for i in range(1, 81)]


CRASHER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from kiosk.store import Journal
    j = Journal(Path(sys.argv[1]), kiosk_id="k1")
    done = j.reserve(queue_id="q", queue_name="Q", prefix="A", fmt="{prefix}-{seq:03d}")
    j.finish(done.row_id, "issued", videsk_id="v1")
    j.reserve(queue_id="q", queue_name="Q", prefix="A", fmt="{prefix}-{seq:03d}")
    # killed after reserving A-002 and before the API's answer was recorded
    os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.slow
def test_kill_9_loses_nothing(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", CRASHER, str(tmp_path)], timeout=60)
    assert proc.returncode == -signal.SIGKILL
    j = Journal(tmp_path, kiosk_id="k1")
    issued = j.find("A-001")
    assert issued is not None and issued.outcome == "issued" and issued.videsk_id == "v1"
    assert j.recover() == 1
    assert j.find("A-002").outcome == "unknown"  # type: ignore[union-attr]
    assert reserve(j) == "A-003"  # the interrupted number is never handed out again
    assert os.path.exists(tmp_path / "journal.sqlite3")


def test_armed_number_is_claimed_then_voided_on_restart(tmp_path: Path) -> None:
    j = Journal(tmp_path, kiosk_id="k1")
    assert j.recover() == 0 and j.owner
    armed = j.arm(prefix="A", fmt=FMT)
    assert armed.outcome == "armed" and armed.ticket_id == "A-001"
    assert j.rows() == [] and j.counts() == {"unprinted": 0}  # not an attempt yet
    j.claim(armed.row_id, queue_id="q", queue_name="Q", language="es")
    with pytest.raises(StoreError):
        j.claim(armed.row_id, queue_id="q", queue_name="Q", language="es")  # only once
    j.finish(armed.row_id, "issued", videsk_id="v")
    j.arm(prefix="A", fmt=FMT)  # A-002, armed and then the kiosk restarts
    j.close()
    j2 = Journal(tmp_path, kiosk_id="k1")
    assert j2.recover() == 0  # nothing was pending
    assert [(r.ticket_id, r.outcome) for r in j2.rows()] == [("A-001", "issued")]
    assert reserve(j2) == "A-003"  # the armed A-002 is never handed out


def test_a_claim_is_fsynced_before_its_post_and_finish_is_not(tmp_path: Path) -> None:
    """Issue 9 item 9: a claimed number is on disk (synchronous=FULL) before the POST
    leaves, so a power cut after an accepted POST cannot turn it back into 'armed' (then
    'void', never sent). The answer's record needs no fsync: lost, it reads 'unknown'."""
    j = Journal(tmp_path, kiosk_id="k1")
    j.recover()
    armed = j.arm(prefix="A", fmt=FMT)
    j.claim(armed.row_id, queue_id="q", queue_name="Q", language="es")
    assert j._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: fsynced
    j2 = Journal(tmp_path, kiosk_id="k1", access="read")  # another connection sees it
    assert j2.find("A-001").outcome == "pending"  # type: ignore[union-attr]
    j.finish(armed.row_id, "issued", videsk_id="v")
    assert j._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_a_tap_never_restarts_the_write_ahead_log(tmp_path: Path) -> None:
    """The first write after a complete checkpoint restarts the WAL, and SQLite fsyncs the
    new WAL header then (even at synchronous=NORMAL). arm() checkpoints *before* it
    reserves, so that fsync is paid in the background and a tap's claim pays only its own
    (a restart shows as a new WAL header: checkpoint sequence and salts)."""
    j = Journal(tmp_path, kiosk_id="k1")
    j.recover()
    wal = tmp_path / "journal.sqlite3-wal"
    for _ in range(3):
        armed = j.arm(prefix="A", fmt=FMT)
        header = wal.read_bytes()[:32]
        j.claim(armed.row_id, queue_id="q", queue_name="Q", language="es")
        assert wal.read_bytes()[:32] == header, "the claim restarted the WAL (an extra fsync)"
        j.finish(armed.row_id, "issued", videsk_id="v")
        j.set_printed(armed.row_id, True)
        assert wal.read_bytes()[:32] == header, "a record restarted the WAL (an fsync inline)"
    assert [r.outcome for r in j.rows()] == ["issued"] * 3


def test_calls_of_its_own_tickets_are_journalled_once(tmp_path: Path) -> None:
    """When each of this kiosk's tickets was called and where; time from ticket to call."""
    from datetime import timedelta
    now = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    j = Journal(tmp_path, kiosk_id="k1", timezone="America/Santiago", clock=lambda: now)
    row = j.reserve(queue_id="q", queue_name="Caja", prefix="A", fmt="{prefix}-{seq:03d}")
    j.finish(row.row_id, "issued", videsk_id="v1")
    lost = j.reserve(queue_id="q", queue_name="Caja", prefix="A", fmt="{prefix}-{seq:03d}")
    j.finish(lost.row_id, "no_agents")
    called = now + timedelta(minutes=6)
    assert j.record_call("A-001", "Cabina 3", called)
    assert j.record_call("A-001", "Cabina 3", called)  # a replay: still one call
    assert not j.record_call("A-002", "Cabina 1", called)  # not issued
    assert not j.record_call("Z-900", "Cabina 1", called)  # another kiosk's
    assert j.calls_of("A-001") == [("Cabina 3", "2026-12-01T14:06:00.000+00:00")]
    assert j.record_call("A-001", "Cabina 5", called + timedelta(minutes=1))  # called again
    assert [p for p, _ in j.calls_of("A-001")] == ["Cabina 3", "Cabina 5"]
    assert j.call_waits() == [360.0]  # to the first call
    j.close()
    j = Journal(tmp_path, kiosk_id="k1", timezone="America/Santiago", clock=lambda: now)
    assert len(j.calls_of("A-001")) == 2  # on disk
    j.close()


def _bytes_on_disk(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.glob("journal.sqlite3*")))


@pytest.mark.parametrize("how", ["start", "outcome", "forget"])
def test_phone_tokens_are_kept_for_their_day_then_no_byte_of_them_stays(
        tmp_path: Path, how: str) -> None:
    """A reprint prints the same phone link that day; the day after, the token is gone
    from the journal's files, its table and a report still waiting in the outbox alike
    (deleted with secure_delete, the log checkpointed), whether
    the kiosk restarts, writes an outcome, or forgets on its own."""
    clock = WallClock(datetime(2026, 11, 27, 21, 0, tzinfo=UTC))  # 18:00 in Santiago
    j = Journal(tmp_path, kiosk_id="k1", timezone="America/Santiago", clock=clock)
    j.recover()
    token = "Zr8Qm2yP1vW7kT4nB6xD0g"
    row = j.reserve(queue_id="q1", queue_name="Q", prefix="A", fmt=FMT)
    j.finish(row.row_id, "issued", phone=token,
             report={"ticketId": "A-001", "phone": token})  # the hub is away: kept
    assert j.phone_token("A-001") == token
    j.checkpoint(truncate=True)
    assert token.encode() in _bytes_on_disk(tmp_path)  # the check below can see it
    clock.advance(hours=7)  # 01:00 the next day in Santiago
    assert j.phone_token("A-001", "2026-11-27") is None  # its day is over
    if how == "start":
        j.close()
        j = Journal(tmp_path, kiosk_id="k1", timezone="America/Santiago", clock=clock)
        j.recover()
    elif how == "outcome":
        other = j.reserve(queue_id="q1", queue_name="Q", prefix="A", fmt=FMT)
        j.finish(other.row_id, "issued")
    else:
        assert j.forget_phones() == 2  # the token, and the report that held it
    assert token.encode() not in _bytes_on_disk(tmp_path)
    [(_, report)] = [r for r in j.outbox() if r[1]["ticketId"] == "A-001"]
    assert report == {"ticketId": "A-001", "phone": None}  # still sent, without the token
    j.close()
