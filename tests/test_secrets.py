"""Secrets and transport (issue 9, item 7): one token for a key, refused with where it came
from and never what it is; redaction of escaped forms in every process (core and CLI);
the key leaves the environment once read; no key in clear over http:// to another host;
and the key never reaches a log, status.json, the staff screen, the journal or the link,
even when the HTTP library raises an error that quotes it."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from kiosk import cli
from kiosk.config import Config, load_api_key, load_config
from kiosk.core import status
from kiosk.core.runtime import open_runtime
from kiosk.core.server import serve_in_process
from kiosk.errors import ConfigError
from kiosk.logs import Redact

from .conftest import ATENCION, FAST_RETRY, REPO

SECRET = "eyJhbGciOi.SUPERsecret-payload_42.sig"

GOOD = """\
branch: 652720d479497a1b62df288b
kiosk:
  id: lobby-1
  data_dir: {data}
api:
  base_url: {url}
"""


def _config(tmp_path: Path, url: str = "https://api.videsk.io", extra: str = "") -> Path:
    p = tmp_path / "kiosk.yaml"
    p.write_text(GOOD.format(data=tmp_path / "data", url=url) + extra, encoding="utf-8")
    return p


# ----------------------------------------------------------------------- one token


@pytest.mark.parametrize("bad", [
    "abc.def\n.ghi", "abc.def\r\nX-Evil: 1", "abc def.ghi", "abc\tdef", "abc\x00def",
    "abc\x1bdef", "ключ.abc.def", "abc.def\u200b.ghi",
])
def test_a_key_that_is_not_one_token_is_refused_saying_where_not_what(
        tmp_path: Path, bad: str) -> None:
    cfg = load_config(_config(tmp_path))
    with pytest.raises(ConfigError) as env_err:
        load_api_key(cfg, "kiosk.yaml", {"VIDESK_API_KEY": bad})
    assert "VIDESK_API_KEY" in str(env_err.value)
    key_file = tmp_path / "key"
    key_file.write_text(bad, encoding="utf-8")
    key_file.chmod(0o600)
    cfg = load_config(_config(tmp_path, extra=f"  key_file: {key_file}\n"))
    with pytest.raises(ConfigError) as file_err:
        load_api_key(cfg, "kiosk.yaml", {})
    assert file_err.value.key == "api.key_file" and str(key_file) in str(file_err.value)
    for err in (env_err.value, file_err.value):
        text = str(err)
        for part in bad.replace("\r", "\n").split("\n"):
            assert part.strip() not in text or len(part.strip()) < 4


def test_surrounding_whitespace_is_fine(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path))
    key = load_api_key(cfg, "kiosk.yaml", {"VIDESK_API_KEY": f"  {SECRET}\n"})
    assert key.get_secret_value() == SECRET


def test_the_cli_exits_2_on_a_key_with_a_line_break_and_never_prints_it(
        tmp_path: Path, cli_env: dict[str, str]) -> None:
    path = _config(tmp_path, url="http://127.0.0.1:9")
    env = {**cli_env, "VIDESK_API_KEY": "first.half\nsecond.half.of.it"}
    p = subprocess.run([sys.executable, "-m", "kiosk", "--config", str(path), "check"],
                       capture_output=True, text=True, timeout=60, cwd=REPO, env=env)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "VIDESK_API_KEY" in p.stdout + p.stderr
    assert "first.half" not in p.stdout + p.stderr
    assert "second.half" not in p.stdout + p.stderr


# ----------------------------------------------------------------------- the environment


def test_the_key_leaves_the_environment_once_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDESK_API_KEY", SECRET)
    cfg = load_config(_config(tmp_path))
    assert load_api_key(cfg, "kiosk.yaml").get_secret_value() == SECRET
    assert "VIDESK_API_KEY" not in os.environ
    child = subprocess.run([sys.executable, "-c",
                            "import os; print(os.environ.get('VIDESK_API_KEY', 'absent'))"],
                           capture_output=True, text=True, timeout=30, check=True)
    assert child.stdout.strip() == "absent"


def test_the_ui_hands_the_key_to_the_core_and_keeps_none(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from kiosk.link import spawn
    seen: dict[str, object] = {}

    class FakePopen:
        def __init__(self, cmd: list[str], **kw: object) -> None:
            seen.update(kw)

    monkeypatch.setenv("VIDESK_API_KEY", SECRET)
    monkeypatch.setattr(spawn.subprocess, "Popen", FakePopen)
    _, sock = spawn.start_core([])
    sock.close()
    env = seen["env"]
    assert isinstance(env, dict) and env["VIDESK_API_KEY"] == SECRET  # the core gets it
    assert "VIDESK_API_KEY" not in os.environ                          # the UI keeps none


# ----------------------------------------------------------------------- transport


@pytest.mark.parametrize("url", ["http://api.videsk.io", "http://10.0.0.5:8080",
                                 "http://128.0.0.1", "http://localhost.evil.com"])
def test_http_to_another_host_is_refused_naming_the_key(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, url=url))
    assert info.value.key == "api.base_url" and "https://" in str(info.value)


@pytest.mark.parametrize("url", ["https://api.videsk.io", "http://127.0.0.1:8080",
                                 "http://127.5.0.1", "http://[::1]:9000", "http://localhost:80",
                                 "http://LOCALHOST"])
def test_https_or_loopback_is_accepted(tmp_path: Path, url: str) -> None:
    assert load_config(_config(tmp_path, url=url)).api.base_url == url


def test_the_cli_exits_2_naming_api_base_url(tmp_path: Path, cli_env: dict[str, str]) -> None:
    path = _config(tmp_path, url="http://api.videsk.io")
    p = subprocess.run([sys.executable, "-m", "kiosk", "--config", str(path), "queues"],
                       capture_output=True, text=True, timeout=60, cwd=REPO, env=cli_env)
    assert p.returncode == 2
    assert "api.base_url" in p.stderr


# ----------------------------------------------------------------------- redaction


def _forms(secret: str) -> list[str]:
    raw = secret.encode()
    return [secret, repr(secret), json.dumps(secret), urllib.parse.quote(secret, safe=""),
            repr(raw), base64.b64encode(raw).decode()]


def test_redact_blots_out_escaped_forms_and_tracebacks() -> None:
    secret = "abc.def\nghi\u00e9/+=?&x"  # a line break, non-ASCII, URL-special characters
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(Redact(secret))
    logger = logging.getLogger("test.redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for form in _forms(secret):
            logger.warning("value %s here", form)
        try:
            raise ValueError(f"header {secret!r} refused")
        except ValueError:
            logger.exception("it failed")
    finally:
        logger.removeHandler(handler)
    text = "\n".join(records)
    for form in _forms(secret):
        assert form.strip("'\"") not in text, form
    assert "abc.def" not in text and "[redacted]" in text


def test_cli_commands_install_the_same_redaction_as_the_core(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VIDESK_API_KEY", SECRET)
    path = _config(tmp_path, url="http://127.0.0.1:9")
    cli.main(["--config", str(path), "queues"])  # fails to connect; that is not the point
    logging.getLogger("kiosk.anything").warning("oops: %r %s", SECRET,
                                                urllib.parse.quote(SECRET, safe=""))
    err = capsys.readouterr().err
    assert "oops" in err and SECRET not in err and "SUPERsecret" not in err


# ----------------------------------------------------------------------- nowhere, ever


async def test_the_key_reaches_no_log_status_staff_screen_journal_or_link(
        config_factory: Callable[..., Config], caplog: pytest.LogCaptureFixture) -> None:
    """The HTTP library raises errors that quote the key (as h11 does with a header it
    refuses): none of it gets anywhere."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError(
            f"Illegal header value {request.headers['authorization']!r}; "
            f"json {json.dumps(SECRET)}; url {urllib.parse.quote(SECRET, safe='')}")

    from kiosk.tickets.staff import hash_pin
    config = config_factory(ui={"admin_pin_hash": hash_pin("123456", iterations=100_000)})
    rt = open_runtime(config, SECRET, transport=httpx.MockTransport(handler), retry=FAST_RETRY)
    sent: list[bytes] = []
    caplog.set_level(logging.DEBUG)
    try:
        snap = await rt.monitor.poll_once()
        assert snap.error is not None
        core, served = await serve_in_process(rt)
        original = core._reader.readline

        async def spy() -> bytes:
            line = await original()
            sent.append(line)
            return line
        core._reader.readline = spy  # type: ignore[method-assign]
        await core.ready()
        r = await asyncio.wait_for(core.issue(ATENCION, language="es"), 30)
        assert (await core.check_pin("123456"))[0]  # staff actions need the PIN
        note, staff = await core.admin("refresh", "es")
        await core.aclose()
        await asyncio.wait_for(served, 30)
        status.write(tmp := config.kiosk.data_dir / "status.json", status.snapshot(rt))
        status_text = tmp.read_text(encoding="utf-8")
    finally:
        await rt.aclose()
    journal = b"".join(p.read_bytes() for p in config.kiosk.data_dir.iterdir() if p.is_file())
    places = {
        "log": caplog.text,
        "status.json": status_text,
        "staff screen": json.dumps(staff.to_json()) + note,
        "result": r.detail + r.message,
        "link": b"".join(sent).decode(),
        "snapshot": str(snap.error),
    }
    assert "RemoteProtocolError" in r.detail or "ConnectionLost" in r.detail or r.detail
    for where, text in places.items():
        for form in ("SUPERsecret", SECRET):
            assert form not in text, where
    assert b"SUPERsecret" not in journal
