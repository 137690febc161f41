"""Text for a printer's pinned code page.

Every ticket is printed in one code page (default CP858: every Spanish and Portuguese
letter, ¿ ¡ º ª and €). A character the page lacks is replaced by its closest ASCII
(— → -, “ ” → ", … → ..., ő → o), never dropped, and never ``?`` for a Latin letter.

Text is never a printer command: control and format characters (``ESC``, ``GS``, NUL,
bidi overrides, ...) are dropped, and no byte below 0x20 (or 0x7F) ever comes out of
:func:`encode`, whatever the text and the code page. Names from the API are cleaned at
the API's edge already; this is the second line.
"""

from __future__ import annotations

import codecs
import unicodedata

# Typographic characters with an obvious plain replacement.
_REPLACEMENTS = {
    "\u2014": "-", "\u2013": "-", "\u2012": "-", "\u2010": "-", "\u2011": "-", "\u2212": "-",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u2033": '"',
    "\u2026": "...", "\u2022": "*", "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u200b": "",
    "\u20ac": "EUR", "\u2122": "TM", "\u00a9": "(c)", "\u00ae": "(R)",
    "\u0153": "oe", "\u0152": "OE", "\u00df": "ss", "\u00e6": "ae", "\u00c6": "AE",
    "\u0142": "l", "\u0141": "L", "\u00f8": "o", "\u00d8": "O", "\u0111": "d", "\u0110": "D",
    # Latin letters with a stroke or no decomposition at all
    "\u0126": "H", "\u0127": "h", "\u0131": "i", "\u0138": "k", "\u013f": "L", "\u0140": "l",
    "\u014a": "N", "\u014b": "n", "\u0149": "'n", "\u0166": "T", "\u0167": "t",
    "\u00d0": "D", "\u00f0": "d", "\u00de": "Th", "\u00fe": "th",
}


def codec_name(codepage: str) -> str:
    """The Python codec for a printer code page name (``CP858`` → ``cp858``)."""
    name = codepage.lower()
    if name.startswith("pc"):
        name = "cp" + name[2:]
    codecs.lookup(name)  # raises LookupError for an unknown page
    return name


def fallback(ch: str) -> str:
    """The closest ASCII for one character the code page lacks."""
    if ch in _REPLACEMENTS:
        return _REPLACEMENTS[ch]
    base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    if base and base.isascii():
        return base
    return "?"


_NOT_TEXT = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))


def _safe(data: bytes) -> bytes:
    """``data`` without a byte a printer reads as a command (C0 controls and DEL)."""
    return bytes(b for b in data if 0x20 <= b != 0x7F)


def encode(text: str, codepage: str = "CP858") -> bytes:
    """``text`` in ``codepage`` as one line of printable bytes: each missing character
    replaced by its closest ASCII, whitespace as a space, control and format characters
    dropped (never a printer command)."""
    name = codec_name(codepage)
    out = bytearray()
    for ch in unicodedata.normalize("NFC", text):
        if ch.isspace():
            out += b" "
            continue
        if unicodedata.category(ch) in _NOT_TEXT:
            continue
        try:
            out += _safe(ch.encode(name))
        except UnicodeEncodeError:
            for sub in fallback(ch):
                try:
                    out += _safe(sub.encode(name))
                except UnicodeEncodeError:
                    out += b"?"
    return bytes(out)


def printable(text: str, codepage: str = "CP858") -> str:
    """``text`` as it will come out of the printer (for previews and tests)."""
    return encode(text, codepage).decode(codec_name(codepage))
