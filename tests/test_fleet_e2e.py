"""The issue's end-to-end test (issue 19): three devices of two branches, each a process
of its own heartbeating to one hub with the device's own sender, against a real relay:
paper out on one (the ESC/POS emulator), the API down for another, the third killed
(-9). ``/v1/fleet``, ``/metrics`` and the page (headless Chromium) show each within one
heartbeat (offline within three), and all come back when fixed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kiosk.relay import RelayServer
from kiosk.relay.server import free_port
from tests.browser import chromium, console_errors, screenshot
from tests.emulator import Emulator
from tests.fleet_helpers import FLEET_TOKEN, TOKENS, by_id, fleet_settings
from tests.relay_helpers import BRANCH_A, BRANCH_B, write_private
from tests.test_fleet import sample
from tests.test_fleet_page import row_text, sign_in

REPO = Path(__file__).resolve().parent.parent
EVERY_S = 1.5
"""The devices' and the hub's heartbeat interval here (30 s in a branch)."""
SLACK_S = 1.0
"""What a check may take beyond its heartbeat: the device asks its printer (or its API,
0.5 s at most when down) before it sends, and polling the hub takes a moment."""


class Device:
    """``tests/fleet_device.py`` in a process of its own."""

    def __init__(self, url: str, device: str, role: str, folder: Path, **opts: Any) -> None:
        self.token_file = write_private(folder / f"token-{device}", TOKENS[device] + "\n")
        self.args = [sys.executable, "-m", "tests.fleet_device", url, device,
                     str(self.token_file), role, str(EVERY_S)]
        for key, value in opts.items():
            self.args += [f"--{key}", str(value)]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Device:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(self.args, cwd=REPO, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: nothing said to the hub
            self.proc.wait()


class ApiServer:
    """A stand-in for the ticket API the greeter's tablet needs: up or down on its port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc: subprocess.Popen[bytes] | None = None

    def up(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "http.server", str(self.port),
                                      "--bind", "127.0.0.1", "--directory", str(REPO / "docs")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(self.url, timeout=0.5)
                return
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the API stand-in did not start"
                time.sleep(0.05)

    def down(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def within(seconds: float, check: Callable[[], bool], what: str) -> float:
    """How long ``check`` took to hold; fails past ``seconds``."""
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < seconds, f"{what}: not within {seconds:g} s"
        time.sleep(0.05)
    return time.monotonic() - began


def metrics(url: str) -> str:
    return httpx.get(url + "/metrics", timeout=10).text


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    folder = tmp_path / "emupos"
    folder.mkdir()
    with Emulator(folder) as e:
        yield e.wait_ready()


@pytest.mark.slow
def test_three_devices_two_branches_paper_out_api_down_one_killed(
        tmp_path: Path, emu: Emulator) -> None:
    api = ApiServer()  # the API as the greeter's tablet reaches it (its network, here)
    api.up()
    others_api = ApiServer()  # as the others reach it: up throughout
    others_api.up()
    folder = tmp_path / "devices"
    folder.mkdir()
    with RelayServer(fleet_settings(tmp_path, heartbeat_s=EVERY_S)) as relay:
        url = relay.url
        kiosk = Device(url, "lobby-1", "kiosk", folder, printer=emu.port,
                       api=others_api.url).start()
        tablet = Device(url, "greeter", "tablet", folder, api=api.url).start()
        other = Device(url, "b-kiosk", "kiosk", folder, api=others_api.url).start()
        devices = (kiosk, tablet, other)
        try:
            within(20, lambda: all(by_id(url)[d]["state"] == "ok"
                                   for d in ("lobby-1", "greeter", "b-kiosk")),
                   "three devices heard and well")
            with chromium("es") as driver:
                sign_in(driver, url)
                within(10, lambda: "Funciona" in row_text(driver, "lobby-1"), "signed in")
                # -- paper out on the kiosk (branch A), the tablet's API down (branch A),
                #    the kiosk of branch B killed
                emu.fault("paper-out")
                api.down()
                other.kill()
                killed = time.monotonic()
                took = within(EVERY_S + SLACK_S, lambda: (
                    by_id(url)["lobby-1"]["printer"] == "paper_out"), "paper out in /v1/fleet")
                lobby = by_id(url)["lobby-1"]
                assert (lobby["state"], lobby["reason"]) == ("error", "printer")
                text = metrics(url)
                lobby_labels = {"device": "lobby-1", "branch": BRANCH_A}
                assert sample(text, "kiosk_printer_state", state="paper_out",
                              **lobby_labels) == 1
                assert sample(text, "kiosk_device_in_service", **lobby_labels) == 0
                within(EVERY_S + SLACK_S, lambda: by_id(url)["greeter"]["reason"] == "api",
                       "the API down in /v1/fleet")
                assert sample(metrics(url), "kiosk_device_fault", device="greeter",
                              fault="api") == 1
                poll = max(1.0, EVERY_S / 3)
                within(poll + SLACK_S, lambda: "Sin papel" in row_text(driver, "lobby-1"),
                       "paper out on the page")
                within(poll + SLACK_S, lambda: "servicio de turnos no responde" in
                       row_text(driver, "greeter"), "the API down on the page")
                # the killed one: heard of until three heartbeats pass, then offline
                assert by_id(url)["b-kiosk"]["state"] == "ok"
                within(3 * EVERY_S + SLACK_S, lambda: by_id(url)["b-kiosk"]["state"] ==
                       "offline", "the killed device offline")
                assert time.monotonic() - killed > 2 * EVERY_S  # not before its time
                b_labels = {"device": "b-kiosk", "branch": BRANCH_B}
                assert sample(metrics(url), "kiosk_device_up", **b_labels) == 0
                within(poll + SLACK_S, lambda: "Sin conexión" in row_text(driver, "b-kiosk"),
                       "offline on the page")
                devices_json = httpx.get(url + "/v1/fleet", headers={
                    "Authorization": f"Bearer {FLEET_TOKEN}"}).json()["devices"]
                assert [d["state"] for d in devices_json[:3]] == ["offline", "error", "error"]
                screenshot(driver, "fleet-e2e-faults")
                # -- fixed: paper loaded, the API back, the device started again
                emu.clear_faults()
                api.up()
                other.start()
                within(EVERY_S + SLACK_S + 2.0, lambda: all(  # + the process's start-up
                    by_id(url)[d]["state"] == "ok" for d in ("lobby-1", "greeter", "b-kiosk")),
                    "all well again")
                text = metrics(url)
                assert sample(text, "kiosk_printer_state", state="ok", **lobby_labels) == 1
                assert sample(text, "kiosk_device_up", **b_labels) == 1
                assert sample(text, "kiosk_device_fault", device="greeter", fault="api") == 0
                within(poll + SLACK_S, lambda: all(
                    "Funciona" in row_text(driver, d) for d in ("lobby-1", "greeter",
                                                                 "b-kiosk")), "well on the page")
                screenshot(driver, "fleet-e2e-fixed")
                assert not console_errors(driver)
                print(f"paper out reached the hub {took:.2f} s after the fault")
        finally:
            for d in devices:
                d.kill()
            api.down()
            others_api.down()
