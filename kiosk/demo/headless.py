"""The headless demo: a short morning in the lobby, against the built-in mock API.

Nothing to configure: it starts the mock API on a free loopback port, a kiosk with a
virtual printer (tickets saved in a folder), and sends customers through the very same
use case a tap uses. Along the way a queue runs out of agents (the customer takes an
offered alternative), one queue has nobody today, one needs a form (the greeter fills
it in), and the API answers 422 once (retried with the same number).
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
from kiosk.config import Config, config_from_mapping
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
                rng: random.Random) -> tuple[list[IssueResult], int]:
    results: list[IssueResult] = []
    await rt.monitor.poll_once()
    for i, (who, queue, lang) in enumerate(MORNING):
        if i == 2:
            state.push_faults(ScriptedFault(on="enqueue", answer=422, times=1))
        before = sum(1 for r in state.requests if r[2] == 422)
        await _attend(rt, f"{who} ({lang})", queue, lang, echo, results)
        if sum(1 for r in state.requests if r[2] == 422) > before:
            echo(f"{'':<30} (the API said 422 once; retried with the same number)")
        await asyncio.sleep(ARRIVAL_S * (0.5 + rng.random()))
        await rt.monitor.poll_once()
    return results, sum(1 for r in state.requests if r[2] == 422)


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
        rt = open_runtime(demo_config(folder, mock.url, relay, changes), DEMO_KEY)
        try:
            rt.service.branch_label = await rt.branch_label()
            yield rt, mock
        finally:
            await rt.aclose()


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
                 f"calls through the relay at {relay.url}")
            views = await rt.service.fetch_views("es")
            echo("queues: " + "; ".join(f"{v.prefix} {v.name}: {v.users} agents"
                                        for v in views))
            echo("")
            feed = CallFeed.from_config(cfg, relay.token)
            feed.subscribe(echo_calls(echo))
            recorder = CallRecorder(rt.journal)
            feed.subscribe(recorder)
            feed.start()
            try:
                results, retried = await _play(rt, mock.state, echo, random.Random(7))
                await _last_calls(rt, feed, results)
                await recorder.drain()
                waits = await asyncio.to_thread(rt.journal.call_waits)
            finally:
                await feed.aclose()
    counts = Counter(r.outcome.value for r in results)
    printed = sum(1 for r in results if r.printed)
    echo("")
    echo(f"summary: {len(results)} attempts — " +
         ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) +
         f"; {printed} printed; 422 retried {retried}x; calls: {call_wait_summary(waits)}; "
         f"journal {folder / 'journal.sqlite3'}")
    assert cfg.printer.path is not None
    return DemoReport(results, cfg.printer.path, retried)
