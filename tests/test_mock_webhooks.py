"""The mock's QMS webhook, end to end over loopback: mock enqueue -> rendered template
(pybars3, the provider's #jwt and hmac helpers) -> the real relay -> a screen; and the
provider's delivery rules (5xx retried up to 3 times, spaced, each attempt signed anew;
4xx never retried; slow cancelled)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kiosk.mock import MockServer, default_scenario_path, load_scenario
from kiosk.mock.webhooks import TemplateError, WebhookSpec, hmac_helper, sign_jwt
from kiosk.relay import RelayServer, RelaySettings
from kiosk.relay.config import read_public_keys
from kiosk.relay.contract import new_key_pair
from kiosk.relay.server import listening_socket
from tests.conftest import ATENCION, BRANCH, KEY
from tests.relay_helpers import SECRET, TOKEN_A, SseReader, write_private

PREFIX = "/public/video-contact-center"
PRIVATE, PUBLIC = new_key_pair()
"""The provider's key pair for the default template's JWT (the relay has the public one)."""
HMAC_TEMPLATE = Path(__file__).resolve().parent.parent / "kiosk" / "relay" / \
    "webhook-template-hmac.json"


def mock_with_webhook(tmp_path: Path, url: str, key: str | None = PRIVATE,
                      secret: bytes | None = SECRET, **spec: object) -> MockServer:
    """The mock sending its webhook to ``url``; the provider's secrets: the JWT's private
    key (``kioskJwtPrivateKey``, as ``kiosk webhook-keys`` writes it) and the HMAC's."""
    scenario = load_scenario(default_scenario_path())
    key_file = write_private(tmp_path / "mock-jwt-key", json.dumps(key)) if key else None
    secret_file = write_private(tmp_path / "mock-secret", secret.decode()) if secret else None
    hook = WebhookSpec.model_validate({"url": url, "jwt_key_file": key_file,
                                       "secret_file": secret_file,
                                       "delay_s": (0.0, 0.05), "time_scale": 0.005, **spec})
    return MockServer(scenario.model_copy(update={"webhook": hook}))


def enqueue(mock: MockServer, ticket: str, lang: str = "pt") -> None:
    r = httpx.post(f"{mock.url}{PREFIX}/branches/{BRANCH}/queues/{ATENCION}",
                   headers={"Authorization": f"Bearer {KEY}"},
                   json={"ticketId": ticket, "integrationData": {
                       "lang": lang, "source": "kiosk", "kiosk": "lobby-1", "day": "2026-12-01"}})
    assert r.status_code == 201, r.text


def attempts(mock: MockServer, n: int, timeout: float = 15) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while True:
        log: list[dict[str, object]] = httpx.get(mock.url + "/_mock/webhooks").json()
        if len(log) >= n:
            return log
        assert time.monotonic() < deadline, f"only {len(log)} attempts: {log}"
        time.sleep(0.05)


