"""Tickets as ESC/POS bytes (golden, byte for byte), text encoding, status replies, the
preview, and the backends (file, network, serial over a real pseudo-terminal)."""

from __future__ import annotations

import os
import socket
import threading
import tty
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from kiosk.config import PrinterConfig, TicketConfig
from kiosk.errors import ConfigError, PrinterNotReady, PrinterUnavailable
from kiosk.printing import Paper, State, TicketData, TicketPrinter
from kiosk.printing import status as st
from kiosk.printing.backends import (
    CupsBackend,
    FileBackend,
    NetworkBackend,
    SerialBackend,
    UsbBackend,
    VirtualBackend,
)
from kiosk.printing.render import codepage_number, logo_image, number_magnification, raster
from kiosk.printing.text import encode, fallback, printable

from .escpos_text import decode

GOLDEN = Path(__file__).parent / "golden"
SPECIAL = "áéíóú ü ñ Ñ ç ã õ â ê ô à ¿ ¡ º €"
TICKET = TicketConfig(header=["Banco Ejemplo", "Sucursal Providencia"],
                      footer=["Gracias por su visita"], qr="https://example.com/t/{ticketId}")
DATA = TicketData(ticket_id="A-042", queue_id="652a1ae848880e168884e49b",
                  queue_name="Atención a clientes",
                  issued_at=datetime(2026, 11, 27, 17, 5, tzinfo=UTC), language="es",
                  branch_label="Sucursal Providencia", wait_minutes=3.2,
                  videsk_id="652a1ae848880e168884e4ff")


def printer(paper_mm: int = 80, **kw: object) -> TicketPrinter:
    cfg = PrinterConfig(type="file", path=Path("/dev/null"), paper_mm=paper_mm,  # type: ignore[arg-type]
                        profile="TM-T20II", **kw)  # type: ignore[arg-type]
    return TicketPrinter(cfg, TICKET, timezone="America/Santiago")


# ----------------------------------------------------------------------- golden bytes


@pytest.mark.parametrize("paper_mm", [80, 58])
def test_default_ticket_golden_bytes(paper_mm: int) -> None:
    got = printer(paper_mm).render(DATA)
    golden = GOLDEN / f"ticket-{paper_mm}mm.bin"
    if os.environ.get("KIOSK_UPDATE_GOLDEN"):
        golden.write_bytes(got)
    assert got == golden.read_bytes()


@pytest.mark.parametrize("paper_mm", [80, 58])
def test_default_ticket_says_what_it_should(paper_mm: int) -> None:
    lines, facts = decode(printer(paper_mm).render(DATA))
    assert [line for line in lines if line] == [
        "Banco Ejemplo", "Sucursal Providencia", "Su número", "A-042", "Atención a clientes",
        "Sucursal Providencia", "Llegada 14:05 · 27 nov 2026", "Espera estimada: ~3 min",
        "Gracias por su visita"]
    assert facts["codepage"] == "cp858"
    assert facts["qr"] == ["https://example.com/t/A-042"]  # native GS ( k
    assert facts["cut"] is True
    assert 0x33 in facts["sizes"]  # type: ignore[operator]  # the number at 4 x 4


def test_ticket_in_english_and_portuguese() -> None:
    for lang, label, wait in [("en", "Your number", "Estimated wait: ~3 min"),
                              ("pt", "Sua senha", "Espera estimada: ~3 min")]:
        data = TicketData(ticket_id="A-042", queue_id="q", queue_name="Q",
                          issued_at=DATA.issued_at, language=lang, wait_minutes=3.2)
        lines, _ = decode(printer().render(data))
        assert label in lines and wait in lines


def test_every_special_letter_prints_in_cp858() -> None:
    assert encode(SPECIAL).decode("cp858") == SPECIAL
    lines, _ = decode(printer().render(printer().sample_layout()))
    assert SPECIAL in lines


