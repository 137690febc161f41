"""A mock scenario (branches, queues, agents, forms, faults) and its live state.

A scenario is a YAML file (``config/mock-scenario.yaml`` is the default one, commented).
The state lives: every accepted ticket keeps one agent busy for a while (a random time in
the queue's ``service_s`` range), so ``users`` drops and recovers and ``avgWaitingTime``
moves with the load, and a demo looks alive. Time comes from an injectable clock.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kiosk.errors import ConfigError
from kiosk.mock.webhooks import WebhookSpec

Answer = Literal[
    200, 201, 400, 401, 403, 404, 406, 422, 426, 428, 429, 500, 502, 503, 504,
    "drop", "slow", "html", "empty", "garbage", "accept_drop",
    "trickle", "malformed", "bad_queue_items", "many_queues", "paginated",
]
"""What a fault makes the mock answer: a status with its documented body, or
``drop`` (the connection cut before any answer, the request not taken; in-process,
where there is no connection, mid-answer), ``slow`` (answer after ``faults.slow_s``),
``html`` (a proxy's 502 page), ``empty`` (status 201/200 with no body),
``garbage`` (status 201/200 with a body that is not JSON), ``accept_drop`` (an enqueue
is taken, then the connection is cut before the answer: the client cannot know).

On enqueue, a fault that answers 201 (``empty``, ``garbage``, ``accept_drop``) takes the
ticket first, as the real API would have (when the ticket cannot be taken, the normal
answer goes out instead); ``slow`` takes it after the delay, even if the client has
given up by then.

The hostile kinds (see :mod:`kiosk.mock.hostile`) serve the request as usual (an enqueue
is recorded when it would be) and then spoil the answer:
``trickle`` (the body one byte every ``faults.trickle_s`` seconds),
``malformed`` (the body replaced by JSON of the wrong shape or text that is not JSON,
status kept), ``bad_queue_items`` (queues and branches with null/1e999/NaN waits,
negative agents, control and bidi characters and a 200 KB name),
``many_queues`` (``faults.many_queues`` queues in the list),
``paginated`` (lists in Feathers' ``{total, limit, skip, data}`` shape, ``faults.page_size``
items a page). Kinds that only make sense for lists answer other endpoints normally.
Every other fault answers before the ticket is looked at."""

AFTER_ACCEPT: frozenset[Answer] = frozenset({"empty", "garbage", "accept_drop"})
"""Faults that, on enqueue, garble the answer of a ticket the mock took."""
CUT_ANSWERS: frozenset[Answer] = frozenset({"drop", "accept_drop"})
"""Faults whose answer never reaches the client whole."""

Endpoint = Literal["branches", "queues", "queue", "enqueue", "form", "submit", "any"]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class FieldSpec(_M):
    """One field of a queue's form, as the API describes it."""

    id: str
    """The field's ``_id``."""
    type: Literal["text", "email", "url", "textarea", "number", "select", "radio",
                  "checkbox", "multiselect", "hidden"] = "text"
    """The field's type: typed text (text, email, url, textarea), a number, one choice
    (select, radio) or several (checkbox, multiselect)."""
    name: str = ""
    """Machine name."""
    label: str | dict[str, str] = ""
    """What the customer reads (a ``{language: text}`` map where the account gives
    translations)."""
    placeholder: str | dict[str, str] = ""
    """Shown in an empty field."""
    hint: str | dict[str, str] = ""
    """A line of help under the field."""
    required: bool = False
    """The field must have a value."""
    maxlength: int | None = None
    """Longest value accepted (sent as a string, as the provider does)."""
    min: float | None = None
    """Smallest number (number fields) or fewest choices (multiple choice)."""
    max: float | None = None
    """Largest number (number fields) or most choices (multiple choice)."""
    options: list[str | dict[str, Any]] = Field(default_factory=list)
    """Choices, for choice fields: a value, or ``{value, label}``."""


class QueueSpec(_M):
    """One queue (segment) of a branch."""

    id: str
    """24-hex provider id."""
    integration_id: str | None = None
    """The account's own id for the queue, accepted wherever the id is."""
    name: str
    """Display name."""
    agents: int = Field(2, ge=0)
    """Agents logged in to the queue; each takes one ticket at a time."""
    avg_wait: float = Field(2.0, ge=0)
    """Baseline ``avgWaitingTime``; moves with the load."""
    service_s: tuple[float, float] = (20.0, 60.0)
    """How long an agent stays busy with a ticket: a random time in this range (seconds)."""
    form: list[FieldSpec] | None = None
    """The queue's pre-call form; when set, enqueue requires a submission (428). The
    provider's honeypot field (``videsk_essential``) is added to it when served."""
    form_next: list[FieldSpec] | None = None
    """The form the account's admin changes to (``POST /_mock/forms/{queue}``, or
    :meth:`MockState.change_form`): a submission made for the old one is then refused
    with the provider's "the organization has changed the form" 400."""


class BranchSpec(_M):
    """One branch and the queues assigned to it."""

    id: str
    """24-hex provider id."""
    integration_id: str | None = None
    """The account's own id for the branch."""
    label: str = ""
    """Human name."""
    name: str = ""
    """Slug."""
    address: str = ""
    """Street address."""
    location: list[float] = Field(default_factory=lambda: [0.0, 0.0])
    """Coordinates."""
    queues: list[QueueSpec] = Field(default_factory=list)
    """Queues assigned to this branch."""


class ScriptedFault(_M):
    """A forced answer for the next matching request(s)."""

    on: Endpoint = "any"
    """Which endpoint it applies to."""
    answer: Answer
    """What to answer instead of the normal answer."""
    times: int = Field(1, ge=1)
    """How many matching requests it applies to."""


class Faults(_M):
    """Failures injected at random rates, or scripted for the next requests."""

    rates: dict[Answer, float] = Field(default_factory=dict)
    """Probability per request of each answer, e.g. ``{422: 0.1, 503: 0.02, drop: 0.01}``."""
    only: list[Endpoint] = Field(default_factory=lambda: list[Endpoint](["any"]))
    """Endpoints the random rates apply to."""
    slow_s: float = Field(3.0, ge=0)
    """Delay of a ``slow`` answer."""
    script: list[ScriptedFault] = Field(default_factory=list)
    """Forced answers, consumed in order by the matching requests."""
    trickle_s: float = Field(1.5, gt=0)
    """Seconds between two bytes of a ``trickle`` answer."""
    many_queues: int = Field(2000, ge=0)
    """How many queues a ``many_queues`` answer lists (the branch's own first)."""
    page_size: int = Field(10, ge=1)
    """Items per page of a ``paginated`` answer (and the most a ``$limit`` may ask)."""

    @model_validator(mode="after")
    def _rates(self) -> Faults:
        if any(not 0 <= r <= 1 for r in self.rates.values()) or sum(self.rates.values()) > 1:
            raise ValueError("rates between 0 and 1 that add up to at most 1")
        return self


class Scenario(_M):
    """Everything the mock serves."""

    api_keys: list[str] = Field(default_factory=lambda: ["mock.kiosk.key"])
    """Bearer keys accepted (a real key is a JWT: three dot-separated parts)."""
    revoked_keys: list[str] = Field(default_factory=list)
    """Keys answered with 403 "The integration token it's invalid or was removed."."""
    expired_keys: list[str] = Field(default_factory=list)
    """Keys answered with 401 "jwt expired"."""
    seed: int | None = None
    """Seed of the random numbers (service times, fault rates, wait drift)."""
    branches: list[BranchSpec]
    """The account's branches."""
    faults: Faults = Faults()
    """Injected failures."""
    webhook: WebhookSpec = WebhookSpec()
    """The QMS ticket webhook the mock sends when an agent takes a ticket (off without a
    ``url``; see kiosk/mock/webhooks.py)."""


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario YAML file; a bad one raises :class:`ConfigError`."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(p), "",
                          f"a readable YAML scenario ({exc.__class__.__name__})") from None
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise ConfigError(str(p), loc, str(err["msg"])) from None