class Receiver:
    """A webhook receiver answering a scripted list of statuses (then 201), on loopback."""

    def __init__(self, statuses: list[int], sleep_s: float = 0.0) -> None:
        self.statuses = list(statuses)
        self.sleep_s = sleep_s
        self.bodies: list[bytes] = []
        self.authorizations: list[str] = []
        self.times: list[float] = []

        async def hook(request: Request) -> Response:
            self.bodies.append(await request.body())
            self.authorizations.append(request.headers.get("authorization", ""))
            self.times.append(time.monotonic())
            if self.sleep_s:
                await asyncio.sleep(self.sleep_s)
            return Response(status_code=self.statuses.pop(0) if self.statuses else 201)

        self._sock = listening_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/webhooks/videsk"
        self._server = uvicorn.Server(uvicorn.Config(
            Starlette(routes=[Route("/webhooks/videsk", hook, methods=["POST"])]),
            log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        while not self._server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._sock.close()


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayServer]:
    """A relay that takes only the JWT, with only the public key, as documented."""
    public = tmp_path / "webhook-jwt.pub"
    public.write_text(PUBLIC, encoding="ascii")
    settings = RelaySettings(jwt_keys=read_public_keys("t", "k", public), require_jwt=True,
                             displays={TOKEN_A: BRANCH}, sqlite_path=tmp_path / "relay.sqlite3")
    with RelayServer(settings) as server:
        yield server


def test_an_agent_taking_a_ticket_calls_it_on_the_branch_screen(tmp_path: Path,
                                                                  relay: RelayServer) -> None:
    screen = SseReader(relay.url, BRANCH, TOKEN_A).start_connected()
    with mock_with_webhook(tmp_path, relay.url + "/webhooks/videsk") as mock:
        enqueue(mock, "A-042", lang="pt")
        [(_, data)] = screen.take(1)
        assert data["ticketId"] == "A-042"
        assert data["poc"]["label"].startswith("Cabina ")
        assert data["queue"] == {"name": "Atención a clientes"}
        assert data["lang"] == "pt"
        [attempt] = attempts(mock, 1)
        assert attempt["status"] == 201


def test_a_priority_ticket_is_marked_on_the_screen(tmp_path: Path, relay: RelayServer) -> None:
    """What a kiosk sends at enqueue (integrationData.priority, the reason id) comes back
    in the provider's webhook, rendered from the published template, and on the screen."""
    screen = SseReader(relay.url, BRANCH, TOKEN_A).start_connected()
    with mock_with_webhook(tmp_path, relay.url + "/webhooks/videsk") as mock:
        r = httpx.post(f"{mock.url}{PREFIX}/branches/{BRANCH}/queues/{ATENCION}",
                       headers={"Authorization": f"Bearer {KEY}"},
                       json={"ticketId": "AP-001", "integrationData": {
                           "lang": "es", "source": "kiosk", "kiosk": "lobby-1",
                           "day": "2026-12-01", "priority": "pregnant"}})
        assert r.status_code == 201
        enqueue(mock, "A-043", lang="es")
        events = dict((data["ticketId"], data) for _, data in screen.take(2))
    assert events["AP-001"]["priority"] == "pregnant"
    assert "priority" not in events["A-043"]
    screen.stop()


def test_5xx_is_retried_three_times_spaced_then_given_up(tmp_path: Path) -> None:
    scale = 0.02  # retries 1.2, 2.4, 3.6 s apart: each JWT has its own iat (whole seconds)
    with Receiver([503, 500, 502, 503, 503]) as rx, \
            mock_with_webhook(tmp_path, rx.url, time_scale=scale) as mock:
        enqueue(mock, "A-001")
        log = attempts(mock, 4)
        time.sleep(0.5)
        assert [a["status"] for a in httpx.get(mock.url + "/_mock/webhooks").json()] == \
            [503, 500, 502, 503]
        gaps = [b - a for a, b in zip(rx.times, rx.times[1:], strict=False)]
        # the provider's 60 s, 120 s, 180 s, scaled: incremental
        assert [round(g, 1) >= round(d * scale, 1) for g, d in zip(gaps, (60, 120, 180),
                                                                    strict=True)] == [True] * 3
        assert len({a["callId"] for a in log}) == 1
        assert len(set(rx.bodies)) == 1  # the same call each time
        iats = [jwt.decode(a.removeprefix("Bearer "), options={"verify_signature": False})
                ["iat"] for a in rx.authorizations]
        assert iats == sorted(iats) and len(set(iats)) == 4  # signed anew for each attempt


def test_a_5xx_then_success_is_one_delivered_call(tmp_path: Path, relay: RelayServer) -> None:
    with Receiver([503]) as rx, mock_with_webhook(tmp_path, rx.url) as mock:
        enqueue(mock, "A-002")
        log = attempts(mock, 2)
        assert [a["status"] for a in log] == [503, 201]


def test_4xx_is_logged_and_never_retried(tmp_path: Path, relay: RelayServer) -> None:
    other, _ = new_key_pair()
    with mock_with_webhook(tmp_path, relay.url + "/webhooks/videsk", key=other) as mock:
        enqueue(mock, "A-003")
        [attempt] = attempts(mock, 1)
        time.sleep(0.5)
        assert len(httpx.get(mock.url + "/_mock/webhooks").json()) == 1
        assert attempt["status"] == 401
        assert attempt["source"] == "third-party"


def test_a_receiver_slower_than_the_timeout_is_cancelled(tmp_path: Path) -> None:
    with Receiver([], sleep_s=2.0) as rx, \
            mock_with_webhook(tmp_path, rx.url, timeout_s=0.3) as mock:
        enqueue(mock, "A-004")
        [attempt] = attempts(mock, 1)
        assert attempt["status"] is None
        assert "cancelled" in str(attempt["error"])


def test_without_a_secret_the_template_does_not_render_and_nothing_is_sent(
        tmp_path: Path) -> None:
    with Receiver([]) as rx, mock_with_webhook(tmp_path, rx.url, key=None) as mock:
        enqueue(mock, "A-005")
        [attempt] = attempts(mock, 1)
        assert attempt["source"] == "parsing"
        assert "#jwt content is not valid JSON" in str(attempt["error"])
    with Receiver([]) as rx, mock_with_webhook(tmp_path, rx.url, secret=None,
                                               template=HMAC_TEMPLATE) as mock:
        enqueue(mock, "A-006")
        [attempt] = attempts(mock, 1)
        assert attempt["source"] == "parsing"
        assert "Secret key is required" in str(attempt["error"])
    assert rx.bodies == []


def test_the_hmac_template_still_works_end_to_end(tmp_path: Path) -> None:
    settings = RelaySettings(secrets=(SECRET,), displays={TOKEN_A: BRANCH},
                             sqlite_path=tmp_path / "relay.sqlite3")
    with RelayServer(settings) as relay, mock_with_webhook(
            tmp_path, relay.url + "/webhooks/videsk", key=None,
            template=HMAC_TEMPLATE) as mock:
        screen = SseReader(relay.url, BRANCH, TOKEN_A).start_connected()
        enqueue(mock, "A-043")
        [(_, data)] = screen.take(1)
        assert data["ticketId"] == "A-043"


def test_the_jwt_helper_signs_as_jsonwebtoken_does() -> None:
    import jwt
    token = sign_jwt({"payload": {"callId": "c"}, "privateKey": "k" * 32,
                      "options": {"expiresIn": "5 minutes", "jwtid": "j-1", "issuer": "v"}})
    claims = jwt.decode(token, "k" * 32, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 300
    assert (claims["jti"], claims["iss"], claims["callId"]) == ("j-1", "v", "c")
    rs = sign_jwt({"payload": {"a": 1}, "privateKey": PRIVATE,
                   "options": {"algorithm": "RS256", "expiresIn": 60}})
    assert jwt.get_unverified_header(rs)["alg"] == "RS256"
    for spec, message in [({"payload": {}, "privateKey": ""}, "must have a value"),
                          ({"payload": {}, "privateKey": "k", "options": {
                              "expiresIn": "soon"}}, "timespan"),
                          ({"payload": {}, "privateKey": "not a pem", "options": {
                              "algorithm": "RS256"}}, "Error")]:
        with pytest.raises(TemplateError, match=message):
            sign_jwt(spec)


def test_the_hmac_helper_behaves_like_the_providers() -> None:
    assert hmac_helper(None, "data", "key") == \
        "5031fe3d989c6d1537a013fa6e739da23463fdaec3b70137d828e36ace221bd0"
    assert hmac_helper(None, 42, "key") == hmac_helper(None, "42", "key")
    assert len(hmac_helper(None, "d", "k", "sha512")) == 128
    assert hmac_helper(None, "d", "k", "sha256", "base64url").isascii()
    for args, message in [(("", "k"), "Data to sign is required"),
                          (("d", ""), "Secret key is required"),
                          (("d", "k", "sha256", "utf9"), "Invalid encoding"),
                          (("d", "k", "nope"), "Failed to generate HMAC")]:
        with pytest.raises(TemplateError, match=message):
            hmac_helper(None, *args)


@pytest.mark.slow
def test_kiosk_mock_api_takes_the_webhook_flags(tmp_path: Path, relay: RelayServer) -> None:
    from kiosk.relay.server import free_port
    key = write_private(tmp_path / "key", json.dumps(PRIVATE))
    port = free_port()
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-m", "kiosk", "mock-api", "--port", str(port),
                             "--webhook-url", relay.url + "/webhooks/videsk",
                             "--webhook-jwt-key-file", str(key)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url + "/_mock/state", timeout=0.5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
        screen = SseReader(relay.url, BRANCH, TOKEN_A).start_connected()
        r = httpx.post(f"{url}{PREFIX}/branches/{BRANCH}/queues/{ATENCION}",
                       headers={"Authorization": f"Bearer {KEY}"}, json={"ticketId": "A-077"})
        assert r.status_code == 201
        # the default delay is 2-6 s: an agent picks the call up
        [(_, data)] = screen.take(1, timeout=20)
        assert data["ticketId"] == "A-077" and "lang" not in data
    finally:
        proc.terminate()
        proc.wait(timeout=10)
