"""packaging/dev.sh, a newcomer's first command (issue 9, item 12): the demo installs only
what the kiosk needs to run, and a Debian without python3-venv gets it installed (as
root) or the one line to run, never Python's traceback. Run against stand-ins for
python3, apt-get and id in a copy of the script."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .conftest import REPO

FAKE_PYTHON = r"""#!/bin/bash
echo "python $*" >> "$FAKE_LOG"
case "$1" in
  -c) if [[ "$2" == *ensurepip* ]]; then [ -f "$FAKE_DIR/venv-installed" ]; exit $?; fi
      if [[ "$2" == *"version_info[:2]"* ]]; then echo 3.11; fi
      exit 0 ;;
  -m) if [ "$2" = venv ]; then
        mkdir -p "$3/bin"; cp "$0" "$3/bin/python"
        printf '#!/bin/sh\necho "kiosk $*" >> "$FAKE_LOG"\n' > "$3/bin/kiosk"
        chmod +x "$3/bin/kiosk"
      fi
      exit 0 ;;
esac
"""
FAKE_APT = r"""#!/bin/bash
echo "apt-get $*" >> "$FAKE_LOG"
[[ "$*" == *install*python3-venv* ]] && touch "$FAKE_DIR/venv-installed"
exit 0
"""
FAKE_ID = r"""#!/bin/bash
if [ "$1" = -u ]; then echo "$FAKE_UID"; else exec /usr/bin/id "$@"; fi
"""


def run_dev_sh(tmp_path: Path, uid: int, *args: str) -> tuple[subprocess.CompletedProcess[str],
                                                               list[str]]:
    repo = tmp_path / "repo"
    (repo / "packaging").mkdir(parents=True)
    shutil.copy(REPO / "packaging" / "dev.sh", repo / "packaging" / "dev.sh")
    shutil.copy(REPO / "pyproject.toml", repo / "pyproject.toml")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("python3", FAKE_PYTHON), ("apt-get", FAKE_APT), ("id", FAKE_ID)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "log"
    log.touch()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "PYTHON": "python3",
           "FAKE_LOG": str(log), "FAKE_DIR": str(tmp_path), "FAKE_UID": str(uid)}
    p = subprocess.run(["bash", str(repo / "packaging" / "dev.sh"), *args], env=env,
                       capture_output=True, text=True, timeout=60)
    return p, log.read_text().splitlines()


def test_demo_installs_the_runtime_only(tmp_path: Path) -> None:
    (tmp_path / "venv-installed").touch()
    p, log = run_dev_sh(tmp_path, 1000, "demo", "--headless")
    assert p.returncode == 0, p.stderr
    installs = [line for line in log if " pip install " in line and "--upgrade" not in line]
    # the kiosk, and the relay and mock the demo runs beside it; not .[dev]: no pytest...
    assert installs == ["python -m pip install -q -e .[relay,mock]"]
    assert log[-1] == "kiosk demo --headless"


def test_without_python3_venv_root_installs_it(tmp_path: Path) -> None:
    p, log = run_dev_sh(tmp_path, 0, "demo")
    assert p.returncode == 0, p.stderr
    assert any(line.startswith("apt-get install") and "python3-venv" in line for line in log)
    assert log.index(next(x for x in log if "python3-venv" in x)) < log.index(
        "python -m venv .venv")
    assert log[-1] == "kiosk demo"


def test_without_python3_venv_a_user_gets_the_one_line_to_run(tmp_path: Path) -> None:
    p, log = run_dev_sh(tmp_path, 1000, "demo")
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[-1] == (
        "kiosk needs Python's venv module; install it with: sudo apt-get install python3-venv")
    assert "Traceback" not in p.stderr
    assert not any(line.startswith("apt-get") for line in log)
    assert "python -m venv .venv" not in log
