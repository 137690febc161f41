"""Priority tickets (issue 20), below the screen: the config and its checks, the numbers
(a sequence of their own, from the journal, migrated from schema 1), the use case against
the mock API (``integrationData.priority``, the preferential segment, a 406 there), the
link's check, the CLI (``kiosk ticket --priority``, ``kiosk tickets --json``, ``kiosk
check``), the staff screen's counts, the paper, and a call marked priority."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kiosk.config import Config, config_from_mapping, formats_collide
from kiosk.core.runtime import Runtime, open_runtime
from kiosk.errors import ConfigError, NotOffered
from kiosk.mock import MockServer, MockState, create_app, default_scenario_path, load_scenario
from kiosk.printing import TicketPrinter
from kiosk.printing.model import TicketData
from kiosk.store import Journal
from kiosk.view.calling import call_from_json, call_to_json, parse_call
from kiosk.view.outcomes import Outcome

from .conftest import ATENCION, BRANCH, CREDITOS, CUENTAS, FAST_RETRY, KEY, REPO, WallClock
from .escpos_text import decode

PREFERENTE = "652a1ae848880e168884e4b0"
"""The bank's preferential segment for Atención a clientes (added to the mock below)."""
ON = {"enabled": True}


def scenario_with_preferential(agents: int) -> Any:
    """The default scenario plus a preferential segment in the branch."""
    scen = load_scenario(default_scenario_path())
    branch = scen.branches[0]
    pref = branch.queues[0].model_copy(update={
        "id": PREFERENTE, "integration_id": "preferente", "name": "Atención preferente",
        "agents": agents, "avg_wait": 1.0, "form": None, "form_next": None})
    return scen.model_copy(update={"branches": [
        branch.model_copy(update={"queues": [*branch.queues, pref]}), *scen.branches[1:]]})


def config_with(config_factory: Callable[..., Config], priority: dict[str, Any] | None = None,
                **kw: Any) -> Config:
    return config_factory(priority=priority or ON, **kw)


@pytest.fixture
async def open_rt(state: MockState, utc_clock: WallClock
                  ) -> AsyncIterator[Callable[[Config, MockState | None], Any]]:
    """Open a runtime for a config, against ``state`` (or another mock state)."""
    made: list[Runtime] = []

    async def opener(config: Config, other: MockState | None = None) -> Runtime:
        rt = open_runtime(config, KEY, transport=httpx.ASGITransport(
            app=create_app(other or state)), retry=FAST_RETRY, clock=utc_clock)
        made.append(rt)
        await rt.monitor.poll_once()
        return rt
    yield opener
    for rt in made:
        await rt.aclose()


# --------------------------------------------------------------------------- config


def test_priority_is_off_by_default_with_the_four_reasons_ready(
        config_factory: Callable[..., Config]) -> None:
    cfg = config_factory()
    assert cfg.priority.enabled is False and cfg.priority.ask_reason is True
    assert [r.id for r in cfg.priority.reasons] == ["senior", "pregnant", "disability",
                                                     "infant"]
    for reason in cfg.priority.reasons:
        assert set(reason.texts) == {"es", "en", "pt"}
    assert cfg.priority.text("senior", "es") == "Persona mayor (60 años o más)"
    assert cfg.numbering.priority_format == "{prefix}P-{seq:03d}"
    assert not cfg.priority.offered("senior")  # off: nothing is offered


@pytest.mark.parametrize(("priority", "numbering", "key", "expected"), [
    ({"enabled": True, "reasons": [{"id": "Senior!", "texts": {"es": "x", "en": "x",
                                                               "pt": "x"}}]},
     None, "priority.reasons[0].id", "lower-case letters"),
    ({"enabled": True, "reasons": [{"id": "senior", "texts": {"es": "Mayor"}}]},
     None, "priority.reasons[0].texts", "missing: en, pt"),
    ({"enabled": True, "reasons": [{"id": "a", "texts": {"es": "x", "en": "x", "pt": "x"}},
                                   {"id": "a", "texts": {"es": "y", "en": "y", "pt": "y"}}]},
     None, "priority", "different ids"),
    ({"enabled": True, "reasons": []}, None, "priority", "at least one priority reason"),
    (ON, {"priority_format": "{prefix}-{seq:03d}"}, "numbering.priority_format",
     "'A-000' could be a regular and a priority number"),
    (ON, {"format": "{prefix}{seq:03d}", "priority_format": "{prefix}9{seq:02d}"},
     "numbering.priority_format", "'A900'"),
])
def test_a_bad_priority_config_stops_start_up_naming_the_key(
        tmp_path: Path, priority: dict[str, Any], numbering: dict[str, str] | None, key: str,
        expected: str) -> None:
    data: dict[str, Any] = {"branch": BRANCH, "kiosk": {"id": "k1", "data_dir": str(tmp_path)},
                            "queues": [{"id": ATENCION, "prefix": "A"}], "priority": priority}
    if numbering:
        data["numbering"] = numbering
    with pytest.raises(ConfigError) as info:
        config_from_mapping(data, "kiosk.yaml")
    assert info.value.key == key
    assert expected in info.value.expected


