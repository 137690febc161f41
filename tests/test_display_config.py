"""Config for the calling screens: display mode, the calls section, the display token."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
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
    ("http://127.0.0.1.evil.example", "loopback"),   # a name that only starts like one
    ("http://localhost./", "loopback"),  # a name for DNS (the dot): not /etc/hosts's
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
    with pytest.raises(ConfigError, match=r"needs a hub section \(hub.url"):
        load_config(write(tmp_path, text))
    text = f"branch: b\nkiosk: {{id: k, data_dir: {tmp_path}}}\nui: {{calls: true}}\n"
    with pytest.raises(ConfigError, match=r"ui\.calls needs a hub section"):
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


async def _check(config: Path) -> tuple[int, str]:
    import asyncio
    import os
    import sys
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIDESK_", "KIOSK_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kiosk", "--config", str(config), "check", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_check_on_a_display_checks_the_relay_and_the_token(tmp_path: Path) -> None:
    from .sse_stub import SseStub
    token = tmp_path / "token"
    token.write_text("tok-right-123\n")
    token.chmod(0o600)
    async with SseStub("652720d479497a1b62df288b", "tok-right-123") as relay:
        path = write(tmp_path, DISPLAY.format(data=tmp_path, url=relay.url, token=token))
        status, out = await _check(path)
        assert status == 0, out
        assert "ok   relay" in out and "ok   token" in out and "API" not in out
        token.write_text("tok-wrong-456\n")
        status, out = await _check(path)
        assert status == 1 and "FAIL token      the relay refused the token (401)" in out
        assert "tok-wrong-456" not in out and "tok-right" not in out
    status, out = await _check(path)  # the relay is gone
    assert status == 1 and "FAIL relay" in out and "unreachable" in out


async def test_the_core_process_of_a_display_sends_calls_and_no_secret(tmp_path: Path) -> None:
    """`kiosk core` in display mode (what `kiosk run` starts): no API key needed, the
    relay's calls reach the UI over the link, the token never does."""
    import asyncio

    from kiosk.link.client import RemoteCore
    from kiosk.link.spawn import start_core

    from .sse_stub import SseStub
    token = tmp_path / "token"
    token.write_text("tok-core-789\n")
    token.chmod(0o600)
    async with SseStub("652720d479497a1b62df288b", "tok-core-789") as relay:
        relay.push("A-007", "Cabina 2")
        path = write(tmp_path, DISPLAY.format(data=tmp_path, url=relay.url, token=token))
        proc, sock = start_core(["--config", str(path)])
        raw: list[bytes] = []
        core = await RemoteCore.connect(sock)
        original = core._reader.readline

        async def spy() -> bytes:
            line = await original()
            raw.append(line)
            return line
        core._reader.readline = spy  # type: ignore[method-assign]
        try:
            settings = await asyncio.wait_for(core.ready(), 30)
            assert settings.mode == "display" and settings.calls
            async with asyncio.timeout(30):
                while not (core.calls and core.calls_connected):
                    await asyncio.sleep(0.05)
            assert core.calls[0].ticket_id == "A-007" and core.calls[0].poc == "Cabina 2"
            assert await core.branch_label() == ""
        finally:
            await core.aclose()
            assert await asyncio.to_thread(proc.wait, 30) == 0
    assert raw and not any(b"tok-core-789" in line for line in raw)


async def test_a_displays_staff_screen_needs_the_pin_and_shows_no_token(tmp_path: Path) -> None:
    from kiosk.calls.feed import Backoff, CallFeed
    from kiosk.core.server import serve_display_in_process
    from kiosk.link.client import CoreUnavailable
    from kiosk.tickets.staff import hash_pin

    from .sse_stub import SseStub
    token = tmp_path / "token"
    token.write_text("tok-staff-321\n")
    token.chmod(0o600)
    async with SseStub("652720d479497a1b62df288b", "tok-staff-321") as relay:
        text = DISPLAY.format(data=tmp_path, url=relay.url, token=token)
        text += f"ui: {{admin_pin_hash: '{hash_pin('246810')}'}}\n"
        cfg = load_config(write(tmp_path, text))
        feed = CallFeed.from_config(cfg, load_display_token(cfg, "display.yaml"),
                                    backoff=Backoff(initial_s=0.05))
        core, served = await serve_display_in_process(cfg, feed)
        try:
            await core.ready()
            with pytest.raises(CoreUnavailable, match="not allowed"):
                await core.admin("refresh", "es")
            assert (await core.check_pin("111111"))[0] is False
            assert (await core.check_pin("246810"))[0] is True
            note, info = await core.admin("test_print", "es")
            assert note == "A display has no printer" and f"Relay {relay.url}" in info
            assert "tok-staff-321" not in info
        finally:
            await core.aclose()
            await served
            await feed.aclose()


