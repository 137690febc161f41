"""The ``kiosk`` command.

::

    kiosk [--config PATH] queues [--json]        the branch's queues, agents, average wait
    kiosk [--config PATH] ticket QUEUE [--json] [--form-json FILE] [--priority [REASON]]
                                                 issue one ticket (and print it); with the
                                                 queue's form filled in from FILE; a
                                                 priority ticket (for REASON)
    kiosk [--config PATH] form QUEUE [--json]    the fields of the queue's form
    kiosk [--config PATH] check                  config, API, branch, queues, printer
    kiosk [--config PATH] print-test [--preview PNG]   a sample ticket, and the printer's state
    kiosk [--config PATH] reprint TICKET_ID      print an issued ticket again
    kiosk [--config PATH] tickets [--date D] [--json]  a day's tickets, from the journal
    kiosk [--config PATH] tickets --branch [--date D] [--json]   every device's tickets
                                                 of the branch, from the hub's ledger
    kiosk [--config PATH] run [--window]         the touch UI, in the config's mode
    kiosk mock-api [--host H] [--port P] [--scenario FILE] [--webhook-url URL
                   --webhook-secret-file FILE --webhook-jwt-key-file FILE]
    kiosk [--config PATH] relay [--host H] [--port P]   the calling relay (kiosk.relay)
    kiosk webhook-template [--json] [--hmac]     the provider webhook template to paste
    kiosk webhook-keys DIR                       a key pair for the template's JWT
    kiosk [--config PATH] forget-replica [ID [--force]]   the hub's replicas (no ID), or
                                                 forget one gone for good (on each replica)
    kiosk device-token FILE                      a new device (or fleet) token, mode 0600
    kiosk demo [--headless] [--mode kiosk|tablet|display]   the UI (or a morning) against
                                                 the mock, its calls through a relay
    kiosk hash-pin                               hash an admin PIN for ui.admin_pin_hash

The maintenance commands are safe on a running kiosk: ``check``, ``queues`` and ``tickets``
open the journal read-only (or not at all), ``ticket`` and ``reprint`` write to it but
never recover it or reserve numbers ahead (only the core, its owner, does:
:mod:`kiosk.store.journal`).

``run`` and ``demo`` start the kiosk's core in a process of its own (``kiosk core``,
:mod:`kiosk.core.main`) and show the UI beside it: see :mod:`kiosk.link.client`.

Exit statuses are :class:`ExitStatus`, mapped from outcomes in one place; no outcome ever
ends in a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from kiosk import __version__
from kiosk.errors import ApiError, ConfigError, KioskError, NotOffered, PrinterError
from kiosk.i18n import LANGUAGES, format_wait
from kiosk.logs import setup_logging
from kiosk.view.outcomes import Outcome

if TYPE_CHECKING:  # loaded by the commands that use them: `kiosk run` must start light
    from kiosk.api import QmsClient
    from kiosk.config import Config
    from kiosk.core.runtime import Runtime

log = logging.getLogger("kiosk")


class ExitStatus(IntEnum):
    """What ``kiosk`` exits with."""

    OK = 0
    FAILED = 1
    USAGE = 2
    """Bad arguments or a bad config."""
    NO_AGENTS = 3
    FORM_REQUIRED = 4
    NOT_FOUND = 5
    UNAUTHORIZED = 6
    REJECTED = 7
    UNAVAILABLE = 8


OUTCOME_STATUS = {
    Outcome.ISSUED: ExitStatus.OK,
    Outcome.NO_AGENTS: ExitStatus.NO_AGENTS,
    Outcome.FORM_REQUIRED: ExitStatus.FORM_REQUIRED,
    Outcome.NOT_FOUND: ExitStatus.NOT_FOUND,
    Outcome.UNAUTHORIZED: ExitStatus.UNAUTHORIZED,
    Outcome.REJECTED: ExitStatus.REJECTED,
    Outcome.UNAVAILABLE: ExitStatus.UNAVAILABLE,
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # exit 2 with one line, like argparse, no usage dump
        self.print_usage(sys.stderr)
        self.exit(ExitStatus.USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="kiosk", description="Touch-screen ticket dispenser on the Videsk QMS API.")
    p.add_argument("--version", action="version", version=f"kiosk {__version__}")
    p.add_argument("--config", metavar="PATH",
                   help="config file (default: $KIOSK_CONFIG, else /etc/kiosk/kiosk.yaml)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           parser_class=_Parser)

    q = sub.add_parser("queues", help="the branch's queues with agents and average wait")
    q.add_argument("--json", action="store_true", help="JSON, as the API gave the queues")
    q.add_argument("--lang", choices=LANGUAGES, help="language of queue names")

    t = sub.add_parser("ticket", help="issue one ticket for QUEUE_ID and print it")
    t.add_argument("queue_id", metavar="QUEUE_ID", help="queue id or integrationId")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.add_argument("--lang", choices=LANGUAGES, help="the customer's language")
    t.add_argument("--no-print", action="store_true", help="do not print the ticket")
    t.add_argument("--priority", metavar="REASON", nargs="?", const="",
                   help="a priority ticket, for REASON (one of priority.reasons' ids; "
                        "alone where priority.ask_reason is false): exit 2 naming a reason "
                        "that is not offered, nothing sent")
    t.add_argument("--form-json", metavar="FILE", type=Path,
                   help="the queue's form as a JSON object {field name or id: value}: "
                        "checked here (exit 2 if a field is refused, nothing sent), sent, "
                        "then the ticket is issued with it")

    f = sub.add_parser("form", help="the fields of QUEUE_ID's form (if it needs one)")
    f.add_argument("queue_id", metavar="QUEUE_ID", help="queue id or integrationId")
    f.add_argument("--json", action="store_true", help="print one JSON object")
    f.add_argument("--lang", choices=LANGUAGES, help="language of the labels")

    sub.add_parser("check", help="check config, API, branch, queues and printer")

    pt = sub.add_parser("print-test", help="print a sample ticket with every element and letter")
    pt.add_argument("--preview", metavar="PNG", type=Path,
                    help="write a PNG preview instead of printing")
    pt.add_argument("--lang", choices=LANGUAGES, help="language of the sample")

    rp = sub.add_parser("reprint", help="print an issued ticket again")
    rp.add_argument("ticket_id", metavar="TICKET_ID")

    tk = sub.add_parser("tickets", help="a day's tickets from the journal (read-only)")
    tk.add_argument("--date", metavar="YYYY-MM-DD", type=_iso_date,
                    help="the branch's day (default: today)")
    tk.add_argument("--json", action="store_true", help="a JSON list, one object a ticket")
    tk.add_argument("--branch", action="store_true",
                    help="every device's tickets of the branch, from the hub (hub: section)")

    m = sub.add_parser("mock-api", help="serve the mock Videsk API")
    m.add_argument("--host", default="127.0.0.1")
    m.add_argument("--port", type=int, default=8080)
    m.add_argument("--scenario", metavar="FILE", help="scenario YAML (default: the built-in one)")
    m.add_argument("--webhook-url", metavar="URL",
                   help="send the QMS ticket webhook here when an agent takes a ticket")
    m.add_argument("--webhook-secret-file", metavar="FILE", type=Path,
                   help="the webhook secret (the relay's relay.webhook_secret_file)")
    m.add_argument("--webhook-jwt-key-file", metavar="FILE", type=Path,
                   help="the provider's secret kioskJwtPrivateKey (from kiosk webhook-keys)")

    rl = sub.add_parser("relay", help="the calling relay: QMS webhook in, calls to screens")
    rl.add_argument("--host", help="listen address (default: relay.listen)")
    rl.add_argument("--port", type=int, help="listen port (default: relay.listen)")

    fr = sub.add_parser("forget-replica", help="list the hub's replicas (relay on Redis), or "
                        "forget one gone for good: its leases wait no more")
    fr.add_argument("id", nargs="?", help="the replica's id (without it: list them)")
    fr.add_argument("--force", action="store_true", help="forget one seen within 26 hours "
                    "too (only if Redis kept its data: its last numbers are on its disk)")

    wt = sub.add_parser("webhook-template", help="print the webhook template for the provider")
    wt.add_argument("--json", action="store_true", help="the template file as JSON")
    wt.add_argument("--hmac", action="store_true",
                    help="the HMAC template (weaker: no time in it) instead of the JWT one")

    wk = sub.add_parser("webhook-keys", help="make the key pair of the template's JWT")
    wk.add_argument("dir", type=Path, help="where to write webhook-jwt.pub (the relay's "
                    "relay.jwt_public_key_file) and webhook-jwt.provider-secret")

    dt = sub.add_parser("device-token", help="write a new device (or fleet) token, mode 0600")
    dt.add_argument("file", type=Path, help="where: a relay.devices[].token_file (copy it "
                    "to the device's hub.token_file) or relay.fleet_token_file")

    r = sub.add_parser("run", help="the touch UI (kiosk or tablet, from the config)")
    r.add_argument("--window", action="store_true", help="a window instead of fullscreen")

    sub.add_parser("hash-pin", help="read an admin PIN, print its hash for ui.admin_pin_hash")

    d = sub.add_parser("demo", help="the kiosk against the built-in mock API")
    d.add_argument("--headless", action="store_true", help="no screen: play a morning in the lobby")
    d.add_argument("--mode", choices=("kiosk", "tablet", "display"), default="kiosk",
                   help="the lobby kiosk (portrait), the greeter's tablet (landscape) or "
                        "the calling screen (a lobby TV, customers arriving by themselves)")
    d.add_argument("--smoke", action="store_true",
                   help="exit once the first frame with live queues is drawn (checks a build)")
    d.add_argument("--data-dir", metavar="DIR", type=Path,
                   help="journal and ticket folder (default: a new temp folder)")
    return p


def _iso_date(value: str) -> str:
    from datetime import date
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def _load(args: argparse.Namespace) -> tuple[Config, str]:
    from kiosk.config import load_config, resolve_path
    path = resolve_path(args.config)
    return load_config(path), str(path)


async def _with_runtime(args: argparse.Namespace,
                        body: Callable[[Runtime], Awaitable[int]]) -> int:
    """A one-shot runtime: its journal opened to write, never to own (see module doc)."""
    from kiosk.config import load_api_key
    from kiosk.core.runtime import open_runtime
    config, file = _load(args)
    rt = open_runtime(config, load_api_key(config, file), check_printer=True, access="write")
    try:
        return await body(rt)
    finally:
        await rt.aclose()


# --------------------------------------------------------------------------- commands


async def cmd_queues(args: argparse.Namespace, out: TextIO) -> int:
    from kiosk.config import load_api_key
    from kiosk.tickets.queues import queue_views
    config, file = _load(args)  # the API only: the journal is not opened
    api = open_monitor_api(config, load_api_key(config, file))
    try:
        lang = args.lang or config.kiosk.language
        try:
            queues = await api.list_queues(config.branch)
        except ApiError as exc:
            print(f"kiosk: cannot list queues: {exc}", file=sys.stderr)
            return ExitStatus.UNAVAILABLE
        views = queue_views(config, queues, lang)
        if args.json:
            shown = {v.id for v in views}
            raw = [q.model_dump(by_alias=True) for q in queues if q.id in shown]
            print(json.dumps(raw, ensure_ascii=False, indent=2), file=out)
            return ExitStatus.OK
        print(f"{'prefix':<7}{'queue':<32}{'agents':>7}  {'avg wait':<10}{'id'}", file=out)
        for v in views:
            print(f"{v.prefix:<7}{v.name[:31]:<32}{v.users:>7}  "
                  f"{format_wait(v.wait_minutes, lang):<10}{v.id}", file=out)
        return ExitStatus.OK
    finally:
        await api.aclose()


def open_monitor_api(config: Config, key: Any) -> QmsClient:
    """The API client as the kiosk makes it (no journal, no printer)."""
    from kiosk.tickets.queues import open_monitor
    return open_monitor(config, key).api


def _read_form_json(path: Path) -> dict[str, Any]:
    """The ``--form-json`` file: one JSON object (a bad one is a usage error)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(str(path), "", f"a readable JSON object ({exc.__class__.__name__})"
                          ) from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "", "a JSON object {field name or id: value}")
    return data


