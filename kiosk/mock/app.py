"""The mock Videsk QMS API as a Starlette app.

Same paths, auth checks, statuses and bodies as the provider documents, quirks included
(400 carrying ``code: 404``, 428 carrying ``code: 426``), the same limits (``ticketId`` 1 to
50 characters, ``integrationData`` at most 50 KB), and injectable faults.

Serve it with ``kiosk mock-api`` (uvicorn) or in-process through ``httpx.ASGITransport``.
Under ``/_mock/`` (no auth, never in the real API) it exposes what happened and takes
scripted faults, for tests and integrators.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from kiosk.mock import hostile
from kiosk.mock.scenario import (
    AFTER_ACCEPT,
    CUT_ANSWERS,
    Answer,
    Endpoint,
    EnqueueRecord,
    FieldSpec,
    MockState,
    Scenario,
    ScriptedFault,
    TicketRecord,
)
from kiosk.mock.webhooks import Deliveries

PREFIX = "/public/video-contact-center"
TICKET_ID_MAX = 50
INTEGRATION_DATA_MAX = 50_000

_CLASS = {
    "BadRequest": "bad-request", "NotAuthenticated": "not-authenticated",
    "Forbidden": "forbidden", "NotFound": "not-found", "NotAcceptable": "not-acceptable",
    "PreconditionRequired": "precondition-require", "Unprocessable": "unprocessable",
    "TooManyRequests": "too-many-requests", "GeneralError": "general-error",
    "BadGateway": "bad-gateway", "Unavailable": "unavailable",
}


def feathers(status: int, name: str, message: str, code: int | None = None,
             headers: dict[str, str] | None = None, data: Any = None) -> JSONResponse:
    """An error in the provider's FeathersJS shape. ``code`` defaults to ``status``;
    ``data`` is added where the provider's page shows one."""
    body: dict[str, Any] = {"name": name, "message": message,
                            "code": code if code is not None else status,
                            "className": _CLASS.get(name, "general-error")}
    if data is not None:
        body["data"] = data
    body["errors"] = {}
    return JSONResponse(body, status_code=status, headers=headers)


_FORCED: dict[int, tuple[str, str, int]] = {
    400: ("NotFound", 'The segment for the branch "{branch}" is not assigned or the branch id '
          "is incorrect", 404),
    401: ("NotAuthenticated", "jwt expired", 401),
    403: ("Forbidden", "The integration token it's invalid or was removed.", 403),
    404: ("NotFound", "The branch or segment was not found", 404),
    406: ("NotAcceptable", 'Not agent available in the segment "{queue}", please try later.', 406),
    422: ("Unprocessable", "We're not able to request adding you to the queue, try again.", 422),
    426: ("PreconditionRequired", "Is mandatory to provide a forms submission id.", 426),
    428: ("PreconditionRequired", "Is mandatory to provide a forms submission id.", 426),
    429: ("TooManyRequests", "Too many requests, slow down.", 429),
    500: ("GeneralError", "Internal server error", 500),
    502: ("BadGateway", "Bad gateway", 502),
    503: ("Unavailable", "Service unavailable", 503),
    504: ("GeneralError", "Gateway timeout", 504),
}

_NOT_A_FIELD = "Some element not as field, please check or try again"
_FORM_CHANGED = ("Maybe the organization has changed the form and you're submit is not valid "
                 "anymore.")
HONEYPOT = "videsk_essential"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
_URL = re.compile(r"^https?://[^\s/?#.]+(\.[^\s/?#.]+)+([/?#]\S*)?$", re.IGNORECASE)
_NUMBER_TYPES = ("number",)
_MULTI_TYPES = ("checkbox", "multiselect")


def _option_values(f: FieldSpec) -> set[str]:
    return {str(o.get("value", o.get("label", ""))) if isinstance(o, dict) else str(o)
            for o in f.options}


