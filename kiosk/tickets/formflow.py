"""The use case "send the customer's form, then give them a number" (which queues need a
form is :mod:`kiosk.tickets.formcatalog`).

:func:`submit_and_issue` checks the values again (:mod:`kiosk.view.forms`, the same
rules the UI checks as the customer types), sends them (``POST /forms``, type
``pre-call``), then issues the ticket with the submission's id in ``form``. The values go
to Videsk and nowhere else: not to the log (only field ids and rule names are logged),
not to the journal, not to the ticket.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any, Literal

from kiosk.errors import ApiError, BadRequest, NotFound, NotOffered
from kiosk.tickets.issuing import not_offered
from kiosk.view.forms import (
    FormAnswer,
    check_form,
    problem_from_api,
    submission_values,
)
from kiosk.view.messages import customer_message
from kiosk.view.outcomes import IssueResult, Outcome, outcome_for

if TYPE_CHECKING:
    from kiosk.tickets.formcatalog import FormCatalog
    from kiosk.tickets.issuing import TicketService

log = logging.getLogger(__name__)

FORM_TYPE: Literal["pre-call"] = "pre-call"


def _no_ticket(service: TicketService, queue_id: str, outcome: Outcome, lang: str,
               detail: str) -> IssueResult:
    """An answer for a form that could not be sent: no number was taken."""
    view = service.view(queue_id, lang)
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
    priority: str | None = None,
) -> IssueResult | FormAnswer:
    """Check and send the customer's form for ``queue_id``, then issue the ticket.

    Returns a :class:`FormAnswer` when the form goes back to the customer: refused here
    (``sent=False``, nothing sent) or by the provider's 400 (the form refetched, the
    reason on its field). Otherwise the ticket's :class:`IssueResult`, exactly as a tap
    on a queue without a form gives it (406 alternatives, printing, fallbacks);
    ``priority``: a priority ticket (:meth:`TicketService.issue`).
    """
    lang = language or service.config.kiosk.language
    if priority is not None and not service.config.priority.offered(priority):
        raise NotOffered(not_offered(service.config, priority))  # before the form is sent
    try:
        form = await catalog.form_for(queue_id)
    except ApiError as exc:
        return _no_ticket(service, queue_id, outcome_for(exc), lang,
                          f"form not fetched: {exc.__class__.__name__}: {exc}")
    if form is None:  # the queue needs no form (any more): a ticket as usual
        return await service.issue(queue_id, language=lang, integration_data=integration_data,
                                   print_ticket=print_ticket, wait_print=wait_print,
                                   priority=priority)
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
                                       print_ticket=print_ticket, wait_print=wait_print,
                                       priority=priority)
        if fresh.version != form.version:
            problem = problem_from_api(fresh, "the form changed", "changed")
        elif fresh.field(problem.field_id) is None and fresh.shown:
            problem = problem_from_api(fresh, "", "changed")
        return FormAnswer(fresh, {problem.field_id: problem}, sent=True)
    except NotFound:
        with contextlib.suppress(ApiError):
            await catalog.fetch(queue_id)
        return await service.issue(queue_id, language=lang, integration_data=integration_data,
                                   print_ticket=print_ticket, wait_print=wait_print,
                                   priority=priority)
    except ApiError as exc:
        log.info("form for queue %s not sent: %s", queue_id, exc)
        return _no_ticket(service, queue_id, outcome_for(exc), lang,
                          f"form not sent: {exc.__class__.__name__}: {exc}")
    catalog.sent += 1
    log.info("form for queue %s saved (submission %s)", queue_id, sub.submission)
    return await service.issue(queue_id, language=lang, integration_data=integration_data,
                               form=sub.submission, print_ticket=print_ticket,
                               wait_print=wait_print, priority=priority)