async def cmd_ticket(args: argparse.Namespace, out: TextIO) -> int:
    given = _read_form_json(args.form_json) if args.form_json else None

    async def body(rt: Runtime) -> int:
        if args.priority is not None and not rt.config.priority.offered(args.priority):
            from kiosk.tickets.issuing import not_offered
            raise NotOffered(not_offered(rt.config, args.priority))  # nothing sent yet
        rt.service.branch_label = await rt.branch_label()
        lang = args.lang or rt.config.kiosk.language
        # Learn names, prefixes and waits first; a failure here still lets us try.
        await rt.monitor.poll_once()
        if given is not None:
            from kiosk.tickets.cli_forms import FormNotSent, issue_with_form
            try:
                assert rt.forms is not None
                result = await issue_with_form(rt.service, rt.forms, args.queue_id, given,
                                               lang, print_ticket=not args.no_print,
                                               priority=args.priority)
            except FormNotSent as exc:
                what = "refused by the API" if exc.sent else "not sent"
                for problem in exc.lines:
                    print(f"kiosk: form {what}: {problem}", file=sys.stderr)
                return ExitStatus.REJECTED if exc.sent else ExitStatus.USAGE
        else:
            result = await rt.service.issue(args.queue_id, language=lang,
                                            print_ticket=not args.no_print,
                                            priority=args.priority)
        if args.json:
            print(json.dumps(result.as_json(), ensure_ascii=False), file=out)
        else:
            print(result.message, file=out)
            if result.priority is not None:
                print(f"(priority: {result.priority or 'no reason asked'})", file=out)
            if result.alternatives:
                for q in result.alternatives:
                    print(f"  - {q.name} ({q.users} available): kiosk ticket {q.id}", file=out)
            if result.detail:
                print(f"({result.outcome.value}: {result.detail})", file=sys.stderr)
        return OUTCOME_STATUS[result.outcome]
    return await _with_runtime(args, body)