def _field_error(f: FieldSpec, value: Any) -> str | None:
    """The provider's three levels for one field (its page): the value's type, the
    field's rule, its limits. Returns the 400's message, or None."""
    el = f'for element "{f.id}".'
    if value in (None, "", []) or (isinstance(value, str) and not value.strip()):
        return f'The element "{f.id}" is required.' if f.required else None
    # 1. type: String, Number or Array, matching the field
    if f.type in _NUMBER_TYPES:
        try:
            number = float(value) if not isinstance(value, bool | list | dict) else None
        except (TypeError, ValueError):
            number = None
        if number is None:
            return f"The value type is not valid {el}"
    elif f.type in _MULTI_TYPES:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return f"The value type is not valid {el}"
    elif not isinstance(value, str):
        return f"The value type is not valid {el}"
    # 2. the field's own validation
    if f.type == "email" and not _EMAIL.match(value.strip()):
        return f"The value is not a valid email {el}"
    if f.type == "url" and not _URL.match(value.strip()):
        return f"The value is not a valid url {el}"
    if f.options:
        chosen = value if isinstance(value, list) else [value]
        if any(v not in _option_values(f) for v in chosen):
            return f"The value is not a valid option {el}"
    # 3. constraints: max, min, length
    if f.type in _NUMBER_TYPES:
        assert number is not None
        if f.max is not None and number > f.max:
            return f"The maximum of value is {f.max:g} {el}"
        if f.min is not None and number < f.min:
            return f"The minimum of value is {f.min:g} {el}"
    elif isinstance(value, list):
        if f.max is not None and len(value) > f.max:
            return f"The maximum of value is {f.max:g} {el}"
        if f.min is not None and len(value) < f.min:
            return f"The minimum of value is {f.min:g} {el}"
    elif f.maxlength and len(value) > f.maxlength:
        return f"The maximum length of value is {f.maxlength} {el}"
    return None


def _field_json(f: FieldSpec) -> dict[str, Any]:
    """One field as ``GET /forms/:segmentId`` shows it (limits as strings, like the page)."""
    props: dict[str, Any] = {"required": f.required}
    if f.placeholder:
        props["placeholder"] = f.placeholder
    if f.maxlength:
        props["maxlength"] = str(f.maxlength)
    if f.min is not None:
        props["min"] = f"{f.min:g}"
    if f.max is not None:
        props["max"] = f"{f.max:g}"
    return {"_id": f.id, "type": f.type, "name": f.name, "label": f.label,
            "properties": props, "options": list(f.options), "hint": f.hint}


def _json_size(data: Any) -> int:
    return len(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode())


_PROXY_PAGE = ("<html><head><title>502 Bad Gateway</title></head><body><center>"
               "<h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>")


class _Drop(Response):
    """Cut the connection before any answer (served by uvicorn: the client gets no status
    line, so it cannot know whether the request was taken); in-process (no socket),
    announce a body and send only part of it."""

    status_code = 201

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = scope.get(_TRANSPORT)
        if transport is not None:
            transport.abort()
            await asyncio.sleep(0)  # the server sees the connection lost: sends nothing more
            return
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"id": "', "more_body": True})
        raise ConnectionAbortedError("mock: connection dropped on purpose")


_TRANSPORT = "kiosk.mock.transport"
"""Where :class:`_MockApp` keeps the connection's transport in the ASGI scope."""


