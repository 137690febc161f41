"""Text from outside (the API's names, labels and messages) made fit to show and print.

Standard library only: the core cleans at the API's edge (:mod:`kiosk.api.models`), and
modules the UI process loads may clean too.
"""

from __future__ import annotations

import re
import unicodedata

NAME_MAX = 80
"""Longest queue or branch name kept (characters); longer ones end with an ellipsis."""

_DROP = frozenset(("Cc", "Cf", "Cs", "Co", "Cn"))
_SPACES = re.compile(r"\s+")


def clean_text(value: str, limit: int = NAME_MAX) -> str:
    """``value`` fit to show and print: whitespace (line breaks, tabs) becomes one space,
    control and format characters (C0/C1 controls, bidi overrides and isolates, zero-width
    characters), surrogates, private-use and unassigned code points are dropped, and the
    result is capped at ``limit`` characters (an ellipsis marks the cut)."""
    if (len(value) <= limit and value.isprintable() and "  " not in value
            and value[:1] != " " and value[-1:] != " "
            and unicodedata.is_normalized("NFC", value)):
        # The common case (ids, plain names): printable means no control, format,
        # private-use or unassigned character and no whitespace but " "; nothing to drop,
        # fold or cut.
        return value
    head = value[: limit * 4 + 16]  # a 200 KB name is not walked character by character
    kept = "".join(" " if ch.isspace() else ch for ch in unicodedata.normalize("NFC", head)
                   if ch.isspace() or unicodedata.category(ch) not in _DROP)
    text = _SPACES.sub(" ", kept).strip()
    if len(text) > limit or len(head) < len(value):
        text = text[: limit - 1].rstrip() + "…"
    return text


__all__ = ["NAME_MAX", "clean_text"]
