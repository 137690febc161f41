"""The staff screen of a kiosk on the branch's hub, in a real window (SDL offscreen): its
numbers shared, then offline once the hub is gone and the block used up (screenshots in
``artifacts/screenshots``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from kiosk.core.server import serve_in_process
from kiosk.demo.calls import demo_relay
from kiosk.demo.headless import BRANCH, demo_runtime
from kiosk.i18n import t

from . import ui_driver as d

pytestmark = pytest.mark.slow

ATENCION = "652a1ae848880e168884e49b"


def numbering(admin: Any, lang: str) -> str | None:
    """The word of the staff screen's numbering row (None: no such row yet)."""
    return next((r.word for r in admin.ids.rows.children
                 if r.title == t("Numbering", lang)), None)


async def test_the_staff_screen_says_numbers_are_offline(tmp_path: Path) -> None:
    from kiosk.ui.run import run_ui
    errors: list[BaseException] = []

    def one_at_a_time(data: dict[str, Any]) -> None:
        data["numbering"]["block"] = 2

    with demo_relay(tmp_path, BRANCH, "America/Santiago") as relay:
        async with demo_runtime(tmp_path, relay=relay, changes=one_at_a_time) as (rt, _):
            core, served = await serve_in_process(rt)

            async def staff_screen(app: Any, fault: str) -> Any:
                app.go_home()
                admin = await d.staff_screen(app)
                await d.until(lambda: numbering(admin, app.lang) == t(fault, app.lang),
                              what=fault)
                return admin

            async def driver(app: Any) -> None:
                try:
                    await d.until(lambda: app.root is not None
                                  and rt.monitor.snapshot.fetched_at is not None,
                                  what="queues")
                    await d.until(lambda: rt.journal.lease_left("A") > 0, what="a block")
                    admin = await staff_screen(app, "Shared with the branch")
                    assert admin.state.numbers == "shared"
                    await d.screenshot("kiosk-admin-hub-shared")
                    await d.tap(admin.ids.back)
                    await asyncio.to_thread(relay.server.stop)  # the hub is gone
                    got = [(await rt.service.issue(ATENCION, print_ticket=False)).ticket_id
                           for _ in range(3)]
                    assert got[-1] == "Ademo-1-001", got
                    admin = await staff_screen(app, "Numbered here for now")
                    row = next(r for r in admin.ids.rows.children
                               if r.title == t("Numbering", app.lang))
                    assert row.advice == t("The central service is away: numbers come from "
                                           "this kiosk until it is back. Nothing to do.",
                                           app.lang)
                    assert rt.journal.outbox_size() == 3  # the reports wait for the hub
                    shown = " ".join(f"{r.title} {r.word} {r.advice} {r.detail}"
                                     for r in admin.ids.rows.children)
                    assert relay.token.get_secret_value() not in shown
                    await d.screenshot("kiosk-admin-hub-offline")
                except BaseException as exc:  # re-raised after the app has stopped
                    errors.append(exc)
                finally:
                    app.stop()
            assert await run_ui(core, mode="kiosk", fullscreen=False, on_app=driver) == 0
            await asyncio.wait_for(served, 10)
    if errors:
        raise errors[0]
