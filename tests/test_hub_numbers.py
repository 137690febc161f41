"""Numbers leased ahead from the hub (docs/hub.md "Numbers"): the journal's blocks (real
SQLite files, a real kill -9), and the device's numbering against the real relay on
loopback: hub down -> the offline format and staff told, hub back -> shared, a day
change, two devices of one branch sharing a sequence."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import SecretStr

from kiosk.config import Config
from kiosk.core import admin
from kiosk.core.runtime import Runtime, open_runtime
from kiosk.core.status import snapshot
from kiosk.errors import ClockBehind, HubDayMismatch, StoreError
from kiosk.hub.client import HubClient, RetryWait
from kiosk.mock import MockState, create_app
from kiosk.relay import RelayServer
from kiosk.relay.devices import Device
from kiosk.relay.server import free_port, relay_process
from kiosk.store import Journal

from .conftest import ATENCION, BRANCH, FAST_RETRY, KEY, WallClock
from .relay_helpers import SECRET, write_private
from .relay_helpers import settings as relay_settings

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


# --------------------------------------------------------------------------- with the relay


LOBBY = "device-token-test-1-0123456789abcdef"
GREETER = "device-token-greeter-0123456789abcd"
FAST = RetryWait(initial_s=0.05, max_s=0.2, jitter=0.0)


def hub_relay(tmp_path: Path) -> RelayServer:
    """The real relay as the branch's hub, its devices a kiosk and a tablet."""
    return RelayServer(relay_settings(
        tmp_path, devices={LOBBY: Device("test-1", BRANCH, "kiosk"),
                           GREETER: Device("greeter", BRANCH, "tablet")},
        zones={BRANCH: "America/Santiago"})).start()


def hub_config(tmp_path: Path) -> Path:
    """``relay.yaml`` for the same hub as :func:`hub_relay`, for ``kiosk relay`` in a
    process of its own (to kill -9 and start again)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    secret = write_private(tmp_path / "webhook-secret", SECRET.decode() + "\n")
    devices = []
    for device_id, role, token in (("test-1", "kiosk", LOBBY), ("greeter", "tablet", GREETER)):
        path = write_private(tmp_path / f"device-{device_id}", token + "\n")
        devices.append({"id": device_id, "branch": BRANCH, "role": role,
                        "token_file": str(path)})
    config = tmp_path / "relay.yaml"
    config.write_text(yaml.safe_dump({"kiosk": {"data_dir": str(tmp_path / "data")}, "relay": {
        "webhook_secret_file": str(secret), "devices": devices,
        "branches": [{"id": BRANCH, "timezone": "America/Santiago"}]}}), encoding="utf-8")
    return config


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayServer]:
    srv = hub_relay(tmp_path / "relay")
    yield srv
    srv.stop()


async def device(config_factory: Callable[..., Config], state: MockState, url: str,
                 kiosk_id: str, token: str, block: int = 10, **kw: Any) -> Runtime:
    """One device's core: its own data folder, the mock API in-process, the hub at ``url``."""
    cfg = config_factory(kiosk__id=kiosk_id, hub={"url": url, "token_file": "/unused"},
                         numbering={"block": block}, **kw)
    cfg = cfg.model_copy(update={"kiosk": cfg.kiosk.model_copy(
        update={"data_dir": cfg.kiosk.data_dir / kiosk_id})})
    hub = HubClient.from_config(cfg, SecretStr(token))
    rt = open_runtime(cfg, KEY, transport=httpx.ASGITransport(app=create_app(state)),
                      retry=FAST_RETRY, hub=hub)
    assert rt.leases is not None and rt.reports is not None
    rt.leases.retry = rt.reports.retry = FAST
    await rt.monitor.poll_once()
    rt.start_hub()
    return rt


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


