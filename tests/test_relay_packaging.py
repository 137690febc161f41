"""The relay as a service: ``install.sh --relay`` into a folder (twice), its systemd unit
(verified, scored, its open-file limit agreeing with the relay's cap), the installed relay
started under the unit's limits, and the shipped Caddyfile run by a real Caddy in front of
a real relay."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import resource
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from kiosk.relay import RelayServer, RelaySettings
from kiosk.relay.config import FD_RESERVE, connection_cap
from kiosk.relay.server import free_port, wait_healthy
from tests.phone_helpers import CallsJoined
from tests.relay_helpers import (
    BRANCH_A,
    TOKEN_A,
    SseReader,
    call_body,
    jwt_headers,
    metric,
    settings,
    sign,
    write_private,
)

from .conftest import REPO

INSTALL = REPO / "packaging" / "install.sh"
UNIT = REPO / "packaging" / "systemd" / "kiosk-relay.service"
CADDYFILE = REPO / "packaging" / "caddy" / "Caddyfile"
SAFE_VERBS = {"unchanged", "kept", "skipped", "ok"}


def unit_values(key: str, unit: Path = UNIT) -> list[str]:
    """Every value of ``key=`` in the unit file, in order."""
    return [line.split("=", 1)[1] for line in unit.read_text().splitlines()
            if line.startswith(f"{key}=")]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    root = tmp_path_factory.mktemp("root")
    first = subprocess.run(["bash", str(INSTALL), "--relay", "--root", str(root)],
                           capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-2000:]
    with (root / "etc/kiosk/relay.yaml").open("a") as f:
        f.write("# edited by the operator\n")
    second = subprocess.run(["bash", str(INSTALL), "--relay", "--root", str(root)],
                            capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-2000:]
    yield root, first.stdout, second.stdout


@pytest.mark.slow
def test_install_relay_into_a_folder(installed: tuple[Path, str, str]) -> None:
    root, first, _ = installed
    for path in ["opt/kiosk/venv/bin/kiosk", "etc/kiosk/relay.yaml", "etc/kiosk/webhook-jwt.pub",
                 "etc/systemd/system/kiosk-relay.service", "var/lib/kiosk-relay"]:
        assert (root / path).exists(), path
    for path in ["etc/systemd/system/kiosk.service", "etc/udev", "etc/sysctl.d",
                 "etc/kiosk/kiosk.yaml", "var/lib/kiosk"]:  # a relay is not a lobby kiosk
        assert not (root / path).exists(), path
    secret = root / "etc/kiosk/webhook-jwt.provider-secret"  # the provider's private key
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert "PRIVATE KEY" in json.loads(secret.read_text())
    assert "PRIVATE KEY" not in first and "PUBLIC KEY" not in first  # never printed
    assert "BEGIN PUBLIC KEY" in (root / "etc/kiosk/webhook-jwt.pub").read_text()
    assert stat.S_IMODE((root / "etc/kiosk/relay.yaml").stat().st_mode) == 0o640
    assert stat.S_IMODE((root / "var/lib/kiosk-relay").stat().st_mode) == 0o700
    assert (root / "etc/systemd/system/kiosk-relay.service").read_bytes() == UNIT.read_bytes()
    assert "skipped    useradd kiosk-relay (--root: only on a live system)" in first
    assert "systemctl enable kiosk-relay systemd-time-wait-sync" in first  # (the clock)
    # the relay's extra is installed: its command runs
    template = subprocess.run([str(root / "opt/kiosk/venv/bin/kiosk"), "webhook-template",
                               "--json"], capture_output=True, text=True, timeout=120)
    assert template.returncode == 0, template.stderr
    assert "kioskJwtPrivateKey" in template.stdout  # the default: the bound JWT


@pytest.mark.slow
def test_install_relay_twice_changes_nothing_and_keeps_config_and_secret(
        installed: tuple[Path, str, str]) -> None:
    root, first, second = installed
    verbs = {line.split()[0] for line in second.splitlines() if line.strip()}
    assert verbs <= SAFE_VERBS, second
    assert (root / "etc/kiosk/relay.yaml").read_text().endswith("# edited by the operator\n")
    created = re.search(r"^created +/etc/kiosk/webhook-jwt.pub", first, re.M)
    assert created and "kept       /etc/kiosk/webhook-jwt.pub" in second


@pytest.mark.slow
def test_relay_unit_verifies(installed: tuple[Path, str, str]) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: packaging/dev.sh test installs systemd")
    root, _, _ = installed
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system",
                    dirs_exist_ok=True, symlinks=True)
    proc = subprocess.run(["systemd-analyze", "verify", f"--root={root}",
                           "/etc/systemd/system/kiosk-relay.service"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stderr


def test_relay_unit_waits_for_the_clock() -> None:
    """A Raspberry Pi boots with a stale clock: a relay started then refuses every JWT as
    stale and keeps the branches on the wrong day (it started after the network only)."""
    for key in ("After", "Wants"):
        assert "time-sync.target" in " ".join(unit_values(key)).split(), key
    script = INSTALL.read_text()
    relay_part = script[script.index('if [ "$ROLE" = relay ]; then\n    # 5.'):]
    relay_part = relay_part[:relay_part.index("\n    exit 0\n")]
    assert "systemctl enable systemd-time-wait-sync.service" in relay_part


def test_relay_unit_security_score_is_at_most_2_5() -> None:
    """``systemd-analyze security --offline=true packaging/systemd/kiosk-relay.service``."""
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: packaging/dev.sh test installs systemd")
    p = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                        str(UNIT)], capture_output=True, text=True, timeout=120)
    score = re.search(r"Overall exposure level for kiosk-relay\.service: (\d+\.\d)", p.stdout)
    assert score, p.stdout[-2000:] + p.stderr[-2000:]
    assert float(score.group(1)) <= 2.5, p.stdout


def test_the_units_open_file_limit_and_the_relays_cap_agree() -> None:
    """The unit raises ``LimitNOFILE``; the relay's cap under it (the shipped config's
    ``max_connections``, or the default) fits, and is what the unit's comment says."""
    [nofile] = [int(v) for v in unit_values("LimitNOFILE")]
    assert nofile >= 4096  # well above the default 1024
    shipped = yaml.safe_load((REPO / "config/relay.yaml").read_text())["relay"]
    cap = connection_cap(shipped.get("max_connections"), nofile)
    assert cap == nofile - FD_RESERVE
    assert f"less {FD_RESERVE}" in UNIT.read_text()
    assert f"up to {cap} connections" in UNIT.read_text()
    assert f"LimitNOFILE={nofile}) less {FD_RESERVE}: {cap}" in (
        REPO / "config/relay.yaml").read_text()
    assert unit_values("ExecStart") == [
        "/opt/kiosk/venv/bin/kiosk --config /etc/kiosk/relay.yaml relay"]


