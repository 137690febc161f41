"""The headless demo: a short morning in the lobby, against the built-in mock API.

Nothing to configure: it starts the mock API on a free loopback port, a kiosk with a
virtual printer (tickets saved in a folder), and sends customers through the very same
use case a tap uses. Along the way a queue runs out of agents (the customer takes an
offered alternative), one queue has nobody today, one needs a form (the greeter fills
it in), and the API answers 422 once (retried with the same number). A second device,
the greeter's tablet, serves a few customers too: both number through the branch's hub
(the relay), from one sequence, so no two customers of the branch hold one number.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kiosk.calls.feed import CallFeed, call_wait_summary
from kiosk.calls.recorder import CallRecorder
from kiosk.config import Config, config_from_mapping, load_display_token
from kiosk.core.runtime import Runtime, open_runtime
from kiosk.demo.calls import DemoRelay, add_calls, demo_relay, echo_calls, with_webhook
from kiosk.mock import MockServer, ScriptedFault, load_scenario
from kiosk.mock.scenario import MockState, Scenario, default_scenario_path
from kiosk.tickets.formflow import submit_and_issue
from kiosk.view.forms import values_by_id
from kiosk.view.outcomes import IssueResult, Outcome

log = logging.getLogger(__name__)

DEMO_KEY = "mock.kiosk.key"

BRANCH = "652720d479497a1b62df288b"
ATENCION, CUENTAS, CREDITOS, SEGUROS = (
    "652a1ae848880e168884e49b", "652a1ae848880e168884e4a0", "652a1ae848880e168884e4a1",
    "652a1ae848880e168884e4a2")
SPEED = 30.0
"""The mock's clock runs this much faster, so agents free up within the demo."""
ARRIVAL_S = 0.4
"""Real seconds between two customers (12 lobby seconds at SPEED)."""

# (customer, queue, language)
MORNING: list[tuple[str, str, str]] = [
    ("Ana", ATENCION, "es"),
    ("Bruno", CUENTAS, "pt"),
    ("Carla", ATENCION, "es"),     # the API answers 422 once here: retried, same number
    ("Diego", CUENTAS, "es"),      # the only agent is busy with Bruno: 406, takes an alternative
    ("Emma", CREDITOS, "en"),      # nobody in credits today: 406, takes an alternative
    ("Felipe", SEGUROS, "es"),     # needs a form: 428, the greeter fills it in
    ("Gabriela", ATENCION, "es"),
    ("Hugo", ATENCION, "es"),
    ("Inés", CUENTAS, "es"),
    ("João", ATENCION, "pt"),
    ("Karen", ATENCION, "en"),
    ("Luis", CUENTAS, "es"),
]
AT_THE_GREETER = {"Gabriela", "João", "Luis"}
"""Customers the greeter's tablet serves (its numbers come from the same sequences)."""
NUMBERS_WAIT_S = 5.0
"""How long the demo waits for each device's first blocks of numbers from the hub."""


def demo_config(data_dir: Path, api_url: str, relay: DemoRelay | None = None,
                changes: Callable[[dict[str, Any]], None] | None = None) -> Config:
    """``kiosk/data/demo.yaml`` (also ``config/demo.yaml``), pointed at ``api_url`` and
    with its journal and tickets in ``data_dir``; with ``relay``, its calls too;
    ``changes(data)`` edits the parsed YAML before it is validated (tests)."""
    path = Path(__file__).resolve().parent.parent / "data" / "demo.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["api"]["base_url"] = api_url
    data["kiosk"]["data_dir"] = str(data_dir)
    data["printer"]["path"] = str(data_dir / "tickets")
    if relay is not None:
        add_calls(data, relay)
    if changes is not None:
        changes(data)
    return config_from_mapping(data, str(path))


@dataclass
class DemoReport:
    """What the demo did."""

    results: list[IssueResult]
    tickets_dir: Path
    retried_422: int


def _line(who: str, r: IssueResult) -> str:
    if r.outcome is Outcome.ISSUED:
        paper = "printed" if r.printed else f"NOT printed ({r.print_error})"
        what = f"{r.ticket_id} issued, {paper}"
        if r.qr_phone:  # the demo's tickets: open the link in a browser, watch it call
            what += f"; on the phone: {r.qr}"
    else:
        what = r.outcome.value
        if r.alternatives:
            what += " — offered: " + ", ".join(f"{q.name} ({q.users})" for q in r.alternatives)
    return f"{who:<30} {r.queue.name:<24} -> {what}"


