"""The layering rule, checked on every module's imports:
``ui`` → ``service`` → ``api``, ``printing``, ``store``; the core never imports Kivy."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kiosk"

# For each layer: what it must never import (top-level module names or kiosk subpackages).
FORBIDDEN = {
    # the UI process sees the core only through kiosk.service.link
    "ui": {"httpx", "escpos", "yaml", "pydantic", "sqlite3", "qrcode", "kiosk.api",
           "kiosk.printing", "kiosk.store", "kiosk.mock", "kiosk.config",
           "kiosk.service.runtime", "kiosk.service.issuing", "kiosk.service.queues",
           "kiosk.service.demo", "kiosk.service.status", "kiosk.service.admin",
           "kiosk.service.callfeed", "kiosk.service.display"},
    "service": {"kivy", "kiosk.ui", "escpos"},
    "api": {"kivy", "kiosk.ui", "kiosk.service", "kiosk.printing", "kiosk.store", "escpos"},
    "printing": {"kivy", "kiosk.ui", "kiosk.service", "kiosk.api", "kiosk.store", "httpx"},
    "store": {"kivy", "kiosk.ui", "kiosk.service", "kiosk.api", "kiosk.printing", "httpx"},
    "mock": {"kivy", "kiosk.ui", "kiosk.service", "kiosk.printing", "kiosk.store",
             "kiosk.relay"},
    # the relay is a service of its own: nothing from the rest of kiosk
    "relay": {"kivy", "kiosk.ui", "kiosk.service", "kiosk.printing", "kiosk.store",
              "kiosk.api", "kiosk.mock", "kiosk.config", "kiosk.errors", "kiosk.i18n",
              "kiosk.logs", "kiosk.resources", "kiosk.colours"},
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


CORE_LIBRARIES = ("pydantic", "httpx", "yaml", "sqlite3", "escpos", "qrcode", "starlette",
                  "uvicorn", "kiosk.config", "kiosk.api", "kiosk.store", "kiosk.printing",
                  "kiosk.service.runtime", "kiosk.service.callfeed")


@pytest.mark.parametrize("mode", ["kiosk", "display"])
def test_the_ui_process_loads_none_of_the_cores_libraries(tmp_path: Path, mode: str) -> None:
    """What `kiosk run` loads before and after its window: the core's libraries load in
    the core process, beside it (a faster start, a smaller UI). Pillow is not listed:
    Kivy loads it as an image provider. A calling screen's UI (its sounds and speech
    included) holds no token and loads no HTTP client either."""
    code = ("import sys\n"
            "import kiosk.cli, kiosk.ui.run\n"
            "from kiosk.ui import boot\n"
            f"boot.configure({mode!r}, size=(200, 200))\n"
            "import kiosk.ui.app, kiosk.ui.announcer, kiosk.ui.calling\n"
            f"print(sorted(m for m in {CORE_LIBRARIES!r} if m in sys.modules))\n")
    env = dict(os.environ, KIVY_HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True, timeout=120).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_the_core_process_says_hello_before_loading_its_stack() -> None:
    """`kiosk core` loads its config and greets the UI before asyncio, httpx or SQLite:
    the UI opens its window meanwhile (kiosk.service.core)."""
    code = ("import sys\n"
            "import kiosk.service.core\n"
            "print(sorted(m for m in ('asyncio', 'httpx', 'sqlite3', 'pydantic', 'yaml',"
            " 'kiosk.service.link') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"
