"""A queue named like an ESC/POS program, through the whole kiosk to the emulated printer
(emupos, a TM-T20III with a cash drawer): the drawer stays shut and the paper is cut once,
at the end of the ticket (issue 9, item 5)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kiosk.config import Config
from kiosk.core.runtime import open_runtime
from kiosk.mock import MockServer, MockState, default_scenario_path, load_scenario
from kiosk.mock.hostile import HOSTILE_NAME
from kiosk.view.outcomes import Outcome

from .conftest import CUENTAS, FAST_RETRY, KEY
from .emulator import Emulator

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with Emulator(tmp_path_factory.mktemp("emupos-hostile")) as e:
        yield e


def _drawer(emu: Emulator) -> str:
    state = emu.http.get(f"/devices/{emu.device}").json()["state"]
    return str(state["drawer"])


async def test_a_hostile_queue_name_neither_opens_the_drawer_nor_cuts(
        emu: Emulator, config_factory: Callable[..., Config], tmp_path: Path) -> None:
    scenario = load_scenario(default_scenario_path())
    for q in scenario.branches[0].queues:
        if q.id == CUENTAS:
            q.name = HOSTILE_NAME
    assert _drawer(emu) == "closed"
    before = len(emu.receipts())
    with MockServer(MockState(scenario)) as srv:
        config = config_factory(
            api={"base_url": srv.url, "timeout_s": 5},
            printer={"type": "network", "host": "127.0.0.1", "port": emu.port,
                     "profile": "TM-T20II", "timeout_s": 5})
        rt = open_runtime(config, KEY, retry=FAST_RETRY)
        try:
            await rt.monitor.poll_once()
            r = await rt.service.issue(CUENTAS, language="es")
        finally:
            await rt.aclose()
    assert r.outcome is Outcome.ISSUED and r.printed, r.print_error
    receipts = emu.wait_receipts(before + 1)
    assert len(receipts) == before + 1           # one ticket, one cut: not two pieces
    assert receipts[0]["boundary"] == "cut"
    text = emu.text()
    assert r.ticket_id in text.splitlines()
    assert "Cajap" in text                        # the name printed as text
    assert _drawer(emu) == "closed"               # no ESC p reached the printer
