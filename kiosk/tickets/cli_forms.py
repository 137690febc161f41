"""Forms from the command line: ``kiosk form QUEUE`` and ``kiosk ticket QUEUE --form-json``.

The file's values are checked here with the same rules as the screen
(:mod:`kiosk.view.forms`) before anything is sent; what is refused is named by field
and rule, never by value.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TextIO

from kiosk.errors import KioskError
from kiosk.tickets.formflow import submit_and_issue
from kiosk.view.forms import FormAnswer, FormDef, check_form, values_by_id
from kiosk.view.outcomes import IssueResult

if TYPE_CHECKING:
    from kiosk.tickets.formcatalog import FormCatalog
    from kiosk.tickets.issuing import TicketService


class FormNotSent(KioskError):
    """The form was refused: here (``sent=False``: nothing was sent) or by the provider."""

    def __init__(self, lines: list[str], *, sent: bool) -> None:
        self.lines = lines
        self.sent = sent
        super().__init__("; ".join(lines))


def _describe(form: FormDef, answer: FormAnswer) -> list[str]:
    return [p.describe(form.field(p.field_id)) for p in answer.problems.values()]


async def issue_with_form(service: TicketService, catalog: FormCatalog, queue_id: str,
                          given: dict[str, Any], lang: str, *,
                          print_ticket: bool, priority: str | None = None) -> IssueResult:
    """Check ``given`` ({field name or id: value}) against the queue's form, send it, then
    issue the ticket. Raises :class:`FormNotSent`."""
    form = await catalog.fetch(queue_id)
    if form is None:
        if given:
            raise FormNotSent([f"queue {queue_id} needs no form; nothing was sent"], sent=False)
        return await service.issue(queue_id, language=lang, print_ticket=print_ticket,
                                   priority=priority)
    values, unknown = values_by_id(form, given)
    if unknown:
        raise FormNotSent([f'field "{k}": not in the form of queue {queue_id} (see kiosk '
                           f"form {queue_id})" for k in unknown], sent=False)
    problems = check_form(form, values)
    if problems:
        raise FormNotSent(_describe(form, FormAnswer(form, problems)), sent=False)
    answer = await submit_and_issue(service, catalog, queue_id, values, language=lang,
                                    print_ticket=print_ticket, priority=priority)
    if isinstance(answer, FormAnswer):
        assert answer.form is not None
        raise FormNotSent(_describe(answer.form, answer), sent=answer.sent)
    return answer


def form_json(form: FormDef, lang: str) -> dict[str, Any]:
    """``kiosk form --json``: the fields a person fills in, labels in ``lang``."""
    return {"queue": form.queue_id, "version": form.version, "fields": [
        {"id": f.id, "name": f.name, "type": f.type, "label": f.title(lang),
         "required": f.required, "placeholder": f.placeholder_text(lang),
         "hint": f.hint_text(lang), "maxlength": f.maxlength, "min": f.min, "max": f.max,
         "multiple": f.multiple,
         "options": [{"value": o.value, "label": o.text(lang)} for o in f.options]}
        for f in form.shown]}


async def show_form(catalog: FormCatalog, queue_id: str, lang: str, *, as_json: bool,
                    out: TextIO) -> int:
    """Print the queue's form; 0, or 1 when the API cannot say."""
    form = await catalog.fetch(queue_id)
    if as_json:
        print(json.dumps(form_json(form, lang) if form else {"queue": queue_id, "fields": None},
                         ensure_ascii=False, indent=2), file=out)
        return 0
    if form is None:
        print(f"queue {queue_id} needs no form", file=out)
        return 0
    print(f"form of queue {queue_id} (version {form.version}):", file=out)
    for f in form.shown:
        rules = ["required" if f.required else "optional"]
        if f.maxlength:
            rules.append(f"max {f.maxlength} characters")
        if f.min is not None:
            rules.append(f"min {f.min:g}")
        if f.max is not None:
            rules.append(f"max {f.max:g}")
        if f.options:
            rules.append(("several of: " if f.multiple else "one of: ")
                         + ", ".join(o.value for o in f.options))
        print(f"  {f.name or f.id:<16} {f.type:<10} {f.title(lang)} ({'; '.join(rules)})",
              file=out)
    return 0