def test_formats_that_cannot_collide_are_accepted() -> None:
    """The check refuses what could collide, never what cannot (each a real config)."""
    assert formats_collide("{prefix}-{seq:03d}", "{prefix}P-{seq:03d}", ["A", "B", None],
                           "k") is None
    assert formats_collide("{prefix}G-{seq:03d}", "{prefix}GP-{seq:03d}", ["A", None],
                           "greeter-1") is None
    assert formats_collide("{prefix}{kiosk}-{seq:03d}", "{prefix}P{kiosk}-{seq:03d}",
                           ["A", None], "2") is None
    # ...and finds what could, across two queues' prefixes too
    assert formats_collide("{prefix}{seq:03d}", "{prefix}P{seq:03d}", ["A", "AP"],
                           "k") == "AP000"
    assert formats_collide("{prefix}-{seq:03d}", "{prefix}P-{seq:03d}", ["A", "AP"],
                           "k") == "AP-000"


def test_the_shipped_examples_offer_priority_sensibly() -> None:
    from kiosk.config import load_config
    demo = load_config(REPO / "config" / "demo.yaml")
    assert demo.priority.enabled  # the demo shows it
    tablet = load_config(REPO / "config" / "tablet.yaml")
    lobby = load_config(REPO / "config" / "kiosk.yaml")
    # the greeter's and the lobby's priority numbers differ too
    assert formats_collide(lobby.numbering.priority_format,
                           tablet.numbering.priority_format, ["A", None], "x") is None


# --------------------------------------------------------------------------- journal


def test_priority_numbers_have_their_own_sequence_per_prefix(tmp_path: Path) -> None:
    j = Journal(tmp_path, kiosk_id="k1", timezone="America/Santiago")

    def take(prefix: str, priority: str | None = None) -> str:
        fmt = "{prefix}-{seq:03d}" if priority is None else "{prefix}P-{seq:03d}"
        return j.reserve(queue_id="q", queue_name="Q", prefix=prefix, fmt=fmt,
                         priority=priority).ticket_id
    assert [take("A"), take("A"), take("A", "senior"), take("A"), take("A", ""),
            take("B", "infant")] == ["A-001", "A-002", "AP-001", "A-003", "AP-002", "BP-001"]
    assert j.find("AP-001").priority == "senior"  # type: ignore[union-attr]
    assert j.find("AP-002").priority == ""  # type: ignore[union-attr]  # no reason asked
    assert j.find("A-003").priority is None  # type: ignore[union-attr]
    for row in j.rows():
        j.finish(row.row_id, "issued")
    assert j.priority_counts() == {"": 1, "infant": 1, "senior": 1}
    j.close()


SCHEMA_1 = """
CREATE TABLE counters (day TEXT NOT NULL, prefix TEXT NOT NULL, seq INTEGER NOT NULL,
                       PRIMARY KEY (day, prefix));
CREATE TABLE tickets (
    row_id INTEGER PRIMARY KEY AUTOINCREMENT, day TEXT NOT NULL, ticket_id TEXT NOT NULL,
    seq INTEGER NOT NULL, queue_id TEXT NOT NULL, queue_name TEXT NOT NULL DEFAULT '',
    kiosk_id TEXT NOT NULL, language TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL DEFAULT 'pending', videsk_id TEXT, wait_min REAL,
    printed INTEGER NOT NULL DEFAULT 0, print_error TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL, answered_at TEXT,
    updated_at TEXT NOT NULL, UNIQUE (day, ticket_id));
CREATE INDEX tickets_by_outcome ON tickets (day, outcome);
CREATE TABLE calls (day TEXT NOT NULL, ticket_id TEXT NOT NULL, poc TEXT NOT NULL,
                    called_at TEXT NOT NULL, PRIMARY KEY (day, ticket_id, called_at, poc));
INSERT INTO counters VALUES ('2026-11-27', 'A', 7);
INSERT INTO tickets (day, ticket_id, seq, queue_id, queue_name, kiosk_id, language, outcome,
                     printed, created_at, updated_at)
VALUES ('2026-11-27', 'A-007', 7, 'q', 'Atención', 'k1', 'es', 'issued', 1,
        '2026-11-27T15:00:00.000+00:00', '2026-11-27T15:00:00.000+00:00');
PRAGMA user_version=1;
"""


