"""From a tap to a ticket: one flow for the home screen, the greeter's tablet and the form.

A tap on a queue that needs a form opens the form (:func:`open_form`) and takes no
number; any other tap asks the core for a ticket (:func:`take_ticket`). A form's send asks
for the ticket with the form (:func:`submit_form`). Either way the answer goes through
:func:`show_answer`: a 428 met anyway opens the queue's form, anything else is shown, and
the paper is waited for within the print deadline (a stuck printer never holds the
screen). A core that does not answer in time (:class:`CoreTimeout`) sends the customer to
staff with their number unknown; any other failure is "out of service", never a crash.

The app provides the screens (``show_result``, ``tap_timed_out``, ``show_out_of_service``,
``show_printed``); nothing here decides what a ticket is: the core does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from kiosk.i18n import t
from kiosk.link.client import CoreTimeout
from kiosk.view.forms import FormAnswer, FormDef, Problem, keep_values
from kiosk.view.outcomes import IssueResult, Outcome

log = logging.getLogger(__name__)

T = TypeVar("T")


def customer_data(app: Any) -> dict[str, Any] | None:
    """What the greeter typed about the customer (``integrationData.customer``), on the
    greeter's tablet; never printed."""
    if app.mode != "tablet":
        return None
    customer = app.screen("home").customer()
    return {"customer": customer} if customer else None


async def ask(app: Any, request: Awaitable[T], *, what: str,
              undo: Callable[[], None] = lambda: None) -> T | None:
    """The core's answer to ``request``, or None once the customer was told why there is
    none (``undo`` runs first: a busy card freed, a form wiped)."""
    try:
        return await request
    except CoreTimeout:  # the core may have issued it: the customer asks staff
        undo()
        app.tap_timed_out()
    except Exception:  # never crash in front of a customer
        log.exception("%s failed", what)
        undo()
        app.show_out_of_service()
    return None


async def show_answer(app: Any, result: IssueResult, *, after_form: bool = False) -> None:
    """Show what a ticket request came to, then wait for the paper (within the print
    deadline) and say whether it came out. A 428 opens the queue's form, unless the form
    was just sent (then the customer is told a few details are needed)."""
    if result.outcome is Outcome.FORM_REQUIRED and not after_form \
            and await open_after_428(app, result):
        app.refresh()
        return
    app.result = result
    app.show_result(result)
    if result.printing is None:
        return
    try:
        async with asyncio.timeout(app.settings.print_deadline_s):
            printed, _ = await asyncio.shield(result.printing)
    except TimeoutError:
        log.error("ticket %s: no word from the printer within %.0f s", result.ticket_id,
                  app.settings.print_deadline_s)
        result.printing.add_done_callback(lambda f: f.cancelled() or f.exception())
        printed = False
    if app.result is result and app.sm.current == "ticket":
        app.show_printed(result, printed)


async def take_ticket(app: Any, queue_id: str) -> None:
    """A tap on a queue without a form (the app shows progress on its card meanwhile)."""

    def free() -> None:
        app.busy_queue = ""

    result = await ask(app, app.core.issue(queue_id, language=app.lang,
                                           integration_data=customer_data(app),
                                           priority=app.priority),
                       what="issuing a ticket", undo=free)
    free()
    if result is not None:
        await show_answer(app, result)


# --------------------------------------------------------------------------- forms


def _queue_name(app: Any, queue_id: str) -> str:
    for v in app.core.views(app.lang):
        if v.id == queue_id:
            return str(v.name)
    return ""


def show_form(app: Any, form: FormDef, *, name: str = "", values: dict[str, Any] | None = None,
              problems: dict[str, Problem] | None = None, note: str = "") -> None:
    s = app.screen("form")
    s.open(form, name or _queue_name(app, form.queue_id), app.lang, values=values,
           problems=problems, note=note)
    app.show_screen("form")
    s.focus_first()
    app.timings["form_on_screen"] = time.perf_counter()


def open_form(app: Any, queue_id: str) -> bool:
    """A tap on a queue: if it needs a form (known ahead of time), the form opens and
    no number is taken yet. False: the queue needs no form, go on as usual."""
    form = app.core.forms.get(queue_id)
    if form is None:
        return False
    app.timings["tap"] = time.perf_counter()
    show_form(app, form)
    return True


async def open_after_428(app: Any, result: IssueResult) -> bool:
    """The API asked for a form the kiosk did not know of: fetch it and open it."""
    try:
        form = await app.core.form(result.queue.id)
    except Exception:
        log.exception("the form of queue %s could not be fetched", result.queue.id)
        return False
    if form is None:
        return False
    show_form(app, form, name=result.queue.name)
    return True


async def submit_form(app: Any, queue_id: str, values: dict[str, Any]) -> None:
    """Send the form (the core checks it again), then show the ticket, or the form again
    with the reasons next to the fields."""
    s = app.screen("form")
    app.timings["form_sent"] = time.perf_counter()
    answer = await ask(app, app.core.submit_form(queue_id, values, language=app.lang,
                                                 integration_data=customer_data(app),
                                                 priority=app.priority),
                       what="sending a form", undo=s.wipe)
    if answer is None:
        return
    if app.sm.current != "form" or s.queue_id != queue_id:
        return  # the customer left meanwhile (idle reset): the answer is for nobody
    if isinstance(answer, FormAnswer):
        assert answer.form is not None
        typed = s.values()
        kept = keep_values(answer.form, {**typed, **_by_name(s.form, typed)})
        changed = any(p.rule == "changed" for p in answer.problems.values())
        note = (t("This form was just updated. Please check it and send it again.", app.lang)
                if changed else t("Please check the marked fields.", app.lang))
        problems = {k: p for k, p in answer.problems.items() if p.rule != "changed"}
        show_form(app, answer.form, name=s.queue_name, values=kept, problems=problems,
                  note=note)
        return
    s.wipe()  # nothing typed stays on screen once the form is done
    await show_answer(app, answer, after_form=True)


def _by_name(form: FormDef | None, values: dict[str, Any]) -> dict[str, Any]:
    """The same values keyed by field name too, so they survive a field whose id changed."""
    if form is None:
        return {}
    return {fd.name: values[fd.id] for fd in form.shown if fd.name and fd.id in values}
