"""Which config changes a running kiosk can take (``systemctl reload kiosk``, the staff
screen's "Reload config"), and which need a restart.

A reload is all or nothing: when any setting that needs a restart changed (the branch, the
kiosk section, numbering, the printer, the API, the window...), nothing of the new file
is applied and staff are told "needs a restart". Otherwise every change applies at once.
Half a reload is what this prevents: a new branch reaching the tickets but not the queue
monitor would show one branch's queues and enqueue customers into another's.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from kiosk.errors import ConfigError

if TYPE_CHECKING:
    from kiosk.config import Config
    from kiosk.core.runtime import Runtime

log = logging.getLogger(__name__)

LIVE: dict[str, frozenset[str] | None] = {
    "queues": None,  # the whole section
    "ticket": frozenset({"header", "footer", "branch_label", "show_branch", "show_datetime",
                         "show_wait", "qr"}),  # not the logo: the printer rasterised it
    "ui": frozenset({"refresh_s", "idle_timeout_s", "admin_pin_hash"}),
}
"""Settings a running kiosk applies at once: a whole section (None), or these keys of it.
Anything else (including sections added later) needs a restart."""


def changed_keys(old: Config, new: Config) -> list[str]:
    """The settings that differ, as dotted keys (``ui.refresh_s``) or section names."""
    out: list[str] = []
    for name in type(new).model_fields:
        a, b = getattr(old, name), getattr(new, name)
        if a == b:
            continue
        fields = getattr(type(b), "model_fields", None)
        if fields is None or type(a) is not type(b):
            out.append(name)
            continue
        out += [f"{name}.{key}" for key in fields if getattr(a, key) != getattr(b, key)]
    return out


def needs_restart(changed: list[str]) -> list[str]:
    """Those of ``changed`` that a running kiosk cannot apply."""
    out = []
    for key in changed:
        section, _, field = key.partition(".")
        if section not in LIVE:
            out.append(key)
            continue
        live = LIVE[section]
        if live is not None and field not in live:
            out.append(key)
    return out


async def reload_from(rt: Runtime, path: str | None) -> str:
    """Reload the config file at ``path`` into ``rt``: all of it, or nothing (a bad file,
    or a change that needs a restart, keeps the old config). Returns what happened, for
    the staff screen and the log."""
    from kiosk.config import load_config
    if not path:
        return "no config file to reload (demo)"
    try:
        config = await asyncio.to_thread(load_config, path)
    except ConfigError as exc:
        log.error("config not reloaded, keeping the old one: %s", exc)
        return f"Not reloaded, old config kept: {exc}"
    return await reload(rt, config)


async def reload(rt: Runtime, config: Config) -> str:
    """Take a new config without dropping a ticket in flight, all or nothing; returns
    what happened."""
    async with rt.service.busy:
        changed = changed_keys(rt.config, config)
        restart = needs_restart(changed)
        if restart:
            message = (f"Not reloaded: {', '.join(restart)} needs a restart "
                       "(systemctl restart kiosk); the old config stays")
            log.error("config %s", message[0].lower() + message[1:])
            return message
        rt.config = config
        rt.service.config = config
        rt.service.branch_label = config.ticket.branch_label or rt.service.branch_label
        rt.printer.ticket_cfg = config.ticket
        rt.monitor.period_s = config.ui.refresh_s
    log.info("config reloaded: %s", ", ".join(changed) or "nothing changed")
    return "Reloaded: " + (", ".join(changed) or "nothing changed")
