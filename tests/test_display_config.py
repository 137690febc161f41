"""Config for the calling screens: display mode, the calls section, the display token."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk.config import load_config, load_display_token
from kiosk.errors import ConfigError

from .conftest import REPO

DISPLAY = """\
branch: 652720d479497a1b62df288b
kiosk: {{id: tv-1, mode: display, data_dir: {data}}}
calls: {{url: "{url}", token_file: {token}}}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "display.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_the_shipped_display_example_is_valid() -> None:
    cfg = load_config(REPO / "config" / "display.yaml")
    assert cfg.kiosk.mode == "display" and cfg.calls is not None
    assert cfg.calls.url == "https://calls.example.com"
    assert cfg.calls.voices["es"] == "es-419"
    assert cfg.printer.type == "none" and cfg.queues == []  # none needed


def test_a_display_needs_no_api_key_printer_or_queues(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("tok-123\n")
    token.chmod(0o600)
    cfg = load_config(write(tmp_path, DISPLAY.format(data=tmp_path, url="http://127.0.0.1:8787/",
                                                     token=token)))
    assert cfg.calls is not None and cfg.calls.url == "http://127.0.0.1:8787"
    assert load_display_token(cfg, "display.yaml").get_secret_value() == "tok-123"


@pytest.mark.parametrize(("url", "expected"), [
    ("http://relay.example.com", "https://"),
    ("http://10.0.0.5:8787", "loopback"),
    ("ftp://127.0.0.1", "http:// or https://"),
    ("https://", "http:// or https://"),
])
def test_the_token_never_crosses_a_network_in_clear(tmp_path: Path, url: str,
                                                    expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, DISPLAY.format(data=tmp_path, url=url, token="/x")))
    assert info.value.key == "calls.url" and expected in info.value.expected


@pytest.mark.parametrize("url", ["http://localhost:8787", "http://[::1]:9", "https://a.b/c/"])
def test_good_relay_urls(tmp_path: Path, url: str) -> None:
    load_config(write(tmp_path, DISPLAY.format(data=tmp_path, url=url, token="/x")))


def test_display_mode_without_calls_names_what_is_missing(tmp_path: Path) -> None:
    text = f"branch: b\nkiosk: {{id: tv, mode: display, data_dir: {tmp_path}}}\n"
    with pytest.raises(ConfigError, match=r"needs a calls section \(calls.url"):
        load_config(write(tmp_path, text))
    text = f"branch: b\nkiosk: {{id: k, data_dir: {tmp_path}}}\nui: {{calls: true}}\n"
    with pytest.raises(ConfigError, match=r"ui\.calls needs a calls section"):
        load_config(write(tmp_path, text))


def test_the_token_file_must_be_private_and_never_shows(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("tok-s3cret\n")
    token.chmod(0o644)
    cfg = load_config(write(tmp_path, DISPLAY.format(data=tmp_path, url="https://r.example",
                                                     token=token)))
    with pytest.raises(ConfigError) as info:
        load_display_token(cfg, "display.yaml")
    assert info.value.key == "calls.token_file" and "chmod 600" in info.value.expected
    assert "tok-s3cret" not in str(info.value)
    token.write_text("")
    token.chmod(0o600)
    with pytest.raises(ConfigError, match="a display token inside"):
        load_display_token(cfg, "display.yaml")
    token.unlink()
    with pytest.raises(ConfigError, match="a readable display token file"):
        load_display_token(cfg, "display.yaml")
