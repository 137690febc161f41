"""Forms in the core: which queues need one (learned ahead of time, kept fresh), and the
use case "send the customer's form, then give them a number".

:class:`FormCatalog` asks ``GET /forms/:queue?version=base`` for every queue of the branch
once the first queues are known, again every :data:`REFRESH_S` seconds, and at once for a
queue that answered 428 or whose form the provider refused. A 404 means "no form"; any
other failure keeps what was known (a card is never unmarked because the network
blinked). Listeners hear every change (the link sends the forms to the UI).

:func:`submit_and_issue` checks the values again (:mod:`kiosk.service.forms`, the same
rules the UI checks as the customer types), sends them (``POST /forms``, type
``pre-call``), then issues the ticket with the submission's id in ``form``. The values go
to Videsk and nowhere else: not to the log (only field ids and rule names are logged),
not to the journal, not to the ticket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from kiosk.errors import ApiError, BadRequest, NotFound
from kiosk.service.forms import (
    FormAnswer,
    FormDef,
    check_form,
    problem_from_api,
    submission_values,
)
from kiosk.service.messages import customer_message
from kiosk.service.outcomes import IssueResult, Outcome
from kiosk.service.tasks import cancel

if TYPE_CHECKING:
    from kiosk.api import QmsClient
    from kiosk.service.issuing import TicketService

log = logging.getLogger(__name__)

REFRESH_S = 60.0
"""How often every queue's form is asked for again (forms change rarely)."""
FORM_TYPE: Literal["pre-call"] = "pre-call"