async def test_two_devices_of_a_branch_share_one_sequence(
        config_factory: Callable[..., Config], state: MockState, relay: RelayServer,
        devices: list[Runtime]) -> None:
    lobby = await device(config_factory, state, relay.url, "test-1", LOBBY)
    devices.append(lobby)
    await until(lambda: lobby.journal.lease_left("A") == 10)
    greeter = await device(config_factory, state, relay.url, "greeter", GREETER)
    devices.append(greeter)
    await until(lambda: greeter.journal.lease_left("A") == 10)
    got = []
    for _ in range(8):
        for rt in (lobby, greeter):
            r = await rt.service.issue(ATENCION, language="es", print_ticket=False)
            got.append(r.ticket_id)
    assert len(set(got)) == 16 and all(t.startswith("A-0") for t in got)
    assert got[:4] == ["A-001", "A-011", "A-002", "A-012"]  # one block each, 10 apart
    # at half a block each asked for the next (21-30, 31-40); each has 8 used and its
    # next one armed (taken ahead of the tap): 1 + 10 left each
    await until(lambda: lobby.journal.lease_left("A") + greeter.journal.lease_left("A") == 22)
    assert sorted(lobby.journal.lease_left("A", d) for d in [lobby.journal.today()]) == [11]
    assert {r.numbering for rt in devices for r in rt.journal.rows()} == {"shared"}
    assert lobby.numbers() == "shared" and snapshot(lobby)["numbers"]["state"] == "shared"
    # what the hub handed out went to one device each: 4 blocks of A, never one twice
    assert lobby.leases is not None and greeter.leases is not None
    assert lobby.leases.error == "" and greeter.leases.error == ""


async def check_lines(rt: Runtime, monkeypatch: pytest.MonkeyPatch
                      ) -> set[tuple[bool, str, str]]:
    """What `kiosk check` says beside this running core (its status file written now)."""
    from kiosk.core.diagnostics import check
    from kiosk.core.status import STATUS_FILE, write
    write(rt.config.kiosk.data_dir / STATUS_FILE, snapshot(rt))
    monkeypatch.setenv("VIDESK_API_KEY", KEY)
    lines: set[tuple[bool, str, str]] = set()
    await check(rt.config, "kiosk.yaml", lambda ok, what, detail: lines.add((ok, what, detail)))
    return lines


@pytest.mark.slow
async def test_hub_down_numbers_offline_and_staff_see_it_then_shared_again(
        tmp_path: Path, config_factory: Callable[..., Config], state: MockState,
        devices: list[Runtime], monkeypatch: pytest.MonkeyPatch) -> None:
    config, port = hub_config(tmp_path / "relay"), free_port()
    hub = relay_process(config, port)
    proc = await asyncio.to_thread(hub.__enter__)
    rt = await device(config_factory, state, proc.url, "test-1", LOBBY, block=2)
    devices.append(rt)
    await until(lambda: rt.journal.lease_left("A") == 2)
    await asyncio.to_thread(proc.kill)  # kill -9, one block of A on the device's disk
    hub.__exit__(None, None, None)
    got = [(await rt.service.issue(ATENCION, language="es", print_ticket=False)).ticket_id
           for _ in range(4)]
    assert got == ["A-001", "A-002", "Atest-1-001", "Atest-1-002"]
    assert rt.numbers() == "offline"
    assert "numbers offline" in rt.faults()["numbers"]
    assert "Atest-1-" in rt.faults()["numbers"] and LOBBY not in rt.faults()["numbers"]
    snap = snapshot(rt)
    assert snap["numbers"]["state"] == "offline" and snap["numbers"]["hub_error"]
    assert "numbers" in snap["faults"]
    text = admin.summary(rt, await admin.printer_status(rt))
    assert "Numbers: OFFLINE" in text and "NUMBERS FAULT" in text
    assert await check_lines(rt, monkeypatch) >= {
        (False, "numbers", "the running kiosk says: " + rt.faults()["numbers"])}
    hub = relay_process(config, port)  # back, its counter on its disk
    await asyncio.to_thread(hub.__enter__)
    try:
        await until(lambda: rt.numbers() == "shared")
        await rt.service.settle()
        got = [(await rt.service.issue(ATENCION, language="es", print_ticket=False)
                ).ticket_id for _ in range(2)]
        assert got[0] == "A-003" and got[1] in ("A-004", "A-005")  # after the hub's last
        assert "numbers" not in snapshot(rt)["faults"]
        assert "Numbers: shared through the hub" in admin.summary(
            rt, await admin.printer_status(rt))
        assert (True, "numbers", "shared (the running kiosk)") in await check_lines(
            rt, monkeypatch)
    finally:
        await asyncio.to_thread(hub.__exit__, None, None, None)


async def test_a_tap_never_waits_for_a_hub_that_hangs(
        config_factory: Callable[..., Config], state: MockState,
        devices: list[Runtime]) -> None:
    """The hub accepts the connection and never answers: the keeper's lease hangs, the
    taps go on (offline numbers) as fast as without a hub."""
    hung: list[asyncio.StreamWriter] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung.append(writer)
        await reader.read(1 << 16)
        await asyncio.sleep(3600)

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    rt = await device(config_factory, state, url, "test-1", LOBBY)
    devices.append(rt)
    await until(lambda: bool(hung))  # the lease is on its way, and stays there
    async with asyncio.timeout(3):  # the hub client's own limit is 10 s
        got = [(await rt.service.issue(ATENCION, language="es", print_ticket=False)
                ).ticket_id for _ in range(3)]
    assert got == ["Atest-1-001", "Atest-1-002", "Atest-1-003"]
    server.close()
    for w in hung:
        w.close()


