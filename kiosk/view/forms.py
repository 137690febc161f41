"""A queue's form as the kiosk shows and checks it: pure Python, no I/O, no heavy imports.

The UI process uses it to check each field as the customer types (it must not load
pydantic or httpx), the core uses it again before anything is sent, and ``kiosk ticket
--form-json`` before it sends. The provider checks a submission on three levels
(``provider/api-publica_formularios.md``): the value's type matches the field's type, the
field's own rule (an email, a URL, one of the options), then the limits (``maxlength``,
``min``, ``max``). :func:`check_field` mirrors them in that order.

A :class:`FormDef` travels over the link as JSON (:meth:`FormDef.to_json`); the values a
customer typed never leave the process except inside a submission to Videsk, and nothing
here logs them.

The provider's honeypot (an element ``videsk_essential`` its form SDK always sends, empty:
"required, never delete") is never shown; :func:`submission_values` always sends it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from kiosk.i18n import t
from kiosk.textclean import clean_text

HONEYPOT = "videsk_essential"
"""The provider's bot trap: sent, always empty, never shown."""

TEXT_TYPES = frozenset({"text", "email", "url", "textarea", "tel", "phone"})
NUMBER_TYPES = frozenset({"number", "numeric", "integer"})
SINGLE_CHOICE = frozenset({"select", "radio", "dropdown", "single"})
MULTI_CHOICE = frozenset({"checkbox", "checkboxes", "multiselect", "multiple"})
HIDDEN_TYPES = frozenset({"hidden"})

DEFAULT_TEXT_MAX = 250
TEXT_MAX = 300
"""Longest label, hint or option text kept from the API."""
"""Longest text the kiosk accepts where a field sets no ``maxlength`` (a lobby is no place
for essays; the provider's own example caps its textarea at 250)."""

# Simple, strict enough for a lobby; the same shape the provider's SDK accepts.
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
URL_RE = re.compile(r"^https?://[^\s/?#.]+(\.[^\s/?#.]+)+([/?#]\S*)?$", re.IGNORECASE)

_ELEMENT = re.compile(r'element(?: form)? "([^"]+)"')


def _text(value: Any, lang: str) -> str:
    """A provider text: a string, or ``{lang: text}`` where it gives translations; cleaned
    like every text from the API (no control or bidi characters, capped)."""
    return clean_text(_raw_text(value, lang), TEXT_MAX)


def _raw_text(value: Any, lang: str) -> str:
    if isinstance(value, dict):
        for key in (lang, "es", "en", "pt"):
            if isinstance(value.get(key), str) and value[key]:
                return str(value[key])
        return next((str(v) for v in value.values() if isinstance(v, str) and v), "")
    return value if isinstance(value, str) else ""