async def cmd_form(args: argparse.Namespace, out: TextIO) -> int:
    async def body(rt: Runtime) -> int:
        from kiosk.tickets.cli_forms import show_form
        assert rt.forms is not None
        return await show_form(rt.forms, args.queue_id, args.lang or rt.config.kiosk.language,
                               as_json=args.json, out=out)
    return await _with_runtime(args, body)


async def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    from kiosk.core.diagnostics import check
    failed = False

    def line(ok: bool, what: str, detail: str) -> None:
        nonlocal failed
        failed |= not ok
        print(f"{'ok  ' if ok else 'FAIL'} {what:<10} {detail}", file=out)

    try:
        config, file = _load(args)
    except ConfigError as exc:
        line(False, "config", str(exc))
        return ExitStatus.USAGE
    if not await check(config, file, line):
        return ExitStatus.USAGE
    return ExitStatus.FAILED if failed else ExitStatus.OK


async def cmd_tickets(args: argparse.Namespace, out: TextIO) -> int:
    from kiosk.store import Journal
    from kiosk.store.journal import JOURNAL_FILE
    from kiosk.tickets.ledger import record, table
    config, file = _load(args)
    if args.branch:
        return await _branch_tickets(config, file, args, out)
    if not (config.kiosk.data_dir / JOURNAL_FILE).exists():
        records: list[dict[str, Any]] = []
    else:
        journal = Journal(config.kiosk.data_dir, kiosk_id=config.kiosk.id,
                          timezone=config.kiosk.timezone, access="read")
        try:
            records = [record(r, config.kiosk.timezone) for r in journal.rows(args.date)]
        finally:
            journal.close()
    if args.json:
        print(json.dumps(records, ensure_ascii=False, indent=1), file=out)
    else:
        for text in table(records):
            print(text, file=out)
        print(f"{len(records)} ticket(s)", file=out)
    return ExitStatus.OK


