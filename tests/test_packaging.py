"""Deployment: install.sh into a folder (twice), the systemd unit, the udev rule, the
watchdog, the status file and SIGHUP reload."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from kiosk.config import Config
from kiosk.core.reload import reload_from
from kiosk.core.runtime import open_runtime
from kiosk.core.status import StatusWriter, read
from kiosk.link.watchdog import Watchdog, notify, watchdog_period
from kiosk.mock import MockServer, MockState, create_app

from .conftest import FAST_RETRY, KEY, REPO

INSTALL = REPO / "packaging" / "install.sh"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    root = tmp_path_factory.mktemp("root")
    first = subprocess.run(["bash", str(INSTALL), "--root", str(root)], capture_output=True,
                           text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    (root / "etc/kiosk/kiosk.yaml").write_text("# edited by the branch manager\n",
                                              encoding="utf-8")
    (root / "etc/kiosk/api-key").write_text("a.real.key\n")
    second = subprocess.run(["bash", str(INSTALL), "--root", str(root)], capture_output=True,
                            text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    yield root, first.stdout, second.stdout


@pytest.mark.slow
def test_install_into_a_folder(installed: tuple[Path, str, str]) -> None:
    root, first, _ = installed
    for path in ["opt/kiosk/venv/bin/kiosk", "etc/kiosk/kiosk.yaml", "etc/kiosk/api-key",
                 "etc/systemd/system/kiosk.service",
                 "etc/udev/rules.d/60-kiosk-printers.rules"]:
        assert (root / path).exists(), path
    assert stat.S_IMODE((root / "etc/kiosk/api-key").stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "etc/kiosk/kiosk.yaml").stat().st_mode) == 0o640  # PIN hash
    assert "kernel.sysrq = 0" in (root / "etc/sysctl.d/60-kiosk.conf").read_text()
    assert "NAutoVTs=0" in (root / "etc/systemd/logind.conf.d/60-kiosk.conf").read_text()
    assert stat.S_IMODE((root / "var/lib/kiosk").stat().st_mode) == 0o750
    if os.getuid() == 0:  # owners: the kiosk user where it exists (a live system), else root
        import pwd
        try:
            owner = pwd.getpwnam("kiosk").pw_uid
        except KeyError:
            owner = 0
        assert (root / "etc/kiosk/api-key").stat().st_uid == owner
        assert (root / "var/lib/kiosk").stat().st_uid == owner
        import grp
        try:
            group = grp.getgrnam("kiosk").gr_gid
        except KeyError:
            group = 0
        yaml_stat = (root / "etc/kiosk/kiosk.yaml").stat()
        assert (yaml_stat.st_uid, yaml_stat.st_gid) == (0, group)  # root:kiosk
    assert "skipped    useradd kiosk (--root: only on a live system)" in first
    version = subprocess.run([str(root / "opt/kiosk/venv/bin/kiosk"), "--version"],
                             capture_output=True, text=True, timeout=60)
    assert version.stdout.startswith("kiosk ")
    assert not any(p.is_relative_to(root) is False for p in root.rglob("*"))


@pytest.mark.slow
def test_install_twice_changes_nothing_and_keeps_config(installed: tuple[Path, str, str],
                                                        ) -> None:
    root, _, second = installed
    verbs = {line.split()[0] for line in second.splitlines() if line.strip()}
    assert verbs <= {"unchanged", "kept", "skipped", "ok"}, second
    assert (root / "etc/kiosk/kiosk.yaml").read_text() == "# edited by the branch manager\n"
    assert (root / "etc/kiosk/api-key").read_text() == "a.real.key\n"


@pytest.mark.slow
def test_systemd_unit_verifies(installed: tuple[Path, str, str], tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: packaging/dev.sh test installs systemd")
    root, _, _ = installed
    # systemd-analyze resolves units and ExecStart inside the root: give it systemd's own
    # units and a stand-in for cage (not installable in CI, which has no seat).
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system",
                    dirs_exist_ok=True, symlinks=True)
    (root / "usr/bin").mkdir(parents=True, exist_ok=True)
    (root / "usr/bin/cage").write_text("#!/bin/sh\n")
    (root / "usr/bin/cage").chmod(0o755)
    (root / "bin").mkdir(exist_ok=True)
    for tool in ("/bin/kill", "/bin/sh"):  # ExecReload's
        shutil.copy(tool, root / tool.lstrip("/"))
    proc = subprocess.run(["systemd-analyze", "verify", f"--root={root}",
                           "/etc/systemd/system/kiosk.service"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stderr
    unit = (root / "etc/systemd/system/kiosk.service").read_text()
    for line in ["Type=notify", "Restart=always", "WatchdogSec=30", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "ReadWritePaths=/var/lib/kiosk", "PrivateTmp=yes"]:
        assert line in unit.splitlines()


def test_udev_rule_is_well_formed() -> None:
    rule = (REPO / "packaging/udev/60-kiosk-printers.rules").read_text()
    pair = re.compile(r'^[A-Z_]+(\{[A-Za-z_]+\})?(==|=)"[^"]*"$')
    lines = [ln for ln in rule.splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(lines) >= 8
    vendors = set()
    for line in lines:
        parts = [p.strip() for p in line.split(",")]
        assert all(pair.match(p) for p in parts), line
        assert 'GROUP="kiosk"' in parts and 'MODE="0660"' in parts
        vendors |= set(re.findall(r'ATTR\{idVendor\}=="([0-9a-f]{4})"', line))
    assert {"04b8", "0519", "1504", "1d90"} <= vendors  # Epson, Star, Bixolon, Citizen


# --------------------------------------------------------------------------- watchdog


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, dict[str, str]]]:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    yield sock, {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"}
    sock.close()


def received(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


async def test_watchdog_is_fed_only_while_the_loop_runs(
        notify_socket: tuple[socket.socket, dict[str, str]]) -> None:
    sock, env = notify_socket
    assert watchdog_period(env) == 0.5  # half of WatchdogSec (0.4 s, floored at 0.5)
    wd = Watchdog(env)
    wd.start("testing")
    await asyncio.sleep(1.2)
    before = received(sock)
    assert before[0] == "READY=1\nSTATUS=testing"
    assert before.count("WATCHDOG=1") >= 2
    time.sleep(1.6)  # the loop is stuck: a blocking call, a frozen UI
    assert received(sock).count("WATCHDOG=1") <= 1  # at most one ping queued before it
    await asyncio.sleep(1.1)
    assert received(sock).count("WATCHDOG=1") >= 2  # fed again once the loop runs
    await wd.stop()
    assert received(sock)[-1] == "STOPPING=1"


def test_outside_systemd_nothing_is_sent() -> None:
    assert notify("READY=1", {}) is False
    assert watchdog_period({}) is None


# --------------------------------------------------------------------------- status, reload


async def test_status_file_and_check(config_factory: Callable[..., Config], state: MockState,
                                     tmp_path: Path) -> None:
    cfg = config_factory()
    rt = open_runtime(cfg, KEY, transport=httpx.ASGITransport(app=create_app(state)),
                      retry=FAST_RETRY)
    try:
        await rt.monitor.poll_once()
        await rt.service.issue("652a1ae848880e168884e49b")
        writer = StatusWriter(rt, period_s=0.05)
        writer.start()
        await asyncio.sleep(0.2)
        await writer.stop()
    finally:
        await rt.aclose()
    data, age = read(cfg.kiosk.data_dir)
    assert data is not None and age is not None and age < 5
    assert data["kiosk"] == "test-1" and data["api"]["ok"] is True
    assert data["tickets_today"]["issued"] == 1
    assert data["printer"]["type"] == "file"
    assert KEY not in json.dumps(data)


async def test_reload_with_a_bad_file_keeps_the_old_config(
        config_factory: Callable[..., Config], state: MockState, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    cfg = config_factory()
    rt = open_runtime(cfg, KEY, transport=httpx.ASGITransport(app=create_app(state)),
                      retry=FAST_RETRY)
    bad = tmp_path / "kiosk.yaml"
    bad.write_text("branch: x\nkiosk: {id: a, colour: red}\n")
    try:
        message = await reload_from(rt, str(bad))
        assert message.startswith("Not reloaded, old config kept")
        assert "kiosk.colour: unknown key" in caplog.text
        assert rt.config is cfg and rt.service.config is cfg
    finally:
        await rt.aclose()


def write_config(path: Path, cfg: Config, **changes: dict[str, object]) -> Path:
    """``cfg`` as a YAML file, with some sections changed."""
    import yaml
    data = cfg.model_dump(mode="json", exclude_none=True)
    if cfg.ui.admin_pin_hash is not None:  # dumped as stars
        data["ui"]["admin_pin_hash"] = cfg.ui.admin_pin_hash.get_secret_value()
    for section, values in changes.items():
        if isinstance(data.get(section), dict):
            data[section].update(values)
        else:
            data[section] = values
    path.write_text(yaml.safe_dump(data))
    return path


async def test_reload_applies_every_live_change(config_factory: Callable[..., Config],
                                                state: MockState, tmp_path: Path) -> None:
    """Queues, ticket texts and the poll period: all of them at once."""
    cfg = config_factory()
    rt = open_runtime(cfg, KEY, transport=httpx.ASGITransport(app=create_app(state)),
                      retry=FAST_RETRY)
    queues = [{"id": "652a1ae848880e168884e49b", "prefix": "Z"}]
    new = write_config(tmp_path / "new.yaml", cfg, queues=queues,  # type: ignore[arg-type]
                       ticket={"header": ["Banco Nuevo"]}, ui={"refresh_s": 9})
    try:
        message = await reload_from(rt, str(new))
        assert message == "Reloaded: queues, ui.refresh_s, ticket.header"
        assert rt.monitor.period_s == 9
        assert rt.printer.ticket_cfg.header == ["Banco Nuevo"]
        r = await rt.service.issue("652a1ae848880e168884e49b")
        assert r.ticket_id == "Z-001"  # the new prefix applies at once
    finally:
        await rt.aclose()


@pytest.mark.parametrize("changes", [
    {"branch": "652720d479497a1b62df0000"},
    {"kiosk": {"id": "other"}},
    {"numbering": {"format": "{prefix}{seq:04d}"}},
    {"printer": {"type": "none"}},
    {"api": {"timeout_s": 3}},
])
async def test_reload_needing_a_restart_changes_nothing(
        changes: dict[str, object], config_factory: Callable[..., Config], state: MockState,
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A branch (or kiosk id, numbering, printer, API) change is refused whole, with "needs
    a restart" on the staff screen and in the log: the queues shown and the tickets issued
    stay on one branch (before, a new branch reached issuing but not the monitor)."""
    from kiosk.core.server import serve_in_process
    from kiosk.tickets.staff import hash_pin
    cfg = config_factory(ui={"admin_pin_hash": hash_pin("123456", iterations=100_000)})
    rt = open_runtime(cfg, KEY, transport=httpx.ASGITransport(app=create_app(state)),
                      retry=FAST_RETRY)
    path = write_config(tmp_path / "kiosk.yaml", cfg,  # a live change rides along
                        queues=[{"id": "652a1ae848880e168884e49b", "prefix": "Z"}],
                        **changes)  # type: ignore[arg-type]
    core, served = await serve_in_process(rt, config_path=str(path))
    try:
        await core.ready()
        assert (await core.check_pin("123456"))[0]
        note, _ = await core.admin("reload", "es")  # the staff screen's button
        assert "needs a restart" in note and next(iter(changes)) in note
        assert "needs a restart" in caplog.text
        assert rt.config is cfg and rt.service.config is cfg
        r = await rt.service.issue("652a1ae848880e168884e49b")
        assert r.ticket_id == "A-001"  # nothing of the new file applied
        assert state.tickets[-1].ticket_id == "A-001"
        polled = {req[1] for req in state.requests if req[1].endswith("/queues")}
        assert polled and all(f"/branches/{cfg.branch}/" in p for p in polled)
    finally:
        await core.aclose()
        await served
        await rt.aclose()