async def _attend(rt: Runtime, who: str, queue: str, lang: str, echo: Callable[[str], None],
                  results: list[IssueResult], form: str | None = None, depth: int = 0) -> None:
    """One customer at the kiosk, following the way forward the kiosk offers."""
    r = await rt.service.issue(queue, language=lang, form=form)
    results.append(r)
    echo(_line(who, r))
    if depth >= 2:
        return
    if r.outcome is Outcome.NO_AGENTS and r.alternatives:
        await _attend(rt, "  takes an alternative:", r.alternatives[0].id, lang, echo, results,
                      depth=depth + 1)
    elif r.outcome is Outcome.FORM_REQUIRED and rt.forms is not None:
        # the greeter fills the queue's form in for the customer, as on the tablet
        fd = await rt.forms.fetch(queue)
        name = who.split(maxsplit=1)[0]
        typed = {"firstname": name, "email": f"{name.lower()}@example.com",
                 "insurance": "auto", "age": "40"}
        values = {} if fd is None else values_by_id(
            fd, {k: v for k, v in typed.items() if fd.field(k) is not None})[0]
        answer = await submit_and_issue(rt.service, rt.forms, queue, values, language=lang)
        if isinstance(answer, IssueResult):
            results.append(answer)
            echo(_line("  the greeter fills the form:", answer))
        else:
            echo(f"{'  the form was sent back:':<30} " + "; ".join(
                p.describe() for p in answer.problems.values()))


async def _play(rt: Runtime, state: MockState, echo: Callable[[str], None],
                rng: random.Random, greeter: Runtime | None = None
                ) -> tuple[list[IssueResult], int]:
    results: list[IssueResult] = []
    await rt.monitor.poll_once()
    for i, (who, queue, lang) in enumerate(MORNING):
        if i == 2:
            state.push_faults(ScriptedFault(on="enqueue", answer=422, times=1))
        before = sum(1 for r in state.requests if r[2] == 422)
        if greeter is not None and who in AT_THE_GREETER:
            await greeter.monitor.poll_once()
            await _attend(greeter, f"{who} ({lang}, greeter)", queue, lang, echo, results)
        else:
            await _attend(rt, f"{who} ({lang})", queue, lang, echo, results)
        if sum(1 for r in state.requests if r[2] == 422) > before:
            echo(f"{'':<30} (the API said 422 once; retried with the same number)")
        await asyncio.sleep(ARRIVAL_S * (0.5 + rng.random()))
        await rt.monitor.poll_once()
    return results, sum(1 for r in state.requests if r[2] == 422)


async def _reports_delivered(*devices: Runtime, timeout_s: float = 10.0) -> None:
    """Wait (a little) for every device's outbox to reach the hub."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            while any(rt.journal.outbox_size() for rt in devices):  # noqa: ASYNC110
                await asyncio.sleep(0.1)


async def _a_phone(results: list[IssueResult], echo: Callable[[str], None]) -> None:
    """What the last ticket's phone page says now (its ``/state``), as a phone reads it."""
    ticket = next((r for r in reversed(results) if r.qr_phone and r.qr), None)
    if ticket is None or ticket.qr is None:
        return
    import httpx
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
            state = (await client.get(ticket.qr + "/state")).json()
    except (httpx.HTTPError, ValueError) as exc:
        echo(f"{ticket.ticket_id} on the phone: not reached ({exc})")
        return
    said = state.get("state")
    if said == "called":
        said += f" to {state.get('booth')}"
    elif said == "waiting":
        said += f", {state.get('ahead')} ahead"
    echo(f"{ticket.ticket_id} on the phone ({ticket.qr}): {said}")


async def _branch_ledger(rt: Runtime, echo: Callable[[str], None]) -> int:
    """Print the hub's ledger of the branch's day (``kiosk tickets --branch``); returns
    how many tickets it lists (0 when the hub cannot say)."""
    from kiosk.errors import HubError
    from kiosk.tickets.ledger import branch_table
    if rt.hub is None:
        return 0
    try:
        ledger = await rt.hub.tickets()
    except HubError as exc:
        echo(f"the hub's ledger: not available ({exc})")
        return 0
    echo("")
    for text in branch_table(ledger, rt.config.kiosk.timezone):
        echo(text)
    return len(ledger["tickets"])


async def _last_calls(rt: Runtime, feed: CallFeed, results: list[IssueResult],
                      timeout_s: float = 15.0) -> None:
    """Wait (a little) for the agents to call the last tickets of the morning."""
    issued = {r.ticket_id for r in results if r.outcome is Outcome.ISSUED}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            while not issued <= {c.ticket_id for c in feed.calls}:  # noqa: ASYNC110
                await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def demo_runtime(data_dir: Path | None = None, scenario: Scenario | None = None,
                       relay: DemoRelay | None = None,
                       changes: Callable[[dict[str, Any]], None] | None = None,
                       ) -> AsyncIterator[tuple[Runtime, MockServer]]:
    """The mock API on a free loopback port (its clock sped up) and a kiosk wired to it
    with the demo config (edited by ``changes``, see :func:`demo_config`); ``data_dir``
    defaults to a new temp folder. With ``relay`` (:func:`~kiosk.demo.calls.demo_relay`),
    the mock's agents call each ticket through it and the kiosk's config has its
    ``calls``."""
    folder = data_dir or Path(tempfile.mkdtemp(prefix="kiosk-demo-"))
    scen = scenario or load_scenario(default_scenario_path())
    if relay is not None:
        scen = with_webhook(scen, relay)
    with MockServer(MockState(scen, clock=lambda: time.monotonic() * SPEED)) as mock:
        rt = open_device(demo_config(folder, mock.url, relay, changes))
        rt.service.on_phone_link = lambda number, link: setattr(
            rt, "demo_phone_link", (number, link))
        try:
            rt.service.branch_label = await rt.branch_label()
            yield rt, mock
        finally:
            await rt.aclose()


