"""The PyInstaller one-folder build, smoke-tested: it starts, checks a (mock) API and
opens the demo window to its first frame with live queue data."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from kiosk.mock import MockServer

from .conftest import REPO

pytestmark = pytest.mark.slow


def test_frozen_build(tmp_path: Path, server: MockServer, cli_env: dict[str, str]) -> None:
    build = subprocess.run(["bash", str(REPO / "packaging/build-pyinstaller.sh")],
                           capture_output=True, text=True, timeout=900,
                           env={**cli_env, "DIST": str(tmp_path / "dist")})
    assert build.returncode == 0, build.stderr[-3000:]
    exe = tmp_path / "dist" / "kiosk" / "kiosk"
    env = {**cli_env, "KIVY_HOME": str(tmp_path / "kivy"), "SDL_AUDIODRIVER": "disk",
           "SDL_DISKAUDIOFILE": str(tmp_path / "audio.raw")}  # a sound output: check's audio

    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True,
                             timeout=60, cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("kiosk ")

    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text(encoding="utf-8"))
    cfg["api"]["base_url"] = server.url
    cfg["kiosk"]["data_dir"] = str(tmp_path / "data")
    cfg["printer"]["path"] = str(tmp_path / "tickets")
    path = tmp_path / "kiosk.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    check = subprocess.run([str(exe), "--config", str(path), "check"], capture_output=True,
                           text=True, timeout=60, env=env, cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "ok   queues" in check.stdout

    demo = subprocess.run([str(exe), "demo", "--smoke", "--data-dir", str(tmp_path / "d")],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "first frame with live queue data" in demo.stdout
