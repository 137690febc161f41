"""A :class:`~kiosk.printing.model.TicketLayout` as ESC/POS bytes, through python-escpos.

The whole job is rendered into a ``Dummy`` printer first and sent as one block, so a
backend writes a ticket in one go (and a failed write is never half-retried).

Text is encoded by :mod:`kiosk.printing.text` in the printer's one pinned code page
(selected once with ``ESC t n``, ``n`` from the escpos-printer-db profile), not by
python-escpos's automatic code page switching.
"""

from __future__ import annotations

import textwrap
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from kiosk.errors import ConfigError
from kiosk.printing.model import PAPER_DOTS, TicketLayout
from kiosk.printing.text import codec_name, encode

ESC = b"\x1b"
INIT = ESC + b"@"
GS_SIZE_NORMAL = b"\x1d!\x00"
FONT_A_DOTS = 12  # width of one Font A character in dots


if TYPE_CHECKING:
    from escpos.printer import Dummy


def _dummy(profile: str) -> Dummy:
    # python-escpos parses its whole printer database at import (~0.4 s): import it on
    # first use, on the printer's thread, not at start-up.
    from escpos.printer import Dummy
    return Dummy(profile=profile)


@cache
def _profile(profile: str) -> Any:
    from escpos.capabilities import get_profile
    return get_profile(profile)


@cache
def _profile_codepages(profile: str) -> dict[str, int]:
    try:
        pages = _profile(profile).get_code_pages()
    except Exception as exc:  # python-escpos raises its own NotSupported / KeyError
        raise ConfigError("(config)", "printer.profile",
                          f"a profile from escpos-printer-db, not {profile!r} ({exc})") from None
    return {name.upper(): int(n) for name, n in pages.items()}


def codepage_number(profile: str, codepage: str) -> int:
    """``n`` of ``ESC t n`` for ``codepage`` on ``profile``; ConfigError if it has none."""
    codec_name(codepage)
    pages = _profile_codepages(profile)
    key = codepage.upper().replace("PC", "CP", 1)
    if key not in pages:
        raise ConfigError("(config)", "printer.codepage",
                          f"a code page that profile {profile!r} has: "
                          f"{', '.join(sorted(pages)) or 'none'} (not {codepage!r})")
    return pages[key]


def supports_native_qr(profile: str) -> bool:
    """Whether the profile prints QR codes itself (``GS ( k``)."""
    return bool(_profile(profile).supports("qrCode"))


def number_magnification(text: str, paper_mm: int, largest: int = 4) -> int:
    """The largest character magnification (1 to ``largest``) at which ``text`` fits a line."""
    dots = PAPER_DOTS[paper_mm]
    for k in range(largest, 1, -1):
        if len(text) * FONT_A_DOTS * k <= dots:
            return k
    return 1


LOGO_MAX_HEIGHT_DOTS = 160  # 20 mm: room for a logo without wasting paper


def logo_image(path: Path, paper_mm: int) -> Image.Image:
    """The logo as a 1-bit image the width of the paper, centred, at most 20 mm high."""
    try:
        with Image.open(path) as src:
            img = src.convert("RGBA")
    except (OSError, ValueError) as exc:
        raise ConfigError("(config)", "ticket.logo", f"a readable image ({exc})") from None
    width = PAPER_DOTS[paper_mm]
    img.thumbnail((width, LOGO_MAX_HEIGHT_DOTS), Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (width, img.height), "white")
    canvas.alpha_composite(img, ((width - img.width) // 2, 0))
    return canvas.convert("L").point(lambda v: 255 if v > 160 else 0).convert("1")


def raster(img: Image.Image, profile: str = "default") -> bytes:
    """``img`` as an ESC/POS raster image (``GS v 0``), ready to paste into jobs."""
    p = _dummy(profile)
    p.image(img, impl="bitImageRaster", center=False)
    return bytes(p.output)


def _lines(p: Dummy, text: str, width: int, codepage: str) -> None:
    for line in textwrap.wrap(text, width=max(1, width)) or [""]:
        p._raw(encode(line, codepage) + b"\n")


def render(layout: TicketLayout, *, profile: str = "default", codepage: str = "CP858",
           logo: bytes | None = None) -> bytes:
    """The ticket as ESC/POS bytes. ``logo``: from :func:`raster`, made once at start-up."""
    p = _dummy(profile)
    cols = layout.columns
    p._raw(INIT)
    p._raw(ESC + b"t" + bytes([codepage_number(profile, codepage)]))
    if logo:
        p._raw(logo)
    p.set(align="center")
    if layout.header:
        p.set(bold=True)
        for line in layout.header:
            _lines(p, line, cols, codepage)
        p.set(bold=False)
    p._raw(b"\n")
    _lines(p, layout.number_label, cols, codepage)
    k = number_magnification(layout.number, layout.paper_mm)
    p.set(bold=True, custom_size=True, width=k, height=k)
    _lines(p, layout.number, cols // k, codepage)
    p._raw(GS_SIZE_NORMAL)
    if layout.priority:  # white on black, across the paper: seen at a glance
        p.set(bold=True, normal_textsize=True, double_height=True, invert=True)
        _lines(p, layout.priority, cols, codepage)
        p.set(bold=False, normal_textsize=True, invert=False)
    p.set(bold=True, normal_textsize=True, double_height=True)
    _lines(p, layout.queue, cols, codepage)
    p.set(bold=False, normal_textsize=True)
    for line in (layout.branch, layout.when):
        if line:
            _lines(p, line, cols, codepage)
    if layout.wait:
        p.set(bold=True)
        _lines(p, layout.wait, cols, codepage)
        p.set(bold=False)
    if layout.qr:
        native = supports_native_qr(profile)
        p.qr(layout.qr, size=6 if layout.paper_mm == 80 else 5, native=native, center=not native)
        if layout.qr_caption:
            _lines(p, layout.qr_caption, cols, codepage)
    for line in layout.footer:
        _lines(p, line, cols, codepage)
    p.cut(feed=False)
    return bytes(p.output)