async def _branch_tickets(config: Config, file: str, args: argparse.Namespace,
                          out: TextIO) -> int:
    """``kiosk tickets --branch``: the hub's ledger of the branch's day."""
    from kiosk.config import load_hub_token
    from kiosk.hub.client import HubClient
    from kiosk.tickets.ledger import branch_table
    if config.hub is None:
        raise ConfigError(file, "hub", "a hub section (hub.url, hub.token_file) for --branch")
    hub = HubClient.from_config(config, load_hub_token(config, file))
    try:
        ledger = await hub.tickets(args.date.isoformat() if args.date else None)
    finally:
        await hub.aclose()
    if args.json:
        print(json.dumps(ledger, ensure_ascii=False, indent=1), file=out)
    else:
        for text in branch_table(ledger, config.kiosk.timezone):
            print(text, file=out)
    return ExitStatus.OK


async def cmd_print_test(args: argparse.Namespace, out: TextIO) -> int:
    import asyncio

    from kiosk.printing import TicketPrinter
    config, _ = _load(args)
    printer = TicketPrinter(config.printer, config.ticket, timezone=config.kiosk.timezone)
    try:
        printer.ready()
        layout = printer.sample_layout(args.lang or config.kiosk.language)
        if args.preview:
            printer.preview(layout).save(args.preview)
            print(f"preview written to {args.preview}", file=out)
            return ExitStatus.OK
        status = await asyncio.wrap_future(printer.submit_status())
        print(f"printer {config.printer.type}: {status}", file=out)
        try:
            await asyncio.wrap_future(printer.submit(layout, "print-test"))
        except PrinterError as exc:
            print(f"kiosk: the test ticket was not printed: {exc}", file=sys.stderr)
            return ExitStatus.FAILED
        print(f"test ticket printed ({len(printer.render(layout))} bytes)", file=out)
        return ExitStatus.OK
    finally:
        printer.close()