def test_optional_parts_can_be_left_out() -> None:
    cfg = TicketConfig(show_branch=False, show_datetime=False, show_wait=False)
    p = TicketPrinter(PrinterConfig(type="none"), cfg)
    lines, facts = decode(p.render(DATA))
    assert [line for line in lines if line] == ["Su número", "A-042", "Atención a clientes"]
    assert facts["qr"] == []


def test_header_per_language() -> None:
    cfg = TicketConfig(header={"es": ["Bienvenido"], "en": ["Welcome"]})  # type: ignore[arg-type]
    p = TicketPrinter(PrinterConfig(type="none"), cfg)
    en = TicketData(ticket_id="A-1", queue_id="q", queue_name="Q", issued_at=DATA.issued_at,
                    language="en")
    assert "Welcome" in decode(p.render(en))[0]
    pt = TicketData(ticket_id="A-1", queue_id="q", queue_name="Q", issued_at=DATA.issued_at,
                    language="pt")
    assert "Bienvenido" in decode(p.render(pt))[0]  # no pt lines: the Spanish ones


def test_long_number_shrinks_to_fit_and_long_names_wrap() -> None:
    assert number_magnification("A-042", 58) == 4
    assert number_magnification("LOBBY1-A-042", 58) == 2
    assert number_magnification("X" * 50, 80) == 1
    data = TicketData(ticket_id="A-042", queue_id="q", issued_at=DATA.issued_at,
                      queue_name="Atención de reclamos, sugerencias y felicitaciones de clientes")
    lines, _ = decode(printer(58).render(data))
    assert all(len(line) <= 32 for line in lines)
    assert "Atención de reclamos," in lines


def test_logo_is_rasterised_once_to_the_paper_width(tmp_path: Path) -> None:
    logo = tmp_path / "logo.png"
    Image.new("RGB", (1200, 600), "navy").save(logo)
    img = logo_image(logo, 80)
    assert img.size == (576, 160) and img.mode == "1"
    data = raster(img)
    assert len(data) == 8 + 72 * 160
    _, facts = decode(data)
    assert facts["raster_bytes"] == 72 * 160


# ----------------------------------------------------------------------- text


def test_fallback_is_closest_ascii_never_a_question_mark_for_letters() -> None:
    assert printable("— “Hola” … ‘sí’ • ő Ł ß œ") == '- "Hola" ... \'sí\' * o L ß oe'
    for code in range(0xC0, 0x17F):  # Latin-1 Supplement and Latin Extended-A letters
        ch = chr(code)
        if ch.isalpha():
            assert "?" not in printable(ch), ch
    assert fallback("→") == "?"  # not a letter: nothing closer exists


def test_unknown_codepage_and_profile_are_config_errors() -> None:
    with pytest.raises(LookupError):
        encode("x", "CP9999")
    with pytest.raises(ConfigError, match=r"printer\.codepage"):
        codepage_number("simple", "CP858")
    with pytest.raises(ConfigError, match=r"printer\.profile"):
        codepage_number("No-Such-Printer", "CP858")
    assert codepage_number("POS-5890", "CP858") == 53  # numbers differ between printers


# ----------------------------------------------------------------------- status replies


@pytest.mark.parametrize(("r1", "r2", "r4", "state", "paper"), [
    (0x12, 0x12, 0x12, State.READY, Paper.OK),
    (0x12, 0x12, 0x1E, State.PAPER_NEAR_END, Paper.NEAR_END),
    (0x1A, 0x32, 0x7E, State.PAPER_OUT, Paper.OUT),
    (0x1A, 0x16, 0x12, State.COVER_OPEN, Paper.OK),
    (0x1A, 0x12, 0x12, State.OFFLINE, Paper.OK),
    (None, None, None, State.UNKNOWN, Paper.UNKNOWN),   # no answer: unknown, not offline
    (0xFF, 0x12, 0x12, State.UNKNOWN, Paper.UNKNOWN),   # not a status byte: unknown
    (0x12, None, None, State.READY, Paper.UNKNOWN),     # paper unknown is not "paper OK"
])
def test_parse_dle_eot(r1: int | None, r2: int | None, r4: int | None, state: State,
                       paper: Paper) -> None:
    s = st.parse(r1, r2, r4)
    assert (s.state, s.paper) == (state, paper)