def open_device(config: Config) -> Runtime:
    """A demo device's runtime; with a hub in ``config``, its client and background work
    (numbers leased ahead, reports) started."""
    hub = None
    if config.hub is not None:
        from kiosk.hub.client import HubClient
        hub = HubClient.from_config(config, load_display_token(config, "(demo)"))
    rt = open_runtime(config, DEMO_KEY, hub=hub)
    rt.start_hub()
    return rt


async def numbers_ready(rt: Runtime, timeout_s: float = NUMBERS_WAIT_S) -> bool:
    """Wait (a little) for the device's first blocks of numbers from the hub."""
    if rt.leases is None:
        return False
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            while not rt.leases.leases or any(  # noqa: ASYNC110
                    rt.journal.lease_left(s) == 0 for s in rt.service.sequences()):
                await asyncio.sleep(0.05)
            return True
    return False


def greeter_config(kiosk: Config, folder: Path, api_url: str, relay: DemoRelay) -> Config:
    """The greeter's tablet of the demo branch: a device of its own (its journal in
    ``folder / "greeter"``), its tickets in the kiosk's folder, the same hub."""
    def greeter(data: dict[str, Any]) -> None:
        data["kiosk"].update(id="demo-greeter", mode="tablet",
                             data_dir=str(folder / "greeter"))
        data["printer"]["path"] = str(kiosk.printer.path)
        add_calls(data, relay, "demo-greeter")
    return demo_config(folder / "greeter", api_url, None, greeter)


async def run_headless(echo: Callable[[str], None] = print, data_dir: Path | None = None,
                       scenario: Scenario | None = None) -> DemoReport:
    """Play the morning; returns what happened. ``data_dir`` defaults to a new temp dir.
    The mock's agents call each ticket through a relay; the calls are printed as they
    come and journalled."""
    folder = data_dir or Path(tempfile.mkdtemp(prefix="kiosk-demo-"))
    with demo_relay(folder, BRANCH, "America/Santiago") as relay:
        async with demo_runtime(folder, scenario, relay) as (rt, mock):
            cfg = rt.config
            echo(f"kiosk demo: mock Videsk API at {mock.url}, branch "
                 f"'{rt.service.branch_label}', tickets saved in {cfg.printer.path}, "
                 f"numbers and calls through the branch's hub at {relay.url}")
            views = await rt.service.fetch_views("es")
            echo("queues: " + "; ".join(f"{v.prefix} {v.name}: {v.users} agents"
                                        for v in views))
            echo("")
            greeter = open_device(greeter_config(cfg, folder, mock.url, relay))
            await numbers_ready(rt)
            await numbers_ready(greeter)
            echo(f"numbers: shared by the kiosk ({cfg.kiosk.id}) and the greeter's tablet "
                 f"(demo-greeter) through the branch's hub, {cfg.numbering.block} at a time")
            feed = CallFeed.from_config(cfg, relay.token)
            feed.subscribe(echo_calls(echo))
            recorder = CallRecorder(rt.journal)
            feed.subscribe(recorder)
            greeter_recorder = CallRecorder(greeter.journal)
            feed.subscribe(greeter_recorder)
            feed.start()
            try:
                results, retried = await _play(rt, mock.state, echo, random.Random(7),
                                               greeter)
                await _last_calls(rt, feed, results)
                await recorder.drain()
                await greeter_recorder.drain()
                waits = [*await asyncio.to_thread(rt.journal.call_waits),
                         *await asyncio.to_thread(greeter.journal.call_waits)]
                if rt.reports is not None and greeter.reports is not None:
                    await _reports_delivered(rt, greeter)
                shown = await _branch_ledger(rt, echo)
                await _a_phone(results, echo)
            finally:
                await feed.aclose()
                await greeter.aclose()
    counts = Counter(r.outcome.value for r in results)
    printed = sum(1 for r in results if r.printed)
    echo("")
    echo(f"summary: {len(results)} attempts — " +
         ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) +
         f"; {printed} printed; 422 retried {retried}x; calls: {call_wait_summary(waits)}; "
         f"the hub's ledger: {shown} tickets; journal {folder / 'journal.sqlite3'}")
    assert cfg.printer.path is not None
    return DemoReport(results, cfg.printer.path, retried)
