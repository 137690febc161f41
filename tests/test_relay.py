"""The calling relay over real loopback HTTP: webhook checks, the SSE stream, the SQLite
store (restart durability included), config rules."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
import yaml

from kiosk.relay import RelayConfigError, RelayServer, load_settings, relay_process
from kiosk.relay.config import check_listen
from kiosk.relay.contract import SCHEMA, field_signature, parse, template
from kiosk.relay.hub import Hub, Screen
from kiosk.relay.store import Event
from tests.relay_helpers import (
    BRANCH_A,
    BRANCH_B,
    SECRET,
    TOKEN_A,
    TOKEN_B,
    SseReader,
    call_body,
    event_id,
    jwt_headers,
    post,
    settings,
    sign,
    write_private,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayServer]:
    with RelayServer(settings(tmp_path)) as server:
        yield server


# --------------------------------------------------------------------------- webhook


def test_a_signed_call_reaches_its_branch_screen(relay: RelayServer) -> None:
    screen = SseReader(relay.url, BRANCH_A, TOKEN_A).start_connected()
    r = post(relay.url, call_body("A-042", "call-1", poc="Cabina 3", lang="en"))
    assert r.status_code == 201
    [(ev_id, data)] = screen.take(1)
    assert ev_id == event_id(r)
    assert data["ticketId"] == "A-042"
    assert data["poc"] == {"label": "Cabina 3"}
    assert data["queue"] == {"name": "Atención a clientes"}
    assert data["lang"] == "en"
    assert data["at"].startswith(time.strftime("%Y-", time.gmtime()))
    metrics = httpx.get(relay.url + "/metrics").text
    assert 'relay_webhooks_total{reason="stored",result="accepted"} 1.0' in metrics
    assert "relay_call_latency_seconds_count 1.0" in metrics
    screen.stop()


def test_lang_is_left_out_when_absent_or_unknown(relay: RelayServer) -> None:
    screen = SseReader(relay.url, BRANCH_A, TOKEN_A).start_connected()
    assert post(relay.url, call_body("A-001", "c1", lang=None)).status_code == 201
    assert post(relay.url, call_body("A-002", "c2", lang="fr")).status_code == 201
    events = screen.take(2)
    assert all("lang" not in data for _, data in events)


def test_a_priority_tickets_call_is_marked_for_the_screens(relay: RelayServer) -> None:
    """integrationData.priority, as the template renders it (the reason id, "true" where
    the kiosk asks none, "" for a regular ticket), reaches the screens as "priority";
    anything else is no mark."""
    from kiosk.view.calling import parse_call
    screen = SseReader(relay.url, BRANCH_A, TOKEN_A).start_connected()
    for i, given in enumerate(("senior", "true", "", "Senior<b>", "x" * 40)):
        body = call_body(f"AP-00{i}", f"c{i}", priority=given)
        assert post(relay.url, body).status_code == 201
    events = screen.take(5)
    assert [data.get("priority") for _, data in events] == ["senior", True, None, None, None]
    calls = [parse_call(ev_id, json.dumps(data)) for ev_id, data in events]
    assert [c.priority for c in calls] == ["senior", "yes", "", "", ""]
    screen.stop()


@pytest.mark.parametrize(("headers", "reason"), [
    ({"Content-Type": "application/json"}, "missing_signature"),
    ({"X-Kiosk-Signature": "sha256=" + "0" * 64}, "bad_signature"),
    ({"X-Kiosk-Signature": "sha1=abc"}, "bad_signature"),
])
def test_unsigned_or_badly_signed_calls_are_refused(relay: RelayServer,
                                                    headers: dict[str, str],
                                                    reason: str) -> None:
    screen = SseReader(relay.url, BRANCH_A, TOKEN_A).start_connected()
    r = post(relay.url, call_body(), headers)
    assert r.status_code == 401
    assert r.json()["error"] == reason
    assert screen.nothing_more()
    metrics = httpx.get(relay.url + "/metrics").text
    assert f'relay_webhooks_total{{reason="{reason}",result="rejected"}} 1.0' in metrics


def test_a_signature_with_another_secret_is_refused(relay: RelayServer) -> None:
    body = call_body()
    assert post(relay.url, body, sign(body, b"another-secret-0123456789abcdef")).status_code == 401


def test_a_tampered_body_is_refused(relay: RelayServer) -> None:
    body = call_body(poc="Cabina 3")
    headers = sign(body)
    assert post(relay.url, body.replace(b"Cabina 3", b"Cabina 9"), headers).status_code == 401


def test_the_template_field_signature_is_accepted_and_binds_the_fields(
        relay: RelayServer) -> None:
    body = call_body("B-007", "call-77", poc="Cabina 1", queue_name="Seguros")
    sig = field_signature(SECRET, BRANCH_A, "B-007", "Seguros", "Cabina 1", "call-77")
    headers = {"Content-Type": "application/json", "X-Kiosk-Signature": f"sha256={sig}"}
    forged = body.replace(b"Cabina 1", b"Cabina 2")
    assert post(relay.url, forged, headers).status_code == 401
    assert post(relay.url, body, headers).status_code == 201


def test_a_signed_body_that_is_not_a_call_is_400(relay: RelayServer) -> None:
    for body in (b"{not json", b"[1, 2]", json.dumps({"event": "qms.ticket.assigned"}).encode(),
                 call_body(branch="bad branch id")):
        r = post(relay.url, body)
        assert r.status_code == 400, body
        assert r.json()["error"] == "malformed"


@pytest.mark.parametrize("escaped", [False, True])
def test_a_call_is_utf8_json_whichever_way_it_is_read(relay: RelayServer,
                                                     escaped: bool) -> None:
    """A body with '&' is read by another path (HTML-unescaped): both take UTF-8 with or
    without a BOM, and refuse UTF-16 and UTF-32 alike."""
    queue = "Caja &amp; Seguros" if escaped else "Caja"
    text = call_body("A-1", "c-1", queue_name=queue).decode()
    assert post(relay.url, b"\xef\xbb\xbf" + text.encode()).status_code == 201
    for n, codec in enumerate(("utf-16", "utf-16-le", "utf-32")):
        body = call_body(f"A-{n + 2}", f"c-{n + 2}", queue_name=queue).decode().encode(codec)
        r = post(relay.url, body)
        assert (r.status_code, r.json()["error"]) == (400, "malformed"), codec


def test_an_oversized_body_is_413(relay: RelayServer) -> None:
    body = call_body()[:-1] + b', "pad": "' + b"x" * 70_000 + b'"}'
    assert post(relay.url, body).status_code == 413


def test_an_unsigned_oversized_body_streamed_without_length_is_413(relay: RelayServer) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"x" * 8192
    r = httpx.post(relay.url + "/webhooks/videsk", content=chunks(), timeout=10)
    assert r.status_code == 413


def test_a_repeated_delivery_is_one_call_and_a_new_call_id_a_recall(
        relay: RelayServer) -> None:
    screen = SseReader(relay.url, BRANCH_A, TOKEN_A).start_connected()
    body = call_body("A-042", "call-1", poc="Cabina 3")
    first = post(relay.url, body)
    again = post(relay.url, body)
    # the agent moved the ticket to another booth: a new call id, a new call (issue 16.5)
    moved = post(relay.url, call_body("A-042", "call-2", poc="Cabina 5"))
    assert (first.status_code, again.status_code, moved.status_code) == (201, 200, 201)
    assert again.headers["x-relay-duplicate"] == "true" and again.content == b""
    got = screen.take(2)
    assert [d["poc"]["label"] for _, d in got] == ["Cabina 3", "Cabina 5"]
    assert "recall" not in got[0][1] and got[1][1]["recall"] is True
    assert screen.nothing_more()
    metrics = httpx.get(relay.url + "/metrics").text
    assert "relay_duplicates_total 1.0" in metrics
    assert "relay_recalls_total 1.0" in metrics


def test_a_second_secret_works_during_a_rotation(tmp_path: Path) -> None:
    new = b"the-new-secret-0123456789abcdefgh"
    with RelayServer(settings(tmp_path, secrets=(SECRET, new))) as relay:
        body = call_body("A-1", "c-1")
        assert post(relay.url, body, sign(body, new)).status_code == 201
        body = call_body("A-2", "c-2")
        assert post(relay.url, body, sign(body, SECRET)).status_code == 201


def test_a_required_jwt_must_be_valid_fresh_and_bound(tmp_path: Path) -> None:
    with RelayServer(settings(tmp_path, require_jwt=True)) as relay:
        body = call_body("A-1", "c-1")
        r = post(relay.url, body)  # an HMAC alone is not enough here
        assert (r.status_code, r.json()["error"]) == (401, "missing_jwt")
        expired = jwt_headers(body, SECRET, "HS256", issued=time.time() - 200)
        assert post(relay.url, body, expired).json()["error"] == "stale_jwt"
        # the old optional JWT: fresh, but it names no call
        unbound = jwt.encode({"iat": int(time.time()), "exp": int(time.time()) + 60}, SECRET,
                             algorithm="HS256")
        r = post(relay.url, body, {"Authorization": f"Bearer {unbound}"})
        assert (r.status_code, r.json()["error"]) == (401, "unbound_jwt")
        wrong = jwt_headers(body, b"x" * 32, "HS256")
        assert post(relay.url, body, wrong).json()["error"] == "bad_jwt"
        assert post(relay.url, body, {**sign(body), **jwt_headers(body, SECRET, "HS256")}
                    ).status_code == 201


def test_a_call_for_a_branch_with_no_screen_is_kept_for_its_first_screen(
        relay: RelayServer) -> None:
    assert post(relay.url, call_body("A-9", "c-9", branch=BRANCH_B)).status_code == 201
    screen = SseReader(relay.url, BRANCH_B, TOKEN_B).start_connected()
    [(_, data)] = screen.take(1)
    assert data["ticketId"] == "A-9"


def test_storing_failed_is_503_so_the_provider_retries(relay: RelayServer) -> None:
    assert relay.relay.loop is not None
    asyncio.run_coroutine_threadsafe(relay.relay.store.close(), relay.relay.loop).result(5)
    r = post(relay.url, call_body())
    assert r.status_code == 503
    assert "relay_webhooks_total{reason=\"store\",result=\"failed\"} 1.0" in \
        httpx.get(relay.url + "/metrics").text



def test_the_webhooks_front_door_leaves_the_rest_to_the_router(
        relay: RelayServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A webhook skips the middleware and the router (its hot path); anything else on its
    path still gets the router's answers, and an error inside it is a 500, not a hang."""
    assert httpx.get(relay.url + "/webhooks/videsk").status_code == 405
    assert httpx.post(relay.url + "/webhooks/videsk/", content=b"{}").status_code == 307

    async def broken(call: object) -> None:
        raise RuntimeError("a bug")
    monkeypatch.setattr(relay.relay.store, "add", broken)
    assert post(relay.url, call_body("A-1", "c-1")).status_code == 500
    monkeypatch.undo()
    assert post(relay.url, call_body("A-1", "c-1")).status_code == 201


