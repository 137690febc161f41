"""``kiosk`` as a subprocess against the mock API over loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from kiosk.mock import MockServer, MockState, ScriptedFault, mock_process

from .conftest import ATENCION, BRANCH, CREDITOS, CUENTAS, REPO, SEGUROS, make_config


@pytest.fixture
def cfg_file(tmp_path: Path, server: MockServer) -> Path:
    cfg = make_config(tmp_path, api={"base_url": server.url, "timeout_s": 2})
    path = tmp_path / "kiosk.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    return path


def kiosk(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiosk", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=REPO)


def test_queues_json_as_the_api_gave_them(cfg_file: Path, cli_env: dict[str, str],
                                          state: MockState) -> None:
    p = kiosk("--config", str(cfg_file), "queues", "--json", env=cli_env)
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert [r["id"] for r in rows] == [ATENCION, CUENTAS, CREDITOS, SEGUROS]
    first = rows[0]
    api = state.as_api(state.queue_anywhere(ATENCION))  # type: ignore[arg-type]
    assert {k: first[k] for k in ("id", "name", "users")} == {
        k: api[k] for k in ("id", "name", "users")}
    assert isinstance(first["avgWaitingTime"], float)


def test_queues_table(cfg_file: Path, cli_env: dict[str, str]) -> None:
    p = kiosk("--config", str(cfg_file), "queues", env=cli_env)
    assert p.returncode == 0
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["prefix", "queue", "agents", "avg", "wait", "id"]
    assert lines[1].startswith("A      Atención a clientes") and " 3  ~" in lines[1]


def test_ticket_issued(cfg_file: Path, cli_env: dict[str, str], state: MockState) -> None:
    p = kiosk("--config", str(cfg_file), "ticket", ATENCION, "--json", env=cli_env)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["outcome"] == "issued" and out["ticketId"] == "A-001"
    assert out["queue"] == {"id": ATENCION, "name": "Atención a clientes"}
    assert out["videskId"] == state.tickets[0].id and out["printed"] is True
    assert set(out) == {"outcome", "ticketId", "queue", "videskId", "printed", "message",
                        "priority", "qr"}
    assert out["priority"] is None  # a regular ticket
    assert out["qr"] == "https://example.com/t/A-001"  # no hub: ticket.qr's template


def test_ticket_no_agents_lists_alternatives(cfg_file: Path, cli_env: dict[str, str]) -> None:
    p = kiosk("--config", str(cfg_file), "ticket", CREDITOS, "--json", env=cli_env)
    assert p.returncode == 3
    out = json.loads(p.stdout)
    assert out["outcome"] == "no_agents" and out["printed"] is False
    assert {a["id"] for a in out["alternatives"]} == {ATENCION, CUENTAS, SEGUROS}
    assert all(a["users"] > 0 for a in out["alternatives"])


@pytest.mark.parametrize(("queue", "fault", "status", "outcome"), [
    (SEGUROS, None, 4, "form_required"),
    ("000000000000000000000000", None, 5, "not_found"),
    (ATENCION, {"on": "enqueue", "answer": 422, "times": 3}, 7, "rejected"),
    (ATENCION, {"on": "enqueue", "answer": 503}, 8, "unavailable"),
    (ATENCION, {"on": "enqueue", "answer": "html"}, 8, "unavailable"),
])
def test_ticket_outcomes_and_statuses(cfg_file: Path, cli_env: dict[str, str], state: MockState,
                                      queue: str, fault: dict[str, object] | None, status: int,
                                      outcome: str) -> None:
    if fault:
        state.push_faults(ScriptedFault.model_validate(fault))
    p = kiosk("--config", str(cfg_file), "ticket", queue, "--json", env=cli_env)
    assert p.returncode == status, p.stderr
    assert json.loads(p.stdout)["outcome"] == outcome
    assert "Traceback" not in p.stderr


def test_ticket_unauthorized(cfg_file: Path, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "VIDESK_API_KEY": "mock.expired.key"}
    p = kiosk("--config", str(cfg_file), "ticket", ATENCION, "--json", env=env)
    assert p.returncode == 6
    assert json.loads(p.stdout)["outcome"] == "unauthorized"
    assert "mock.expired.key" not in p.stdout + p.stderr


def test_api_unreachable_is_unavailable_without_traceback(tmp_path: Path,
                                                          cli_env: dict[str, str]) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    cfg = make_config(tmp_path, api={"base_url": f"http://127.0.0.1:{port}", "timeout_s": 1})
    path = tmp_path / "k.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    p = kiosk("--config", str(path), "ticket", ATENCION, env=cli_env)
    assert p.returncode == 8
    assert "fuera de servicio" in p.stdout
    assert "Traceback" not in p.stderr
    q = kiosk("--config", str(path), "queues", env=cli_env)
    assert q.returncode == 8 and "Traceback" not in q.stderr


def with_sound(env: dict[str, str], tmp_path: Path, driver: str = "disk") -> dict[str, str]:
    """``env`` with SDL's audio driver forced (``disk``: a sound output, into a file)."""
    return {**env, "SDL_AUDIODRIVER": driver, "SDL_DISKAUDIOFILE": str(tmp_path / "a.raw")}