class _MockApp(Starlette):
    """Starlette, keeping uvicorn's transport for the connection in the scope (its
    ``send`` is a method of the request cycle, which holds it) so that :class:`_Drop`
    can cut the connection before any answer."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[_TRANSPORT] = getattr(getattr(send, "__self__", None), "transport", None)
        await super().__call__(scope, receive, send)


class _Watched(Response):
    """``inner``, noting in ``record`` whether the client left before the answer was
    whole (a ``trickle`` it gave up on, a dropped connection) and how long it took."""

    def __init__(self, inner: Response, record: EnqueueRecord, clock: Callable[[], float],
                 started: float) -> None:
        super().__init__(status_code=inner.status_code)
        self.inner, self.record, self.clock, self.started = inner, record, clock, started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def watched() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.record.delivered = False
            return message
        try:
            await self.inner(scope, watched, send)
        except OSError:
            self.record.delivered = False
            raise
        finally:
            self.record.seconds = self.clock() - self.started


class MockApi:
    """The routes, over one :class:`MockState`."""

    def __init__(self, state: MockState) -> None:
        self.state = state
        self.webhooks = Deliveries(state.scenario.webhook, random.Random(state.scenario.seed))

    # ------------------------------------------------------------- plumbing

    def _auth(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        sc = self.state.scenario
        if scheme.lower() != "bearer" or not key.strip():
            return feathers(401, "NotAuthenticated",
                            "Authorization header with valid JWT is required.")
        key = key.strip()
        if key.count(".") != 2:
            return feathers(401, "NotAuthenticated", "jwt malformed")
        if key in sc.revoked_keys:
            return feathers(403, "Forbidden", "The integration token it's invalid or was removed.")
        if key in sc.expired_keys:
            return feathers(401, "NotAuthenticated", "jwt expired")
        if key not in sc.api_keys:
            return feathers(401, "NotAuthenticated", "invalid signature")
        return None

    async def _forced(self, answer: Answer, endpoint: Endpoint,
                      request: Request) -> Response | None:
        """The response for a fault; ``None`` means: go on and answer normally."""
        ok = 201 if endpoint in ("enqueue", "submit") else 200
        if answer in hostile.LIST_KINDS or answer in hostile.AFTER_KINDS:
            request.state.mock_fault = answer  # served normally, spoiled by _list/_done
            return None
        if answer == "slow":
            await asyncio.sleep(self.state.scenario.faults.slow_s)
            return None
        if answer in ("drop", "accept_drop"):
            return _Drop()
        if answer == "html":
            return Response(_PROXY_PAGE, status_code=502, media_type="text/html")
        if answer == "empty":
            return Response(b"", status_code=ok)
        if answer == "garbage":
            return Response(b"<ok>", status_code=ok, media_type="text/plain")
        if answer in (200, 201):
            return None
        assert isinstance(answer, int)
        if answer == 400 and endpoint == "submit":  # the page's "Campo inválido" tab
            return feathers(400, "BadRequest", "The maximum of value is 10 for element "
                            f'"{await self._first_field(request)}".')
        name, message, code = _FORCED[answer]
        params = request.path_params
        message = message.format(branch=params.get("branch", ""), queue=params.get("queue", ""))
        headers = {"Retry-After": "1"} if answer == 429 else None
        return feathers(answer, name, message, code, headers)

    @staticmethod
    async def _first_field(request: Request) -> str:
        """The first field a submission names (besides the honeypot)."""
        try:
            values = json.loads(await request.body() or b"{}").get("values") or []
            return next(str(v["_id"]) for v in values if v.get("_id") != HONEYPOT)
        except (ValueError, AttributeError, StopIteration, KeyError, TypeError):
            return ""

    async def _guard(self, request: Request, endpoint: Endpoint) -> Response | None:
        denied = self._auth(request)
        if denied is not None:
            return denied
        fault = self.state.next_fault(endpoint)
        return await self._forced(fault, endpoint, request) if fault is not None else None

    def _done(self, request: Request, response: Response) -> Response:
        status: int | str = "drop" if isinstance(response, _Drop) else response.status_code
        kind = getattr(request.state, "mock_fault", None)
        if kind == "malformed":
            response, status = hostile.malformed(response, self.state.malformed_count()), kind
        elif kind == "trickle" and not isinstance(response, _Drop):
            response = hostile.Trickle(response, self.state.scenario.faults.trickle_s)
            status = kind
        self.state.record(request.method, request.url.path, status)
        return response

    def _list(self, request: Request, items: list[dict[str, Any]], endpoint: Endpoint) -> Response:
        """A list answer, reshaped by a list fault kind (see :mod:`kiosk.mock.hostile`)."""
        kind = getattr(request.state, "mock_fault", None)
        faults = self.state.scenario.faults
        if kind == "bad_queue_items":
            items = (hostile.bad_queue_items(items) if endpoint == "queues"
                     else hostile.bad_branches(items))
        elif kind == "many_queues" and endpoint == "queues":
            items = hostile.many_queues(items, faults.many_queues)
        query = dict(request.query_params)
        if kind == "paginated" or hostile.wants_page(query):
            return hostile.json_answer(hostile.paginate(items, query, faults.page_size))
        return hostile.json_answer(items)

    # ------------------------------------------------------------- endpoints

    async def branches(self, request: Request) -> Response:
        early = await self._guard(request, "branches")
        if early is not None:
            return self._done(request, early)
        body = [{"location": b.location, "label": b.label, "address": b.address,
                 "name": b.name, "id": b.id} for b in self.state.scenario.branches]
        return self._done(request, self._list(request, body, "branches"))

    async def queues(self, request: Request) -> Response:
        early = await self._guard(request, "queues")
        if early is not None:
            return self._done(request, early)
        branch = self.state.branch(request.path_params["branch"])
        if branch is None:
            return self._done(request, feathers(404, "NotFound", "The branch was not found"))
        return self._done(request, self._list(request, [self.state.as_api(q)
                                                        for q in branch.queues], "queues"))

    async def queue(self, request: Request) -> Response:
        early = await self._guard(request, "queue")
        if early is not None:
            return self._done(request, early)
        branch = self.state.branch(request.path_params["branch"])
        q = self.state.queue_in(branch, request.path_params["queue"]) if branch else None
        if q is None:
            return self._done(request, feathers(404, "NotFound",
                                                "The branch or segment was not found"))
        return self._done(request, JSONResponse(self.state.as_api(q)))

    async def enqueue(self, request: Request) -> Response:
        """Enqueue, noting what happened (:class:`EnqueueRecord`) to reconcile with."""
        started = self.state.clock()
        denied = self._auth(request)
        if denied is not None:
            return self._done(request, denied)
        await request.body()  # read whole first: a slow answer takes it even if the client left
        fault = self.state.next_fault("enqueue")
        early = None
        if fault is not None and fault not in AFTER_ACCEPT:
            early = await self._forced(fault, "enqueue", request)
        response = early or await self._enqueue(request)
        accepted = early is None and response.status_code == 201
        if accepted and fault in AFTER_ACCEPT:
            assert fault is not None
            response = await self._forced(fault, "enqueue", request) or response
        applied = early is not None or (accepted and fault in AFTER_ACCEPT) or fault == "slow" \
            or fault in hostile.AFTER_KINDS
        try:
            body = json.loads(await request.body())
            ticket_id = body.get("ticketId") if isinstance(body, dict) else None
        except (ValueError, UnicodeDecodeError):
            ticket_id = None
        record = EnqueueRecord(
            ticket_id=ticket_id if isinstance(ticket_id, str) else None,
            queue=request.path_params["queue"], at=started,
            answer=fault if applied and isinstance(fault, str) else response.status_code,
            accepted=accepted,
            delivered=fault not in CUT_ANSWERS and not await request.is_disconnected(),
            seconds=self.state.clock() - started)
        self.state.enqueues.append(record)
        return _Watched(self._done(request, response), record, self.state.clock, started)

    async def _enqueue(self, request: Request) -> Response:
        ref_b, ref_q = request.path_params["branch"], request.path_params["queue"]
        branch = self.state.branch(ref_b)
        q = self.state.queue_in(branch, ref_q) if branch else None
        if q is None:
            return feathers(400, "NotFound", f'The segment for the branch "{ref_b}" is not '
                            "assigned or the branch id is incorrect", 404)
        try:
            body = json.loads(await request.body() or b"null")
        except json.JSONDecodeError:
            return feathers(400, "BadRequest", "The body must be JSON.")
        if not isinstance(body, dict):
            return feathers(400, "BadRequest", "The body must be a JSON object.")
        ticket_id = body.get("ticketId")
        if not isinstance(ticket_id, str) or not 1 <= len(ticket_id) <= TICKET_ID_MAX:
            return feathers(400, "BadRequest",
                            f'"ticketId" must be a string of 1 to {TICKET_ID_MAX} characters.')
        data = body.get("integrationData")
        if data is not None and _json_size(data) > INTEGRATION_DATA_MAX:
            return feathers(400, "BadRequest", '"integrationData" exceeds the 50 Kb limit.')
        form = body.get("form")
        if q.form is not None and (not isinstance(form, str)
                                   or self.state.submissions.get(form) != q.id):
            return feathers(428, "PreconditionRequired",
                            "Is mandatory to provide a forms submission id.", 426)
        if self.state.free_agents(q) == 0:
            return feathers(406, "NotAcceptable",
                            f'Not agent available in the segment "{q.id}", please try later.')
        self.state.take_agent(q)
        record_id = self.state.new_id()
        assert branch is not None
        self.state.tickets.append(TicketRecord(
            id=record_id, branch=branch.id, queue=q.id, ticket_id=ticket_id,
            integration_data=data, form=form if isinstance(form, str) else None,
            at=self.state.clock()))
        self.webhooks.ticket_taken(branch={"id": branch.id, "label": branch.label},
                                   queue={"id": q.id, "name": q.name}, ticket_id=ticket_id,
                                   integration_data=data)
        return JSONResponse({"id": record_id, "segment": q.name}, status_code=201)

    async def get_form(self, request: Request) -> Response:
        early = await self._guard(request, "form")
        if early is not None:
            return self._done(request, early)
        version = request.query_params.get("version")
        q = self.state.queue_anywhere(request.path_params["segment"])
        if version not in ("base", "contact"):
            return self._done(request, feathers(400, "NotFound",
                                                f"The {version} version of form not found.", 404))
        if q is None or q.form is None:
            return self._done(request, feathers(400, "NotFound",
                                                "Not form found in segment provided.", 404))
        return self._done(request, JSONResponse(
            {"form": [_field_json(f) for f in q.form], "siteKey": "mock-site-key",
             "resource": "https://challenges.cloudflare.com/turnstile/v0/api.js",
             "provider": "turnstile"}))

    async def submit_form(self, request: Request) -> Response:
        return self._done(request, await self._submit_form(request))

    async def _submit_form(self, request: Request) -> Response:
        early = await self._guard(request, "submit")
        if early is not None:
            return early
        try:
            body = json.loads(await request.body() or b"null")
        except json.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            return feathers(400, "BadRequest", _NOT_A_FIELD)
        q = self.state.queue_anywhere(str(body.get("segment", "")))
        if q is None:
            return feathers(400, "BadRequest", "Please check the segment id provided.")
        if body.get("type") not in ("pre-call", "contact"):
            return feathers(400, "BadRequest", 'Provide a valid "type" form submission.')
        if q.form is None:
            return feathers(400, "NotFound", "Not form found in segment provided.", 404)
        values = body.get("values")
        if not isinstance(values, list) or not all(
                isinstance(v, dict) and isinstance(v.get("_id"), str) for v in values):
            return feathers(400, "BadRequest", _NOT_A_FIELD, data=_FORM_CHANGED)
        given = {v["_id"]: v.get("value") for v in values}
        if HONEYPOT not in given:
            return feathers(400, "BadRequest",
                            f'The element form "{HONEYPOT}" is required, never delete.')
        if given.pop(HONEYPOT) not in ("", None):  # a bot filled the trap
            return feathers(422, "Unprocessable", "Your submit looks suspicious, not pass the "
                            "captcha validation.", data={"extraData": "honeypot"})
        known = {f.id: f for f in q.form}
        if set(given) - set(known):  # made for another version of the form
            return feathers(400, "BadRequest", _NOT_A_FIELD, data=_FORM_CHANGED)
        for f in q.form:
            error = _field_error(f, given.get(f.id))
            if error is not None:
                return feathers(400, "BadRequest", error)
        submission = self.state.new_id()
        self.state.submissions[submission] = q.id
        self.state.form_posts.append({"segment": q.id, "type": body.get("type"),
                                      "values": values, "submission": submission})
        return JSONResponse({"message": "The form was saved successfully.", "success": True,
                             "submission": submission}, status_code=201)

    # ------------------------------------------------------------- test hooks

    async def mock_state(self, request: Request) -> Response:
        return JSONResponse({
            "tickets": [{"id": t.id, "branch": t.branch, "queue": t.queue,
                         "ticketId": t.ticket_id, "integrationData": t.integration_data,
                         "form": t.form, "at": t.at}
                        for t in self.state.tickets],
            "formSubmissions": self.state.form_posts,
            "requests": [list(r) for r in self.state.requests],
            "enqueues": [{"ticketId": e.ticket_id, "queue": e.queue, "at": e.at,
                          "answer": e.answer, "accepted": e.accepted,
                          "delivered": e.delivered, "seconds": e.seconds}
                         for e in self.state.enqueues],
        })

    async def mock_faults(self, request: Request) -> Response:
        try:
            faults = TypeAdapter(list[ScriptedFault]).validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        self.state.push_faults(*faults)
        return JSONResponse({"queued": len(faults)})

    async def mock_form(self, request: Request) -> Response:
        """The account's admin edits a form: ``{"fields": [...]}``, or ``{}`` for the
        scenario's ``form_next``."""
        try:
            body = json.loads(await request.body() or b"{}")
            fields = body.get("fields")
            specs = None if fields is None else TypeAdapter(list[FieldSpec]).validate_python(
                fields)
            self.state.change_form(request.path_params["queue"], specs)
        except (KeyError, ValueError, AttributeError) as exc:
            return JSONResponse({"error": f"unknown queue or bad fields: {exc}"},
                                status_code=400)
        return JSONResponse({"ok": True})

    async def mock_webhooks(self, request: Request) -> Response:
        """Every webhook delivery attempt so far (``kiosk.mock.webhooks``)."""
        return JSONResponse([a.as_json() for a in self.webhooks.log])

    async def mock_agents(self, request: Request) -> Response:
        body = json.loads(await request.body() or b"{}")
        try:
            self.state.set_agents(request.path_params["queue"], int(body["agents"]))
        except (KeyError, ValueError, TypeError):
            return JSONResponse({"error": "unknown queue or bad 'agents'"}, status_code=400)
        return JSONResponse({"ok": True})


