"""The config file: examples load, bad files stop start-up with file, key and expectation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.config import (
    DEFAULT_CONFIG_PATH,
    load_api_key,
    load_config,
    resolve_path,
)
from kiosk.errors import ConfigError

from .conftest import REPO

GOOD = """\
branch: 652720d479497a1b62df288b
kiosk:
  id: lobby-1
  data_dir: {data}
"""


def write(tmp_path: Path, text: str, name: str = "kiosk.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("name", ["kiosk.yaml", "tablet.yaml", "demo.yaml"])
def test_shipped_examples_are_valid(name: str) -> None:
    cfg = load_config(REPO / "config" / name)
    assert cfg.branch == "652720d479497a1b62df288b"
    assert cfg.kiosk.mode == ("tablet" if name == "tablet.yaml" else "kiosk")


def test_minimal_file_gets_documented_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD.format(data=tmp_path)))
    assert cfg.api.base_url == "https://api.videsk.io"
    assert cfg.api.timeout_s == 5
    assert cfg.numbering.format == "{prefix}-{seq:03d}"
    assert cfg.printer.type == "none"
    assert cfg.kiosk.language == "es"


@pytest.mark.parametrize(("text", "key", "expected"), [
    ("branch: x\nkiosk: {id: a}\nbogus: 1\n", "bogus", "unknown key"),
    ("branch: x\nkiosk: {id: a, colour: red}\n", "kiosk.colour", "unknown key"),
    ("kiosk: {id: a}\n", "branch", "this key is required"),
    ("branch: x\nkiosk: {id: a}\napi: {timeout_s: soon}\n", "api.timeout_s", "number"),
    ("branch: x\nkiosk: {id: a}\napi: {base_url: ftp://x}\n", "api.base_url", "http"),
    ("branch: x\nkiosk: {id: a, timezone: Mars/Olympus}\n", "kiosk.timezone", "IANA"),
    ("branch: x\nkiosk: {id: a, language: fr}\n", "kiosk.language", "'es', 'en' or 'pt'"),
    ("branch: x\nkiosk: {id: a}\nqueues: [{id: q, prefix: TOOLONG}]\n", "queues[0].prefix",
     "1-4 letters"),
    ("branch: x\nkiosk: {id: a}\nnumbering: {format: '{prefix}'}\n", "numbering.format", "{seq}"),
    ("branch: x\nkiosk: {id: a}\nnumbering: {format: '{seq}{name}'}\n", "numbering.format",
     "only the fields"),
    ("branch: x\nkiosk: {id: a}\nprinter: {type: network}\n", "printer", "printer.host"),
    ("branch: x\nkiosk: {id: a}\nprinter: {paper_mm: 70}\n", "printer.paper_mm", "58 or 80"),
    ("- just\n- a list\n", "", "YAML mapping"),
])
def test_bad_values_name_file_key_and_expectation(tmp_path: Path, text: str, key: str,
                                                  expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert err.file == str(path)
    assert err.key == key
    assert expected in err.expected
    assert str(path) in str(err)


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "branch: x\nkiosk:\n  id: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key.startswith("line ")
    assert "valid YAML" in info.value.expected


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="none found"):
        load_config(tmp_path / "nope.yaml")


def test_config_path_precedence(tmp_path: Path) -> None:
    assert resolve_path("a.yaml", {"KIOSK_CONFIG": "b.yaml"}) == Path("a.yaml")
    assert resolve_path(None, {"KIOSK_CONFIG": "b.yaml"}) == Path("b.yaml")
    assert resolve_path(None, {}) == DEFAULT_CONFIG_PATH


def test_api_key_from_env_wins_and_never_shows(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD.format(data=tmp_path)))
    key = load_api_key(cfg, "kiosk.yaml", {"VIDESK_API_KEY": "s3cret.jwt.value"})
    assert key.get_secret_value() == "s3cret.jwt.value"
    assert "s3cret" not in repr(key) and "s3cret" not in str(key)


def test_api_key_file_must_be_private(tmp_path: Path) -> None:
    keyfile = tmp_path / "api-key"
    keyfile.write_text("file.jwt.key\n")
    text = GOOD.format(data=tmp_path) + f"api: {{key_file: {keyfile}}}\n"
    cfg = load_config(write(tmp_path, text))
    keyfile.chmod(0o644)
    with pytest.raises(ConfigError) as info:
        load_api_key(cfg, "kiosk.yaml", {})
    assert info.value.key == "api.key_file" and "chmod 600" in info.value.expected
    assert "file.jwt.key" not in str(info.value)
    keyfile.chmod(0o600)
    assert load_api_key(cfg, "kiosk.yaml", {}).get_secret_value() == "file.jwt.key"


def test_no_key_at_all(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD.format(data=tmp_path)))
    with pytest.raises(ConfigError, match="VIDESK_API_KEY"):
        load_api_key(cfg, "kiosk.yaml", {})


def test_unreadable_key_file(tmp_path: Path) -> None:
    text = GOOD.format(data=tmp_path) + f"api: {{key_file: {tmp_path / 'missing'}}}\n"
    cfg = load_config(write(tmp_path, text))
    with pytest.raises(ConfigError, match="readable key file"):
        load_api_key(cfg, "kiosk.yaml", {})


def test_cli_stops_with_status_2_and_one_message(tmp_path: Path) -> None:
    path = write(tmp_path, "branch: x\nkiosk: {id: a, colour: red}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIDESK_", "KIOSK_"))}
    proc = subprocess.run([sys.executable, "-m", "kiosk", "--config", str(path), "queues"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"kiosk: config error: {path}: kiosk.colour: unknown key " \
                                  "(check its spelling and place)"
    assert "Traceback" not in proc.stderr
