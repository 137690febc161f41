"""The soak, smaller: 500 customers through the real core process against the mock API in
its own process (10 % faults) and the emulated printer (paper out, offline, jobs cut),
the core killed -9 three times; every reconciliation figure must be 0 (see
benchmarks/soak.py, which runs the full 10,000)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO
from .emulator import emupos_executable

pytestmark = pytest.mark.slow

FIGURES = ("lost", "accepted twice", "printed not accepted", "issued not accepted",
           "told not queued but queued", "uncertain not ambiguous", "unknown no kill",
           "printed per journal no paper", "left waiting", "unplanned restarts", "errors")


def test_500_customers_3_kills_nothing_lost_or_doubled(tmp_path: Path) -> None:
    emupos_executable()  # installed by packaging/dev.sh test
    # Short timeouts keep it quick: slow answers take 0.75 s, a trickle 0.25 s a byte.
    p = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "soak.py"), "--customers", "500",
         "--kills", "3", "--seed", "11", "--api-timeout", "0.5", "--patience", "10",
         "--work", str(tmp_path / "soak")],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith(("VIDESK_", "KIOSK_C"))})
    out = p.stdout
    figures = {name: int(m.group(1)) for name in FIGURES
               if (m := re.search(rf"^  {name} +(\d+)", out, re.M))}
    assert set(figures) == set(FIGURES), out + p.stderr[-3000:]
    assert re.search(r"^kills +3 ", out, re.M), out
    assert figures == dict.fromkeys(FIGURES, 0), out
    assert p.returncode == 0 and "soak: OK" in out, out + p.stderr[-3000:]
    # It really went through faults: the API refused, dropped and garbled answers.
    enqueues = re.search(r"^API enqueues +(\d+): (.*)$", out, re.M)
    assert enqueues is not None and int(enqueues.group(1)) >= 500
    kinds = re.findall(r"'(\w+)': \d+", enqueues.group(2))
    assert "422" in kinds and "accept_drop" in kinds and len(kinds) >= 8, out
