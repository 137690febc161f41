"""The test suite's own rules."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def misplaced_marks(source: str) -> list[str]:
    """Functions carrying a ``pytest.mark`` that pytest never collects as tests (a helper
    inserted between a mark and its test takes the mark; the test silently loses it)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or \
                node.name.startswith("test"):
            continue
        for deco in node.decorator_list:
            target = deco.func if isinstance(deco, ast.Call) else deco
            if ast.unparse(target).startswith("pytest.mark."):
                out.append(f"{node.name} (line {node.lineno}): {ast.unparse(deco)}")
    return out


def test_marks_sit_on_tests() -> None:
    found = {p.name: misplaced_marks(p.read_text(encoding="utf-8"))
             for p in sorted(TESTS.glob("*.py"))}
    assert {name: marks for name, marks in found.items() if marks} == {}


def test_the_mark_rule_catches_a_helper_that_took_a_mark() -> None:
    source = ("import pytest\n\n@pytest.mark.slow\nasync def helper():\n    pass\n\n"
              "async def test_it():\n    pass\n\n@pytest.mark.parametrize('x', [1])\n"
              "def test_fine(x):\n    pass\n")
    assert misplaced_marks(source) == ["helper (line 4): pytest.mark.slow"]
