"""The layering rule, checked on every module's imports:
``ui`` → ``service`` → ``api``, ``printing``, ``store``; the core never imports Kivy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kiosk"

# For each layer: what it must never import (top-level module names or kiosk subpackages).
FORBIDDEN = {
    "ui": {"httpx", "escpos", "yaml", "kiosk.api", "kiosk.printing", "kiosk.store",
           "kiosk.mock", "kiosk.config"},
    "service": {"kivy", "kiosk.ui", "escpos"},
    "api": {"kivy", "kiosk.ui", "kiosk.service", "kiosk.printing", "kiosk.store", "escpos"},
    "printing": {"kivy", "kiosk.ui", "kiosk.service", "kiosk.api", "kiosk.store", "httpx"},
    "store": {"kivy", "kiosk.ui", "kiosk.service", "kiosk.api", "kiosk.printing", "httpx"},
    "mock": {"kivy", "kiosk.ui", "kiosk.service", "kiosk.printing", "kiosk.store"},
    "": {"kivy", "kiosk.ui"},  # top-level modules: cli, config, errors, i18n, ...
}


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def layer(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else ""


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_module_respects_its_layer(path: Path) -> None:
    banned = FORBIDDEN[layer(path)]
    bad = {name for name in imports(path)
           if any(name == b or name.startswith(b + ".") for b in banned)}
    if path.name == "cli.py":  # the CLI starts the UI lazily, inside `kiosk run`
        bad -= {"kiosk.ui.run"}
    assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text("import httpx\nfrom kiosk.api import QmsClient\n")
    assert imports(bad) == {"httpx", "kiosk.api"}