async def cmd_reprint(args: argparse.Namespace, out: TextIO) -> int:
    async def body(rt: Runtime) -> int:
        rt.service.branch_label = await rt.branch_label()
        printed, error = await rt.service.reprint(args.ticket_id)
        if not printed:
            print(f"kiosk: {args.ticket_id} was not printed: {error}", file=sys.stderr)
            return ExitStatus.FAILED
        print(f"{args.ticket_id} printed again", file=out)
        return ExitStatus.OK
    return await _with_runtime(args, body)


def cmd_mock_api(args: argparse.Namespace) -> int:
    from kiosk.mock import default_scenario_path, load_scenario
    from kiosk.mock.server import serve_forever
    scenario = load_scenario(args.scenario or default_scenario_path())
    if args.webhook_url or args.webhook_secret_file or args.webhook_jwt_key_file:
        hook = scenario.webhook.model_copy(update={
            k: v for k, v in (("url", args.webhook_url),
                              ("secret_file", args.webhook_secret_file),
                              ("jwt_key_file", args.webhook_jwt_key_file)) if v})
        scenario = scenario.model_copy(update={"webhook": hook})
    serve_forever(scenario, host=args.host, port=args.port,
                  log_level="info" if args.verbose else "warning")
    return ExitStatus.OK


def cmd_relay(args: argparse.Namespace) -> int:
    import dataclasses

    from kiosk.config import resolve_path
    from kiosk.relay import RelayConfigError, load_settings
    from kiosk.relay.config import check_limits, check_listen
    from kiosk.relay.server import serve_forever
    path = resolve_path(args.config)
    try:
        settings = load_settings(path)
        if args.host or args.port:
            settings = dataclasses.replace(settings, host=args.host or settings.host,
                                           port=args.port or settings.port)
        check_listen(settings, str(path))
        check_limits(settings, str(path))
    except RelayConfigError as exc:
        print(f"kiosk: config error: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    serve_forever(settings, log_level="info" if args.verbose else "warning")
    return ExitStatus.OK


def cmd_forget_replica(args: argparse.Namespace, out: TextIO) -> int:
    """List the replicas this one and Redis know, or forget one gone for good (here and
    in Redis: kiosk.relay.ledger.forget_replica)."""
    import time

    from kiosk.config import resolve_path
    from kiosk.errors import StoreError
    from kiosk.relay import RelayConfigError, load_settings
    from kiosk.relay.ledger import RiskyForget, forget_replica, known_replicas, ledger_path
    path = resolve_path(args.config)
    try:
        settings = load_settings(path)
    except RelayConfigError as exc:
        print(f"kiosk: config error: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    if settings.store == "sqlite":
        print(f"kiosk: {path}: relay.store is sqlite: one relay, no replicas to forget",
              file=sys.stderr)
        return ExitStatus.USAGE
    hub = ledger_path(settings.sqlite_path)
    try:
        if not args.id:
            now = time.time()

            def ago(moment: float | None) -> str:
                if moment is None:
                    return "-"
                gone = max(0.0, now - moment)
                return (f"{gone:.0f} s ago" if gone < 120 else f"{gone / 60:.0f} min ago"
                        if gone < 7200 else f"{gone / 3600:.1f} h ago")
            print(f"{'replica':34s}{'seen here':>14s}{'last check':>14s}", file=out)
            for r in known_replicas(settings.store, hub):
                print(f"{r.id:34s}{ago(r.seen):>14s}{ago(r.checked):>14s}"
                      f"{'  (this one)' if r.me else ''}", file=out)
            return ExitStatus.OK
        known = forget_replica(settings.store, hub, args.id, force=args.force)
    except RiskyForget as exc:
        print(f"kiosk: not forgotten: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    except StoreError as exc:
        print(f"kiosk: {exc}", file=sys.stderr)
        return ExitStatus.FAILED
    if not known:
        print(f"kiosk: no replica {args.id} here nor in Redis (`kiosk forget-replica` lists "
              "them)", file=sys.stderr)
        return ExitStatus.USAGE
    print(f"{args.id}: forgotten here and in Redis; run the same on each other replica",
          file=out)
    return ExitStatus.OK


def cmd_webhook_template(args: argparse.Namespace, out: TextIO) -> int:
    from kiosk.relay.contract import template
    t = template("hmac" if args.hmac else "jwt")
    if args.json:
        print(json.dumps(t, ensure_ascii=False, indent=2), file=out)
        return ExitStatus.OK
    print(f"# {t['_about']}", file=out)
    print(f"Event:   {t['event']}", file=out)
    print(f"Method:  {t['method']}", file=out)
    print(f"URL:     {t['url']}", file=out)
    print(f"Secrets: {', '.join(t['secrets'])}", file=out)
    print("Headers:", file=out)
    for name, value in t["headers"].items():
        print(f"  {name}: {value}", file=out)
    print("Body:", file=out)
    print(t["body"], file=out)
    return ExitStatus.OK


def cmd_webhook_keys(args: argparse.Namespace, out: TextIO) -> int:
    """Write an RS256 key pair: the public key for the relay, the private one as the
    provider's secret ``kioskJwtPrivateKey`` (a JSON string, what the template inserts)."""
    from kiosk.relay.contract import new_key_pair
    folder: Path = args.dir
    public, secret = folder / "webhook-jwt.pub", folder / "webhook-jwt.provider-secret"
    for path in (public, secret):
        if path.exists():
            print(f"kiosk: {path} exists: not replaced (move it aside to make a new pair)",
                  file=sys.stderr)
            return ExitStatus.USAGE
    private_pem, public_pem = new_key_pair()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(private_pem) + "\n")
        public.write_text(public_pem, encoding="ascii")
    except OSError as exc:
        print(f"kiosk: cannot write the keys in {folder}: {exc.strerror}", file=sys.stderr)
        return ExitStatus.USAGE
    print(f"{public}: the relay's relay.jwt_public_key_file", file=out)
    print(f"{secret}: paste its one line as the provider's secret kioskJwtPrivateKey, "
          "then delete this file (the relay never needs it)", file=out)
    return ExitStatus.OK


def cmd_device_token(args: argparse.Namespace, out: TextIO) -> int:
    """Write a fresh token (256 random bits) to a new file only its owner may read; the
    token itself is never printed."""
    import secrets
    path: Path = args.file
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(f"kiosk: {path} exists: not replaced (for a rotation, add a second line to it "
              "by hand; see packaging/README.md)", file=sys.stderr)
        return ExitStatus.USAGE
    except OSError as exc:
        print(f"kiosk: cannot write {path}: {exc.strerror}", file=sys.stderr)
        return ExitStatus.USAGE
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(secrets.token_urlsafe(32) + "\n")
    print(f"{path}: a new token (mode 0600). The relay's token_file and the device's "
          "hub.token_file hold the same one; the relay's user must own its copy.", file=out)
    return ExitStatus.OK


def _has_display() -> bool:
    return sys.platform != "linux" or bool(os.environ.get("DISPLAY")
                                           or os.environ.get("WAYLAND_DISPLAY"))


async def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    def echo(line: str) -> None:
        print(line, file=out, flush=True)

    if args.headless:
        from kiosk.demo.headless import run_headless
        await run_headless(echo, data_dir=args.data_dir)
        return ExitStatus.OK
    return await _run_ui(args, mode=args.mode, window=True, echo=echo)


async def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    setup_logging(args.verbose, service=True, kiosk_id="ui")  # the core logs with its id
    return await _run_ui(args, mode=None, window=args.window or None)


async def _run_ui(args: argparse.Namespace, *, mode: str | None, window: bool | None,
                  echo: Callable[[str], None] | None = None) -> int:
    """The UI here; the core in the process main() started (``args.core``)."""
    from kiosk.link.client import CoreProcess
    from kiosk.ui.run import first_frame_then_stop, run_ui
    status = await run_ui(CoreProcess(*args.core), mode=mode,
                          fullscreen=False if window else None, echo=echo,
                          fit_display=bool(window),
                          on_app=(lambda app: first_frame_then_stop(app, echo or print))
                          if getattr(args, "smoke", False) else None)
    return status


def cmd_hash_pin(out: TextIO) -> int:
    import getpass

    from kiosk.tickets.staff import hash_pin
    pin = getpass.getpass("admin PIN (6-12 digits): ") if sys.stdin.isatty() \
        else sys.stdin.readline().strip()
    try:
        print(hash_pin(pin), file=out)
    except ValueError as exc:
        print(f"kiosk: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    return ExitStatus.OK


# --------------------------------------------------------------------------- main


EXTRAS: dict[str, tuple[str, ...]] = {"relay": ("relay",), "webhook-template": ("relay",),
                                      "webhook-keys": ("relay",),
                                      "forget-replica": ("relay",),
                                      "mock-api": ("mock",), "demo": ("relay", "mock")}
"""The extras (``pip install 'kiosk[relay]'``) a command needs beyond a lobby kiosk's."""
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "relay": ("starlette", "uvicorn", "redis", "prometheus_client", "jwt", "cryptography"),
    "mock": ("starlette", "uvicorn", "pybars", "jwt", "cryptography")}


def missing_extras(command: str) -> list[str]:
    """The extras ``command`` needs that are not installed here (found, not imported:
    the demo's UI process never loads the relay's libraries)."""
    import importlib.util

    def found(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            return False
    return [extra for extra in EXTRAS.get(command, ())
            if not all(found(m) for m in EXTRA_MODULES[extra])]


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    """Run ``kiosk``; returns the exit status."""
    stdout = out or sys.stdout
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    if missing := missing_extras(args.command):
        print(f"kiosk: `kiosk {args.command}` needs what a lobby kiosk does not install: "
              f"pip install 'kiosk[{','.join(missing)}]'", file=sys.stderr)
        return ExitStatus.USAGE
    if args.command == "demo" and not args.headless and not args.smoke \
            and not _has_display():
        print("kiosk: no display here (DISPLAY is not set): playing the headless demo "
              "instead", file=sys.stderr)
        args.headless = True
    if args.command == "run" or (args.command == "demo" and not args.headless):
        # The core process starts first thing, before this one loads asyncio and Kivy:
        # both start-ups then run side by side (see kiosk.link.client).
        from kiosk.link.spawn import start_core
        core = ["-v"] * args.verbose + (["--config", args.config] if args.config else [])
        if args.command == "demo":  # the demo's core: the mock API and a relay beside it
            core = ["-v"] * args.verbose + ["--mode", args.mode] + (
                ["--data-dir", str(args.data_dir)] if args.data_dir else [])
        args.core = start_core(core, entry="demo-core" if args.command == "demo" else "core")
    import asyncio
    try:
        if args.command == "mock-api":
            return cmd_mock_api(args)
        if args.command == "relay":
            return cmd_relay(args)
        if args.command == "webhook-template":
            return cmd_webhook_template(args, stdout)
        if args.command == "webhook-keys":
            return cmd_webhook_keys(args, stdout)
        if args.command == "forget-replica":
            return cmd_forget_replica(args, stdout)
        if args.command == "device-token":
            return cmd_device_token(args, stdout)
        if args.command == "hash-pin":
            return cmd_hash_pin(stdout)
        handlers = {"queues": cmd_queues, "ticket": cmd_ticket, "check": cmd_check,
                    "demo": cmd_demo, "print-test": cmd_print_test, "reprint": cmd_reprint,
                    "run": cmd_run, "tickets": cmd_tickets, "form": cmd_form}
        return asyncio.run(handlers[args.command](args, stdout))
    except ConfigError as exc:
        print(f"kiosk: config error: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    except NotOffered as exc:  # a usage error: nothing was sent
        print(f"kiosk: {exc}", file=sys.stderr)
        return ExitStatus.USAGE
    except KioskError as exc:
        print(f"kiosk: {exc}", file=sys.stderr)
        return ExitStatus.FAILED
    except KeyboardInterrupt:
        return 130