def create_app(scenario: Scenario | MockState) -> Starlette:
    """The mock API over ``scenario`` (or over an existing state, to inspect it in tests)."""
    state = scenario if isinstance(scenario, MockState) else MockState(scenario)
    api = MockApi(state)
    routes = [
        Route(f"{PREFIX}/branches", api.branches, methods=["GET"]),
        Route(f"{PREFIX}/branches/{{branch}}/queues", api.queues, methods=["GET"]),
        Route(f"{PREFIX}/branches/{{branch}}/queues/{{queue}}", api.queue, methods=["GET"]),
        Route(f"{PREFIX}/branches/{{branch}}/queues/{{queue}}", api.enqueue, methods=["POST"]),
        Route(f"{PREFIX}/forms/{{segment}}", api.get_form, methods=["GET"]),
        Route(f"{PREFIX}/forms", api.submit_form, methods=["POST"]),
        Route("/_mock/state", api.mock_state, methods=["GET"]),
        Route("/_mock/webhooks", api.mock_webhooks, methods=["GET"]),
        Route("/_mock/faults", api.mock_faults, methods=["POST"]),
        Route("/_mock/queues/{queue}/agents", api.mock_agents, methods=["POST"]),
        Route("/_mock/forms/{queue}", api.mock_form, methods=["POST"]),
    ]
    async def not_found(request: Request, exc: Exception) -> Response:
        return feathers(404, "NotFound", f"Page not found: {request.url.path}")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return feathers(405, "MethodNotAllowed", f"Method {request.method} is not supported.")

    app = _MockApp(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
    app.state.mock = state
    app.state.webhooks = api.webhooks
    return app
