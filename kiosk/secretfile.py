"""Secrets kept in files: the API key, display and device tokens, the webhook secret.

A secret file must be readable by its owner only (``chmod 600``); its errors name the
config file, the key that pointed to it and what was expected, never the secret.
Standard library only: the relay reads its secrets with it too.
"""

from __future__ import annotations

import stat
from pathlib import Path

from kiosk.errors import ConfigError


def article(word: str) -> str:
    """"a" or "an", for ``word``."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def read_private(config_file: str, key: str, path: Path, what: str, *,
                 error: type[ConfigError] = ConfigError) -> str:
    """The text of ``path`` (named by config key ``key`` of ``config_file``), stripped:
    ``error`` when it is readable by others, unreadable or empty. ``what`` names the
    secret in the error ("display token")."""
    try:
        st = path.stat()
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise error(config_file, key,
                        f"{path} readable by its owner only (run: chmod 600 {path})")
        secret = path.read_text(encoding="utf-8").strip()
    except ConfigError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise error(config_file, key,
                    f"a readable {what} file at {path} ({exc.__class__.__name__})") from None
    if not secret:
        raise error(config_file, key, f"{article(what)} {what} inside {path} (it is empty)")
    return secret


def read_private_lines(config_file: str, key: str, path: Path, what: str, *,
                       error: type[ConfigError] = ConfigError) -> list[str]:
    """The non-empty lines of a private file (several secrets: two during a rotation)."""
    text = read_private(config_file, key, path, what, error=error)
    return [ln.strip() for ln in text.splitlines() if ln.strip()]