@pytest.mark.slow
async def test_sighup_reload_in_the_running_app(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    from kiosk.core.server import serve_in_process
    from kiosk.demo.headless import demo_runtime
    from kiosk.ui.run import run_ui

    from . import ui_driver as d
    bad = tmp_path / "kiosk.yaml"
    bad.write_text("branch: [unclosed\n")
    async with demo_runtime(tmp_path) as (rt, _):
        before = rt.config
        core, served = await serve_in_process(rt, config_path=str(bad))

        async def drive(app: object) -> None:
            try:
                await d.frames(5)
                os.kill(os.getpid(), __import__("signal").SIGHUP)
                await d.until(lambda: "SIGHUP: Not reloaded" in caplog.text, what="reload")
            finally:
                app.stop()  # type: ignore[attr-defined]

        assert await run_ui(core, fullscreen=False, on_app=drive) == 0
        await served
        assert rt.config is before
    assert "valid YAML" in caplog.text


# --------------------------------------------------------------------------- the unit itself

UNIT = REPO / "packaging" / "systemd" / "kiosk.service"


def unit_values(key: str) -> list[str]:
    """Every value of ``key=`` in the unit file, in order."""
    return [line.split("=", 1)[1] for line in UNIT.read_text().splitlines()
            if line.startswith(f"{key}=")]


def test_security_score_is_at_most_4_5() -> None:
    """`systemd-analyze security --offline=true packaging/systemd/kiosk.service` (7.8
    EXPOSED before the hardening)."""
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: packaging/dev.sh test installs systemd")
    p = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                        str(UNIT)], capture_output=True, text=True, timeout=120)
    score = re.search(r"Overall exposure level for kiosk\.service: (\d+\.\d)", p.stdout)
    assert score is not None, p.stdout[-2000:] + p.stderr[-2000:]
    assert float(score.group(1)) <= 4.5, p.stdout