def _number(value: Any) -> float | None:
    """A limit as the provider sends it (``"50"``, ``50``, ``50.0``); None if absent/odd."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class Option:
    """One choice of a choice field: the value sent, and what the customer reads."""

    value: str
    label: Any = ""
    """A string, or ``{lang: text}``."""

    def text(self, lang: str) -> str:
        return _text(self.label, lang) or self.value


@dataclass(frozen=True)
class FieldDef:
    """One field of a form, as the provider describes it (see the provider's page)."""

    id: str
    type: str
    name: str = ""
    label: Any = ""
    """A string, or ``{lang: text}`` where the provider gives translations."""
    placeholder: Any = ""
    hint: Any = ""
    required: bool = False
    maxlength: int | None = None
    min: float | None = None
    max: float | None = None
    options: tuple[Option, ...] = ()
    multiple: bool = False

    @property
    def kind(self) -> str:
        """``text`` (a typed line or box), ``number``, ``choice``, or ``hidden``."""
        if HONEYPOT in (self.name, self.id) or self.type in HIDDEN_TYPES:
            return "hidden"
        if self.options or self.type in SINGLE_CHOICE | MULTI_CHOICE:
            return "choice"
        if self.type in NUMBER_TYPES:
            return "number"
        return "text"

    @property
    def shown(self) -> bool:
        return self.kind != "hidden"

    def title(self, lang: str) -> str:
        return _text(self.label, lang) or self.name or self.id

    def placeholder_text(self, lang: str) -> str:
        return _text(self.placeholder, lang)

    def hint_text(self, lang: str) -> str:
        return _text(self.hint, lang)

    def max_chars(self) -> int:
        """The longest text the field takes as typed (for the text box itself)."""
        return self.maxlength if self.maxlength else DEFAULT_TEXT_MAX

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> FieldDef:
        """One element of the provider's ``form`` array (tolerant: the provider adds
        fields without notice and sends limits as strings)."""
        props = raw.get("properties") if isinstance(raw.get("properties"), dict) else {}
        assert isinstance(props, dict)
        options: list[Option] = []
        for o in raw.get("options") or []:
            if isinstance(o, dict):
                value = o.get("value", o.get("_id", o.get("label", "")))
                options.append(Option(str(value), o.get("label", "")))
            elif isinstance(o, str | int | float) and not isinstance(o, bool):
                options.append(Option(str(o), str(o)))
        ftype = str(raw.get("type") or "text").lower()
        maxlength = _number(props.get("maxlength", raw.get("maxlength")))
        return cls(
            id=str(raw.get("_id") or raw.get("id") or ""), type=ftype,
            name=str(raw.get("name") or ""), label=raw.get("label") or "",
            placeholder=props.get("placeholder") or raw.get("placeholder") or "",
            hint=raw.get("hint") or props.get("hint") or "",
            required=props.get("required") is True or props.get("required") == "true",
            maxlength=int(maxlength) if maxlength and maxlength > 0 else None,
            min=_number(props.get("min", raw.get("min"))),
            max=_number(props.get("max", raw.get("max"))),
            options=tuple(options),
            multiple=ftype in MULTI_CHOICE or props.get("multiple") is True)


@dataclass(frozen=True)
class FormDef:
    """A queue's form: its fields, and a version that changes when the fields do."""

    queue_id: str
    fields: tuple[FieldDef, ...]
    version: str = ""

    @classmethod
    def from_api(cls, queue_id: str, body: dict[str, Any]) -> FormDef:
        """From the provider's ``GET /forms/:segmentId`` answer (``{"form": [...]}``)."""
        raw = [f for f in body.get("form") or [] if isinstance(f, dict)]
        canon = json.dumps(raw, sort_keys=True, ensure_ascii=False, default=str)
        version = hashlib.sha256(canon.encode()).hexdigest()[:12]
        return cls(queue_id, tuple(FieldDef.from_api(f) for f in raw), version)

    @property
    def shown(self) -> tuple[FieldDef, ...]:
        """The fields a person fills in (the honeypot and hidden fields are not)."""
        return tuple(f for f in self.fields if f.shown)

    def field(self, ref: str) -> FieldDef | None:
        """The field whose id or name is ``ref``."""
        return next((f for f in self.fields if ref in (f.id, f.name)), None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FormDef:
        fields_ = tuple(
            FieldDef(**{**f, "options": tuple(Option(**o) for o in f["options"])})
            for f in data["fields"])
        return cls(data["queue_id"], fields_, data.get("version", ""))


@dataclass(frozen=True)
class Problem:
    """Why a value is refused: the rule (for the CLI and logs) and its limit, if any."""

    field_id: str
    rule: str
    """required | type | email | url | option | maxlength | min | max | changed | refused"""
    limit: float | None = None

    def text(self, lang: str) -> str:
        """What the customer reads next to the field."""
        n = "" if self.limit is None else (
            str(int(self.limit)) if float(self.limit).is_integer() else str(self.limit))
        if self.rule == "required":
            return t("Please fill this in.", lang)
        if self.rule == "email":
            return t("Please check the email address (like name@example.com).", lang)
        if self.rule == "url":
            return t("Please write a web address starting with http:// or https://", lang)
        if self.rule == "type":
            return t("Please write a number here.", lang)
        if self.rule == "option":
            return t("Please choose one of the options.", lang)
        if self.rule == "maxlength":
            return t("Please keep this to {n} characters or fewer.", lang, n=n)
        if self.rule == "min":
            return t("The smallest value here is {n}.", lang, n=n)
        if self.rule == "max":
            return t("The largest value here is {n}.", lang, n=n)
        if self.rule == "changed":
            return t("This form was just updated. Please check it and send it again.", lang)
        return t("Please check this field.", lang)

    def describe(self, fd: FieldDef | None = None) -> str:
        """For ``kiosk ticket --form-json`` and logs: field and rule, never the value."""
        who = f'"{fd.name or fd.id}"' if fd else f'"{self.field_id}"'
        limit = "" if self.limit is None else f" ({self.limit:g})"
        return f"field {who}: {self.rule}{limit}"


Value = str | list[str]
"""What a field holds: text, or the chosen options' values."""


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def check_field(fd: FieldDef, value: Any) -> Problem | None:
    """The provider's three levels for one field: type, the field's rule, its limits."""
    if fd.kind == "hidden":
        return None
    if is_empty(value):
        return Problem(fd.id, "required") if fd.required else None
    kind = fd.kind
    # 1. the value's type matches the field's type
    if kind == "choice":
        chosen = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in chosen) or (len(chosen) > 1 and not fd.multiple):
            return Problem(fd.id, "option")
    elif kind == "number":
        if _number(value) is None or (isinstance(value, str) and not value.strip()):
            return Problem(fd.id, "type")
    elif not isinstance(value, str):
        return Problem(fd.id, "type")
    # 2. the field's own rule
    if kind == "choice":
        allowed = {o.value for o in fd.options}
        if allowed and any(v not in allowed for v in chosen):
            return Problem(fd.id, "option")
    elif fd.type == "email" and not EMAIL_RE.match(str(value).strip()):
        return Problem(fd.id, "email")
    elif fd.type == "url" and not URL_RE.match(str(value).strip()):
        return Problem(fd.id, "url")
    # 3. limits
    if kind == "number":
        number = _number(value)
        assert number is not None
        if fd.min is not None and number < fd.min:
            return Problem(fd.id, "min", fd.min)
        if fd.max is not None and number > fd.max:
            return Problem(fd.id, "max", fd.max)
    elif kind == "choice":
        if fd.min is not None and len(chosen) < fd.min:
            return Problem(fd.id, "min", fd.min)
        if fd.max is not None and len(chosen) > fd.max:
            return Problem(fd.id, "max", fd.max)
    else:
        text = str(value).strip()
        if len(text) > fd.max_chars():
            return Problem(fd.id, "maxlength", fd.max_chars())
        if fd.min is not None and len(text) < fd.min:
            return Problem(fd.id, "min", fd.min)
    return None


def check_form(form: FormDef, values: dict[str, Any]) -> dict[str, Problem]:
    """Every shown field's problem, by field id (empty: the form may be sent)."""
    problems: dict[str, Problem] = {}
    for fd in form.shown:
        p = check_field(fd, values.get(fd.id))
        if p is not None:
            problems[fd.id] = p
    return problems


def values_by_id(form: FormDef, given: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``{field name or id: value}`` (the CLI's file) as ``{id: value}``; and the keys
    that name no field."""
    out: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in given.items():
        fd = form.field(str(key))
        if fd is None or not fd.shown:
            unknown.append(str(key))
        else:
            out[fd.id] = [str(v) for v in value] if isinstance(value, list) else (
                str(value) if isinstance(value, int | float) and not isinstance(value, bool)
                else value)
    return out, unknown


def submission_values(form: FormDef, values: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``values`` array of ``POST /forms``: every field of the form (the honeypot
    empty, an empty optional field as ``""``), text trimmed, numbers as numbers."""
    out: list[dict[str, Any]] = []
    if not any(HONEYPOT in (fd.id, fd.name) for fd in form.fields):
        out.append({"_id": HONEYPOT, "value": ""})  # the provider's SDK always sends it
    for fd in form.fields:
        if fd.kind == "hidden":
            out.append({"_id": fd.id, "value": ""})
            continue
        value = values.get(fd.id)
        if fd.kind == "choice":
            chosen = value if isinstance(value, list) else ([] if is_empty(value) else [value])
            out.append({"_id": fd.id, "value": chosen if fd.multiple
                        else (chosen[0] if chosen else "")})
        elif fd.kind == "number" and not is_empty(value):
            number = _number(value)
            out.append({"_id": fd.id, "value": int(number) if number is not None
                        and number.is_integer() else number})
        else:
            out.append({"_id": fd.id, "value": "" if value is None else str(value).strip()})
    return out


def keep_values(form: FormDef, values: dict[str, Any]) -> dict[str, Any]:
    """The values typed so far that still fit ``form`` (a refetched, maybe changed form):
    by field id, else by field name; a value its field would now refuse is dropped."""
    kept: dict[str, Any] = {}
    for fd in form.shown:
        value = values.get(fd.id, values.get(fd.name) if fd.name else None)
        if is_empty(value):
            continue
        if check_field(fd, value) is None:
            kept[fd.id] = value
    return kept


def problem_from_api(form: FormDef, message: str, data: Any = None) -> Problem:
    """The provider's 400 on a submission, as a problem on a field where it names one.

    Its messages name a field by id (``The maximum of value is 10 for element "ID".``);
    the changed-form one names none and carries ``data`` ("Maybe the organization has
    changed the form…").
    """
    m = _ELEMENT.search(message)
    fd = form.field(m.group(1)) if m else None
    low = message.lower()
    if fd is None or not fd.shown:
        first = form.shown[0].id if form.shown else ""
        changed = "not as field" in low or "changed" in str(data or "").lower()
        return Problem(first, "changed" if changed else "refused")
    num = re.search(r"(?:maximum|minimum)[^0-9]*(-?\d+(?:\.\d+)?)", low)
    limit = float(num.group(1)) if num else None
    if "required" in low:
        return Problem(fd.id, "required")
    if "email" in low:
        return Problem(fd.id, "email")
    if "url" in low or "link" in low:
        return Problem(fd.id, "url")
    if "option" in low:
        return Problem(fd.id, "option")
    if "length" in low or (limit is not None and "maximum" in low and fd.kind == "text"):
        return Problem(fd.id, "maxlength", limit)
    if "maximum" in low:
        return Problem(fd.id, "max", limit)
    if "minimum" in low:
        return Problem(fd.id, "min", limit)
    if "type" in low:
        return Problem(fd.id, "type")
    return Problem(fd.id, "refused")


def problems_to_json(problems: dict[str, Problem]) -> dict[str, Any]:
    return {k: asdict(p) for k, p in problems.items()}


def problems_from_json(data: dict[str, Any]) -> dict[str, Problem]:
    return {k: Problem(**v) for k, v in data.items()}


@dataclass
class FormAnswer:
    """What sending a form came to, when no ticket was asked for: the problems to show
    next to the fields, and the form as it is now (refetched after a provider's 400)."""

    form: FormDef | None
    problems: dict[str, Problem] = field(default_factory=dict)
    sent: bool = False
    """False: refused locally, nothing was sent."""


__all__ = ["HONEYPOT", "FieldDef", "FormAnswer", "FormDef", "Option", "Problem",
           "check_field", "check_form", "keep_values", "problem_from_api",
           "submission_values", "values_by_id"]