def _under_the_units_limits(nofile: int) -> Callable[[], None]:
    """What the unit imposes that a test can (in the child, before exec): LimitNOFILE,
    MemoryDenyWriteExecute (Linux's PR_SET_MDWE, kept across exec), UMask. Only system
    calls run in the child (libc is loaded here, before the fork)."""
    libc = ctypes.CDLL(None, use_errno=True)

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")
        os.umask(0o077)
    return limits


@pytest.mark.slow
def test_the_installed_relay_runs_under_its_units_limits(installed: tuple[Path, str, str],
                                                        tmp_path: Path) -> None:
    """The installed venv and config (paths moved into the folder), under the unit's
    open-file limit and MemoryDenyWriteExecute: it starts, caps its connections at what
    the unit says, takes a webhook with a JWT signed by the key pair install.sh made (as
    the provider signs it) and streams it to a screen; ES256 (pyjwt's cryptography)
    works without writable executable memory."""
    root, _, _ = installed
    [nofile] = [int(v) for v in unit_values("LimitNOFILE")]
    config = yaml.safe_load((root / "etc/kiosk/relay.yaml").read_text())
    config["kiosk"]["data_dir"] = str(root / "var/lib/kiosk-relay")
    config["relay"]["jwt_public_key_file"] = str(root / "etc/kiosk/webhook-jwt.pub")
    token = write_private(tmp_path / "display", TOKEN_A + "\n")
    config["relay"]["displays"] = [{"branch": BRANCH_A, "token_file": str(token)}]
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([str(root / "opt/kiosk/venv/bin/kiosk"), "--config", str(path),
                             "relay", "--port", str(port)], stderr=subprocess.PIPE, text=True,
                            preexec_fn=_under_the_units_limits(nofile))  # noqa: PLW1509
    try:
        wait_healthy(url, proc)
        assert metric(url, "relay_connections_max") == connection_cap(None, nofile)
        screen = SseReader(url, BRANCH_A, TOKEN_A).start_connected()
        private = json.loads((root / "etc/kiosk/webhook-jwt.provider-secret").read_text())
        body = call_body("A-001", "c-1")
        r = httpx.post(url + "/webhooks/videsk", content=body,
                       headers=jwt_headers(body, private, "RS256"))
        assert r.status_code == 201, r.text
        assert screen.take(1)[0][1]["ticketId"] == "A-001"
        screen.stop()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err, err[-2000:]
    es256 = ("import jwt\nfrom cryptography.hazmat.primitives.asymmetric import ec\n"
             "key = ec.generate_private_key(ec.SECP256R1())\n"
             "token = jwt.encode({'ticketId': 'A-1'}, key, algorithm='ES256')\n"
             "print(jwt.decode(token, key.public_key(), algorithms=['ES256']))\n")
    p = subprocess.run([str(root / "opt/kiosk/venv/bin/python"), "-c", es256],
                       capture_output=True, text=True, timeout=60,
                       preexec_fn=_under_the_units_limits(nofile))
    assert p.returncode == 0 and "A-1" in p.stdout, p.stderr[-2000:]