# --------------------------------------------------------------------------- screens


def test_a_display_token_sees_only_its_branch(relay: RelayServer) -> None:
    url = f"{relay.url}/v1/branches/{BRANCH_A}/calls"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {TOKEN_B}"}).status_code == 403
    screen_b = SseReader(relay.url, BRANCH_B, TOKEN_B).start_connected()
    assert post(relay.url, call_body("A-1", "c-1", branch=BRANCH_A)).status_code == 201
    assert screen_b.nothing_more()


def test_last_event_id_replays_what_the_screen_missed(relay: RelayServer) -> None:
    ids = [event_id(post(relay.url, call_body(f"A-{i:03d}", f"c-{i}"))) for i in range(5)]
    screen = SseReader(relay.url, BRANCH_A, TOKEN_A, last_id=str(ids[1])).start_connected()
    got = screen.take(3)
    assert [i for i, _ in got] == ids[2:]
    assert [d["ticketId"] for _, d in got] == ["A-002", "A-003", "A-004"]
    assert post(relay.url, call_body("A-005", "c-5")).status_code == 201
    assert screen.take(1)[0][1]["ticketId"] == "A-005"


def test_a_fresh_screen_gets_the_days_last_calls(tmp_path: Path) -> None:
    with RelayServer(settings(tmp_path, history=3)) as relay:
        for i in range(6):
            assert post(relay.url, call_body(f"A-{i:03d}", f"c-{i}")).status_code == 201
        screen = SseReader(relay.url, BRANCH_A, TOKEN_A).start_connected()
        got = screen.take(3)
        assert [d["ticketId"] for _, d in got] == ["A-003", "A-004", "A-005"]
        assert [i for i, _ in got] == sorted(i for i, _ in got)
        assert screen.nothing_more()


