"""Where shipped files are: fonts and images in ``assets/``, data in ``kiosk/data/``.

In a source checkout (and an editable install) ``assets/`` sits beside the package; a wheel
carries it inside the package as ``kiosk/assets`` (see ``pyproject.toml``).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def asset(*parts: str) -> Path:
    """The path of a shipped asset, e.g. ``asset("fonts", "DejaVuSans.ttf")``."""
    for root in (_PACKAGE / "assets", _PACKAGE.parent / "assets"):
        candidate = root.joinpath(*parts)
        if candidate.exists():
            return candidate
    return _PACKAGE.parent.joinpath("assets", *parts)


def data(*parts: str) -> Path:
    """The path of a file in ``kiosk/data``."""
    return _PACKAGE.joinpath("data", *parts)