async def test_a_tap_while_the_keeper_leases_other_sequences_is_not_lost(
        tmp_path: Path, relay: RelayServer) -> None:
    """Half of A's block used while the keeper is still leasing B's: the wake-up of that
    tap starts the next round at once, not a period (30 s) later (CI found the round's end
    clearing it: the device numbered on its own for a while with the hub up)."""
    from kiosk.hub.leases import LeaseKeeper
    journal = Journal(tmp_path / "d", kiosk_id="test-1", timezone="America/Santiago")
    client = HubClient(relay.url, BRANCH, "test-1", SecretStr(LOBBY))
    keeper: LeaseKeeper

    def tap_during_the_round(sequence: str) -> None:
        if sequence == "A" and keeper.leases == 1:  # B's block still to come this round
            assert take(journal) == ("A-001", "shared")
            keeper.used("A")

    keeper = LeaseKeeper(journal, client, 2, lambda: ["A", "B"], retry=FAST,
                         on_lease=tap_during_the_round)
    keeper.start()
    try:
        await until(lambda: keeper.leases == 3, timeout=5)  # A, B, then A's next block
        assert journal.lease_left("A") == 3
    finally:
        await keeper.aclose()
        await client.aclose()
        journal.close()


async def test_a_kiosk_with_many_queues_and_big_blocks_gets_all_its_blocks_at_start(
        tmp_path: Path, relay: RelayServer) -> None:
    """Three queues with priority tickets (six sequences) and ``numbering.block: 600``:
    3,600 numbers at start, over the hub's default budget of 3,000 a device. A device's
    first block of each sequence that day is not charged, so every sequence gets its
    block (a reviewer found priority:C numbered offline, 429, for twelve minutes)."""
    from kiosk.hub.leases import LeaseKeeper
    journal = Journal(tmp_path / "d", kiosk_id="test-1", timezone="America/Santiago")
    client = HubClient(relay.url, BRANCH, "test-1", SecretStr(LOBBY))
    sequences = ["A", "B", "C", "priority:A", "priority:B", "priority:C"]
    keeper = LeaseKeeper(journal, client, 600, lambda: sequences, retry=FAST)
    try:
        assert await keeper.top_up() == 6
        assert {s: journal.lease_left(s) for s in sequences} == dict.fromkeys(sequences, 600)
        assert take(journal, "C", "senior")[1] == "shared"  # from priority:C's block
        assert journal.lease_left("priority:C") == 599
    finally:
        await client.aclose()
        journal.close()

async def test_a_device_on_another_day_than_the_hub_gets_no_block(
        tmp_path: Path, relay: RelayServer) -> None:
    """The device's clock a day ahead of the hub's: the hub answers 409 with its day and
    the keeper records nothing (a block always belongs to one day). Its clock set right:
    the block of its day. A number once taken on a later day still stops the device
    behind it (the journal's clock rule), hub or not."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from kiosk.hub.leases import LeaseKeeper
    now = datetime.now(UTC)
    clock = WallClock(now + timedelta(days=1))
    journal = Journal(tmp_path / "d", kiosk_id="test-1", timezone="America/Santiago",
                      clock=clock)
    client = HubClient(relay.url, BRANCH, "test-1", SecretStr(LOBBY))
    keeper = LeaseKeeper(journal, client, 10, lambda: ["A"], retry=FAST)
    with pytest.raises(HubDayMismatch) as info:
        await keeper.top_up()
    hub_day = now.astimezone(ZoneInfo("America/Santiago")).date().isoformat()
    assert info.value.day == hub_day and info.value.asked == journal.today() != hub_day
    assert journal.lease_left("A") == 0 and keeper.leases == 0
    clock.now = now  # set right
    assert await keeper.top_up() == 1
    assert take(journal) == ("A-001", "shared") and journal.today() == hub_day
    # the hardening issue's clock rule still holds: numbered on a day, never back behind it
    clock.now = now + timedelta(days=1)
    assert take(journal) == ("Atest-1-001", "offline")  # no block of that day: its own
    clock.now = now
    with pytest.raises(ClockBehind):
        take(journal)
    await client.aclose()
    journal.close()
