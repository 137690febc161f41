"""Numbers leased ahead from the hub (docs/hub.md "Numbers"): the journal's blocks (real
SQLite files, a real kill -9), and the device's numbering against the real relay on
loopback: hub down -> the offline format and staff told, hub back -> shared, a day
change, two devices of one branch sharing a sequence."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiosk.errors import StoreError
from kiosk.store import Journal

from .conftest import WallClock

FMT = "{prefix}-{seq:03d}"
OFFLINE = "{prefix}{kiosk}-{seq:03d}"


def take(j: Journal, prefix: str = "A", priority: str | None = None) -> tuple[str, str]:
    row = j.reserve(queue_id="q", queue_name="Q", prefix=prefix, fmt=FMT, priority=priority,
                    offline_fmt=OFFLINE)
    return row.ticket_id, row.numbering


def test_numbers_come_from_the_leased_blocks_then_offline_then_shared_again(
        tmp_path: Path) -> None:
    j = Journal(tmp_path, kiosk_id="k1")
    day = j.today()
    assert j.record_lease("A", day, 41, 43)
    assert not j.record_lease("A", day, 41, 43)  # the same block again: harmless
    assert j.lease_left("A") == 3
    assert [take(j) for _ in range(3)] == [("A-041", "shared"), ("A-042", "shared"),
                                           ("A-043", "shared")]
    assert j.lease_left("A") == 0
    # the block used up and no other: the device's own sequence, in the offline format
    assert [take(j) for _ in range(2)] == [("Ak1-001", "offline"), ("Ak1-002", "offline")]
    assert take(j, "B") == ("Bk1-001", "offline")  # each sequence its own
    j.record_lease("A", day, 61, 70)  # the hub answers again
    assert take(j) == ("A-061", "shared")
    j.record_lease("A", day, 51, 60)  # blocks are used oldest number first
    assert take(j) == ("A-051", "shared")
    assert j.lease_left("A") == 18
    # a priority ticket's sequence is its own
    j.record_lease("priority:A", day, 1, 5)
    row = j.reserve(queue_id="q", queue_name="Q", prefix="A", fmt="{prefix}P-{seq:03d}",
                    priority="senior", offline_fmt="{prefix}P{kiosk}-{seq:03d}")
    assert (row.ticket_id, row.numbering, row.priority) == ("AP-001", "shared", "senior")
    assert j.lease_left("A") == 18
    # without a hub: the journal's own counter, as before
    row = j.reserve(queue_id="q", queue_name="Q", prefix="C", fmt=FMT)
    assert (row.ticket_id, row.numbering) == ("C-001", "local")
    assert j.find("Ak1-002").numbering == "offline"  # type: ignore[union-attr]


def test_a_block_overlapping_one_recorded_is_refused(tmp_path: Path) -> None:
    """A hub that hands a number out twice (a store restarted empty): the second block is
    refused, none of its numbers used."""
    j = Journal(tmp_path, kiosk_id="k1")
    day = j.today()
    j.record_lease("A", day, 1, 10)
    with pytest.raises(StoreError, match="over the block 1-10"):
        j.record_lease("A", day, 5, 14)
    assert j.lease_left("A") == 10
    j.record_lease("A", day, 11, 20)  # next to it: fine
    j.record_lease("B", day, 1, 10)  # another sequence: fine


def test_a_block_of_another_day_is_never_used(tmp_path: Path) -> None:
    clock = WallClock(datetime(2026, 12, 2, 23, 58, tzinfo=UTC))
    j = Journal(tmp_path, kiosk_id="k1", clock=clock)
    j.record_lease("A", "2026-12-02", 1, 10)
    j.record_lease("A", "2026-12-03", 1, 10)  # asked for tomorrow (a clock ahead): unused
    assert take(j) == ("A-001", "shared")
    assert j.lease_left("A", "2026-12-03") == 10
    clock.advance(minutes=5)  # midnight: yesterday's 9 numbers left are never used
    assert j.today() == "2026-12-03"
    assert take(j) == ("A-001", "shared")  # today's block, numbered from today's 1
    assert j.lease_left("A", "2026-12-02") == 9
    clock.advance(days=1)
    assert take(j) == ("Ak1-001", "offline")  # no block for this day yet
    j.record_lease("A", "2026-12-03", 11, 20)  # a late answer for the day before
    assert take(j) == ("Ak1-002", "offline")


KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from kiosk.store import Journal
    j = Journal(Path(sys.argv[1]), kiosk_id="k1")
    j.recover()
    day, first = j.today(), int(sys.argv[2])
    j.record_lease("A", day, first, first + 9)
    for _ in range(int(sys.argv[3])):
        row = j.reserve(queue_id="q", queue_name="Q", prefix="A", fmt="{prefix}-{seq:03d}",
                        offline_fmt="{prefix}{kiosk}-{seq:03d}")
        print(row.ticket_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.slow
def test_kill_9_between_lease_and_use_never_reuses_a_number(tmp_path: Path) -> None:
    """Each run leases a block, takes some numbers (maybe more than the block: then
    offline ones) and dies by kill -9; the next run goes on from the journal. No number
    is ever handed out twice, and the blocks' numbers are used in order."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    seen: list[str] = []
    for run, (first, count) in enumerate([(1, 3), (11, 0), (21, 30), (31, 5)]):
        proc = subprocess.run([sys.executable, "-c", KILLER, str(tmp_path), str(first),
                               str(count)], capture_output=True, text=True, env=env,
                              timeout=60)
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        seen += proc.stdout.split()
        assert len(proc.stdout.split()) == count, run
    assert len(seen) == len(set(seen)) == 38
    j = Journal(tmp_path, kiosk_id="k1")
    shared = [t for t in seen if not t.startswith("Ak1")]
    # the numbers of a block killed before use stay in it (the block is on disk), and
    # the next run uses them first: 4-10 before 11-20, and so on
    assert shared[:6] == ["A-001", "A-002", "A-003", "A-004", "A-005", "A-006"]
    assert sorted(int(t[2:]) for t in shared) == list(range(1, 36))
    assert [t for t in seen if t.startswith("Ak1")] == ["Ak1-001", "Ak1-002", "Ak1-003"]
    assert {r.ticket_id for r in j.rows()} == set(seen)
