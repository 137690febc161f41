"""What ``kiosk check`` finds out about a device, line by line: its config, the API and
its key, the branch and queues, the running kiosk's own word (``status.json``), the
journal and the clock, the relay and its token, the printer, and whether audio guidance
can be heard (a kiosk).

Safe on a running kiosk: the journal is only read, the API only asked. Each line is
``line(ok, what, detail)``; the staff screen's summary is :mod:`kiosk.core.admin`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from kiosk.errors import ApiError, ConfigError, StoreError

if TYPE_CHECKING:
    from kiosk.api import QmsClient
    from kiosk.config import Config
    from kiosk.store import Journal

Line = Callable[[bool, str, str], None]
"""``line(ok, what, detail)``: one line of the report."""


async def check(config: Config, file: str, line: Line) -> bool:
    """Every line for ``config`` (read from ``file``); False when the API key cannot be
    loaded (a config error: said on its line)."""
    from kiosk.config import load_api_key
    from kiosk.printing import TicketPrinter
    from kiosk.tickets.queues import open_monitor, queue_views
    try:
        key = None if config.kiosk.mode == "display" else load_api_key(config, file)
    except ConfigError as exc:
        line(False, "config", str(exc))
        return False
    line(True, "config", f"{file} (kiosk {config.kiosk.id}, {config.kiosk.mode} mode)")
    if key is None:  # a calling screen: the relay and its token are all it needs
        await check_calls(config, file, line)
        return True
    api = open_monitor(config, key).api  # the journal only read: safe on a running kiosk
    printer = TicketPrinter(config.printer, config.ticket, timezone=config.kiosk.timezone)
    try:
        try:
            branches = await api.list_branches()
            line(True, "api", f"{config.api.base_url} answers and accepts the key")
            found = [b for b in branches if b.matches(config.branch)]
            line(bool(found), "branch", f"{found[0].label or found[0].id}" if found
                 else f"{config.branch} is not among the key's {len(branches)} branches")
        except ApiError as exc:
            line(False, "api", f"{config.api.base_url}: {exc}")
        try:
            queues = await api.list_queues(config.branch)
            ids = {q.id for q in queues}
            missing = [q.id for q in config.queues if q.id not in ids]
            views = queue_views(config, queues, config.kiosk.language)
            detail = ", ".join(f"{v.name} ({v.users})" for v in views)
            if missing:
                detail += (f"; not found: {', '.join(missing)} "
                           "(use provider ids, not integrationIds)")
            line(not missing and bool(views), "queues", detail or "none")
        except ApiError as exc:
            line(False, "queues", str(exc))
        from kiosk.core.status import read as read_status
        running, age = read_status(config.kiosk.data_dir)
        if running is not None and age is not None:
            line(age < 60, "running", f"kiosk pid {running.get('pid')}: status written "
                 f"{age:.0f} s ago; API ok: {running['api']['ok']}; printer: "
                 f"{running['printer']['state']}")
            numbers = (running.get("numbers") or {}).get("state")
            if numbers in ("shared", "offline") and "numbers" not in (running.get("faults")
                                                                      or {}):
                line(numbers == "shared", "numbers", f"{numbers} (the running kiosk)")
            for what, problem in (running.get("faults") or {}).items():
                line(False, what, f"the running kiosk says: {problem}")
        for ok, what, detail in await asyncio.to_thread(check_journal, config, api):
            line(ok, what, detail)
        if config.hub is not None:  # the relay's calls, and today's ticket-to-call time
            await check_calls(config, file, line, journal=read_journal(config))
        try:
            printer.ready()
        except ConfigError as exc:
            line(False, "printer", str(exc))
            return True
        status = await asyncio.wrap_future(printer.submit_status())
        line(status.can_print, "printer",
             f"{config.printer.type} ({config.printer.paper_mm} mm, {config.printer.codepage}): "
             f"{status}")
        if config.kiosk.mode == "kiosk":
            line(*check_audio(config))
    finally:
        await api.aclose()
        printer.close()
    return True


def check_audio(config: Config) -> tuple[bool, str, str]:
    """The audio line: guidance off, offered (a sound output plays here), or offered
    nowhere and why (the UI asks the same question of SDL at start)."""
    from kiosk.view.sound import sound_output
    audio = config.ui.audio
    if not audio.enabled:
        return True, "audio", "audio guidance off (ui.audio.enabled: false)"
    why = sound_output(audio.device, quiet=True)
    if why:
        return False, "audio", f"audio guidance is offered nowhere: {why}"
    where = f"ALSA device {audio.device}" if audio.device else "the default output"
    return True, "audio", f"audio guidance offered: sound plays on {where}"


def check_journal(config: Config, api: QmsClient) -> list[tuple[bool, str, str]]:
    """The journal and clock lines, the journal opened read-only."""
    from kiosk.store import Journal
    from kiosk.store.journal import JOURNAL_FILE
    from kiosk.tickets.clock import TicketClock
    from kiosk.tickets.ledger import priority_summary
    clock = TicketClock(server_date=lambda: api.server_date)
    lines: list[tuple[bool, str, str]] = []
    latest: str | None = None
    path = config.kiosk.data_dir / JOURNAL_FILE
    try:
        journal = Journal(config.kiosk.data_dir, kiosk_id=config.kiosk.id,
                          timezone=config.kiosk.timezone, clock=clock, access="read")
    except StoreError as exc:
        if path.exists():
            lines.append((False, "journal", str(exc)))
        else:
            problem = unwritable(config.kiosk.data_dir)
            lines.append((not problem, "journal", problem or str(exc)))
    else:
        try:
            problem = journal.integrity()
            counts = journal.counts()
            priority = journal.priority_counts()
            latest = journal.latest_day()
            unknown = counts.get("unknown", 0) + counts.get("uncertain", 0)
            if problem != "ok":
                lines.append((False, "journal", f"{path} is damaged: {problem}"))
            else:
                lines.append((unknown == 0, "journal", f"{path}: today {counts}" + (
                    f"; {unknown} ticket(s) need a staff check (kiosk tickets)"
                    if unknown else "")))
                if config.priority.enabled or priority:
                    lines.append((True, "priority", "issued today by reason: "
                                  + priority_summary(priority)))
        except StoreError as exc:
            lines.append((False, "journal", str(exc)))
        finally:
            journal.close()
    now = clock().astimezone(ZoneInfo(config.kiosk.timezone))
    note = clock.note()
    if latest is not None and now.date().isoformat() < latest:
        lines.append((False, "clock", f"it is {now:%Y-%m-%d %H:%M} here but the journal has "
                      f"tickets of {latest}: the kiosk issues nothing until the clock is "
                      "right"))
    elif note:
        lines.append((False, "clock", note))
    else:
        seen = "agrees with the API's" if api.server_date else "(the API's not seen)"
        lines.append((True, "clock", f"{now:%Y-%m-%d %H:%M %Z} {seen}"))
    return lines


def read_journal(config: Config) -> Journal | None:
    """The journal opened read-only (None if there is none, or it cannot be read: the
    journal line says why)."""
    from kiosk.store import Journal
    try:
        return Journal(config.kiosk.data_dir, kiosk_id=config.kiosk.id,
                       timezone=config.kiosk.timezone, access="read")
    except StoreError:
        return None


def unwritable(folder: Path) -> str:
    """Why the core could not make its journal in ``folder`` ("" if it could)."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"the data folder {folder} cannot be created: {existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"the data folder {folder} cannot be written ({existing})"
    return ""


async def check_calls(config: Config, config_file: str, line: Line,
                      journal: Journal | None = None) -> None:
    """The lines for the calls: the token file, the relay, the token accepted for this
    branch; with a kiosk's ``journal``, today's time from ticket to call."""
    from kiosk.calls.feed import call_wait_summary, probe_relay
    from kiosk.config import load_display_token
    assert config.hub is not None
    try:
        token = load_display_token(config, config_file)
    except ConfigError as exc:
        line(False, "token", str(exc))
        return
    for ok, what, detail in await probe_relay(config.hub.url, config.branch, token):
        line(ok, what, detail)
    if journal is not None:
        waits = await asyncio.to_thread(journal.call_waits)
        line(True, "calls", f"today: {call_wait_summary(waits)}")