# ----------------------------------------------------------------------- backends


def test_file_backend_appends_whole_tickets(tmp_path: Path) -> None:
    out = tmp_path / "paper.bin"
    p = TicketPrinter(PrinterConfig(type="file", path=out), TICKET)
    p.print_ticket(DATA)
    p.print_ticket(DATA)
    one = p.render(DATA)
    assert out.read_bytes() == one * 2
    assert p.status().state is State.NOT_QUERIED


def test_virtual_printer_saves_bytes_and_a_png(tmp_path: Path) -> None:
    p = TicketPrinter(PrinterConfig(type="virtual", path=tmp_path), TICKET)
    p.print_ticket(DATA)
    assert (tmp_path / "A-042.bin").read_bytes() == p.render(DATA)
    png = Image.open(tmp_path / "A-042.png")
    assert png.width == 576 and 400 < png.height < 800


def test_network_printer_that_is_not_there() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    p = TicketPrinter(PrinterConfig(type="network", host="127.0.0.1", port=port, timeout_s=1),
                      TICKET)
    with pytest.raises(PrinterUnavailable, match="cannot connect"):
        p.print_ticket(DATA)
    assert p.last_status.state is State.UNREACHABLE
    assert p.status().state is State.UNREACHABLE
    assert NetworkBackend("127.0.0.1", port, 1).can_query


def test_usb_and_cups_say_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins
    real_import = builtins.__import__

    def no_usb(name: str, *a: object, **k: object) -> object:
        if name.startswith("usb"):
            raise ImportError(name)
        return real_import(name, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_usb)
    with pytest.raises(PrinterUnavailable, match="pyusb"):
        UsbBackend(0x04B8, 0x0E15).open("t")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(PrinterUnavailable, match="lp command"):
        CupsBackend("receipts").open("t")


def _serial_printer(master: int, replies: dict[int, int], received: bytearray,
                    stop: threading.Event) -> None:
    """The far end of a serial line: answers DLE EOT n, keeps everything else."""
    buf = b""
    while not stop.is_set():
        try:
            chunk = os.read(master, 4096)
        except OSError:
            return
        buf += chunk
        while b"\x10\x04" in buf:
            i = buf.index(b"\x10\x04")
            if len(buf) < i + 3:
                break
            received.extend(buf[:i])
            os.write(master, bytes([replies[buf[i + 2]]]))
            buf = buf[i + 3:]
        received.extend(buf)
        buf = b""


@pytest.mark.parametrize(("replies", "prints"), [
    ({1: 0x12, 2: 0x12, 4: 0x12}, True),
    ({1: 0x1A, 2: 0x32, 4: 0x72}, False),  # paper out
])
def test_serial_printer_over_a_real_pty(replies: dict[int, int], prints: bool) -> None:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    received = bytearray()
    stop = threading.Event()
    t = threading.Thread(target=_serial_printer, args=(master, replies, received, stop),
                         daemon=True)
    t.start()
    try:
        p = TicketPrinter(PrinterConfig(type="serial", device=os.ttyname(slave), timeout_s=2),
                          TICKET)
        assert isinstance(p.backend, SerialBackend)
        if prints:
            p.print_ticket(DATA)
            assert p.last_status.state is State.READY
        else:
            with pytest.raises(PrinterNotReady, match="paper_out"):
                p.print_ticket(DATA)
    finally:
        stop.set()
        os.close(slave)
        os.close(master)
    assert (bytes(received) == p.render(DATA)) is prints


def test_virtual_backend_names_files_safely(tmp_path: Path) -> None:
    v = VirtualBackend(tmp_path)
    assert v.path_for("A/../042", ".png") == tmp_path / "A____042.png"


def test_file_backend_on_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(PrinterUnavailable):
        ch = FileBackend(tmp_path / "nope" / "x.bin").open("t")
        ch.write(b"x")
        ch.finish()