def test_check_all_good(cfg_file: Path, cli_env: dict[str, str], tmp_path: Path) -> None:
    p = kiosk("--config", str(cfg_file), "check", env=with_sound(cli_env, tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    names = [line.split()[1] for line in p.stdout.splitlines()]
    assert names == ["config", "api", "branch", "queues", "journal", "clock", "printer",
                     "audio"]
    assert all(line.startswith("ok") for line in p.stdout.splitlines())
    assert "ok   audio      audio guidance offered: sound plays on the default output" \
        in p.stdout


def test_check_says_why_audio_guidance_is_offered_nowhere(
        cfg_file: Path, cli_env: dict[str, str], tmp_path: Path) -> None:
    p = kiosk("--config", str(cfg_file), "check", env=with_sound(cli_env, tmp_path, "dummy"))
    assert p.returncode == 1
    assert ("FAIL audio      audio guidance is offered nowhere: no sound output: SDL's dummy "
            "audio driver plays nothing (SDL_AUDIODRIVER=dummy)") in p.stdout
    assert p.stderr == ""  # nothing from the sound libraries leaks out
    cfg = yaml.safe_load(cfg_file.read_text())
    cfg["ui"] = {**cfg.get("ui", {}), "audio": {"enabled": False}}
    off = tmp_path / "off.yaml"
    off.write_text(yaml.safe_dump(cfg))
    p = kiosk("--config", str(off), "check", env=with_sound(cli_env, tmp_path, "dummy"))
    assert p.returncode == 0 and "ok   audio      audio guidance off" in p.stdout


def test_check_reports_a_refused_key(cfg_file: Path, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "VIDESK_API_KEY": "mock.revoked.key"}
    p = kiosk("--config", str(cfg_file), "check", env=env)
    assert p.returncode == 1
    assert "FAIL api" in p.stdout and "403" in p.stdout
    assert "mock.revoked.key" not in p.stdout


def test_check_without_key_is_a_config_error(cfg_file: Path, cli_env: dict[str, str]) -> None:
    env = {k: v for k, v in cli_env.items() if k != "VIDESK_API_KEY"}
    p = kiosk("--config", str(cfg_file), "check", env=env)
    assert p.returncode == 2 and "FAIL config" in p.stdout


def test_usage_error_is_status_2(cli_env: dict[str, str]) -> None:
    p = kiosk("ticket", env=cli_env)
    assert p.returncode == 2 and "QUEUE_ID" in p.stderr


def test_version(cli_env: dict[str, str]) -> None:
    p = kiosk("--version", env=cli_env)
    assert p.returncode == 0 and p.stdout.startswith("kiosk ")


@pytest.fixture
def mock_api_process(cli_env: dict[str, str]) -> Iterator[str]:
    with mock_process(env=cli_env) as url:
        yield url


@pytest.mark.slow
def test_mock_api_command_serves_the_default_scenario(mock_api_process: str) -> None:
    r = httpx.get(f"{mock_api_process}/public/video-contact-center/branches/{BRANCH}/queues",
                  headers={"Authorization": "Bearer mock.kiosk.key"})
    assert r.status_code == 200 and len(r.json()) == 4
    bad = httpx.get(f"{mock_api_process}/public/video-contact-center/branches")
    assert bad.status_code == 401 and bad.json()["name"] == "NotAuthenticated"


@pytest.mark.slow
def test_demo_headless(cli_env: dict[str, str], tmp_path: Path) -> None:
    p = kiosk("demo", "--headless", "--data-dir", str(tmp_path), env=cli_env, timeout=120)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "retried with the same number" in out
    assert "no_agents — offered:" in out and "takes an alternative" in out
    assert "the greeter fills the form" in out
    assert out.splitlines()[-1].startswith("summary:")
    tickets = sorted((tmp_path / "tickets").glob("*.bin"))
    issued = [line for line in out.splitlines() if " issued, printed" in line]
    assert len(tickets) == len(issued) >= 8
    # the greeter's tablet numbers from the same sequences, through the branch's hub
    numbers = [line.split("-> ")[1].split()[0] for line in issued]
    at_greeter = [line.split("-> ")[1].split()[0] for line in issued if ", greeter)" in line]
    assert at_greeter and all(n[0] in "ABCD" and n[1] == "-" for n in numbers)
    assert len(set(numbers)) == len(numbers)
    assert {n for n in at_greeter if n.startswith("A-")} and all(
        int(n[2:]) > 10 for n in at_greeter)  # the greeter's block: after the kiosk's
    assert f"{len(issued)} ticket(s)" in out  # the hub's ledger has every device's ticket
    # each ticket's phone link is printed for the newcomer, and one page is read as a phone
    # would: its ticket was called by then
    assert all("; on the phone: http://127.0.0.1:" in line for line in issued)
    phone = [line for line in out.splitlines() if " on the phone (http://127.0.0.1:" in line]
    assert len(phone) == 1 and phone[0].split("): ")[-1].startswith("called to "), phone


def test_redact_filter_hides_a_secret_that_reaches_a_log_line() -> None:
    import logging

    from kiosk.logs import Redact
    record = logging.LogRecord("x", logging.INFO, "f", 1, "key is %s", ("s3cret.jwt.v",), None)
    assert Redact("s3cret.jwt.v").filter(record)
    assert record.getMessage() == "key is [redacted]"


@pytest.mark.slow
def test_run_stops_cleanly_on_sigterm_with_its_core(cfg_file: Path, cli_env: dict[str, str],
                                                    tmp_path: Path, state: MockState) -> None:
    """systemd's stop: SIGTERM to the UI and its core (one process group). The UI closes
    its window and the link; the core finishes and exits; nothing is left running."""
    import os
    import signal
    import time
    env = dict(cli_env, KIVY_HOME=str(tmp_path / "kivy"))
    proc = subprocess.Popen([sys.executable, "-m", "kiosk", "--config", str(cfg_file), "run",
                             "--window"], env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    status = tmp_path / "data" / "status.json"
    deadline = time.monotonic() + 60
    while not (status.exists() and sum(r[1].endswith("/queues") for r in state.requests)):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
        time.sleep(0.1)
    time.sleep(1.0)  # the window is up by now
    os.killpg(proc.pid, signal.SIGTERM)  # the whole group, as systemd does
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    assert "the kiosk core stopped" not in err  # it waited for the UI to close the link,
    assert "the kiosk core exited with status" not in err  # and then ended cleanly
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(cfg_file) not in ps  # the core is gone too


HIDE = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {hidden!r}:
            raise ModuleNotFoundError(name)
        return None
sys.meta_path.insert(0, Hide())
sys.argv = ['kiosk', *{args!r}]
import runpy
runpy.run_module('kiosk', run_name='__main__')
"""
RELAY_AND_MOCK = ["starlette", "uvicorn", "redis", "prometheus_client", "jwt", "pybars"]


def kiosk_without(hidden: list[str], *args: str, env: dict[str, str]
                  ) -> subprocess.CompletedProcess[str]:
    """``kiosk ARGS`` where the libraries of ``hidden`` cannot be imported (a lobby
    kiosk installed without the relay's and the mock's extras)."""
    code = HIDE.format(hidden=set(hidden), args=list(args))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60, cwd=REPO)


@pytest.mark.parametrize(("command", "extra"), [
    (["relay"], "relay"), (["mock-api"], "mock"), (["webhook-template"], "relay"),
    (["demo", "--headless"], "relay,mock")])
def test_a_command_without_its_extra_names_the_one_line_to_install(
        cli_env: dict[str, str], command: list[str], extra: str) -> None:
    p = kiosk_without(RELAY_AND_MOCK, *command, env=cli_env)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines()[-1] == (
        f"kiosk: `kiosk {command[0]}` needs what a lobby kiosk does not install: "
        f"pip install 'kiosk[{extra}]'")
    assert "Traceback" not in p.stderr


def test_a_lobby_kiosk_issues_and_checks_without_the_extras(
        cfg_file: Path, cli_env: dict[str, str], state: MockState) -> None:
    """The base install is all a kiosk runs: a ticket, and `kiosk check`, with the relay's
    and the mock's libraries out of reach."""
    p = kiosk_without(RELAY_AND_MOCK, "--config", str(cfg_file), "ticket", ATENCION, "--json",
                      env=cli_env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["outcome"] == "issued"
    p = kiosk_without(RELAY_AND_MOCK, "--config", str(cfg_file), "check", env=cli_env)
    assert "Traceback" not in p.stderr and "ok   api" in p.stdout, p.stdout + p.stderr


def test_an_extra_not_found_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from kiosk import cli
    assert cli.missing_extras("demo") == [] and cli.missing_extras("ticket") == []
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "redis" else real(name, *a))
    assert cli.missing_extras("demo") == ["relay"] and cli.missing_extras("mock-api") == []
