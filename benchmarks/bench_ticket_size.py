"""Bytes per ticket and paper per ticket for the default layouts.

Goals (issue "Printing"):
- the default ticket with a native QR: at most 1 KB (under 1 s on a 9600 baud serial line);
- with a 576-dot-wide logo: at most 12 KB;
- at most 90 mm of paper before the cut on 80 mm paper.

Paper length is measured on the emulated printer (emupos renders every dot; 8 dots per mm)
when it is installed (``packaging/dev.sh test`` installs it), else estimated from kiosk's
own preview (which the emulator tests keep within 10 % of the paper).

    .venv/bin/python benchmarks/bench_ticket_size.py
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kiosk.config import PrinterConfig, TicketConfig
from kiosk.printing import TicketData, TicketPrinter

GOAL_QR, GOAL_LOGO, GOAL_MM = 1024, 12 * 1024, 90.0
BAUD_BYTES_PER_S = 9600 / 10  # 8N1: ten bits per byte

DATA = TicketData(ticket_id="A-042", queue_id="652a1ae848880e168884e49b",
                  queue_name="Atención a clientes", issued_at=datetime(2026, 11, 27, 17, 5,
                                                                       tzinfo=UTC),
                  branch_label="Sucursal Providencia", wait_minutes=3.2)
HEADER = ["Banco Ejemplo", "Sucursal Providencia"]
FOOTER = ["Gracias por su visita"]
QR = "https://example.com/t/{ticketId}"


def a_logo(path: Path) -> Path:
    img = Image.new("RGB", (576, 200), "white")
    d = ImageDraw.Draw(img)
    d.rectangle((40, 30, 536, 170), outline="black", width=12)
    d.ellipse((230, 50, 346, 150), fill="black")
    img.save(path)
    return path


def emulator_lengths(jobs: list[tuple[str, bytes]]) -> dict[str, float]:
    """Paper length in mm of each job, printed on emupos; empty if it is not installed."""
    try:
        from tests.emulator import Emulator, emupos_executable
        emupos_executable()
    except (ImportError, RuntimeError):
        return {}
    import socket
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, Emulator(Path(tmp)) as emu:
        for name, payload in jobs:
            before = len(emu.receipts())
            with socket.create_connection(("127.0.0.1", emu.port)) as s:
                s.sendall(payload)
            height = emu.wait_receipts(before + 1)[0]["height_dots"]
            assert isinstance(height, int)
            out[name] = height / 8
    return out


def main() -> int:
    ok = True
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        logo = a_logo(Path(tmp) / "logo.png")
        cases = [
            ("80 mm, native QR", 80, "TM-T20II", None),
            ("58 mm, native QR", 58, "TM-T20II", None),
            ("58 mm, QR as image", 58, "POS-5890", None),
            ("80 mm, native QR + 576-dot logo", 80, "TM-T20II", logo),
        ]
        for name, mm, profile, logo_path in cases:
            p = TicketPrinter(PrinterConfig(type="none", paper_mm=mm, profile=profile),  # type: ignore[arg-type]
                              TicketConfig(header=HEADER, footer=FOOTER, qr=QR, logo=logo_path))
            payload = p.render(DATA)
            rows.append((name, mm, payload, p.preview(DATA).height / 8, logo_path is not None))
    measured = emulator_lengths([(r[0], r[2]) for r in rows if r[1] == 80 or "native" in r[0]])
    print("ticket size and paper, default layout (header 2 lines, number, queue, branch, date,")
    print("wait, QR, footer)")
    print(f"{'layout':<34}{'bytes':>7}{'9600 baud':>11}{'paper mm':>10}  source")
    for name, mm, payload, preview_mm, has_logo in rows:
        paper = measured.get(name, preview_mm)
        src = "emulator" if name in measured else "preview"
        print(f"{name:<34}{len(payload):>7}{len(payload) / BAUD_BYTES_PER_S:>10.2f}s"
              f"{paper:>10.1f}  {src}")
        goal = GOAL_LOGO if has_logo else GOAL_QR if "native" in name else None
        if goal is not None and len(payload) > goal:
            ok = False
        if mm == 80 and paper > GOAL_MM:
            ok = False
    print(f"goals: native-QR ticket <= {GOAL_QR} B, with logo <= {GOAL_LOGO} B, "
          f"<= {GOAL_MM:.0f} mm on 80 mm paper: {'MET' if ok else 'NOT MET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
