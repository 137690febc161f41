"""A :class:`~kiosk.printing.model.TicketLayout` as a PNG that looks like the paper.

Drawn at the printer's resolution (8 dots per mm, 576 dots for 80 mm paper, 384 for 58 mm)
with the metrics of the printer's Font A (12 x 24 dots, 30-dot lines), so the preview is
as wide and about as long as the real ticket, and shows the text exactly as the pinned
code page will print it (a letter the page lacks appears as its replacement).
"""

from __future__ import annotations

import textwrap
from functools import cache
from pathlib import Path

import qrcode
from PIL import Image, ImageDraw, ImageFont

from kiosk.printing.model import TicketLayout
from kiosk.printing.render import number_magnification
from kiosk.printing.text import printable
from kiosk.resources import asset

CHAR_W, CHAR_H, LINE = 12, 24, 30
MARGIN = 8


@cache
def _font(bold: bool, size: int) -> ImageFont.FreeTypeFont:
    name = "DejaVuSansMono-Bold.ttf" if bold else "DejaVuSansMono.ttf"
    return ImageFont.truetype(str(asset("fonts", name)), size)


def _text_block(text: str, *, width: int, scale_w: int = 1, scale_h: int = 1,
                bold: bool = False, invert: bool = False) -> Image.Image:
    """One line of text in Font A metrics, magnified like ``GS !``, centred on ``width``;
    ``invert``: white on black (``GS B``)."""
    font = _font(bold, 20)  # DejaVu Sans Mono at 20 px advances 12 px: Font A's width
    w = max(1, round(font.getlength(text)))
    line = Image.new("L", (w, CHAR_H), 0 if invert else 255)
    ImageDraw.Draw(line).text((0, 1), text, font=font, fill=255 if invert else 0)
    if scale_w != 1 or scale_h != 1:
        line = line.resize((w * scale_w, CHAR_H * scale_h), Image.Resampling.NEAREST)
    # As on the printer, the paper moves by the line spacing or by a taller line's height.
    out = Image.new("L", (width, max(LINE, line.height)), 255)
    out.paste(line, ((width - line.width) // 2, 0))
    return out


def _qr(content: str, module: int) -> Image.Image:
    code = qrcode.QRCode(border=0, box_size=module,
                         error_correction=qrcode.constants.ERROR_CORRECT_L)
    code.add_data(content)
    code.make(fit=True)
    image: Image.Image = code.make_image(fill_color="black", back_color="white").get_image()
    return image.convert("L")


def render_preview(layout: TicketLayout, *, codepage: str = "CP858",
                   logo: Image.Image | None = None) -> Image.Image:
    """The ticket as a grayscale image, one pixel per printer dot."""
    width, cols = layout.dots, layout.columns
    blocks: list[Image.Image] = []

    def lines(text: str, *, cols_: int = cols, **kw: int | bool) -> None:
        for piece in textwrap.wrap(printable(text, codepage), width=max(1, cols_)) or [""]:
            blocks.append(_text_block(piece, width=width, **kw))  # type: ignore[arg-type]

    if logo is not None:
        blocks.append(logo.convert("L"))
    for line in layout.header:
        lines(line, bold=True)
    blocks.append(Image.new("L", (width, LINE), 255))
    lines(layout.number_label)
    k = number_magnification(layout.number, layout.paper_mm)
    lines(layout.number, cols_=cols // k, scale_w=k, scale_h=k, bold=True)
    if layout.priority:
        lines(layout.priority, scale_h=2, bold=True, invert=True)
    lines(layout.queue, scale_h=2, bold=True)
    for text in (layout.branch, layout.when):
        if text:
            lines(text)
    if layout.wait:
        lines(layout.wait, bold=True)
    if layout.qr:
        code = _qr(layout.qr, 6 if layout.paper_mm == 80 else 5)
        row = Image.new("L", (width, code.height), 255)
        row.paste(code, ((width - code.width) // 2, 0))
        blocks.append(row)
        if layout.qr_caption:
            lines(layout.qr_caption)
    for line in layout.footer:
        lines(line)
    height = sum(b.height for b in blocks) + 2 * MARGIN
    paper = Image.new("L", (width, height), 255)
    y = MARGIN
    for b in blocks:
        paper.paste(b, (0, y))
        y += b.height
    return paper


def save_preview(layout: TicketLayout, path: Path, *, codepage: str = "CP858",
                 logo: Image.Image | None = None) -> Path:
    """Write the preview PNG; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    render_preview(layout, codepage=codepage, logo=logo).save(path, optimize=True)
    return path
