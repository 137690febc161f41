"""The printer's state from its own answers to ``DLE EOT n`` (real-time status).

We send ``DLE EOT 1`` (printer), ``DLE EOT 2`` (offline cause) and ``DLE EOT 4`` (roll paper
sensor) and parse the one-byte replies ourselves. Every valid reply has the fixed bit
pattern ``0xx1xx10``; anything else, or no reply, is *unknown*, never "paper OK".
(python-escpos 3.1 reports "paper OK" when the printer does not answer, and its online
mask is wrong: we do not use those two calls.)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

DLE_EOT = b"\x10\x04"
QUERIES = (1, 2, 4)

_FIXED_MASK, _FIXED_BITS = 0x93, 0x12


class Paper(StrEnum):
    """The roll paper sensor."""

    OK = "ok"
    NEAR_END = "near_end"
    OUT = "out"
    UNKNOWN = "unknown"


class State(StrEnum):
    """One word for the whole printer, for the UI, the admin screen and ``kiosk check``."""

    READY = "ready"
    PAPER_NEAR_END = "paper_near_end"
    """Prints, but staff should change the roll soon."""
    PAPER_OUT = "paper_out"
    COVER_OPEN = "cover_open"
    OFFLINE = "offline"
    """Reached, and it says it cannot print."""
    UNREACHABLE = "unreachable"
    """The connection could not be opened."""
    NOT_QUERIED = "not_queried"
    """This kind of printer (file, CUPS, virtual) cannot be asked."""
    NONE = "none"
    """No printer configured."""
    UNKNOWN = "unknown"
    """Not asked yet, or no valid answer to a status query (nothing is sent to it)."""


CAN_PRINT = frozenset({State.READY, State.PAPER_NEAR_END, State.NOT_QUERIED})


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    """What the printer said about itself."""

    state: State
    paper: Paper = Paper.UNKNOWN
    cover_open: bool | None = None
    online: bool | None = None
    detail: str = ""

    @property
    def can_print(self) -> bool:
        """Whether a job may be sent now."""
        return self.state in CAN_PRINT

    def __str__(self) -> str:
        return self.state.value + (f" ({self.detail})" if self.detail else "")


def valid(reply: int | None) -> bool:
    """Whether ``reply`` has the fixed bits every DLE EOT answer carries."""
    return reply is not None and reply & _FIXED_MASK == _FIXED_BITS


def parse(printer: int | None, offline_cause: int | None, paper: int | None) -> PrinterStatus:
    """The status from the replies to DLE EOT 1, 2 and 4 (``None``: no reply)."""
    if not valid(printer):  # it did not answer: we do not know, never "ok" or "offline"
        return PrinterStatus(State.UNKNOWN, detail="no valid answer to a status query")
    assert printer is not None
    online = not printer & 0x08
    cover = bool(offline_cause & 0x04) if valid(offline_cause) and offline_cause else None
    paper_end_stop = bool(offline_cause & 0x20) if valid(offline_cause) and offline_cause else False
    roll = Paper.UNKNOWN
    if valid(paper):
        assert paper is not None
        if paper & 0x60:
            roll = Paper.OUT
        elif paper & 0x0C:
            roll = Paper.NEAR_END
        else:
            roll = Paper.OK
    if roll is Paper.OUT or paper_end_stop:
        state = State.PAPER_OUT
    elif cover:
        state = State.COVER_OPEN
    elif not online:
        state = State.OFFLINE
    elif roll is Paper.NEAR_END:
        state = State.PAPER_NEAR_END
    else:
        state = State.READY
    return PrinterStatus(state, paper=roll if not paper_end_stop else Paper.OUT,
                         cover_open=cover, online=online)
