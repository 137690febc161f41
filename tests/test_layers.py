"""The layers, checked on every module's imports (``ast``: at the top, in functions and
under ``TYPE_CHECKING`` alike):

- an allow-list per package of what of ``kiosk`` it may import (a new import outside it
  fails), and libraries the UI's side must never import;
- no import circle between modules;
- the UI process, started for real, loads none of the core's modules or libraries;
- each package's ``__init__`` says what lives there and what it may import.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kiosk"

FOUNDATION = {"kiosk", "kiosk.errors", "kiosk.deadlines", "kiosk.textclean", "kiosk.redaction",
              "kiosk.i18n", "kiosk.logs", "kiosk.colours", "kiosk.resources", "kiosk.tasks",
              "kiosk.secretfile", "kiosk.netloc"}
"""The foundation: standard library only, importable by every layer."""

EVERYTHING = {"kiosk.api", "kiosk.printing", "kiosk.store", "kiosk.config", "kiosk.view",
              "kiosk.link", "kiosk.tickets", "kiosk.calls", "kiosk.core", "kiosk.demo",
              "kiosk.mock", "kiosk.relay", "kiosk.ui", "kiosk.cli", "kiosk.hub"}

ALLOWED: dict[str, set[str]] = {
    # the UI process: what it shows comes over the link
    "kiosk.ui": {"kiosk.link", "kiosk.view"},
    "kiosk.link": {"kiosk.view"},
    "kiosk.view": set(),
    # the core process
    "kiosk.core": EVERYTHING - {"kiosk.ui", "kiosk.relay", "kiosk.mock", "kiosk.demo",
                                "kiosk.cli"},
    "kiosk.tickets": {"kiosk.api", "kiosk.printing", "kiosk.store", "kiosk.config",
                      "kiosk.view", "kiosk.hub"},
    "kiosk.calls": {"kiosk.config", "kiosk.store", "kiosk.view", "kiosk.hub"},
    # the device's side of the branch's hub (docs/hub.md)
    "kiosk.hub": {"kiosk.config", "kiosk.store"},
    "kiosk.api": set(),
    "kiosk.printing": {"kiosk.config"},
    "kiosk.store": set(),
    "kiosk.config": set(),
    # services of their own
    "kiosk.relay": set(),
    "kiosk.mock": set(),
    # the wiring of everything for a demo, and the command line
    "kiosk.demo": EVERYTHING - {"kiosk.ui", "kiosk.cli"},
    "kiosk.cli": EVERYTHING,
    "kiosk.__main__": {"kiosk.core", "kiosk.demo", "kiosk.cli"},
}
"""What of ``kiosk`` each unit may import besides itself and the foundation."""

UI_SIDE_NEVER = {"httpx", "pydantic", "yaml", "sqlite3", "escpos", "starlette", "uvicorn",
                 "redis", "jwt", "prometheus_client"}
"""Libraries of the core and the relay that the UI process's modules never import."""

CORE_NEVER = {"kivy"}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _is_module(name: str) -> bool:
    base = PACKAGE.parent / name.replace(".", "/")
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def imports(path: Path, name: str | None = None) -> set[str]:
    """Every module ``path`` imports, anywhere in it (relative imports resolved;
    ``from kiosk.core import main`` is the module ``kiosk.core.main``)."""
    names: set[str] = set()
    here = (name or module_name(path)).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[:len(here) - node.level + 1] + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                names.add(sub if base.startswith("kiosk") and _is_module(sub) else base)
    return names


def unit(name: str) -> str:
    """The unit a module belongs to: its package (``kiosk.core``), the foundation, or a
    top-level module of its own (``kiosk.cli``, ``kiosk.config``)."""
    if name in FOUNDATION:
        return "foundation"
    parts = name.split(".")
    return ".".join(parts[:2])


MODULES = sorted(PACKAGE.rglob("*.py"))
IDS = [str(p.relative_to(PACKAGE)) for p in MODULES]


def kiosk_imports(path: Path) -> set[str]:
    return {n for n in imports(path) if n == "kiosk" or n.startswith("kiosk.")}