def default_scenario_path() -> Path:
    """The scenario shipped with the package (``kiosk/data/mock-scenario.yaml``)."""
    return Path(__file__).resolve().parent.parent / "data" / "mock-scenario.yaml"


@dataclass
class TicketRecord:
    """A ticket the mock accepted."""

    id: str
    branch: str
    queue: str
    ticket_id: str
    integration_data: Any
    form: str | None
    at: float


@dataclass
class EnqueueRecord:
    """One enqueue request as the mock saw it, to reconcile with a client's records."""

    ticket_id: str | None
    """The ``ticketId`` sent (``None`` if the body did not carry one)."""
    queue: str
    at: float
    """When it arrived (the state's clock)."""
    answer: int | str
    """The status sent, or the fault's name (``drop``, ``slow``, ...)."""
    accepted: bool
    """The ticket was taken (it is in :attr:`MockState.tickets`)."""
    delivered: bool
    """A whole, readable answer went out while the client was still connected: the client
    knows the ticket's fate (``False`` after a transport fault or a client that left)."""
    seconds: float
    """How long the mock took to answer."""


@dataclass
class MockState:
    """The scenario plus what happened since it started. Thread-safe."""

    scenario: Scenario
    clock: Callable[[], float] = time.monotonic
    tickets: list[TicketRecord] = field(default_factory=list)
    enqueues: list[EnqueueRecord] = field(default_factory=list)
    requests: list[tuple[str, str, int | str]] = field(default_factory=list)
    submissions: dict[str, str] = field(default_factory=dict)  # submission id -> queue id
    form_posts: list[dict[str, Any]] = field(default_factory=list)
    """Every form submission body received (tests check what was sent)."""
    form_versions: dict[str, int] = field(default_factory=dict)  # queue id -> version
    _busy: dict[str, list[float]] = field(default_factory=dict)
    _script: list[ScriptedFault] = field(default_factory=list)
    _rng: random.Random = field(default_factory=random.Random)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _started: float = 0.0
    _malformed: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.scenario.seed)
        self._script = [f.model_copy() for f in self.scenario.faults.script]
        self._started = self.clock()

    # ---------------------------------------------------------------- lookups

    def branch(self, ref: str) -> BranchSpec | None:
        return next((b for b in self.scenario.branches if ref in (b.id, b.integration_id)), None)

    @staticmethod
    def queue_in(branch: BranchSpec, ref: str) -> QueueSpec | None:
        return next((q for q in branch.queues if ref in (q.id, q.integration_id)), None)

    def queue_anywhere(self, ref: str) -> QueueSpec | None:
        for b in self.scenario.branches:
            q = self.queue_in(b, ref)
            if q is not None:
                return q
        return None

    # ---------------------------------------------------------------- live numbers

    def free_agents(self, q: QueueSpec) -> int:
        now = self.clock()
        with self._lock:
            busy = [t for t in self._busy.get(q.id, []) if t > now]
            self._busy[q.id] = busy
            return max(0, q.agents - len(busy))

    def avg_wait(self, q: QueueSpec) -> float:
        free = self.free_agents(q)
        load = 1.0 - (free / q.agents) if q.agents else 1.0
        drift = math.sin((self.clock() - self._started) / 45.0 + len(q.id))
        return round(max(0.0, q.avg_wait * (0.8 + 0.5 * load) + 0.15 * q.avg_wait * drift), 3)

    def as_api(self, q: QueueSpec) -> dict[str, Any]:
        return {"name": q.name, "id": q.id, "users": self.free_agents(q),
                "avgWaitingTime": self.avg_wait(q)}

    def take_agent(self, q: QueueSpec) -> None:
        lo, hi = q.service_s
        with self._lock:
            self._busy.setdefault(q.id, []).append(self.clock() + self._rng.uniform(lo, hi))

    def set_agents(self, queue_ref: str, agents: int) -> None:
        """Change a queue's logged-in agents (tests, demos)."""
        q = self.queue_anywhere(queue_ref)
        if q is None:
            raise KeyError(queue_ref)
        q.agents = agents
        with self._lock:
            self._busy[q.id] = []

    # ---------------------------------------------------------------- faults

    def push_faults(self, *faults: ScriptedFault) -> None:
        """Queue forced answers for the next matching requests."""
        with self._lock:
            self._script.extend(faults)

    def next_fault(self, endpoint: Endpoint) -> Answer | None:
        with self._lock:
            for f in self._script:
                if f.on in (endpoint, "any"):
                    f.times -= 1
                    if f.times <= 0:
                        self._script.remove(f)
                    return f.answer
            faults = self.scenario.faults
            if faults.rates and ("any" in faults.only or endpoint in faults.only):
                r = self._rng.random()
                acc = 0.0
                for answer, rate in faults.rates.items():
                    acc += rate
                    if r < acc:
                        return answer
        return None

    def change_form(self, queue_ref: str, fields: list[FieldSpec] | None = None) -> None:
        """The account's admin edits the queue's form: to ``fields``, else to the
        scenario's ``form_next`` (tests, demos)."""
        q = self.queue_anywhere(queue_ref)
        if q is None:
            raise KeyError(queue_ref)
        with self._lock:
            q.form = fields if fields is not None else q.form_next
            self.form_versions[q.id] = self.form_versions.get(q.id, 1) + 1

    def malformed_count(self) -> int:
        """How many ``malformed`` answers were made before this one (picks the body)."""
        with self._lock:
            self._malformed += 1
            return self._malformed - 1

    def new_id(self) -> str:
        with self._lock:
            return f"{self._rng.getrandbits(96):024x}"

    def record(self, method: str, path: str, status: int | str) -> None:
        with self._lock:
            self.requests.append((method, path, status))
