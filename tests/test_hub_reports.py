"""The tickets' reports to the hub (docs/hub.md "The branch's day"), against the real
relay in its own process: the outbox written with the outcome, delivered at least once
(hub down then up: all delivered; a repeat harmless; kill -9 of the device: drained at
its next start), a report the hub refuses for good set aside; ``kiosk tickets --branch``
prints the hub's ledger."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from kiosk.config import Config
from kiosk.core import admin
from kiosk.core.runtime import Runtime
from kiosk.core.status import snapshot
from kiosk.hub.client import HubClient
from kiosk.hub.outbox import ReportSender
from kiosk.mock import MockState
from kiosk.relay.server import RelayProcess, free_port, relay_process
from kiosk.store import Journal

from .conftest import ATENCION, BRANCH
from .test_hub_numbers import FAST, LOBBY, device, hub_config, until

pytestmark = pytest.mark.slow


class Hub:
    """``kiosk relay`` as the branch's hub, in its own process, on one port: stopped
    (kill -9) and started again there."""

    def __init__(self, folder: Path) -> None:
        self.config = hub_config(folder)
        self.port = free_port()
        self._cm: object = None
        self.proc: RelayProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cm = relay_process(self.config, self.port)
        self.proc = cm.__enter__()
        self._cm = cm

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self._cm.__exit__(None, None, None)  # type: ignore[attr-defined]
            self.proc = None


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(tmp_path / "relay")
    h.start()
    yield h
    h.kill()


async def ledger(url: str, token: str = LOBBY) -> list[dict[str, object]]:
    client = HubClient(url, BRANCH, "test-1", SecretStr(token))
    try:
        return list((await client.tickets())["tickets"])
    finally:
        await client.aclose()


async def test_hub_down_then_up_every_report_is_delivered(
        hub: Hub, config_factory: Callable[..., Config], state: MockState,
        devices: list[Runtime]) -> None:
    state.set_agents(ATENCION, 100)  # every ticket issued (reported), none refused 406
    rt = await device(config_factory, state, hub.url, "test-1", LOBBY, block=2)
    devices.append(rt)
    await until(lambda: rt.journal.lease_left("A") == 2)
    first = await rt.service.issue(ATENCION, language="en", print_ticket=False)
    await until(lambda: rt.journal.outbox_size() == 0)
    # at half a block left the keeper leases the next one (3-4): wait for it, so what
    # is on the device's disk when the hub dies is known (CI once killed it in between;
    # the keeper woken while still leasing B-D lost the wake-up: the block came a period, 30 s, on)
    await rt.service.settle()  # A-002 armed for the next tap
    await until(lambda: rt.journal.lease_left("A") == 2)
    await asyncio.to_thread(hub.kill)
    issued = [first.ticket_id] + [
        (await rt.service.issue(q, language="es", print_ticket=False)).ticket_id
        for q in (ATENCION, ATENCION, ATENCION, ATENCION)]
    assert issued == ["A-001", "A-002", "A-003", "A-004", "Atest-1-001"]
    await until(lambda: rt.reports is not None and rt.reports.failures > 0)
    assert rt.journal.outbox_size() == 4
    snap = snapshot(rt)
    assert snap["reports"]["waiting"] == 4 and snap["reports"]["hub_error"]
    assert "Reports to the hub: 4 waiting" in admin.summary(rt, await admin.printer_status(rt))
    await asyncio.to_thread(hub.start)  # back, on its port
    await until(lambda: rt.journal.outbox_size() == 0, timeout=20)
    got = await ledger(hub.url)
    assert sorted(t["ticketId"] for t in got) == sorted(issued)  # type: ignore[type-var]
    a1 = next(t for t in got if t["ticketId"] == "A-001")
    assert a1["device"] == "test-1" and a1["outcome"] == "issued" and a1["lang"] == "en"
    assert a1["queue"] == {"id": ATENCION, "name": "Atención a clientes"}
    assert a1["priority"] is None and a1["call"] is None
    assert str(a1["issuedAt"]).endswith(("-03:00", "-04:00"))  # the branch's local time
    # milliseconds: tickets of one second keep their order (not the numbers' alphabet)
    assert all(re.search(r"T\d\d:\d\d:\d\d\.\d{3}[+-]", str(t["issuedAt"])) for t in got)
    assert [t["ticketId"] for t in got] == issued
    assert snapshot(rt)["reports"] == {"waiting": 0, "refused": 0, "hub_error": None}


async def test_a_repeated_delivery_is_harmless(
        hub: Hub, config_factory: Callable[..., Config], state: MockState,
        devices: list[Runtime]) -> None:
    """A crash after the hub took a report and before the outbox forgot it: sent again,
    the hub knows it (200), the ledger lists it once."""
    rt = await device(config_factory, state, hub.url, "test-1", LOBBY)
    devices.append(rt)
    await until(lambda: rt.journal.lease_left("A") > 0)
    r = await rt.service.issue(ATENCION, language="es", print_ticket=False)
    await until(lambda: rt.journal.outbox_size() == 0)
    assert rt.reports is not None and rt.reports.sent == 1
    [sent] = await ledger(hub.url)  # the report back, as a crash would leave it
    db = sqlite3.connect(rt.journal.path)
    db.execute("INSERT INTO outbox (day, ticket_id, payload, created_at) VALUES "
               "(?, ?, ?, '')", (r.issued_at.date().isoformat() if r.issued_at else "",
                                 r.ticket_id, json.dumps(_payload(sent))))
    db.commit()
    db.close()
    rt.reports.notify()
    await until(lambda: rt.journal.outbox_size() == 0)
    assert rt.reports.sent == 2 and rt.reports.refused == 0
    assert [t["ticketId"] for t in await ledger(hub.url)] == [r.ticket_id]


def _payload(listed: dict[str, object]) -> dict[str, object]:
    """The report the hub lists, as the device sent it."""
    return {key: listed[key] for key in ("ticketId", "queue", "lang", "issuedAt", "outcome",
                                         "device", "priority")} | {"phone": None}


async def test_a_report_refused_for_good_never_holds_up_the_rest(
        hub: Hub, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "d", kiosk_id="test-1", timezone="America/Santiago")
    good = {"ticketId": "Z-001", "queue": {"id": ATENCION, "name": "Caja"}, "lang": "es",
            "issuedAt": journal._clock().isoformat(), "outcome": "issued",
            "device": "test-1", "priority": None, "phone": None}
    for report in ({**good, "ticketId": "Z-000", "lang": "spanish"},  # 400: lang
                   {**good, "device": "greeter"},                     # 403: not this device
                   good):
        row = journal.reserve(queue_id="q", queue_name="Q", prefix="Z", fmt="Z-{seq:03d}")
        journal.finish(row.row_id, "issued", report=report)
    client = HubClient(hub.url, BRANCH, "test-1", SecretStr(LOBBY))
    sender = ReportSender(journal, client, retry=FAST)
    with pytest.raises(Exception, match="403"):  # a config staff can fix: kept, retried
        await sender.drain()
    assert sender.refused == 1 and journal.outbox_size(refused=True) == 1
    assert journal.outbox_size() == 2
    db = sqlite3.connect(journal.path)
    error = db.execute("SELECT last_error FROM outbox WHERE refused = 1").fetchone()[0]
    db.execute("DELETE FROM outbox WHERE payload LIKE '%greeter%'")  # staff fixed it
    db.commit()
    db.close()
    assert "400" in error and "lang" in error
    assert await sender.drain() == 1
    assert [t["ticketId"] for t in await ledger(hub.url)] == ["Z-001"]
    await client.aclose()
    journal.close()


async def test_a_report_over_the_devices_budget_waits_in_the_outbox(tmp_path: Path) -> None:
    """The hub answers 429 to a device over ``relay.max_reports_per_hour``: the outbox
    keeps the report and sends it again later (never set aside as refused for good)."""
    h = Hub(tmp_path / "relay")
    config = yaml.safe_load(h.config.read_text(encoding="utf-8"))
    config["relay"]["max_reports_per_hour"] = 100
    h.config.write_text(yaml.safe_dump(config), encoding="utf-8")
    await asyncio.to_thread(h.start)
    journal = Journal(tmp_path / "d", kiosk_id="test-1", timezone="America/Santiago")
    client = HubClient(h.url, BRANCH, "test-1", SecretStr(LOBBY))
    try:
        for _ in range(101):
            row = journal.reserve(queue_id="q", queue_name="Q", prefix="Z", fmt="Z-{seq:03d}")
            journal.finish(row.row_id, "issued", report={
                "ticketId": row.ticket_id, "queue": {"id": ATENCION, "name": "Caja"},
                "lang": "es", "issuedAt": journal._clock().isoformat(), "outcome": "issued",
                "device": "test-1", "priority": None, "phone": None})
        sender = ReportSender(journal, client, retry=FAST)
        with pytest.raises(Exception, match="429"):
            await sender.drain()
        assert (sender.sent, sender.refused) == (100, 0)
        assert journal.outbox_size() == 1 and journal.outbox_size(refused=True) == 0
        assert len(await ledger(h.url)) == 100
    finally:
        await client.aclose()
        journal.close()
        await asyncio.to_thread(h.kill)


KILLED = textwrap.dedent("""
    import os, signal, sys
    from datetime import UTC, datetime
    from pathlib import Path
    from kiosk.store import Journal
    j = Journal(Path(sys.argv[1]), kiosk_id="test-1", timezone="America/Santiago")
    j.recover()
    for n in range(3):
        row = j.reserve(queue_id="q", queue_name="Caja", prefix="K", fmt="K-{seq:03d}")
        at = datetime.now(UTC).astimezone(j.tz).isoformat(timespec="seconds")
        j.finish(row.row_id, "uncertain" if n == 2 else "issued", report={
            "ticketId": row.ticket_id, "queue": {"id": "q", "name": "Caja"}, "lang": "es",
            "issuedAt": at, "outcome": "uncertain" if n == 2 else "issued",
            "device": "test-1", "priority": None, "phone": None})
    os.kill(os.getpid(), signal.SIGKILL)  # before any report could leave