def test_a_quiet_stream_gets_keep_alive_comments(tmp_path: Path) -> None:
    with RelayServer(settings(tmp_path, keepalive_s=0.1)) as relay:
        screen = SseReader(relay.url, BRANCH_A, TOKEN_A).start_connected()
        time.sleep(0.6)
        assert ": keep-alive" in screen.comments
        assert 'relay_screens{branch="652720d479497a1b62df288b"} 1.0' in \
            httpx.get(relay.url + "/metrics").text


def test_a_slow_screen_is_dropped_and_the_others_get_everything() -> None:
    hub = Hub()
    slow, fast = Screen("b", buffer=3), Screen("b", buffer=100)
    hub.add(slow)
    hub.add(fast)
    events = [Event(i, "b", "{}", 0.0) for i in range(1, 11)]
    for ev in events:
        hub.publish("b", [ev])
        while not fast.queue.empty():  # the fast screen reads as calls come
            assert fast.queue.get_nowait() == ev
    assert slow.dropped
    assert slow.queue.get_nowait() is None  # its stream ends; it resumes with Last-Event-ID
    hub.publish("b", [Event(11, "b", "{}", 0.0)])
    assert hub.screens["b"] == {fast}  # a dropped screen is forgotten


def test_healthz(relay: RelayServer) -> None:
    r = httpx.get(relay.url + "/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_answers_do_not_name_the_server_software(relay: RelayServer) -> None:
    """No ``server: uvicorn`` (what runs behind the proxy is nobody's business), on a
    webhook's answer, a refusal or any other; each still carries its ``date``."""
    answers = [httpx.get(relay.url + "/healthz"), post(relay.url, call_body()),
               post(relay.url, call_body("A-043"), {"X-Kiosk-Signature": "sha256=00"}),
               httpx.get(relay.url + "/nowhere")]
    assert [r.status_code for r in answers] == [200, 201, 401, 404]
    for r in answers:
        assert "server" not in r.headers and r.headers["date"], r.headers



def test_the_benchmarks_bare_endpoint_answers_like_the_relay() -> None:
    """``bench_relay``'s ingest goal compares the relay with a bare endpoint "on the same
    uvicorn settings": the relay names no server software, so neither does the bare one
    (one header less to write on every answer would favour whichever sends it)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    try:
        import bench_relay
    finally:
        sys.path.pop(0)
    with bench_relay.baseline_process() as (port, _):
        r = httpx.post(f"http://127.0.0.1:{port}/webhooks/videsk", content=call_body())
    assert r.status_code == 204
    assert "server" not in r.headers and r.headers["date"], r.headers


# --------------------------------------------------------------------------- durability


def _write_config(tmp_path: Path, **relay: object) -> Path:
    secret = write_private(tmp_path / "webhook-secret", SECRET.decode() + "\n")
    token = write_private(tmp_path / "display-a", TOKEN_A + "\n")
    section = {"webhook_secret_file": str(secret),
               "displays": [{"branch": BRANCH_A, "token_file": str(token)}], **relay}
    cfg = {"branch": BRANCH_A, "kiosk": {"id": "relay-1", "data_dir": str(tmp_path / "data"),
                                         "timezone": "America/Santiago"},
           "relay": section}
    path = tmp_path / "kiosk.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def test_relay_process_runs_the_package_of_the_folder_it_is_given(tmp_path: Path) -> None:
    """``bench_relay --against REV`` measures another revision's relay beside this one.
    ``python -m kiosk`` puts its working folder first on the path, so given that
    revision's folder in ``PYTHONPATH`` alone, this checkout's relay ran in its place (the
    paired runs compared the code with itself); run from that folder, that one runs."""
    tree = tmp_path / "tree"
    shutil.copytree(Path(__file__).resolve().parent.parent / "kiosk", tree / "kiosk",
                    ignore=shutil.ignore_patterns("__pycache__"))
    init = tree / "kiosk" / "__init__.py"
    init.write_text(init.read_text(encoding="utf-8") + "\nimport os as _os\n"
                    "if _os.environ.get('KIOSK_TEST_MARK'):\n"
                    "    open(_os.environ['KIOSK_TEST_MARK'], 'w').write(__file__)\n",
                    encoding="utf-8")
    marker = tmp_path / "ran"
    env = dict(os.environ, PYTHONPATH=str(tree), KIOSK_TEST_MARK=str(marker))
    with relay_process(_write_config(tmp_path), env=env, cwd=tree) as relay:
        assert httpx.get(relay.url + "/healthz").status_code == 200
    assert marker.read_text() == str(init)


@pytest.mark.slow
@pytest.mark.parametrize("sync", ["normal", "full"])
def test_a_stored_call_survives_kill_9(tmp_path: Path, sync: str) -> None:
    config = _write_config(tmp_path, sqlite_sync=sync)
    with relay_process(config) as proc:
        r = post(proc.url, call_body("A-042", "call-1"))
        assert r.status_code == 201
        first_id = event_id(r)
        proc.kill()
    assert (tmp_path / "data" / "relay.sqlite3").exists()
    with relay_process(config) as proc:
        screen = SseReader(proc.url, BRANCH_A, TOKEN_A, last_id="0").start_connected()
        [(ev_id, data)] = screen.take(1)
        assert (ev_id, data["ticketId"]) == (first_id, "A-042")
        # still a duplicate after the restart; the next call gets a later id
        assert post(proc.url, call_body("A-042", "call-1")).status_code == 200
        assert event_id(post(proc.url, call_body("A-043", "call-2"))) > first_id


# --------------------------------------------------------------------------- config


def test_settings_from_the_kiosk_file(tmp_path: Path) -> None:
    s = load_settings(_write_config(tmp_path, listen="0.0.0.0:9000", history=5))
    assert s.secrets == (SECRET,)
    assert s.displays == {TOKEN_A: BRANCH_A}
    assert (s.host, s.port, s.history) == ("0.0.0.0", 9000, 5)
    assert s.sqlite_path == tmp_path / "data" / "relay.sqlite3"
    assert s.timezone == "America/Santiago"
    assert SECRET.decode() not in repr(s) and TOKEN_A not in repr(s)


def test_a_secret_file_others_can_read_is_refused(tmp_path: Path) -> None:
    config = _write_config(tmp_path)
    (tmp_path / "webhook-secret").chmod(0o644)
    with pytest.raises(RelayConfigError) as err:
        load_settings(config)
    assert "relay.webhook_secret_file" in str(err.value)
    assert "chmod 600" in str(err.value)
    assert SECRET.decode() not in str(err.value)


@pytest.mark.parametrize(("relay", "key"), [
    ({"listen": "nowhere"}, "relay.listen"),
    ({"store": "mysql://x"}, "relay.store"),
    ({"histroy": 3}, "relay.histroy"),
    ({"gc_freeze_s": -1}, "relay.gc_freeze_s"),
    ({"gc_full_pass_s": 5}, "relay.gc_full_pass_s"),
    ({"displays": [{"branch": "a b", "token_file": "/x"}]}, "relay.displays[0].branch"),
])
def test_a_bad_relay_section_names_the_key(tmp_path: Path, relay: dict[str, object],
                                           key: str) -> None:
    with pytest.raises(RelayConfigError) as err:
        load_settings(_write_config(tmp_path, **relay))
    assert f"kiosk.yaml: {key}:" in str(err.value)


def test_no_address_without_a_key_and_unsigned_calls_on_loopback_only(tmp_path: Path) -> None:
    s = dataclasses.replace(load_settings(_write_config(tmp_path)), secrets=(), host="0.0.0.0")
    for host in ("0.0.0.0", "127.0.0.1"):  # issue 16.3: loopback behind a proxy is public
        with pytest.raises(RelayConfigError, match=r"relay\.webhook_secret_file: .*only signed"):
            check_listen(dataclasses.replace(s, host=host), "kiosk.yaml")
    with pytest.raises(RelayConfigError, match=r"relay\.allow_unsigned"):
        check_listen(dataclasses.replace(s, allow_unsigned=True), "kiosk.yaml")
    check_listen(dataclasses.replace(s, host="127.0.0.1", allow_unsigned=True), "kiosk.yaml")


@pytest.mark.parametrize("listen", ["0.0.0.0:8787", "127.0.0.1:8787"])
def test_kiosk_relay_refuses_to_start_without_a_secret(tmp_path: Path, listen: str) -> None:
    cfg = tmp_path / "kiosk.yaml"
    cfg.write_text(yaml.safe_dump({"branch": BRANCH_A, "kiosk": {"id": "r"},
                                   "relay": {"listen": listen}}), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "kiosk", "--config", str(cfg), "relay"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "kiosk.yaml: relay.webhook_secret_file: " in proc.stderr
    assert "only signed calls" in proc.stderr


def test_the_kiosk_config_accepts_a_relay_section(tmp_path: Path) -> None:
    from kiosk.config import load_config
    cfg = load_config(_write_config(tmp_path))
    assert cfg.relay is not None and "displays" in cfg.relay


# --------------------------------------------------------------------------- contract


def test_the_hmac_template_renders_a_call_the_relay_accepts() -> None:
    import pybars

    t = template("hmac")
    ctx = {"call": {"id": "64f0c0ffee", "ticketId": "A-042"},
           "branch": {"id": BRANCH_A, "label": "Sucursal \"Providencia\""},
           "segment": {"id": "q1", "name": "Atención & cuentas"},
           "poc": {"id": "p3", "label": "Cabina <3>"}, "integrationData": {"lang": "pt"},
           "secrets": {"kioskWebhookSecret": SECRET.decode()}}

    def hmac_helper(this: object, data: object, secret: object, *_: object) -> str:
        import hashlib
        import hmac
        return hmac.new(str(secret).encode(), str(data).encode(), hashlib.sha256).hexdigest()

    compiler = pybars.Compiler()
    body = compiler.compile(t["body"])(ctx, helpers={"hmac": hmac_helper})
    header = compiler.compile(t["headers"]["X-Kiosk-Signature"])(ctx, helpers={"hmac": hmac_helper})
    call = parse(body.encode())
    assert (call.poc.label, call.queue.name, call.branch.label) == \
        ("Cabina <3>", "Atención & cuentas", 'Sucursal "Providencia"')
    assert call.lang() == "pt"
    assert header == "sha256=" + field_signature(SECRET, BRANCH_A, "A-042", "Atención & cuentas",
                                                 "Cabina <3>", "64f0c0ffee")
    assert set(SCHEMA["required"]) <= set(json.loads(body))


def test_kiosk_webhook_template_prints_it() -> None:
    from io import StringIO

    from kiosk.cli import main
    out = StringIO()
    assert main(["webhook-template"], out=out) == 0
    text = out.getvalue()  # the JWT one by default (issue 16.4)
    assert "Authorization: Bearer {{#jwt}}" in text and "X-Kiosk-Signature" not in text
    assert '"privateKey": {{{secrets.kioskJwtPrivateKey}}}' in text
    assert '"ticketId": "{{call.ticketId}}"' in text
    out = StringIO()
    assert main(["webhook-template", "--hmac"], out=out) == 0
    assert "X-Kiosk-Signature: sha256={{hmac call.id" in out.getvalue()
    out = StringIO()
    assert main(["webhook-template", "--json"], out=out) == 0
    assert json.loads(out.getvalue())["method"] == "POST"


def test_the_published_schema_file_is_the_contract() -> None:
    path = REPO / "kiosk" / "relay" / "webhook.schema.json"
    assert json.loads(path.read_text(encoding="utf-8")) == SCHEMA


def test_a_relay_only_file_needs_no_kiosk_keys(tmp_path: Path) -> None:
    secret = write_private(tmp_path / "secret", SECRET.decode())
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump({"kiosk": {"data_dir": str(tmp_path)},
                                    "relay": {"webhook_secret_file": str(secret)}}),
                    encoding="utf-8")
    s = load_settings(path)
    assert (s.host, s.port, s.store, s.timezone) == ("127.0.0.1", 8787, "sqlite", "UTC")


def test_secrets_signatures_and_tokens_never_reach_the_log(relay: RelayServer,
                                                           caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    caplog.set_level("DEBUG")
    body = call_body("A-1", "c-1")
    good = sign(body)["X-Kiosk-Signature"]
    bad = "sha256=" + "ab" * 32
    assert post(relay.url, body, {"X-Kiosk-Signature": bad}).status_code == 401
    assert post(relay.url, body).status_code == 201
    assert httpx.get(f"{relay.url}/v1/branches/{BRANCH_A}/calls",
                     headers={"Authorization": f"Bearer {TOKEN_B}"}).status_code == 403
    screen = SseReader(relay.url, BRANCH_A, TOKEN_A).start_connected()
    screen.take(1)
    text = caplog.text
    assert "signature not valid" in text  # the refusal is logged, with its reason
    for secret in (SECRET.decode(), good[7:], bad[7:], TOKEN_A, TOKEN_B):
        assert secret not in text


def test_a_replayed_delivery_is_not_a_new_call(relay: RelayServer) -> None:
    captured = call_body("A-010", "call-10")
    headers = sign(captured)
    assert post(relay.url, captured, headers).status_code == 201
    for i in range(3):
        assert post(relay.url, call_body(f"A-01{i + 1}", f"call-1{i + 1}")).status_code == 201
    screen = SseReader(relay.url, BRANCH_A, TOKEN_A).start_connected()
    assert len(screen.take(4)) == 4  # the day's calls so far
    r = post(relay.url, captured, headers)  # an attacker replays what they captured
    assert r.status_code == 200 and r.headers["x-relay-duplicate"] == "true"
    assert screen.nothing_more()


# --------------------------------------------------------------------------- review: hostile input


def test_a_deeply_nested_body_is_refused_not_a_500(relay: RelayServer) -> None:
    deep = b"[" * 50_000  # under MAX_BODY; json.loads recurses once per bracket
    assert post(relay.url, deep, headers={}).status_code == 401  # unsigned: says nothing more
    r = post(relay.url, deep)
    assert r.status_code == 400 and r.json()["error"] == "malformed"
    amp = b'{"event": "qms.ticket.assigned", "x": ' + b'{"a": ' * 900 + b'"&amp;"' \
        + b"}" * 900 + b"}"
    assert post(relay.url, amp).status_code == 400


@pytest.mark.parametrize("last_id", [b"\xb2", b"9" * 40, b"-3", b"1e3", b"\xef\xbc\x91"])
def test_a_hostile_last_event_id_is_ignored_not_a_500(relay: RelayServer,
                                                       last_id: bytes) -> None:
    assert post(relay.url, call_body("A-001", "c-1")).status_code == 201
    with httpx.stream("GET", f"{relay.url}/v1/branches/{BRANCH_A}/calls", timeout=10,
                      headers=[(b"Authorization", f"Bearer {TOKEN_A}".encode()),
                               (b"Last-Event-ID", last_id)]) as r:
        assert r.status_code == 200


def test_a_mistyped_redis_url_never_echoes_its_password(tmp_path: Path) -> None:
    with pytest.raises(RelayConfigError) as err:
        load_settings(_write_config(tmp_path, store="redis//:hunter2-secret@db:6379/0"))
    assert "relay.store" in str(err.value) and "db:6379" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_a_replay_is_capped_at_replay_max_newest_kept(relay: RelayServer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kiosk.relay.app.REPLAY_MAX", 2)
    ids = [event_id(post(relay.url, call_body(f"A-{i:03d}", f"c-{i}"))) for i in range(5)]
    screen = SseReader(relay.url, BRANCH_A, TOKEN_A, last_id="0").start_connected()
    assert [i for i, _ in screen.take(2)] == ids[3:]
    assert screen.nothing_more()


def test_an_unsigned_call_cannot_forge_log_lines(relay: RelayServer,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    body = call_body("A-1\nrelay: call Z-9", "c-1")
    assert post(relay.url, body, {"X-Kiosk-Signature": "sha256=" + "ab" * 32}).status_code == 401
    assert post(relay.url, body, {}).status_code == 401
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 2 and not any("\n" in m for m in refusals)
