"""Kivy's home: private, never a guessable path in a shared folder (issue 9, item 3)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kiosk.ui.boot import kivy_home, make_private


def test_kivy_home_under_systemd_is_the_private_runtime_directory(tmp_path: Path) -> None:
    env = {"RUNTIME_DIRECTORY": str(tmp_path / "run"), "HOME": str(tmp_path)}
    assert kivy_home(env) == tmp_path / "run" / "kivy"


def test_kivy_home_outside_systemd_is_a_private_folder_of_the_user(tmp_path: Path) -> None:
    home = kivy_home({"HOME": str(tmp_path)})
    assert home.is_relative_to(tmp_path) and not home.is_relative_to("/tmp/kiosk")
    made = make_private(home)
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    assert kivy_home({"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(xdg)}).parent == xdg
    xdg.chmod(0o755)  # not private: not used
    assert not kivy_home({"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(xdg)}
                         ).is_relative_to(xdg)


def test_a_prepared_folder_is_made_private_and_a_symlink_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    assert stat.S_IMODE(make_private(shared).stat().st_mode) == 0o700
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "link"
    os.symlink(target, link)
    with pytest.raises(OSError, match="not a folder of this user's"):
        make_private(link)
