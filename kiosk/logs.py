"""Logging for the command line and the running kiosk (both of its processes)."""

from __future__ import annotations

import logging
import sys

from kiosk.redaction import all_forms, scrub


class Redact(logging.Filter):
    """Defence in depth: a secret that reaches a log line anyway is replaced, in any of
    its escaped forms (see :func:`kiosk.redaction.forms`), in the message, the traceback
    and the stack."""

    def __init__(self, *secrets: str) -> None:
        super().__init__()
        self._raw: set[str] = set(secrets)
        self.secrets = all_forms(*secrets)
        """Every form of every secret, longest first."""

    def add(self, *secrets: str) -> None:
        """Redact these secrets too."""
        if not set(secrets) <= self._raw:
            self._raw.update(secrets)
            self.secrets = all_forms(*self._raw)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it itself
            return True
        if any(s in message for s in self.secrets):
            record.msg, record.args = scrub(message, self.secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info, self.secrets)
        return True


_REDACT = Redact()
"""The one redaction filter on every handler :func:`setup_logging` installs."""


def redact_text(text: str) -> str:
    """``text`` with every secret :func:`protect` was given blotted out (for what leaves
    the process other than by logging: the link to the UI, the status file)."""
    return scrub(text, _REDACT.secrets) if _REDACT.secrets else text


def protect(*secrets: str) -> None:
    """From now on, never log these secrets (in any escaped form), in this process.

    Called wherever a secret is loaded (the API key, by :func:`kiosk.config.load_api_key`),
    so the core and every CLI command redact the same way."""
    _REDACT.add(*secrets)
    for handler in logging.getLogger().handlers:
        if _REDACT not in handler.filters:
            handler.addFilter(_REDACT)


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
    for handler in root.handlers:
        handler.addFilter(_REDACT)
    if verbose < 2:
        for noisy in ("httpx", "httpcore", "kivy"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        # Kivy resets its level while it is imported and logs its banner then.
        for handler in logging.getLogger().handlers:
            handler.addFilter(lambda r: not (r.name.startswith("kivy")
                                             and r.levelno < logging.WARNING))