def schema_1_journal(folder: Path) -> Path:
    """A journal as the previous kiosk (schema 1) left it: a real SQLite file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "journal.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_1)
    db.close()
    return path


def test_a_journal_of_schema_1_is_read_as_it_is_and_migrated_when_written(
        tmp_path: Path, utc_clock: WallClock) -> None:
    path = schema_1_journal(tmp_path)
    ro = Journal(tmp_path, kiosk_id="k1", timezone="America/Santiago", clock=utc_clock,
                 access="read")  # `kiosk tickets` on a kiosk not yet restarted
    assert [(r.ticket_id, r.priority) for r in ro.rows()] == [("A-007", None)]
    assert ro.priority_counts() == {}
    ro.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 1  # untouched

    j = Journal(tmp_path, kiosk_id="k1", timezone="America/Santiago", clock=utc_clock)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 3  # schema 3: numbering, leases
    assert "priority" in {r[1] for r in db.execute("PRAGMA table_info(tickets)")}
    db.close()
    assert j.find("A-007").priority is None  # type: ignore[union-attr]  # the old ticket
    nxt = j.reserve(queue_id="q", queue_name="Q", prefix="A", fmt="{prefix}-{seq:03d}")
    pri = j.reserve(queue_id="q", queue_name="Q", prefix="A", fmt="{prefix}P-{seq:03d}",
                    priority="senior")
    assert (nxt.ticket_id, pri.ticket_id) == ("A-008", "AP-001")  # the count goes on
    j.close()


# --------------------------------------------------------------------------- the use case


async def test_a_priority_ticket_is_numbered_apart_and_says_why_in_integration_data(
        config_factory: Callable[..., Config], open_rt: Any, state: MockState) -> None:
    rt = await open_rt(config_with(config_factory))
    regular = await rt.service.issue(ATENCION, language="es")
    r = await rt.service.issue(ATENCION, language="en", priority="senior",
                               integration_data={"customer": "Ana"})
    assert (regular.ticket_id, r.ticket_id) == ("A-001", "AP-001")
    assert r.outcome is Outcome.ISSUED and r.priority == "senior"
    sent = state.tickets[-1]
    assert sent.queue == ATENCION and sent.ticket_id == "AP-001"
    assert sent.integration_data["priority"] == "senior"  # the reason's id, never more
    assert sent.integration_data["customer"] == "Ana"
    assert "priority" not in state.tickets[0].integration_data  # the regular one
    assert r.as_json()["priority"] == "senior"
    row = rt.journal.find("AP-001")
    assert row is not None and row.priority == "senior" and row.outcome == "issued"
    paper, facts = decode(rt.config.printer.path.read_bytes())  # type: ignore[union-attr]
    assert "AP-001" in paper and facts["inverted"] == ["Priority service"]


async def test_reason_less_mode_sends_true(config_factory: Callable[..., Config],
                                           open_rt: Any, state: MockState) -> None:
    rt = await open_rt(config_with(config_factory, {"enabled": True, "ask_reason": False}))
    r = await rt.service.issue(CUENTAS, priority="")
    assert r.ticket_id == "BP-001" and state.tickets[-1].integration_data["priority"] is True
    assert r.as_json()["priority"] is True
    with pytest.raises(NotOffered, match="'senior' is not offered: this kiosk asks no "
                                         "reason"):
        await rt.service.issue(CUENTAS, priority="senior")


async def test_a_reason_not_offered_sends_nothing(config_factory: Callable[..., Config],
                                                  open_rt: Any, state: MockState) -> None:
    rt = await open_rt(config_with(config_factory))
    with pytest.raises(NotOffered, match=r"'vip' is not offered \(offered: senior, "
                                         r"pregnant, disability, infant\)"):
        await rt.service.issue(ATENCION, priority="vip")
    off = await open_rt(config_factory(kiosk={"id": "k2", "data_dir": str(
        rt.config.kiosk.data_dir.parent / "other"), "timezone": "America/Santiago"}))
    with pytest.raises(NotOffered, match=r"priority\.enabled is false"):
        await off.service.issue(ATENCION, priority="senior")
    assert state.tickets == [] and rt.journal.rows() == []


async def test_the_preferential_segment_takes_the_ticket_and_its_406_offers_the_rest(
        config_factory: Callable[..., Config], open_rt: Any, utc_clock: WallClock) -> None:
    mock = MockState(scenario_with_preferential(agents=1))
    queues = [{"id": ATENCION, "prefix": "A", "priority_queue": PREFERENTE},
              {"id": CUENTAS, "prefix": "B"}, {"id": CREDITOS, "prefix": "C"}]
    rt = await open_rt(config_with(config_factory, queues=queues), mock)
    views = {v.id: v for v in rt.service.views("es", priority=True)}
    assert PREFERENTE not in views  # shown as the queue it serves...
    assert views[ATENCION].users == 1  # ...with the preferential segment's agents
    assert {v.id: v.users for v in rt.service.views("es")}[ATENCION] == 3

    r = await rt.service.issue(ATENCION, priority="pregnant")
    assert r.outcome is Outcome.ISSUED and r.ticket_id == "AP-001"
    assert mock.tickets[-1].queue == PREFERENTE  # the bank's preferential segment
    assert mock.tickets[-1].integration_data["priority"] == "pregnant"
    assert rt.journal.find("AP-001").queue_id == PREFERENTE  # type: ignore[union-attr]
    assert r.queue.id == ATENCION and r.queue.name == "Atención a clientes"

    mock.set_agents(PREFERENTE, 0)  # nobody on the preferential segment now
    await rt.monitor.poll_once()
    again = await rt.service.issue(ATENCION, priority="pregnant")
    assert again.outcome is Outcome.NO_AGENTS and again.ticket_id == "AP-002"
    assert mock.enqueues[-1].queue == PREFERENTE and mock.enqueues[-1].answer == 406
    offered = {v.id for v in again.alternatives}
    assert offered == {CUENTAS}  # as today: the queues with agents now (Créditos has none)
    after = await rt.service.issue(CUENTAS, priority="pregnant")  # the customer takes one
    assert after.ticket_id == "BP-001" and mock.tickets[-1].queue == CUENTAS


async def test_the_ui_cannot_forge_priority_through_integration_data() -> None:
    from kiosk.tickets.staff import check_request
    _, _, data = check_request({"q"}, "q", "es", {"priority": "vip", "customer": "Ana"})
    assert data == {"customer": "Ana"}


async def test_the_link_refuses_a_reason_not_offered(config_factory: Callable[..., Config],
                                                     open_rt: Any, state: MockState) -> None:
    from kiosk.core.server import serve_in_process
    from kiosk.link.client import CoreUnavailable
    rt = await open_rt(config_with(config_factory))
    core, served = await serve_in_process(rt)
    try:
        settings = await core.ready()
        assert settings.priority and settings.priority_ask
        assert list(settings.priority_reasons) == ["senior", "pregnant", "disability",
                                                   "infant"]
        assert settings.priority_reasons["infant"]["pt"] == "Com criança de colo"
        with pytest.raises(CoreUnavailable, match="not allowed: priority reason 'vip'"):
            await core.issue(ATENCION, language="es", priority="vip")
        with pytest.raises(CoreUnavailable, match="not allowed"):
            await core.issue(ATENCION, language="es", priority="")  # reasons are asked here
        assert state.tickets == []
        r = await core.issue(ATENCION, language="es", priority="disability")
        assert (r.ticket_id, r.priority) == ("AP-001", "disability")
        await r.printing  # type: ignore[misc]
        await core.polled()
        assert core.views("es", priority=True)  # the priority cards came over the link
    finally:
        await core.aclose()
        await asyncio.wait_for(served, 10)


async def test_the_staff_screen_counts_priority_tickets_by_reason(
        config_factory: Callable[..., Config], open_rt: Any) -> None:
    from kiosk.core.admin import summary
    from kiosk.printing.status import PrinterStatus, State
    rt = await open_rt(config_with(config_factory))
    for reason in ("senior", "senior", "infant"):
        await rt.service.issue(ATENCION, priority=reason)
    await rt.service.issue(CREDITOS, priority="senior")  # 406: not counted
    text = summary(rt, PrinterStatus(State.READY))
    assert "Priority today: infant 1, senior 2" in text


# --------------------------------------------------------------------------- the CLI


def kiosk(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiosk", *args], capture_output=True,
                          text=True, env=env, timeout=60, cwd=REPO)


@pytest.fixture
def cfg_file(tmp_path: Path, server: MockServer, config_factory: Callable[..., Config]) -> Path:
    cfg = config_with(config_factory, api={"base_url": server.url, "timeout_s": 2})
    path = tmp_path / "kiosk.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    return path


def test_kiosk_ticket_priority_and_the_days_tickets(cfg_file: Path, cli_env: dict[str, str],
                                                    state: MockState) -> None:
    p = kiosk("--config", str(cfg_file), "ticket", ATENCION, "--priority", "vip", "--json",
              env=cli_env)
    assert p.returncode == 2 and "'vip' is not offered" in p.stderr and p.stdout == ""
    assert state.enqueues == []  # nothing sent
    p = kiosk("--config", str(cfg_file), "ticket", ATENCION, "--priority", "senior", "--json",
              env=cli_env)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert (out["ticketId"], out["priority"]) == ("AP-001", "senior")
    assert state.tickets[-1].integration_data["priority"] == "senior"
    assert kiosk("--config", str(cfg_file), "ticket", ATENCION, "--json",
                 env=cli_env).returncode == 0
    p = kiosk("--config", str(cfg_file), "tickets", "--json", env=cli_env)
    rows = json.loads(p.stdout)
    assert [(r["ticketId"], r["priority"]) for r in rows] == [("AP-001", "senior"),
                                                               ("A-001", None)]
    table = kiosk("--config", str(cfg_file), "tickets", env=cli_env).stdout
    assert "senior" in table.splitlines()[1]
    check = kiosk("--config", str(cfg_file), "check", env=cli_env).stdout
    assert "ok   priority   issued today by reason: senior 1" in check


def test_kiosk_ticket_priority_alone_where_no_reason_is_asked(
        tmp_path: Path, server: MockServer, config_factory: Callable[..., Config],
        cli_env: dict[str, str], state: MockState) -> None:
    cfg = config_with(config_factory, {"enabled": True, "ask_reason": False},
                      api={"base_url": server.url, "timeout_s": 2})
    path = tmp_path / "kiosk.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    p = kiosk("--config", str(path), "ticket", CUENTAS, "--priority", "--json", env=cli_env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["priority"] is True
    assert state.tickets[-1].integration_data["priority"] is True
    p = kiosk("--config", str(path), "ticket", CUENTAS, "--priority", "senior", env=cli_env)
    assert p.returncode == 2 and "'senior' is not offered" in p.stderr


# --------------------------------------------------------------------------- paper, calls


@pytest.mark.parametrize(("lang", "mark", "arrival"), [
    ("es", "Atención preferente", "Llegada 12:05 · 27 nov 2026"),
    ("en", "Priority service", "Arrival 12:05 · 27 Nov 2026"),
    ("pt", "Atendimento preferencial", "Chegada 12:05 · 27 nov 2026"),
])
def test_the_paper_says_priority_and_the_arrival_time(lang: str, mark: str,
                                                      arrival: str) -> None:
    from kiosk.config import PrinterConfig, TicketConfig
    printer = TicketPrinter(PrinterConfig(type="none", profile="TM-T20II"), TicketConfig(),
                            timezone="America/Santiago")
    when = datetime(2026, 11, 27, 15, 5, tzinfo=UTC)  # 12:05 in Santiago
    data = TicketData(ticket_id="AP-007", queue_id="q", queue_name="Q", issued_at=when,
                      language=lang, priority=True)
    lines, facts = decode(printer.render(data))
    assert facts["inverted"] == [mark]  # white on black, under the number
    assert lines.index(mark) == lines.index("AP-007") + 1
    assert arrival in lines  # "lei da fila": when the customer arrived
    regular, facts = decode(printer.render(TicketData(
        ticket_id="A-007", queue_id="q", queue_name="Q", issued_at=when, language=lang)))
    assert mark not in regular and facts["inverted"] == [] and arrival in regular


def test_a_call_carries_its_priority_to_the_screen() -> None:
    body = {"ticketId": "AP-007", "poc": {"label": "Cabina 3"}, "queue": {"name": "Q"},
            "at": "2026-12-02T10:00:00Z", "lang": "es"}
    assert parse_call("1", json.dumps({**body, "priority": "senior"})).priority == "senior"  # type: ignore[union-attr]
    assert parse_call("1", json.dumps({**body, "priority": True})).priority == "yes"  # type: ignore[union-attr]
    assert parse_call("1", json.dumps(body)).priority == ""  # type: ignore[union-attr]
    for odd in (1, {"a": 1}, ["x"], False, None):
        assert parse_call("1", json.dumps({**body, "priority": odd})).priority == ""  # type: ignore[union-attr]
    for odd in ("senior\u202e", "x" * 25, "Senior", "a b"):  # not a reason id: no mark
        assert parse_call("1", json.dumps({**body, "priority": odd})).priority == ""  # type: ignore[union-attr]
    call = parse_call("1", json.dumps({**body, "priority": "infant"}))
    assert call is not None and call_from_json(call_to_json(call)) == call
