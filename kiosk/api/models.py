"""Typed answers of the Videsk QMS API.

The models tolerate fields they do not know (the provider adds fields without notice) and
reject a missing or wrong-typed required field, which the client turns into
:class:`kiosk.errors.MalformedResponse` (a queue list is read item by item: one bad queue
is skipped, see :meth:`kiosk.api.QmsClient.list_queues`).

This is the edge where text from the API becomes ours: names and labels are cleaned by
:func:`clean_text` (no control or format characters, so no printer command, terminal
escape or bidi override; capped in length) and numbers must be finite, before anything
reaches a screen, the link to the UI, the journal or the printer.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from kiosk.textclean import clean_text

ID_MAX = 64
"""Longest id kept from an answer (the provider's are 24 hex digits)."""
WAIT_MAX = 100_000.0
"""Largest ``avgWaitingTime`` believed (minutes or seconds); more is a provider fault."""


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError("a finite number")
    return v


def _no_bool(v: Any) -> Any:
    if isinstance(v, bool):
        raise ValueError("a number, not true/false")
    return v


Name = Annotated[str, AfterValidator(clean_text)]
"""A name or label from the API, cleaned (see :func:`clean_text`)."""
Ident = Annotated[str, AfterValidator(lambda v: clean_text(v, ID_MAX).replace(" ", ""))]
"""An id from the API: printable, no spaces, at most :data:`ID_MAX` characters."""


class _ApiModel(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class Branch(_ApiModel):
    """A branch (office) of the account."""

    id: Ident
    label: Name = ""
    name: Name = ""
    address: Name = ""
    location: list[float] = Field(default_factory=list)

    def matches(self, ref: str) -> bool:
        """Whether ``ref`` names this branch: its id, or its integrationId if the API
        sent one."""
        return ref == self.id or ref == (self.model_extra or {}).get("integrationId")


class Queue(_ApiModel):
    """A queue (segment) of a branch, as listed live."""

    id: Annotated[Ident, Field(min_length=1)]
    name: Name
    users: Annotated[int, BeforeValidator(_no_bool), Field(ge=0, le=100_000)]
    """Agents available to take a call right now."""
    avg_waiting_time: Annotated[float, BeforeValidator(_no_bool), BeforeValidator(_finite),
                                Field(alias="avgWaitingTime", ge=0, le=WAIT_MAX,
                                      allow_inf_nan=False)]
    """Average waiting time, in the unit set by ``api.wait_unit`` (undocumented upstream);
    finite, never negative."""


class EnqueueResult(_ApiModel):
    """201 to an enqueue: the ticket's internal id in the queue and the queue's name."""

    id: Ident
    segment: Name = ""


class FieldProperties(_ApiModel):
    """Constraints of one form field."""

    required: bool = False
    placeholder: Any = ""
    """A text, or one per language where the account gives them."""
    maxlength: int | None = None
    min: float | None = None
    max: float | None = None

    @field_validator("maxlength", mode="before")
    @classmethod
    def _int_or_text(cls, v: Any) -> Any:
        # The provider sends maxlength as a string ("50").
        if isinstance(v, str):
            return int(v) if v.strip().isdigit() else None
        return v


class FormField(_ApiModel):
    """One field of a queue's form."""

    id: str = Field(alias="_id")
    type: str
    name: str = ""
    label: Any = ""
    """A text, or one per language (``{"es": ..., "en": ...}``) where the account gives them."""
    properties: FieldProperties = Field(default_factory=FieldProperties)
    options: list[Any] = Field(default_factory=list)
    hint: Any = ""


class Form(_ApiModel):
    """A queue's form (``GET /forms/:segmentId``)."""

    form: list[FormField]
    site_key: str = Field("", alias="siteKey")
    resource: str = ""
    provider: str = ""


class FormSubmission(_ApiModel):
    """201 to a form submission: its id goes into the enqueue body as ``form``."""

    submission: str
    success: bool = True
    message: str = ""


FormVersion = Literal["base", "contact"]
FormType = Literal["pre-call", "contact"]