async def test_check_on_a_kiosk_with_calls_shows_the_time_from_ticket_to_call(
        tmp_path: Path, server: object, cli_env: dict[str, str]) -> None:
    """`kiosk check` on a kiosk with a calls section: the relay and the token, and today's
    count and median time from ticket to call from its journal."""
    import asyncio
    import sys
    from datetime import UTC, datetime, timedelta

    import yaml

    from kiosk.store import Journal

    from .conftest import make_config
    from .sse_stub import SseStub
    token = tmp_path / "token"
    token.write_text("tok-kiosk-555\n")
    token.chmod(0o600)
    async with SseStub("652720d479497a1b62df288b", "tok-kiosk-555") as relay:
        cfg = make_config(tmp_path, api={"base_url": server.url, "timeout_s": 2},  # type: ignore[attr-defined]
                          calls={"url": relay.url, "token_file": str(token)},
                          ui={"calls": True})
        path = tmp_path / "kiosk.yaml"
        path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
        journal = Journal(cfg.kiosk.data_dir, kiosk_id=cfg.kiosk.id,
                          timezone=cfg.kiosk.timezone)
        row = journal.reserve(queue_id="q", queue_name="Caja", prefix="A",
                              fmt="{prefix}-{seq:03d}")
        journal.finish(row.row_id, "issued")
        assert journal.record_call(row.ticket_id, "Cabina 2",
                                   datetime.now(UTC) + timedelta(seconds=2))
        journal.close()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kiosk", "--config", str(path), "check", env=cli_env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out = (await asyncio.wait_for(proc.communicate(), 60))[0].decode()
    assert "ok   relay" in out and "ok   token" in out, out
    import re
    assert re.search(r"ok   calls      today: 1 called, median [23] s from ticket to call", out)
    assert "tok-kiosk-555" not in out


SECRET = "s3cretPw9"
"""A password or token pasted into a URL: never echoed by a config error."""


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIDESK_", "KIOSK_"))}
    return subprocess.run([sys.executable, "-m", "kiosk", "--config", str(config), *args],
                          capture_output=True, text=True, env=env, timeout=60, cwd=REPO)


@pytest.mark.parametrize(("command", "key", "url"), [
    ("run", "calls.url", f"https://user:{SECRET}@relay.example:99999/x"),   # a bad port
    ("check", "calls.url", f"https://user:{SECRET}@relay.example:99999/x"),
    ("check", "calls.url", f"ftp://user:{SECRET}@relay.example/x"),         # a bad scheme
    ("check", "calls.url", f"https://user:{SECRET}@relay.example/x"),       # userinfo at all
    ("check", "calls.url", f"https://{SECRET}@relay.example"),              # a token as user
    ("check", "calls.url", f"http://user:{SECRET}@10.0.0.5:8787"),          # clear, off loopback
    ("check", "calls.url", f"https://relay.example/x?token={SECRET}"),      # in the query
    ("check", "calls.url", f"https://relay.example/x#{SECRET}"),
    ("check", "calls.url", f"https://relay.example/a b/{SECRET}@x"),        # "@" after a space
    ("check", "calls.url", f"user:{SECRET}@relay.example"),                 # no scheme
    ("run", "api.base_url", f"https://user:{SECRET}@api.example"),
    ("check", "api.base_url", f"ftp://user:{SECRET}@api.example"),
    ("check", "api.base_url", f"https://user:{SECRET}@api.example"),
    ("check", "api.base_url", f"http://user:{SECRET}@10.0.0.5"),
    ("check", "api.base_url", f"https://api.example/?apikey={SECRET}"),
])
def test_a_bad_url_stops_start_up_without_echoing_its_secret(
        tmp_path: Path, command: str, key: str, url: str) -> None:
    token = tmp_path / "token"
    token.write_text("tok-1234567890abcdef\n")
    token.chmod(0o600)
    text = DISPLAY.format(data=tmp_path, url=url if key == "calls.url" else
                          "http://127.0.0.1:8787", token=token)
    if key == "api.base_url":
        text += f'api: {{base_url: "{url}"}}\n'
    proc = _cli(write(tmp_path, text), command)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    said = proc.stdout + proc.stderr
    assert SECRET not in said and "//user" not in said
    assert f"{tmp_path / 'display.yaml'}: {key}: " in said  # the file, the key,
    assert "URL" in said                                     # and what was expected
    assert "Traceback" not in said


@pytest.mark.parametrize("store", [
    f"redis://:{SECRET}@127.0.0.1:6379/x",            # a bad database number
    f"redis://user:{SECRET}@127.0.0.1:6379/0 extra",
    f"redis://127.0.0.1:6379/0?password={SECRET}",    # redis-py reads this one too
    f"mysql://user:{SECRET}@db.example/0",
    f"redis://:{SECRET}",                             # a password where the port goes
    f"redis://user:{SECRET}/0",                        # the same, with a user
])
def test_a_bad_redis_url_stops_the_relay_without_echoing_its_password(
        tmp_path: Path, store: str) -> None:
    path = write(tmp_path, f'kiosk: {{id: r, data_dir: {tmp_path}}}\n'
                           f'relay: {{store: "{store}"}}\n')
    proc = _cli(path, "relay", "--port", "1")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    said = proc.stdout + proc.stderr
    assert SECRET not in said
    assert f"{path}: relay.store: " in said and "Redis URL" in said


async def test_the_relay_never_logs_a_redis_password_from_the_url(
        caplog: pytest.LogCaptureFixture) -> None:
    from kiosk.relay.redis_store import RedisStore
    from kiosk.relay.server import free_port
    caplog.set_level(logging.DEBUG)
    store = RedisStore(f"redis://127.0.0.1:{free_port()}?password={SECRET}")
    await store.start(lambda branch, events: None)  # nothing listens: it says so
    await store.close()
    assert "does not answer" in caplog.text and SECRET not in caplog.text


def test_a_password_written_as_a_port_is_not_quoted() -> None:
    """``https://user:s3cret`` (no ``@``) reads as host ``user``, port ``s3cret``: the
    port is not a number, so it is not quoted back either."""
    from kiosk.redaction import redact_url
    for url in ["https://user:s3cret", "https://user:s3cret/x", "redis://:s3cret",
                "https://user:s3cret?x", "http://[::1]:s3cret"]:
        assert "s3cret" not in redact_url(url), url
    assert redact_url("https://relay.example:99999/x") == "https://relay.example:99999/x"
    assert redact_url("http://[::1]:8787/x") == "http://[::1]:8787/x"
