"""Printing to a real ESC/POS printer emulator (emupos) over loopback TCP."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import zxingcpp
from PIL import Image

from kiosk.config import Config, PrinterConfig, TicketConfig
from kiosk.core.runtime import open_runtime
from kiosk.errors import PrinterNotReady, PrintFailed
from kiosk.mock import MockState, create_app
from kiosk.printing import State, TicketPrinter
from kiosk.view.outcomes import Outcome

from .conftest import ATENCION, FAST_RETRY, KEY
from .emulator import Emulator
from .test_printing import DATA, SPECIAL, TICKET

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with Emulator(tmp_path_factory.mktemp("emupos")) as e:
        yield e


@pytest.fixture(autouse=True)
def _clean(emu: Emulator) -> None:
    emu.clear_faults()


def net_printer(emu: Emulator, port: int | None = None, paper_mm: int = 80,
                ticket: TicketConfig = TICKET) -> TicketPrinter:
    cfg = PrinterConfig(type="network", host="127.0.0.1", port=port or emu.port,
                        profile="TM-T20II", paper_mm=paper_mm, timeout_s=2)  # type: ignore[arg-type]
    return TicketPrinter(cfg, ticket, timezone="America/Santiago")


def decode_qr(png: bytes) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


@pytest.mark.parametrize("paper_mm", [80, 58])
def test_ticket_comes_out_right(emu: Emulator, paper_mm: int) -> None:
    before = len(emu.receipts())
    p = net_printer(emu, paper_mm=paper_mm)
    p.print_ticket(p.sample_layout("es"))
    receipts = emu.wait_receipts(before + 1)
    assert receipts[0]["boundary"] == "cut"
    text = emu.text()
    lines = text.splitlines()
    assert "A-042" in lines
    assert "Atención a clientes" in lines
    assert "Su número" in lines and "Espera estimada: ~4 min" in lines
    assert SPECIAL in text.replace("\n", " ") or all(ch in text for ch in SPECIAL.split())
    assert decode_qr(emu.png()) == ["https://example.com/t/A-042"]
    assert p.last_status.state is State.READY


def test_ticket_is_at_most_90_mm_before_the_cut(emu: Emulator) -> None:
    before = len(emu.receipts())
    net_printer(emu).print_ticket(DATA)
    height = emu.wait_receipts(before + 1)[0]["height_dots"]
    assert isinstance(height, int) and height / 8 <= 90


def test_preview_is_as_long_as_the_paper(emu: Emulator) -> None:
    before = len(emu.receipts())
    p = net_printer(emu)
    p.print_ticket(DATA)
    paper = emu.wait_receipts(before + 1)[0]["height_dots"]
    assert isinstance(paper, int)
    assert abs(p.preview(DATA).height - paper) <= 0.1 * paper


@pytest.mark.parametrize(("fault", "state"), [
    ("paper-out", State.PAPER_OUT),
    ("cover-open", State.COVER_OPEN),
    ("offline", State.OFFLINE),
])
def test_faults_stop_the_job_before_anything_is_sent(emu: Emulator, fault: str,
                                                     state: State) -> None:
    before = len(emu.receipts())
    emu.fault(fault)
    p = net_printer(emu)
    assert p.status().state is state
    with pytest.raises(PrinterNotReady, match=state.value):
        p.print_ticket(DATA)
    emu.fault(fault, active=False)
    assert p.status().state is State.READY
    assert len(emu.receipts()) == before  # nothing was held back to print later


def test_paper_near_end_still_prints(emu: Emulator) -> None:
    before = len(emu.receipts())
    emu.fault("paper-near-end")
    p = net_printer(emu)
    p.print_ticket(DATA)
    assert p.last_status.state is State.PAPER_NEAR_END
    emu.wait_receipts(before + 1)


class CuttingProxy:
    """Forwards to the emulator, answers status like it, then cuts the line mid-ticket."""

    def __init__(self, target: int, cut_after: int) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.target, self.cut_after = target, cut_after
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        client, _ = self.sock.accept()
        upstream = socket.create_connection(("127.0.0.1", self.target))
        upstream.settimeout(2)
        sent = 0
        while sent < self.cut_after:
            data = client.recv(min(4096, self.cut_after - sent))
            if not data:
                break
            upstream.sendall(data)
            sent += len(data)
            if data.startswith(b"\x10\x04"):
                client.sendall(upstream.recv(1))
        client.close()
        upstream.close()
        self.sock.close()


def test_connection_killed_mid_job_is_reported_as_failed(emu: Emulator) -> None:
    p = net_printer(emu)
    payload_len = len(p.render(DATA))
    proxy = CuttingProxy(emu.port, cut_after=9 + payload_len // 2)  # 3 status queries + half
    p_cut = net_printer(emu, port=proxy.port)
    with pytest.raises(PrintFailed):
        p_cut.print_ticket(DATA)


@pytest.fixture
def rt_with_emulator(config_factory: Callable[..., Config], state: MockState,
                     emu: Emulator) -> Iterator[object]:
    cfg = config_factory(printer={"type": "network", "host": "127.0.0.1", "port": emu.port,
                                  "profile": "TM-T20II", "timeout_s": 2})
    rt = open_runtime(cfg, KEY, transport=httpx.ASGITransport(app=create_app(state)),
                      retry=FAST_RETRY)
    yield rt


async def test_out_of_paper_the_customer_still_gets_a_ticket_and_staff_can_reprint(
        rt_with_emulator: object, emu: Emulator) -> None:
    from kiosk.core.runtime import Runtime
    rt = rt_with_emulator
    assert isinstance(rt, Runtime)
    try:
        await rt.monitor.poll_once()
        before = len(emu.receipts())
        emu.fault("paper-out")
        r = await rt.service.issue(ATENCION, language="es")
        assert r.outcome is Outcome.ISSUED and r.printed is False
        assert "anótelo" in r.message
        row = rt.journal.find(r.ticket_id)
        assert row is not None and row.outcome == "issued" and not row.printed
        assert rt.journal.counts()["unprinted"] == 1
        assert rt.printer.last_status.state is State.PAPER_OUT  # staff see it
        emu.fault("paper-out", active=False)
        printed, error = await rt.service.reprint(r.ticket_id)
        assert printed, error
        emu.wait_receipts(before + 1)
        assert r.ticket_id in emu.text().splitlines()
        assert rt.journal.find(r.ticket_id).printed  # type: ignore[union-attr]
    finally:
        await rt.aclose()


def test_print_test_command_prints_to_the_emulator(emu: Emulator, tmp_path: Path,
                                                   cli_env: dict[str, str]) -> None:
    import subprocess
    import sys
    cfg = tmp_path / "k.yaml"
    cfg.write_text(f"branch: b\nkiosk: {{id: k, data_dir: {tmp_path}}}\n"
                   f"printer: {{type: network, host: 127.0.0.1, port: {emu.port}, "
                   "profile: TM-T20II}\nticket: {qr: 'https://example.com/t/{ticketId}'}\n")
    before = len(emu.receipts())
    p = subprocess.run([sys.executable, "-m", "kiosk", "--config", str(cfg), "print-test"],
                       capture_output=True, text=True, env=cli_env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("printer network: ready")
    emu.wait_receipts(before + 1)
    assert "A-042" in emu.text().splitlines()
    emu.fault("cover-open")
    p = subprocess.run([sys.executable, "-m", "kiosk", "--config", str(cfg), "print-test"],
                       capture_output=True, text=True, env=cli_env, timeout=60)
    assert p.returncode == 1 and "cover_open" in p.stdout + p.stderr


# ----------------------------------------------------------------------- the state (issue 19)


@pytest.mark.parametrize(("fault", "word", "reason"), [
    (None, "ok", None),
    ("paper-near-end", "paper_low", None),  # a warning: never a reason to stop issuing
    ("paper-out", "paper_out", "printer"),
    ("cover-open", "cover_open", "printer"),
    ("offline", "offline", "printer"),
])
async def test_the_state_reads_the_paper_sensor_on_every_heartbeat(
        rt_with_emulator: object, emu: Emulator, fault: str | None, word: str,
        reason: str | None) -> None:
    """Each heartbeat asks the printer (DLE EOT 1, 2, 4) before it is composed; with the
    paper near its end the kiosk still issues and prints, and says paper low."""
    from kiosk.core.runtime import Runtime
    from kiosk.core.state import asked, compose
    rt = rt_with_emulator
    assert isinstance(rt, Runtime)
    try:
        await rt.monitor.poll_once()
        if fault:
            emu.fault(fault)
        assert compose(rt).printer == "unknown"  # not asked yet: never "ok"
        s = await asked(rt)
        assert (s.printer, s.reason) == (word, reason)
        if fault in (None, "paper-near-end"):
            before = len(emu.receipts())
            r = await rt.service.issue(ATENCION, language="es")
            assert r.outcome is Outcome.ISSUED and r.printed  # printed, paper low or not
            emu.wait_receipts(before + 1)
            assert compose(rt).printer == word  # the job's own query: before the ticket
        if fault:
            emu.fault(fault, active=False)
            assert (await asked(rt)).printer == "ok"  # comes back when fixed
    finally:
        await rt.aclose()


async def test_a_printer_that_does_not_answer_is_unknown(
        config_factory: Callable[..., Config], state: MockState) -> None:
    """A printer that takes the connection but never answers a status query: unknown,
    never ok (and no ticket is sent to it)."""
    from kiosk.core.state import asked
    silent = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(silent.accept()[0]), daemon=True).start()
    cfg = config_factory(printer={"type": "network", "host": "127.0.0.1",
                                  "port": silent.getsockname()[1], "profile": "TM-T20II",
                                  "timeout_s": 0.5})
    rt = open_runtime(cfg, KEY, transport=httpx.ASGITransport(app=create_app(state)),
                      retry=FAST_RETRY)
    try:
        s = await asked(rt)
        assert s.printer == "unknown" and s.in_service
        assert "no valid answer" in s.details["printer"]
    finally:
        await rt.aclose()
        for c in held:
            c.close()
        silent.close()