def test_unit_locks_the_console_and_waits_for_the_clock() -> None:
    start = unit_values("ExecStart")[0].split()
    assert start[0] == "/usr/bin/cage" and "-s" not in start[:start.index("--")]  # no VT switch
    assert "time-sync.target" in " ".join(unit_values("After")).split()
    assert "time-sync.target" in " ".join(unit_values("Wants")).split()
    assert unit_values("DevicePolicy") == ["closed"]
    allowed = " ".join(unit_values("DeviceAllow"))
    for dev in ("char-drm", "char-input", "char-usb_device", "char-ttyUSB", "/dev/tty1",
                "char-alsa"):
        assert dev in allowed, dev  # the display, touch, printers, its console, speakers
    # the loudspeaker: a calling screen's voice and audio guidance reach the sound card
    # (before, DevicePolicy=closed left /dev/snd out, and the unit's user had no audio)
    assert "audio" in unit_values("SupplementaryGroups")[0].split()
    assert not any(v.startswith("KIVY_HOME=/var") for v in unit_values("Environment"))


STAND_IN_CAGE = """\
import signal, subprocess, sys
# Like cage: SIGTERM and SIGINT end the client, then cage; any other signal (SIGHUP)
# keeps its default action, which ends the compositor.
child = subprocess.Popen(sys.argv[1:])
signal.signal(signal.SIGTERM, lambda *_: child.terminate())
signal.signal(signal.SIGINT, lambda *_: child.terminate())
sys.exit(child.wait())
"""


