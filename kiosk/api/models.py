"""Typed answers of the Videsk QMS API.

The models tolerate fields they do not know (the provider adds fields without notice) and
reject a missing or wrong-typed required field, which the client turns into
:class:`kiosk.errors.MalformedResponse`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _ApiModel(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class Branch(_ApiModel):
    """A branch (office) of the account."""

    id: str
    label: str = ""
    name: str = ""
    address: str = ""
    location: list[float] = Field(default_factory=list)

    def matches(self, ref: str) -> bool:
        """Whether ``ref`` names this branch: its id, or its integrationId if the API
        sent one."""
        return ref == self.id or ref == (self.model_extra or {}).get("integrationId")


class Queue(_ApiModel):
    """A queue (segment) of a branch, as listed live."""

    id: str
    name: str
    users: int = Field(ge=0)
    """Agents available to take a call right now."""
    avg_waiting_time: float = Field(alias="avgWaitingTime", ge=0)
    """Average waiting time, in the unit set by ``api.wait_unit`` (undocumented upstream)."""

    @field_validator("users", mode="before")
    @classmethod
    def _no_bool(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError("an integer count of agents")
        return v


class EnqueueResult(_ApiModel):
    """201 to an enqueue: the ticket's internal id in the queue and the queue's name."""

    id: str
    segment: str = ""


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