@pytest.mark.parametrize("path", MODULES, ids=IDS)
def test_module_imports_only_what_its_layer_allows(path: Path) -> None:
    name = module_name(path)
    own = unit(name)
    if own == "foundation":
        bad = {n for n in kiosk_imports(path) if unit(n) != "foundation"}
        third = {n.split(".")[0] for n in imports(path)} - set(sys.stdlib_module_names) \
            - {"kiosk", "__future__"}
        assert not third, f"{name} is foundation: standard library only, not {sorted(third)}"
    else:
        assert own in ALLOWED, f"{name}: a new package needs its line in ALLOWED"
        allowed = ALLOWED[own] | {own}
        bad = {n for n in kiosk_imports(path)
               if unit(n) != "foundation" and unit(n) not in allowed}
        if name == "kiosk.cli":  # the CLI starts the UI lazily, inside `kiosk run`
            bad -= {"kiosk.ui.run", "kiosk.ui"}
    assert not bad, f"{name} imports {sorted(bad)}, outside its layer's list"
    top = {n.split(".")[0] for n in imports(path)}
    if own in ("kiosk.ui", "kiosk.link", "kiosk.view"):
        assert not top & UI_SIDE_NEVER, f"{name} (the UI's side) imports {top & UI_SIDE_NEVER}"
    if own != "kiosk.ui":
        assert not top & CORE_NEVER, f"{name} imports Kivy: only kiosk.ui may"


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text("import httpx\nfrom kiosk.api import QmsClient\n"
                   "if True:\n    from kiosk.core.server import KioskServer\n"
                   "from kiosk.core import admin\n")
    assert imports(bad, "kiosk.ui.x") == {"httpx", "kiosk.api", "kiosk.core.server",
                                         "kiosk.core.admin"}
    assert unit("kiosk.core.server") not in ALLOWED["kiosk.ui"] | {"kiosk.ui"}


def graph() -> dict[str, set[str]]:
    """Each module of ``kiosk`` -> the modules of ``kiosk`` it imports."""
    names = {module_name(p): p for p in MODULES}
    out: dict[str, set[str]] = {}
    for name, path in names.items():
        targets = set()
        for imported in kiosk_imports(path):
            n = imported
            while n and n not in names:  # `from kiosk.x.y import Name`: the module kiosk.x.y
                n = n.rpartition(".")[0]
            if n and n != name:
                targets.add(n)
        out[name] = targets
    return out


def circles(g: dict[str, set[str]]) -> list[list[str]]:
    """Every circle a depth-first walk of ``g`` meets."""
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                found.append([*stack[stack.index(m):], m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(g):
        if n not in state:
            visit(n)
    return found


def test_no_import_circles() -> None:
    """No module reaches itself through imports (any import: at the top, in a function
    or for type checking): each layer can be read, and tested, from the bottom up."""
    found = circles(graph())
    assert not found, "import circles: " + "; ".join(" -> ".join(c) for c in found)


def test_the_circle_check_finds_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert circles({"a": {"b"}, "b": set()}) == []
    assert "kiosk.tickets.issuing" in graph()["kiosk.core.runtime"]


@pytest.mark.parametrize("package", sorted(p for p in PACKAGE.iterdir()
                                          if (p / "__init__.py").exists()),
                         ids=lambda p: p.name)
def test_each_package_says_what_lives_there_and_what_it_may_import(package: Path) -> None:
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8")))
    assert doc, f"kiosk/{package.name}/__init__.py has no docstring"
    modules = sorted(p.name for p in package.glob("*.py") if p.name != "__init__.py")
    missing = [m for m in modules if m not in doc]
    assert not missing, f"kiosk/{package.name}/__init__.py does not name {missing}"
    assert "import" in doc.lower(), f"kiosk/{package.name}: say what it may import"


CORE_SIDE = ("pydantic", "httpx", "yaml", "sqlite3", "escpos", "qrcode", "starlette",
             "uvicorn", "kiosk.config", "kiosk.api", "kiosk.store", "kiosk.printing",
             "kiosk.core", "kiosk.tickets", "kiosk.calls", "kiosk.hub")


@pytest.mark.parametrize("mode", ["kiosk", "tablet", "display"])
def test_the_ui_process_loads_none_of_the_cores_modules(tmp_path: Path, mode: str) -> None:
    """What `kiosk run` loads before and after its window: the core's modules and
    libraries load in the core process, beside it (a faster start, a smaller UI).
    Pillow is not listed: Kivy loads it as an image provider. A calling screen's UI (its
    sounds and speech included) holds no token and loads no HTTP client either."""
    code = ("import sys\n"
            "import kiosk.cli, kiosk.ui.run\n"
            "from kiosk.ui import boot\n"
            f"boot.configure({mode!r}, size=(200, 200))\n"
            "import kiosk.ui.app, kiosk.ui.announcer, kiosk.ui.calling, kiosk.ui.flow\n"
            "import kiosk.ui.keyboard, kiosk.ui.form\n"
            f"print(sorted(m for m in sys.modules if m.partition('.')[0] in {CORE_SIDE!r}"
            f" or any(m == c or m.startswith(c + '.') for c in {CORE_SIDE!r})))\n")
    env = dict(os.environ, KIVY_HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True, timeout=120).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_the_core_process_says_hello_before_loading_its_stack() -> None:
    """`kiosk core` loads its config and greets the UI before asyncio, httpx or SQLite:
    the UI opens its window meanwhile (kiosk.core.main)."""
    code = ("import sys\n"
            "import kiosk.core.main\n"
            "print(sorted(m for m in ('asyncio', 'httpx', 'sqlite3', 'pydantic', 'yaml',"
            " 'kiosk.link.client', 'kiosk.core.server') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"