class FormCatalog:
    """The forms of the branch's queues: ``forms[queue_id]`` is a :class:`FormDef`, or
    None when the queue needs none; a queue not in it has not been asked yet."""

    def __init__(self, api: QmsClient, queue_ids: Callable[[], list[str]], *,
                 refresh_s: float = REFRESH_S) -> None:
        self.api = api
        self._queue_ids = queue_ids
        self.refresh_s = refresh_s
        self.forms: dict[str, FormDef | None] = {}
        self._listeners: list[Callable[[dict[str, FormDef | None]], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.sent = 0
        """Forms the provider accepted since start (counts for staff, never values)."""
        self.refused = 0
        """Forms refused: locally before sending, or by the provider's 400."""

    def subscribe(self, listener: Callable[[dict[str, FormDef | None]], None]) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[dict[str, FormDef | None]], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def needs(self, queue_id: str) -> bool:
        """Whether the queue is known to need a form."""
        return self.forms.get(queue_id) is not None

    def _publish(self) -> None:
        for listener in list(self._listeners):
            try:
                listener(dict(self.forms))
            except Exception:
                log.exception("forms listener failed")

    async def fetch(self, queue_id: str) -> FormDef | None:
        """Ask the API for the queue's form now; None if it has none. Raises ApiError
        when the API cannot say (what was known is kept)."""
        try:
            form = await self.api.get_form(queue_id)
        except NotFound:
            fd = None
        else:
            fd = FormDef.from_api(queue_id, form.model_dump(by_alias=True))
        before = self.forms.get(queue_id, ...)
        self.forms[queue_id] = fd
        if before != fd:
            if fd is not None:
                log.info("queue %s needs a form (%d fields, version %s)", queue_id,
                         len(fd.shown), fd.version)
            self._publish()
        return fd

    async def refresh(self) -> None:
        """Ask for every queue's form (one failure does not stop the others)."""
        for queue_id in self._queue_ids():
            try:
                await self.fetch(queue_id)
            except ApiError as exc:
                log.info("could not refresh the form of queue %s: %s", queue_id, exc)

    def refresh_soon(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self.refresh()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.refresh_s)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name="forms")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def form_for(self, queue_id: str) -> FormDef | None:
        """The queue's form, from the cache, else asked for now."""
        if queue_id in self.forms:
            return self.forms[queue_id]
        return await self.fetch(queue_id)


def _no_ticket(service: TicketService, queue_id: str, outcome: Outcome, lang: str,
               detail: str) -> IssueResult:
    """An answer for a form that could not be sent: no number was taken."""
    view = service._view(queue_id, lang)
    return IssueResult(outcome=outcome, ticket_id="", queue=view, language=lang,
                       message=customer_message(outcome, lang, queue=view.name),
                       detail=detail)


async def submit_and_issue(
    service: TicketService,
    catalog: FormCatalog,
    queue_id: str,
    values: dict[str, Any],
    *,
    language: str | None = None,
    integration_data: dict[str, Any] | None = None,
    print_ticket: bool = True,
    wait_print: bool = True,
) -> IssueResult | FormAnswer:
    """Check and send the customer's form for ``queue_id``, then issue the ticket.

    Returns a :class:`FormAnswer` when the form goes back to the customer: refused here
    (``sent=False``, nothing sent) or by the provider's 400 (the form refetched, the
    reason on its field). Otherwise the ticket's :class:`IssueResult`, exactly as a tap
    on a queue without a form gives it (406 alternatives, printing, fallbacks).
    """
    lang = language or service.config.kiosk.language
    # imported here: the UI process imports this module's light half (forms) only
    from kiosk.service.issuing import _outcome_for
    try:
        form = await catalog.form_for(queue_id)
    except ApiError as exc:
        return _no_ticket(service, queue_id, _outcome_for(exc), lang,
                          f"form not fetched: {exc.__class__.__name__}: {exc}")
    if form is None:  # the queue needs no form (any more): a ticket as usual
        return await service.issue(queue_id, language=lang, integration_data=integration_data,
                                   print_ticket=print_ticket, wait_print=wait_print)
    problems = check_form(form, values)
    if problems:
        catalog.refused += 1
        log.info("form for queue %s not sent: %s", queue_id,
                 "; ".join(p.describe(form.field(p.field_id)) for p in problems.values()))
        return FormAnswer(form, problems, sent=False)
    try:
        sub = await service.api.submit_form(queue_id, FORM_TYPE,
                                            submission_values(form, values))
    except BadRequest as exc:
        catalog.refused += 1
        body = exc.body if isinstance(exc.body, dict) else {}
        problem = problem_from_api(form, exc.api_message, body.get("data"))
        log.info("form for queue %s refused by the provider (HTTP %s): field %s, %s",
                 queue_id, exc.status_code, problem.field_id, problem.rule)
        try:
            fresh = await catalog.fetch(queue_id)
        except ApiError as fetch_exc:
            log.info("could not refetch the form of queue %s: %s", queue_id, fetch_exc)
            fresh = form
        if fresh is None:  # the form is gone: a ticket as usual
            return await service.issue(queue_id, language=lang,
                                       integration_data=integration_data,
                                       print_ticket=print_ticket, wait_print=wait_print)
        if fresh.version != form.version:
            problem = problem_from_api(fresh, "the form changed", "changed")
        elif fresh.field(problem.field_id) is None and fresh.shown:
            problem = problem_from_api(fresh, "", "changed")
        return FormAnswer(fresh, {problem.field_id: problem}, sent=True)
    except NotFound:
        with contextlib.suppress(ApiError):
            await catalog.fetch(queue_id)
        return await service.issue(queue_id, language=lang, integration_data=integration_data,
                                   print_ticket=print_ticket, wait_print=wait_print)
    except ApiError as exc:
        log.info("form for queue %s not sent: %s", queue_id, exc)
        return _no_ticket(service, queue_id, _outcome_for(exc), lang,
                          f"form not sent: {exc.__class__.__name__}: {exc}")
    catalog.sent += 1
    log.info("form for queue %s saved (submission %s)", queue_id, sub.submission)
    return await service.issue(queue_id, language=lang, integration_data=integration_data,
                               form=sub.submission, print_ticket=print_ticket,
                               wait_print=wait_print)
