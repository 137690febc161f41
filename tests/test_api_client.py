"""The API client against the mock, in-process (ASGI) and over real loopback HTTP, for every
documented answer and every failure, plus the retry rules."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from kiosk.api import QmsClient, RetryPolicy, error_for_status
from kiosk.api.client import USER_AGENT
from kiosk.errors import (
    AcceptedUnreadable,
    ApiTimeout,
    BadRequest,
    ConnectFailed,
    ConnectionLost,
    Forbidden,
    FormRequired,
    MalformedResponse,
    NoAgents,
    NotFound,
    RateLimited,
    RequestInvalid,
    ServerError,
    Unauthorized,
    UnexpectedStatus,
    Unprocessable,
)
from kiosk.mock import MockServer, MockState, ScriptedFault, create_app

from .conftest import ATENCION, BRANCH, CREDITOS, CUENTAS, FAST_RETRY, KEY, SEGUROS, FakeClock


@pytest.fixture(params=["asgi", "loopback"])
async def client(request: pytest.FixtureRequest, state: MockState) -> AsyncIterator[QmsClient]:
    """The client over both transports, against the same kind of mock state."""
    if request.param == "asgi":
        c = QmsClient("http://mock.invalid", KEY,
                      transport=httpx.ASGITransport(app=create_app(state)), retry=FAST_RETRY)
        yield c
        await c.aclose()
    else:
        with MockServer(state) as srv:
            c = QmsClient(srv.url, KEY, retry=FAST_RETRY, timeout_s=2)
            yield c
            await c.aclose()


def enqueues(state: MockState) -> list[tuple[str, str, int | str]]:
    return [r for r in state.requests if r[0] == "POST" and "/queues/" in r[1]]


# ----------------------------------------------------------------------- documented answers


async def test_list_branches(client: QmsClient) -> None:
    branches = await client.list_branches()
    assert [b.id for b in branches] == [BRANCH, "652720d479497a1b62df2890"]
    assert branches[0].label == "Sucursal Providencia"


async def test_list_queues_has_agents_and_wait(client: QmsClient) -> None:
    queues = await client.list_queues(BRANCH)
    by_id = {q.id: q for q in queues}
    assert by_id[ATENCION].name == "Atención a clientes"
    assert by_id[ATENCION].users == 3
    assert by_id[CREDITOS].users == 0
    assert all(q.avg_waiting_time >= 0 for q in queues)


async def test_branch_by_integration_id(client: QmsClient) -> None:
    assert len(await client.list_queues("providencia")) == 4


async def test_get_queue(client: QmsClient) -> None:
    q = await client.get_queue(BRANCH, CUENTAS)
    assert (q.id, q.users) == (CUENTAS, 1)


async def test_unknown_branch_is_not_found(client: QmsClient) -> None:
    with pytest.raises(NotFound) as info:
        await client.list_queues("000000000000000000000000")
    assert info.value.status_code == 404
    assert info.value.api_message == "The branch was not found"


async def test_unknown_queue_is_not_found(client: QmsClient) -> None:
    with pytest.raises(NotFound):
        await client.get_queue(BRANCH, "nope")


async def test_enqueue_201(client: QmsClient, state: MockState) -> None:
    result = await client.enqueue(BRANCH, ATENCION, "A-001", integration_data={"k": 1})
    assert result.segment == "Atención a clientes"
    assert len(result.id) == 24
    assert [(t.ticket_id, t.integration_data) for t in state.tickets] == [("A-001", {"k": 1})]
    assert (await client.get_queue(BRANCH, ATENCION)).users == 2  # an agent took it


async def test_enqueue_wrong_branch_is_400_with_code_404(client: QmsClient) -> None:
    with pytest.raises(NotFound) as info:
        await client.enqueue("1234567890", ATENCION, "A-001")
    assert (info.value.status_code, info.value.body_code) == (400, 404)
    assert "is not assigned" in info.value.api_message


async def test_enqueue_no_agents_is_406(client: QmsClient, state: MockState) -> None:
    with pytest.raises(NoAgents) as info:
        await client.enqueue(BRANCH, CREDITOS, "C-001")
    assert info.value.status_code == 406
    assert state.tickets == []


async def test_enqueue_form_required_is_428_with_code_426(client: QmsClient) -> None:
    with pytest.raises(FormRequired) as info:
        await client.enqueue(BRANCH, SEGUROS, "D-001")
    assert (info.value.status_code, info.value.body_code) == (428, 426)


GOOD_VALUES = {"firstname": "Ana Pérez", "email": "ana@example.com", "insurance": "auto",
               "message": ""}


def good_values(form: Any) -> list[dict[str, Any]]:
    return [{"_id": "videsk_essential", "value": ""},
            *({"_id": f.id, "value": GOOD_VALUES[f.name]} for f in form.form)]


async def test_form_then_enqueue(client: QmsClient, state: MockState) -> None:
    form = await client.get_form(SEGUROS)
    assert [f.type for f in form.form] == ["text", "email", "select", "textarea"]
    assert form.form[0].properties.required and form.form[0].properties.maxlength == 50
    assert form.form[0].label["en"] == "Full name"  # one label per language, where given
    sub = await client.submit_form(SEGUROS, "pre-call", good_values(form))
    assert sub.success
    await client.enqueue(BRANCH, SEGUROS, "D-002", form=sub.submission)
    assert state.tickets[-1].form == sub.submission


async def test_form_errors(client: QmsClient) -> None:
    with pytest.raises(NotFound):  # documented under a "400" tab with code 404
        await client.get_form(ATENCION)
    form = await client.get_form(SEGUROS)
    with pytest.raises(BadRequest, match="required"):
        await client.submit_form(SEGUROS, "pre-call", [
            {"_id": "videsk_essential", "value": ""}, {"_id": form.form[0].id, "value": ""}])
    with pytest.raises(BadRequest, match="maximum"):
        await client.submit_form(SEGUROS, "pre-call", [
            {"_id": "videsk_essential", "value": ""},
            *({"_id": f.id, "value": "x" * 60} for f in form.form)])


# ----------------------------------------------------------------------- auth


@pytest.mark.parametrize(("key", "error", "message"), [
    ("", Unauthorized, "Authorization header with valid JWT is required."),
    ("not-a-jwt", Unauthorized, "jwt malformed"),
    ("wrong.signature.key", Unauthorized, "invalid signature"),
    ("mock.expired.key", Unauthorized, "jwt expired"),
    ("mock.revoked.key", Forbidden, "The integration token it's invalid or was removed."),
])
async def test_auth_failures(state: MockState, key: str, error: type[Exception],
                             message: str) -> None:
    async with QmsClient("http://m", key, transport=httpx.ASGITransport(app=create_app(state)),
                         retry=FAST_RETRY) as c:
        with pytest.raises(error) as info:
            await c.list_branches()
    assert info.value.api_message == message  # type: ignore[attr-defined]


async def test_request_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    async with QmsClient("https://api.example", "my.secret.key",
                         transport=httpx.MockTransport(handler)) as c:
        await c.list_queues("b/../x")
        assert "my.secret.key" not in repr(c)
    req = seen[0]
    assert req.headers["authorization"] == "Bearer my.secret.key"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["user-agent"] == USER_AGENT and USER_AGENT.startswith("kiosk/")
    assert req.url.raw_path == b"/public/video-contact-center/branches/b%2F..%2Fx/queues"


# ----------------------------------------------------------------------- malformed answers


@pytest.mark.parametrize(("answer", "error", "status"), [
    ("html", ServerError, 502),
    (500, ServerError, 500),
    (503, ServerError, 503),
    ("empty", MalformedResponse, 200),
    ("garbage", MalformedResponse, 200),
])
async def test_get_failures_become_typed_errors(client: QmsClient, state: MockState,
                                                answer: Any, error: type[Exception],
                                                status: int) -> None:
    state.push_faults(ScriptedFault(on="queues", answer=answer, times=3))
    with pytest.raises(error) as info:
        await client.list_queues(BRANCH)
    assert info.value.status_code == status  # type: ignore[attr-defined]


async def test_wrong_json_shape(client: QmsClient) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[{"name": "x", "id": "1", "users": "many",
                                          "avgWaitingTime": 1}])

    async with QmsClient("http://m", KEY, transport=httpx.MockTransport(handler),
                         retry=FAST_RETRY) as c:
        with pytest.raises(MalformedResponse, match=r"at 0\.users"):
            await c.list_queues(BRANCH)


async def test_extra_fields_are_tolerated() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[{"name": "x", "id": "1", "users": 2,
                                          "avgWaitingTime": 1.5, "color": "red"}])

    async with QmsClient("http://m", KEY, transport=httpx.MockTransport(handler)) as c:
        (q,) = await c.list_queues(BRANCH)
    assert (q.users, q.avg_waiting_time) == (2, 1.5)


@pytest.mark.parametrize("answer", ["empty", "garbage"])
async def test_enqueue_201_unreadable_is_accepted(client: QmsClient, state: MockState,
                                                  answer: str) -> None:
    state.push_faults(ScriptedFault(on="enqueue", answer=answer))
    with pytest.raises(AcceptedUnreadable) as info:
        await client.enqueue(BRANCH, ATENCION, "A-001")
    assert info.value.status_code == 201
    assert len(enqueues(state)) == 1  # never re-sent


# ----------------------------------------------------------------------- status mapping


@pytest.mark.parametrize(("status", "body", "error"), [
    (400, {"name": "NotFound", "code": 404}, NotFound),
    (400, {"name": "BadRequest", "code": 400}, BadRequest),
    (400, None, BadRequest),
    (404, None, NotFound),                               # likely twin of the 400 quirk
    (426, {"name": "PreconditionRequired"}, FormRequired),  # likely twin of the 428 quirk
    (428, {"code": 426}, FormRequired),
    (406, {}, NoAgents),
    (422, {}, Unprocessable),
    (401, {}, Unauthorized),
    (403, {}, Forbidden),
    (429, {}, RateLimited),
    (502, "<html>", ServerError),
    (409, {"name": "NotAcceptable"}, NoAgents),          # unlisted status: by body name
    (418, {"name": "Teapot"}, UnexpectedStatus),
    (418, None, UnexpectedStatus),
])
def test_error_for_status(status: int, body: Any, error: type[Exception]) -> None:
    assert type(error_for_status(status, body)) is error


def test_retry_after_header() -> None:
    err = error_for_status(429, {}, httpx.Headers({"Retry-After": "7"}))
    assert isinstance(err, RateLimited) and err.retry_after == 7.0


# ----------------------------------------------------------------------- retries


async def test_enqueue_retries_422_with_the_same_ticket_id(client: QmsClient,
                                                           state: MockState) -> None:
    state.push_faults(ScriptedFault(on="enqueue", answer=422, times=2))
    await client.enqueue(BRANCH, ATENCION, "A-007")
    assert [r[2] for r in enqueues(state)] == [422, 422, 201]
    assert [t.ticket_id for t in state.tickets] == ["A-007"]


async def test_enqueue_gives_up_after_two_retries(client: QmsClient, state: MockState) -> None:
    state.push_faults(ScriptedFault(on="enqueue", answer=422, times=5))
    with pytest.raises(Unprocessable):
        await client.enqueue(BRANCH, ATENCION, "A-008")
    assert len(enqueues(state)) == 3
    assert state.tickets == []


@pytest.mark.parametrize("answer", [500, 503, 429, "html"])
async def test_enqueue_never_retries_5xx_or_429(client: QmsClient, state: MockState,
                                                answer: Any) -> None:
    state.push_faults(ScriptedFault(on="enqueue", answer=answer, times=3))
    with pytest.raises((ServerError, RateLimited)):
        await client.enqueue(BRANCH, ATENCION, "A-009")
    assert len(enqueues(state)) == 1


async def test_gets_retry_5xx_and_429(client: QmsClient, state: MockState) -> None:
    state.push_faults(ScriptedFault(on="queues", answer=503),
                      ScriptedFault(on="queues", answer=429))
    assert len(await client.list_queues(BRANCH)) == 4
    assert [r[2] for r in state.requests] == [503, 429, 200]


async def test_dropped_connection_on_enqueue_is_not_retried(state: MockState) -> None:
    with MockServer(state) as srv:
        async with QmsClient(srv.url, KEY, retry=FAST_RETRY) as c:
            state.push_faults(ScriptedFault(on="enqueue", answer="drop"))
            with pytest.raises(ConnectionLost):
                await c.enqueue(BRANCH, ATENCION, "A-010")
            assert len(enqueues(state)) == 1
            # and a GET that is dropped is simply retried
            state.push_faults(ScriptedFault(on="queues", answer="drop"))
            assert len(await c.list_queues(BRANCH)) == 4


async def test_slow_answer_times_out_and_enqueue_is_not_retried(state: MockState) -> None:
    state.scenario.faults.slow_s = 1.0
    with MockServer(state) as srv:
        async with QmsClient(srv.url, KEY, retry=FAST_RETRY, timeout_s=0.2) as c:
            state.push_faults(ScriptedFault(on="enqueue", answer="slow"))
            with pytest.raises(ApiTimeout):
                await c.enqueue(BRANCH, ATENCION, "A-011")
    posts = [r for r in enqueues(state)]
    assert len(posts) <= 1  # the server may still record the one request; never a second


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


async def test_connection_refused_is_connect_failed_after_retries() -> None:
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    policy = RetryPolicy(initial_delay_s=0.5, max_delay_s=0.8, jitter=0.0)
    async with QmsClient(f"http://127.0.0.1:{closed_port()}", KEY, retry=policy,
                         sleep=sleep) as c:
        with pytest.raises(ConnectFailed):
            await c.enqueue(BRANCH, ATENCION, "A-012")
    assert waits == [0.5, 0.8]  # two retries, doubling, capped


def scripted(*steps: Callable[[httpx.Request], httpx.Response]) -> tuple[httpx.MockTransport,
                                                                       list[httpx.Request]]:
    seen: list[httpx.Request] = []
    todo = list(steps)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return todo.pop(0)(request)

    return httpx.MockTransport(handler), seen


def raise_(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def step(request: httpx.Request) -> httpx.Response:
        raise exc
    return step


def created(request: httpx.Request) -> httpx.Response:
    return httpx.Response(201, json={"id": "x" * 24, "segment": "S"})


async def test_enqueue_retries_a_connection_that_never_opened_with_same_body() -> None:
    transport, seen = scripted(raise_(httpx.ConnectError("refused")), created)
    async with QmsClient("http://m", KEY, transport=transport, retry=FAST_RETRY) as c:
        await c.enqueue(BRANCH, ATENCION, "A-013", integration_data={"a": 1})
    bodies = [json.loads(r.content) for r in seen]
    assert bodies == [{"ticketId": "A-013", "integrationData": {"a": 1}}] * 2


@pytest.mark.parametrize(("exc", "error"), [
    (httpx.ReadTimeout("slow"), ApiTimeout),
    (httpx.WriteTimeout("slow"), ApiTimeout),
    (httpx.RemoteProtocolError("gone"), ConnectionLost),
    (httpx.ReadError("reset"), ConnectionLost),
])
async def test_enqueue_never_retried_after_it_may_have_landed(exc: Exception,
                                                              error: type[Exception]) -> None:
    transport, seen = scripted(raise_(exc), created)
    async with QmsClient("http://m", KEY, transport=transport, retry=FAST_RETRY) as c:
        with pytest.raises(error):
            await c.enqueue(BRANCH, ATENCION, "A-014")
    assert len(seen) == 1


async def test_429_waits_retry_after_capped() -> None:
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    def limited(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "120"}, json={})

    transport, _ = scripted(limited, lambda r: httpx.Response(200, json=[]))
    async with QmsClient("http://m", KEY, transport=transport, sleep=sleep,
                         retry=RetryPolicy(max_retry_after_s=10)) as c:
        assert await c.list_queues(BRANCH) == []
    assert waits == [10]


def test_backoff_jitter_stays_in_bounds() -> None:
    p = RetryPolicy(initial_delay_s=1.0, max_delay_s=3.0, jitter=0.25)
    err = ServerError(503)
    assert p.delay(1, err, 0.0) == 0.75 and p.delay(1, err, 1.0) == 1.25
    assert p.delay(5, err, 0.5) == 3.0


# ----------------------------------------------------------------------- local validation


@pytest.mark.parametrize(("ticket", "data"), [
    ("", None),
    ("x" * 51, None),
    ("A-1", {"blob": "x" * 50_001}),
    ("A-1", {"bad": object()}),
])
async def test_invalid_requests_are_refused_before_sending(ticket: str, data: Any) -> None:
    transport, seen = scripted(created)
    async with QmsClient("http://m", KEY, transport=transport) as c:
        with pytest.raises(RequestInvalid):
            await c.enqueue(BRANCH, ATENCION, ticket, integration_data=data)
    assert seen == []


async def test_limits_at_the_edge_are_accepted(client: QmsClient, state: MockState) -> None:
    await client.enqueue(BRANCH, ATENCION, "x" * 50, integration_data="y" * 49_990)
    assert state.tickets[-1].ticket_id == "x" * 50


async def test_mock_enforces_the_limits_too(state: MockState) -> None:
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://m") as raw:
        url = f"/public/video-contact-center/branches/{BRANCH}/queues/{ATENCION}"
        h = {"Authorization": f"Bearer {KEY}"}
        assert (await raw.post(url, json={"ticketId": "x" * 51}, headers=h)).status_code == 400
        big = {"ticketId": "A", "integrationData": "y" * 50_001}
        assert (await raw.post(url, json=big, headers=h)).status_code == 400
        assert (await raw.get("/public/video-contact-center/nothing", headers=h)).json()[
            "name"] == "NotFound"


async def test_agents_free_up_over_time(api: QmsClient, clock: FakeClock) -> None:
    for n in range(3):
        await api.enqueue(BRANCH, ATENCION, f"A-{n}")
    assert (await api.get_queue(BRANCH, ATENCION)).users == 0
    with pytest.raises(NoAgents):
        await api.enqueue(BRANCH, ATENCION, "A-3")
    clock.advance(61)  # service_s is [20, 60]
    assert (await api.get_queue(BRANCH, ATENCION)).users == 3


async def test_a_request_over_loopback_tries_no_import(server: MockServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """httpcore asks ``import sniffio`` several times per request; without it installed
    each ask is a failed import that searches every sys.path entry (~0.7 ms of CPU per
    request here). Once warm, a request looks nothing up."""
    import sys

    asked: list[str] = []

    class Spy:
        @staticmethod
        def find_spec(name: str, path: object = None, target: object = None) -> None:
            asked.append(name)

    async with QmsClient(server.url, KEY, retry=FAST_RETRY) as api:
        await api.enqueue(BRANCH, ATENCION, "A-001")  # warm: lazy imports happen once
        monkeypatch.setattr(sys, "meta_path", [Spy(), *sys.meta_path])
        await api.enqueue(BRANCH, ATENCION, "A-002")
        await api.list_queues(BRANCH)
    assert asked == []