def exec_reload_argv(mainpid: int) -> list[str]:
    """The unit's ExecReload line as systemd runs it: `$$` is a literal `$`, `$MAINPID`
    is the main process's pid (cage)."""
    import shlex
    line = unit_values("ExecReload")[0]
    pid = str(mainpid)
    return [w.replace("${MAINPID}", pid).replace("$MAINPID", pid).replace("\0", "$")
            for w in shlex.split(line.replace("$$", "\0"))]


@pytest.mark.slow
def test_systemctl_reload_reaches_the_app_not_cage(tmp_path: Path, server: MockServer,
                                                   cli_env: dict[str, str]) -> None:
    """The unit's own ExecReload line, run against a process tree like the unit's: a
    stand-in compositor that dies on SIGHUP, with the real `kiosk run` under it. The app
    reloads; the compositor (and so the kiosk) lives on."""
    import signal
    import sys

    import yaml

    from .conftest import make_config
    cfg = make_config(tmp_path, api={"base_url": server.url, "timeout_s": 2})
    data = cfg.model_dump(mode="json", exclude_none=True)
    path = tmp_path / "kiosk.yaml"
    path.write_text(yaml.safe_dump(data))
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    env = dict(cli_env, RUNTIME_DIRECTORY=str(run_dir), KIVY_HOME=str(run_dir / "kivy"))
    cage = subprocess.Popen([sys.executable, "-c", STAND_IN_CAGE, sys.executable, "-m",
                             "kiosk", "--config", str(path), "run", "--window"], env=env,
                            cwd=REPO, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while not (run_dir / "ui.pid").exists():
            assert cage.poll() is None and time.monotonic() < deadline, cage.stderr.read()
            time.sleep(0.1)
        ui_pid = int((run_dir / "ui.pid").read_text())
        assert ui_pid != cage.pid
        data["queues"][0]["prefix"] = "Z"  # a change a running kiosk takes
        path.write_text(yaml.safe_dump(data))
        reload = subprocess.run(exec_reload_argv(cage.pid), env=env, capture_output=True,
                                text=True, timeout=30)
        assert reload.returncode == 0, reload.stderr
        time.sleep(3)
        assert cage.poll() is None, "the compositor died: the kiosk would restart"
        os.kill(ui_pid, 0)  # the app too
    finally:
        with contextlib.suppress(ProcessLookupError):  # the group, even if cage died
            os.killpg(cage.pid, signal.SIGTERM)
        _, err = cage.communicate(timeout=60)
    assert "SIGHUP: Reloaded: queues" in err, err[-3000:]
    assert not (run_dir / "ui.pid").exists()  # removed at exit