# --------------------------------------------------------------------------- Caddy


def _adapted(tmp_path: Path, **env: str) -> str:
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.fail("caddy is missing: packaging/dev.sh test installs it (apt: caddy)")
    p = subprocess.run([caddy, "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path,
                       env=dict(os.environ, HOME=str(tmp_path), **env))
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_the_caddyfile_reaches_one_relay_or_two_replicas(tmp_path: Path) -> None:
    """By default every route goes to 127.0.0.1:8787; with ``KIOSK_RELAY_UPSTREAMS`` set
    (two replicas), each route goes to both, health-checked on /healthz."""
    one = _adapted(tmp_path)
    assert re.findall(r'"dial":"([^"]+)"', one) == ["127.0.0.1:8787"] * 7
    assert '"read_header_timeout":10000000000' in one  # 10 s
    # Caddy drops an idle connection to the relay before the relay does (no request is
    # ever sent on a connection the relay is closing)
    idle = {int(n) / 1e9 for n in re.findall(r'"keep_alive":\{"idle_timeout":(\d+)\}', one)}
    assert len(idle) == 1 and idle.pop() < RelaySettings().keepalive_idle_s
    two = _adapted(tmp_path, KIOSK_RELAY_UPSTREAMS="10.0.0.11:8787 10.0.0.12:8787")
    assert re.findall(r'"dial":"([^"]+)"', two) == ["10.0.0.11:8787", "10.0.0.12:8787"] * 7
    assert two.count('"uri":"/healthz"') == 7
    assert two.count('"try_duration"') == 6  # not the webhook's: see the Caddyfile



@pytest.fixture
def caddy_in_front(tmp_path: Path) -> Iterator[tuple[str, RelayServer]]:
    """The shipped Caddyfile, its site's name turned into a plain-HTTP loopback address,
    its header deadline 2 s (10 s shipped), the admin endpoint off; its upstream a test
    relay (``KIOSK_RELAY_UPSTREAMS``, as a deployment sets it); run by a real Caddy."""
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.fail("caddy is missing: packaging/dev.sh test installs it (apt: caddy)")
    shipped = CADDYFILE.read_text()
    assert "read_header 10s" in shipped and "calls.example.com {" in shipped
    with RelayServer(settings(tmp_path, keepalive_s=1.0), phone_source=CallsJoined()) as relay:
        port = free_port()
        text = (shipped.replace("calls.example.com {", f"http://127.0.0.1:{port} {{")
                .replace("read_header 10s", "read_header 2s")
                .replace("\n{\n", "\n{\n\tadmin off\n", 1))
        assert "admin off" in text
        config = tmp_path / "Caddyfile"
        config.write_text(text)
        env = dict(os.environ, HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"),
                   XDG_CONFIG_HOME=str(tmp_path / "config"),
                   KIOSK_RELAY_UPSTREAMS=f"127.0.0.1:{relay.port}")
        proc = subprocess.Popen([caddy, "run", "--config", str(config), "--adapter",
                                 "caddyfile"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 20
            while True:
                with contextlib.suppress(OSError):
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                assert proc.poll() is None and time.monotonic() < deadline, \
                    proc.stderr.read() if proc.stderr else ""
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port}", relay
        finally:
            proc.terminate()  # open streams end after the grace period (10 s)
            try:
                proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise


@pytest.mark.slow
def test_the_shipped_caddyfile_streams_limits_and_forwards(
        caddy_in_front: tuple[str, RelayServer]) -> None:
    front, relay = caddy_in_front
    # a screen's stream through Caddy: each call at once, uncompressed, past keep-alives
    screen = SseReader(front, BRANCH_A, TOKEN_A)
    screen.headers["Accept-Encoding"] = "gzip, br"
    screen.start_connected()
    assert screen.status == 200
    body = call_body("A-001", "c-1")
    began = time.monotonic()
    r = httpx.post(front + "/webhooks/videsk", content=body, headers=sign(body))
    assert r.status_code == 201, r.text
    assert screen.take(1)[0][1]["ticketId"] == "A-001"
    assert time.monotonic() - began < 1.0  # not held in a buffer
    time.sleep(2.5)  # keep-alive comments (every 1 s) pass too; the stream stays open
    assert not screen.ended.is_set() and screen.comments
    with httpx.stream("GET", f"{front}/v1/branches/{BRANCH_A}/calls",
                      headers={"Authorization": f"Bearer {TOKEN_A}",
                               "Accept-Encoding": "gzip"}) as s:
        assert s.status_code == 200 and "content-encoding" not in s.headers
    # a body over 64 KB: Caddy stops reading it at 64 KB (Caddy 2.6 then answers 413, or
    # 502 or a cut answer when the relay has refused it first), never a call
    big = json.dumps(json.loads(call_body("A-999", "c-999")) | {"pad": " " * 70_000}).encode()
    try:
        status = httpx.post(front + "/webhooks/videsk", content=big,
                            headers=sign(big)).status_code
    except httpx.RemoteProtocolError:
        status = 0
    assert status in (413, 502, 0)
    assert metric(relay.url, 'relay_webhooks_total{reason="stored",result="accepted"}') == 1
    # forwarded: /metrics through the proxy is not "this machine"; other paths 404
    assert httpx.get(front + "/metrics").status_code == 403
    assert httpx.get(relay.url + "/metrics").status_code == 200
    assert httpx.get(front + "/healthz").json() == {"status": "ok"}
    assert httpx.get(front + "/").status_code == 404
    assert httpx.get(front + "/v1/branches/x/y/calls").status_code == 404
    # the fleet's routes pass (no fleet token here: refused by the relay, not by Caddy)
    assert "<form" in httpx.get(front + "/fleet").text
    assert httpx.get(front + "/fleet/static/fleet.js").status_code == 200
    assert httpx.get(front + "/v1/fleet").status_code == 401
    assert httpx.put(front + "/v1/devices/lobby-1/state", json={}).status_code == 401
    assert httpx.get(front + "/fleet/other").status_code == 404
    # the hub's routes pass: a device's leases and reports, the branch's day (no device
    # token here: refused by the relay, not by Caddy)
    lease = {"sequence": "A", "day": "2026-12-02", "count": 10}
    assert httpx.post(f"{front}/v1/branches/{BRANCH_A}/leases", json=lease).status_code == 401
    assert httpx.post(f"{front}/v1/branches/{BRANCH_A}/tickets", json={}).status_code == 401
    assert httpx.get(f"{front}/v1/branches/{BRANCH_A}/tickets").status_code == 401
    assert httpx.get(f"{front}/v1/branches/{BRANCH_A}/other").status_code == 404
    # the phone pages pass: the relay's own 404 (its headers), its style sheet
    unknown = httpx.get(front + "/t/Zr8Qm2yP1vW7kT4nB6xD0g")
    assert unknown.status_code == 404 and unknown.headers["x-robots-tag"].startswith("noindex")
    assert httpx.get(front + "/phone/phone.css").status_code == 200
    # slow headers are cut by Caddy (2 s here), before the relay ever sees them
    sock = socket.create_connection(("127.0.0.1", int(front.rsplit(":", 1)[1])), timeout=10)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    began = time.monotonic()
    sock.settimeout(0.5)
    closed = False
    while time.monotonic() - began < 8 and not closed:
        try:
            closed = sock.recv(4096) == b""
        except TimeoutError:
            sock.sendall(b"X-a: b\r\n")
        except OSError:
            closed = True
    sock.close()
    assert closed and time.monotonic() - began < 5
    assert screen.nothing_more(0.2)  # A-999 never came
    screen.stop()
