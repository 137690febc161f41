"""Logging for the command line and the running kiosk (both of its processes)."""

from __future__ import annotations

import logging
import sys


class Redact(logging.Filter):
    """Defence in depth: a secret that reaches a log line anyway is replaced."""

    def __init__(self, *secrets: str) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(s in message for s in self.secrets):
            for s in self.secrets:
                message = message.replace(s, "[redacted]")
            record.msg, record.args = message, None
        return True


def setup_logging(verbose: int, *, service: bool = False, kiosk_id: str = "") -> None:
    """Warnings for commands; INFO for the running kiosk (one line per ticket and per
    fault; the journal adds the time, so the line carries the kiosk's id instead)."""
    if service:
        level = logging.DEBUG if verbose > 1 else logging.INFO
        fmt = f"[{kiosk_id}] %(levelname)s %(name)s: %(message)s"
    else:
        level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 \
            else logging.DEBUG
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    logging.basicConfig(level=level, stream=sys.stderr, format=fmt)
    if verbose < 2:
        for noisy in ("httpx", "httpcore", "kivy"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        # Kivy resets its level while it is imported and logs its banner then.
        for handler in logging.getLogger().handlers:
            handler.addFilter(lambda r: not (r.name.startswith("kivy")
                                             and r.levelno < logging.WARNING))
