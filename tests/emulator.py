"""The emupos ESC/POS printer emulator, started for the tests on free loopback ports.

``packaging/dev.sh test`` installs it into ``.tools/emupos`` (it needs Python 3.13);
``KIOSK_EMUPOS`` may point at another ``emupos`` executable.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def emupos_executable() -> Path:
    path = Path(os.environ.get("KIOSK_EMUPOS", REPO / ".tools" / "emupos" / "bin" / "emupos"))
    if not path.exists():
        raise RuntimeError(f"the printer emulator is not installed at {path}: run "
                           "`packaging/dev.sh test`, which installs it")
    return path


class Emulator:
    """One emulated Epson TM-T20III, with its control API."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.api_port = _free_port()
        self.api = f"http://127.0.0.1:{self.api_port}/api/v1"
        self.device = "front"
        config = workdir / "emupos.yaml"
        config.write_text(
            "schema: 1\n"
            f"api: {{ host: 127.0.0.1, port: {self.api_port} }}\n"
            "devices:\n"
            f"  - id: {self.device}\n"
            "    type: printer\n"
            "    profile: epson-tm-t20iii\n"
            "    job_idle_timeout_ms: 300\n"
            f"    receipts_dir: {workdir / 'receipts'}\n"
            "    connections:\n"
            f"      - tcp: {{ host: 127.0.0.1, port: {self.port} }}\n")
        self._log = (workdir / "emupos.log").open("w")
        self._proc = subprocess.Popen([str(emupos_executable()), "run", "--config", str(config)],
                                      stdout=self._log, stderr=subprocess.STDOUT, cwd=workdir)
        self.http = httpx.Client(base_url=self.api, timeout=10)

    def wait_ready(self, timeout: float = 60) -> Emulator:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"emupos exited with {self._proc.returncode}")
            try:
                if self.http.get("/devices").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("emupos did not start")

    def close(self) -> None:
        self.http.close()
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        self._log.close()

    def __enter__(self) -> Emulator:
        return self.wait_ready()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ control API

    def fault(self, name: str, active: bool = True) -> None:
        url = f"/devices/{self.device}/faults/{name}"
        r = self.http.put(url) if active else self.http.delete(url)
        assert r.status_code == 204, r.text

    def clear_faults(self) -> None:
        for name in ("paper-out", "cover-open", "offline", "paper-near-end"):
            self.fault(name, active=False)

    def receipts(self) -> list[dict[str, object]]:
        r = self.http.get(f"/devices/{self.device}/receipts")
        r.raise_for_status()
        return list(r.json())

    def wait_receipts(self, count: int, timeout: float = 10) -> list[dict[str, object]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.receipts()
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"expected {count} receipts, have {len(self.receipts())}")

    def text(self, receipt: str = "latest") -> str:
        return self.http.get(f"/devices/{self.device}/receipts/{receipt}/text").text

    def png(self, receipt: str = "latest") -> bytes:
        return self.http.get(f"/devices/{self.device}/receipts/{receipt}/image").content
