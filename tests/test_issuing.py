"""The issuing use case, outcome by outcome, against the mock API (in-process and over
loopback), with a real SQLite journal and real ESC/POS bytes in a file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from kiosk.config import Config
from kiosk.core.runtime import Runtime, open_runtime
from kiosk.mock import MockServer, MockState, ScriptedFault, create_app
from kiosk.printing import TicketPrinter
from kiosk.printing.model import TicketData
from kiosk.view.outcomes import Outcome

from .conftest import ATENCION, CREDITOS, CUENTAS, FAST_RETRY, KEY, SEGUROS, WallClock


class PaperOutChannel:
    """A printer that answers every DLE EOT n with 'paper out' and takes no data."""

    REPLIES: ClassVar[dict[int, int]] = {1: 0x1A, 2: 0x32, 4: 0x72}

    def __init__(self) -> None:
        self.pending: list[int] = []
        self.data = b""

    def write(self, data: bytes) -> None:
        if data.startswith(b"\x10\x04"):
            self.pending.append(self.REPLIES[data[2]])
        else:
            self.data += data

    def read(self, n: int, timeout: float) -> bytes:
        return bytes([self.pending.pop(0)]) if self.pending else b""

    def finish(self) -> None:
        pass

    def close(self) -> None:
        pass


class PaperOutBackend:
    name = "paper-out"
    can_query = True

    def __init__(self) -> None:
        self.channels: list[PaperOutChannel] = []

    def open(self, job: str) -> PaperOutChannel:
        self.channels.append(PaperOutChannel())
        return self.channels[-1]


@pytest.fixture
async def rt(config_factory: Callable[..., Config], state: MockState,
             utc_clock: WallClock) -> AsyncIterator[Runtime]:
    runtime = open_runtime(config_factory(), KEY,
                           transport=httpx.ASGITransport(app=create_app(state)),
                           retry=FAST_RETRY, clock=utc_clock)
    await runtime.monitor.poll_once()
    yield runtime
    await runtime.aclose()


def printed_bytes(cfg: Config) -> bytes:
    assert cfg.printer.path is not None
    return cfg.printer.path.read_bytes() if cfg.printer.path.exists() else b""


async def test_issued_and_printed(rt: Runtime, state: MockState) -> None:
    r = await rt.service.issue(ATENCION, language="es")
    assert r.outcome is Outcome.ISSUED
    assert r.ticket_id == "A-001"
    assert r.videsk_id == state.tickets[0].id
    assert state.tickets[0].ticket_id == "A-001"  # the number on paper is the one sent
    data = state.tickets[0].integration_data
    assert data["kiosk"] == "test-1" and data["lang"] == "es"
    assert r.printed is True
    paper = printed_bytes(rt.config)
    assert b"A-001" in paper and "Atención a clientes".encode("cp858") in paper
    row = rt.journal.find("A-001")
    assert row is not None and (row.outcome, row.printed, row.videsk_id) == (
        "issued", True, r.videsk_id)
    assert r.message == "Su número es A-001. Retire su ticket y espere a ser llamado."
    assert r.as_json() == {"outcome": "issued", "ticketId": "A-001",
                           "queue": {"id": ATENCION, "name": "Atención a clientes"},
                           "videskId": r.videsk_id, "printed": True, "message": r.message,
                           "priority": None, "qr": "https://example.com/t/A-001"}
    assert not r.qr_phone  # no hub: the QR is ticket.qr's, not the phone page


async def test_language_picks_name_override_and_message(rt: Runtime) -> None:
    r = await rt.service.issue(ATENCION, language="en")
    assert r.queue.name == "Customer care"
    assert r.message.startswith("Your number is A-001.")


async def test_no_agents_offers_only_queues_with_agents(rt: Runtime, state: MockState) -> None:
    r = await rt.service.issue(CREDITOS)
    assert r.outcome is Outcome.NO_AGENTS
    assert r.printed is None and printed_bytes(rt.config) == b""
    assert {q.id for q in r.alternatives} == {ATENCION, CUENTAS, SEGUROS}
    assert all(q.users > 0 for q in r.alternatives)
    state.set_agents(CUENTAS, 0)
    r2 = await rt.service.issue(CREDITOS)
    assert {q.id for q in r2.alternatives} == {ATENCION, SEGUROS}
    assert r2.ticket_id == "C-002"  # C-001 was spent on the first attempt
    assert [a["id"] for a in r2.as_json()["alternatives"]] == [ATENCION, SEGUROS]  # type: ignore[index]


async def test_form_required(rt: Runtime) -> None:
    r = await rt.service.issue(SEGUROS)
    assert r.outcome is Outcome.FORM_REQUIRED and r.printed is None
    assert "personal" in r.message


async def test_not_found(rt: Runtime) -> None:
    r = await rt.service.issue("000000000000000000000000")
    assert r.outcome is Outcome.NOT_FOUND
    assert rt.journal.find(r.ticket_id).outcome == "not_found"  # type: ignore[union-attr]


async def test_unauthorized(config_factory: Callable[..., Config], state: MockState) -> None:
    runtime = open_runtime(config_factory(), "mock.revoked.key",
                           transport=httpx.ASGITransport(app=create_app(state)), retry=FAST_RETRY)
    try:
        r = await runtime.service.issue(ATENCION)
    finally:
        await runtime.aclose()
    assert r.outcome is Outcome.UNAUTHORIZED
    assert "fuera de servicio" in r.message
    assert "revoked" not in r.message and "mock.revoked.key" not in r.detail


async def test_rejected_after_422_retries(rt: Runtime, state: MockState) -> None:
    state.push_faults(ScriptedFault(on="enqueue", answer=422, times=3))
    r = await rt.service.issue(ATENCION)
    assert r.outcome is Outcome.REJECTED
    assert state.tickets == []


async def test_422_once_is_retried_with_the_same_number(rt: Runtime, state: MockState) -> None:
    state.push_faults(ScriptedFault(on="enqueue", answer=422))
    r = await rt.service.issue(ATENCION)
    assert r.outcome is Outcome.ISSUED and r.ticket_id == "A-001"
    assert [t.ticket_id for t in state.tickets] == ["A-001"]


@pytest.mark.parametrize("answer", [503, "html", 429])
async def test_unavailable(rt: Runtime, state: MockState, answer: Any) -> None:
    state.push_faults(ScriptedFault(on="enqueue", answer=answer))
    r = await rt.service.issue(ATENCION)
    assert r.outcome is Outcome.UNAVAILABLE and not r.uncertain
    assert r.printed is None


async def test_201_with_unreadable_body_is_issued_and_printed(rt: Runtime,
                                                              state: MockState) -> None:
    state.push_faults(ScriptedFault(on="enqueue", answer="empty"))
    r = await rt.service.issue(ATENCION)
    assert r.outcome is Outcome.ISSUED and r.videsk_id is None and r.printed is True
    assert "provider fault" in rt.journal.find("A-001").detail  # type: ignore[union-attr]


async def test_dropped_after_sending_is_uncertain(config_factory: Callable[..., Config],
                                                  state: MockState) -> None:
    with MockServer(state) as srv:
        runtime = open_runtime(config_factory(api={"base_url": srv.url}), KEY, retry=FAST_RETRY)
        try:
            state.push_faults(ScriptedFault(on="enqueue", answer="drop"))
            r = await runtime.service.issue(ATENCION)
        finally:
            await runtime.aclose()
    assert r.outcome is Outcome.UNAVAILABLE and r.uncertain
    assert "A-001" in r.message and "personal" in r.message
    assert r.as_json()["uncertain"] is True
    assert runtime.journal.path.exists()


async def test_print_failure_keeps_the_ticket(config_factory: Callable[..., Config],
                                              state: MockState) -> None:
    cfg = config_factory()
    backend = PaperOutBackend()
    printer = TicketPrinter(cfg.printer, cfg.ticket, backend=backend)
    runtime = open_runtime(cfg, KEY, transport=httpx.ASGITransport(app=create_app(state)),
                           retry=FAST_RETRY, printer=printer)
    try:
        r = await runtime.service.issue(ATENCION)
        row = runtime.journal.find(r.ticket_id)
    finally:
        await runtime.aclose()
    assert r.outcome is Outcome.ISSUED and r.printed is False
    assert r.print_error == "PrinterNotReady: printer paper_out"
    assert backend.channels[0].data == b""  # nothing was sent to a printer without paper
    assert "No pudimos imprimirlo" in r.message
    assert row is not None and row.outcome == "issued" and not row.printed
    assert row.print_error == "PrinterNotReady: printer paper_out"
    assert printer.last_status.state.value == "paper_out"
    assert r.as_json()["printed"] is False


async def test_printing_runs_off_the_event_loop(config_factory: Callable[..., Config],
                                                state: MockState) -> None:
    import threading
    threads: list[str] = []

    class Spy:
        name = "spy"
        can_query = False

        def open(self, job: str) -> PaperOutChannel:
            threads.append(threading.current_thread().name)
            return PaperOutChannel()

    cfg = config_factory()
    runtime = open_runtime(cfg, KEY, transport=httpx.ASGITransport(app=create_app(state)),
                           printer=TicketPrinter(cfg.printer, cfg.ticket, backend=Spy()))
    try:
        await runtime.service.issue(ATENCION)
    finally:
        await runtime.aclose()
    assert threads and threads[0] != threading.main_thread().name


async def test_timeout_via_transport_is_uncertain(config_factory: Callable[..., Config]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            raise httpx.ReadTimeout("no answer")
        return httpx.Response(200, json=[])

    runtime = open_runtime(config_factory(), KEY, transport=httpx.MockTransport(handler))
    try:
        r = await runtime.service.issue(ATENCION)
        row = runtime.journal.find(r.ticket_id)
    finally:
        await runtime.aclose()
    assert r.outcome is Outcome.UNAVAILABLE and r.uncertain
    assert row is not None and row.outcome == "uncertain"


def test_ticket_data_is_plain() -> None:
    from datetime import UTC, datetime
    t = TicketData(ticket_id="A-1", queue_id="q", queue_name="Q",
                   issued_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert t.language == "es"


async def test_unknown_queue_still_gets_a_prefix(rt: Runtime, tmp_path: Path) -> None:
    r = await rt.service.issue("something-else")
    assert r.ticket_id.startswith("S-")


async def test_next_number_is_armed_after_the_answer(rt: Runtime) -> None:
    first = await rt.service.issue(ATENCION)
    await rt.service.settle()
    armed = rt.service._armed["A"]
    assert (first.ticket_id, armed.ticket_id, armed.outcome) == ("A-001", "A-002", "armed")
    second = await rt.service.issue(ATENCION)
    assert second.ticket_id == "A-002" and second.outcome is Outcome.ISSUED
    assert rt.journal.find("A-002").queue_id == ATENCION  # type: ignore[union-attr]


async def test_an_armed_number_from_yesterday_is_not_used(rt: Runtime,
                                                          utc_clock: WallClock) -> None:
    await rt.service.issue(ATENCION)
    await rt.service.settle()
    utc_clock.advance(days=1)
    r = await rt.service.issue(ATENCION)
    assert r.ticket_id == "A-001" and r.outcome is Outcome.ISSUED  # a new day, a new count
    yesterday = rt.journal.find("A-002", day="2026-11-27")
    assert yesterday is not None and yesterday.outcome == "void"


async def test_closing_gives_back_armed_numbers(rt: Runtime) -> None:
    await rt.service.issue(ATENCION)
    await rt.service.aclose()
    assert rt.journal.find("A-002").outcome == "void"  # type: ignore[union-attr]