""")


async def test_reports_survive_a_kill_9_and_are_drained_at_the_next_start(
        hub: Hub, tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", KILLED, str(tmp_path / "d")],
        capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    journal = Journal(tmp_path / "d", kiosk_id="test-1", timezone="America/Santiago")
    journal.recover()
    assert journal.outbox_size() == 3
    client = HubClient(hub.url, BRANCH, "test-1", SecretStr(LOBBY))
    sender = ReportSender(journal, client, retry=FAST)
    sender.start()  # at start-up, before any new ticket
    await until(lambda: journal.outbox_size() == 0)
    got = {t["ticketId"]: t["outcome"] for t in await ledger(hub.url)}
    assert got == {"K-001": "issued", "K-002": "issued", "K-003": "uncertain"}
    await sender.aclose()
    await client.aclose()
    journal.close()


def test_kiosk_tickets_branch_prints_the_hubs_ledger(hub: Hub, tmp_path: Path) -> None:
    token = tmp_path / "device-token"
    token.write_text(LOBBY + "\n")
    token.chmod(0o600)
    config = tmp_path / "kiosk.yaml"
    config.write_text(yaml.safe_dump({
        "branch": BRANCH, "kiosk": {"id": "test-1", "data_dir": str(tmp_path / "d"),
                                    "timezone": "America/Santiago"},
        "hub": {"url": hub.url, "token_file": str(token)}}), encoding="utf-8")
    client = HubClient(hub.url, BRANCH, "test-1", SecretStr(LOBBY))

    async def report() -> None:
        from datetime import UTC, datetime
        from zoneinfo import ZoneInfo
        now = datetime.now(UTC).astimezone(ZoneInfo("America/Santiago"))
        for n, priority in ((1, None), (2, "senior")):
            await client.report({
                "ticketId": f"A-00{n}", "queue": {"id": ATENCION, "name": "Caja"},
                "lang": "es", "issuedAt": now.isoformat(timespec="seconds"),
                "outcome": "issued", "device": "test-1", "priority": priority,
                "phone": None})
        await client.aclose()
    asyncio.run(report())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIDESK_", "KIOSK_"))}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    run = [sys.executable, "-m", "kiosk", "--config", str(config), "tickets", "--branch"]
    out = subprocess.run([*run, "--json"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["branch"] == BRANCH
    assert [(t["ticketId"], t["priority"]) for t in data["tickets"]] == [
        ("A-001", None), ("A-002", "senior")]
    out = subprocess.run(run, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"Branch {BRANCH}, ") and lines[-1] == "2 ticket(s), 0 called"
    assert "A-002" in lines[3] and "test-1" in lines[3] and "senior" in lines[3]
    assert LOBBY not in out.stdout + out.stderr
    token.chmod(0o644)  # a token file others may read: refused, the token never shown
    out = subprocess.run(run, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2 and "hub.token_file" in out.stderr
    assert LOBBY not in out.stdout + out.stderr
    hub.kill()
    token.chmod(0o600)
    out = subprocess.run(run, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 1 and f"hub: ledger: no answer from {hub.url}" in out.stderr


def test_kiosk_tickets_branch_marks_a_number_two_devices_reported() -> None:
    from kiosk.tickets.ledger import branch_table
    entry = {"queue": {"id": ATENCION, "name": "Caja"}, "lang": "es", "outcome": "issued",
             "issuedAt": "2026-12-04T09:00:00-03:00", "priority": None, "call": None}
    lines = branch_table({"branch": BRANCH, "date": "2026-12-04", "tickets": [
        dict(entry, ticketId="A-001", device="lobby-1", conflict=False),
        dict(entry, ticketId="A-002", device="lobby-1", conflict=True),
        dict(entry, ticketId="A-002", device="greeter", conflict=True)]}, "America/Santiago")
    rows = [line for line in lines if line.startswith("09:00")]
    assert [row.split()[1] for row in rows] == ["A-001", "A-002!", "A-002!"]
    assert lines[-2:] == ["3 ticket(s), 0 called", "! 1 number(s) reported by more than one "
                          "device: a fault (the relay's log names the devices)"]
