"""Who may send the relay a call (issue 16, items 3, 4, 7 and the refusal log), over real
loopback HTTP: no key, no relay (unless ``allow_unsigned``, for this machine only and
never through a proxy); a JWT that is signed (ES256, RS256, HS256), bound to the call and
fresh, used once; the HMAC mode's memory of a call id (31 days); outside data quoted in
every log line; refusals logged once a minute per reason and all counted."""

from __future__ import annotations

import dataclasses
import hmac
import io
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kiosk.relay import RelayConfigError, RelayServer, contract, load_settings, relay_process
from kiosk.relay.store import DEDUP_CALL_S
from tests.relay_helpers import (
    BRANCH_A,
    SECRET,
    TOKEN_A,
    SseReader,
    call_body,
    es256_pair,
    jwt_headers,
    metric,
    post,
    settings,
    sign,
    write_private,
)


def _pem(public: Any) -> str:
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture(scope="module")
def es256() -> tuple[Any, Any]:
    return es256_pair()


@pytest.fixture
def jwt_relay(tmp_path: Path, es256: tuple[Any, Any]) -> Iterator[RelayServer]:
    """A relay that holds only the provider's public key (the default template's)."""
    with RelayServer(settings(tmp_path, secrets=(), jwt_keys=(es256[1],),
                              require_jwt=True)) as server:
        yield server


def _config(tmp_path: Path, **relay: Any) -> Path:
    token = write_private(tmp_path / "display-a", TOKEN_A + "\n")
    section = {"displays": [{"branch": BRANCH_A, "token_file": str(token)}], **relay}
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump({"kiosk": {"data_dir": str(tmp_path / "data")},
                                    "relay": section}), encoding="utf-8")
    return path


def _kiosk_relay(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiosk", "--config", str(config), "relay",
                           "--port", "1"], capture_output=True, text=True, timeout=60)


# --------------------------------------------------------------------------- start-up


def test_require_jwt_without_a_key_refuses_to_start(tmp_path: Path) -> None:
    p = _kiosk_relay(_config(tmp_path, require_jwt=True, allow_unsigned=True))
    assert p.returncode == 2
    assert "relay.yaml: relay.require_jwt: a key to check the JWT with" in p.stderr


def test_allow_unsigned_refuses_a_public_address(tmp_path: Path) -> None:
    p = _kiosk_relay(_config(tmp_path, allow_unsigned=True, listen="0.0.0.0:8787"))
    assert p.returncode == 2
    assert "relay.allow_unsigned: false to listen on 0.0.0.0" in p.stderr


def test_trusted_proxies_are_addresses_or_networks(tmp_path: Path) -> None:
    """``relay.trusted_proxies``: a typo stops start-up naming the entry; addresses and
    networks (IPv4, IPv6) are read."""
    secret = write_private(tmp_path / "secret", SECRET.decode())
    p = _kiosk_relay(_config(tmp_path, webhook_secret_file=str(secret),
                             trusted_proxies=["10.0.0.2", "10.0.0.300"]))
    assert p.returncode == 2
    assert "relay.trusted_proxies" in p.stderr and "'10.0.0.300' is not an address" in p.stderr
    for wide, said in (("0.0.0.0/0", "too wide"), ("10.0.0.0/8", "too wide"),
                       ("::/0", "too wide"), ("::ffff:10.0.0.2", "as IPv4")):
        with pytest.raises(RelayConfigError, match=r"relay\.trusted_proxies") as err:
            load_settings(_config(tmp_path, webhook_secret_file=str(secret),
                                  trusted_proxies=[wide]))
        assert said in str(err.value), wide
    good = load_settings(_config(tmp_path, webhook_secret_file=str(secret),
                                 trusted_proxies=["10.0.0.2", "10.0.1.0/24", "fd00::/64"]))
    assert [str(n) for n in good.trusted_proxies] == ["10.0.0.2/32", "10.0.1.0/24",
                                                      "fd00::/64"]


def test_a_relay_built_without_a_key_refuses_to_exist(tmp_path: Path) -> None:
    with pytest.raises(RelayConfigError, match=r"relay\.webhook_secret_file"):
        RelayServer(settings(tmp_path, secrets=()))
    with pytest.raises(RelayConfigError, match=r"relay\.require_jwt"):
        RelayServer(settings(tmp_path, secrets=(), require_jwt=True, allow_unsigned=True))


@pytest.mark.slow
def test_allow_unsigned_takes_calls_from_this_machine_only(tmp_path: Path) -> None:
    with relay_process(_config(tmp_path, allow_unsigned=True)) as proc:
        body = call_body("A-001", "c-1")
        assert post(proc.url, body, {}).status_code == 201  # loopback, nothing forwarded
        for i, forwarded in enumerate([{"X-Forwarded-For": "203.0.113.9"},
                                       {"Forwarded": "for=203.0.113.9"},
                                       {"X-Real-IP": "203.0.113.9"},
                                       {"x-forwarded-for": "127.0.0.1"}]):
            r = post(proc.url, call_body(f"A-00{i + 2}", f"c-{i + 2}"), forwarded)
            assert (r.status_code, r.json()["error"]) == (401, "missing_signature"), forwarded
        bad = call_body("A-009", "c-9")  # a bad signature is refused even here
        assert post(proc.url, bad, {"X-Kiosk-Signature": "sha256=" + "0" * 64}
                    ).status_code == 401


def test_allow_unsigned_is_logged_loudly_at_start(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "kiosk.relay")
    with RelayServer(settings(tmp_path, secrets=(), allow_unsigned=True)) as relay:
        assert post(relay.url, call_body(), {}).status_code == 201
        r = post(relay.url, call_body("B-1", "b-1"), {"X-Forwarded-For": "198.51.100.7"})
        assert r.status_code == 401
    assert any("UNSIGNED WEBHOOKS ARE ACCEPTED" in r.getMessage() for r in caplog.records)


def test_a_forwarded_request_is_never_local_for_metrics_either(tmp_path: Path) -> None:
    with RelayServer(settings(tmp_path)) as relay:
        assert httpx.get(relay.url + "/metrics").status_code == 200
        for header in ("Forwarded", "X-Forwarded-For", "X-Real-IP"):
            r = httpx.get(relay.url + "/metrics", headers={header: "127.0.0.1"})
            assert r.status_code == 403, header


# --------------------------------------------------------------------------- the JWT


def _hs256_signed_with(body: bytes, key: bytes) -> dict[str, str]:
    """The classic algorithm confusion: HS256 keyed with the relay's *public* key (PyJWT
    refuses to make it, so by hand)."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")
    call = json.loads(body)
    now = int(time.time())
    payload = {"iat": now, "exp": now + 60, "branch": call["branch"]["id"],
               "ticketId": call["ticketId"], "callId": call["callId"],
               "queue": call["queue"]["name"], "poc": call["poc"]}
    signing = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(payload).encode())
    sig = b64(hmac.new(key, signing.encode(), hashlib.sha256).digest())
    return {"Authorization": f"Bearer {signing}.{sig}"}


def test_a_bound_fresh_es256_jwt_is_a_call_and_its_replay_is_refused(
        jwt_relay: RelayServer, es256: tuple[Any, Any]) -> None:
    screen = SseReader(jwt_relay.url, BRANCH_A, TOKEN_A).start_connected()
    body = call_body("A-042", "call-1", poc="Cabina 3")
    headers = jwt_headers(body, es256[0])
    assert post(jwt_relay.url, body, headers).status_code == 201
    r = post(jwt_relay.url, body, headers)  # the same token again, within its window
    assert (r.status_code, r.json()["error"]) == (401, "replayed_jwt")
    # the provider's retry (60 s on) signs anew, another iat: a repeated delivery, one call
    again = post(jwt_relay.url, body, jwt_headers(body, es256[0], issued=time.time() - 5))
    assert again.status_code == 200
    [(_, data)] = screen.take(1)
    assert data["ticketId"] == "A-042"
    assert screen.nothing_more()
    metrics = httpx.get(jwt_relay.url + "/metrics").text
    assert 'relay_webhooks_total{reason="replayed_jwt",result="rejected"} 1.0' in metrics


def test_a_replay_with_its_signature_reworked_is_still_a_replay(
        jwt_relay: RelayServer, es256: tuple[Any, Any]) -> None:
    """ECDSA signatures are malleable ((r, s) and (r, n - s) both verify) and base64 has
    spare bits: the replay cache keys a JWT by what it signs, not by its spelling."""
    import base64

    from cryptography.hazmat.primitives.asymmetric import ec
    body = call_body("A-042", "call-1")
    headers = jwt_headers(body, es256[0])
    token = headers["Authorization"].removeprefix("Bearer ")
    assert post(jwt_relay.url, body, headers).status_code == 201
    head, payload, sig = token.split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256's n
    r, s_ = raw[:32], int.from_bytes(raw[32:], "big")
    twin = base64.urlsafe_b64encode(r + (order - s_).to_bytes(32, "big")).decode().rstrip("=")
    assert isinstance(es256[1], ec.EllipticCurvePublicKey)
    r2 = post(jwt_relay.url, body, {"Authorization": f"Bearer {head}.{payload}.{twin}"})
    assert (r2.status_code, r2.json()["error"]) == (401, "replayed_jwt")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(sig[-1])
    spare = sig[:-1] + alphabet[last ^ 0b0011]  # 86 characters for 64 bytes: 4 spare bits
    assert spare != sig and base64.urlsafe_b64decode(spare + "==") == raw
    r3 = post(jwt_relay.url, body, {"Authorization": f"Bearer {head}.{payload}.{spare}"})
    assert (r3.status_code, r3.json()["error"]) == (401, "replayed_jwt")
    for spelled in (f"{head}.{payload}.{sig}=", f"{head}.{payload}.{sig[:-1]}+"):
        r4 = post(jwt_relay.url, body, {"Authorization": f"Bearer {spelled}"})
        assert (r4.status_code, r4.json()["error"]) == (401, "bad_jwt"), spelled


@pytest.mark.parametrize("header", [
    b'{"alg": "ES256", "crit": ["exp"]}', b'{"alg": "ES256", "b64": false}',
    b'{"alg": "none"}', b'{"alg": "PS256"}', b"[" * 3000, b"\xff\xfe", b'"ES256"'])
def test_a_jwt_header_the_relay_does_not_implement_is_refused(
        jwt_relay: RelayServer, es256: tuple[Any, Any], header: bytes) -> None:
    import base64
    body = call_body("A-042", "call-1")
    token = jwt_headers(body, es256[0])["Authorization"].removeprefix("Bearer ")
    forged = base64.urlsafe_b64encode(header).decode().rstrip("=")
    r = post(jwt_relay.url, body, {"Authorization": "Bearer " + forged + token[token.index("."):]})
    assert (r.status_code, r.json()["error"]) == (401, "bad_jwt")


def test_a_character_reference_past_ints_limit_is_no_server_error(
        jwt_relay: RelayServer, es256: tuple[Any, Any]) -> None:
    """A body with ``&`` is HTML-unescaped before it is checked; ``&#<4,301 digits>;`` made
    ``html.unescape`` raise (Python's limit on int digits): an unsigned request was a 500
    and a traceback."""
    hostile = call_body("A-042", "call-1").replace(b'"A-042"', b'"&#' + b"9" * 4301 + b';"')
    r = post(jwt_relay.url, hostile, {})
    assert (r.status_code, r.json()["error"]) == (401, "missing_signature")
    r = post(jwt_relay.url, hostile, jwt_headers(hostile, es256[0]))  # not a call: not read
    assert (r.status_code, r.json()["error"]) == (401, "bad_signature")


@pytest.mark.parametrize("spoil", ["payload", "signature", "extra"])
def test_a_token_of_bytes_outside_base64url_is_refused_not_a_server_error(
        jwt_relay: RelayServer, es256: tuple[Any, Any], spoil: str) -> None:
    """A byte above 0x7f in the bearer token (the header is read as Latin-1) was a 500 and
    a traceback when it sat in the payload segment: the signing input was encoded as
    ASCII outside the refusal's reach."""
    body = call_body("A-042", "call-1")
    token = jwt_headers(body, es256[0])["Authorization"].removeprefix("Bearer ")
    header, payload, signature = token.split(".")
    spoilt = {"payload": f"{header}.\xe9{payload}.{signature}",
              "signature": f"{header}.{payload}.\xe9{signature}",
              "extra": f"{token}.\xe9"}[spoil]
    r = post(jwt_relay.url, body, {"Authorization": ("Bearer " + spoilt).encode("latin-1")})
    assert (r.status_code, r.json()["error"]) == (401, "bad_jwt")
    assert post(jwt_relay.url, body, jwt_headers(body, es256[0])).status_code == 201


@pytest.mark.parametrize(("issued", "lifetime", "claims", "reason"), [
    (-600, 60, {}, "stale_jwt"),  # issued 10 min ago: outside ±5 min
    (600, 60, {}, "stale_jwt"),  # 10 min in the future
    (-120, 60, {}, "stale_jwt"),  # expired (30 s leeway)
    (0, 10 * 365 * 86400, {}, "stale_jwt"),  # exp ten years ahead (issue 16.4)
    (0, 16 * 60, {}, "stale_jwt"),  # over the 15 minutes allowed
    (0, 60, {"exp": None}, "stale_jwt"),  # no exp: not bounded in time
    (0, 60, {"iat": None}, "stale_jwt"),
    (0, 60, {"nbf": int(time.time()) + 3600}, "stale_jwt"),
    (0, 60, {"iat": 10**400}, "stale_jwt"),  # too large for float arithmetic (was a 500)
    (0, 60, {"exp": -(10**400)}, "stale_jwt"),
    (0, 60, {"nbf": float("nan")}, "stale_jwt"),  # NaN compares false: passed every check
    (0, 60, {"iat": True}, "stale_jwt"),
    (0, 60, {"ticketId": "A-043"}, "unbound_jwt"),  # another call's token (captured)
    (0, 60, {"callId": "call-2"}, "unbound_jwt"),
    (0, 60, {"branch": "652720d479497a1b62df2890"}, "unbound_jwt"),
    (0, 60, {"poc": {"id": "poc-3", "label": "Cabina 9"}}, "unbound_jwt"),
    (0, 60, {"poc": {"id": "poc-4", "label": "Cabina 3"}}, "unbound_jwt"),
    (0, 60, {"queue": "Seguros"}, "unbound_jwt"),
    (0, 60, {"poc": None}, "unbound_jwt"),
    (0, 60, {"branch": None}, "unbound_jwt"),
    (0, 60, {"ticketId": "&#" + "1" * 4400 + ";"}, "unbound_jwt"),  # int()'s limit: was a 500
    (0, 60, {"lang": "pt"}, "unbound_jwt"),  # the screens' announcement language
    (0, 60, {"priority": "senior"}, "unbound_jwt"),  # the screens' priority mark
])
def test_a_jwt_out_of_time_or_of_another_call_is_refused(
        jwt_relay: RelayServer, es256: tuple[Any, Any], issued: float, lifetime: float,
        claims: dict[str, Any], reason: str) -> None:
    body = call_body("A-042", "call-1", poc="Cabina 3")
    headers = jwt_headers(body, es256[0], issued=time.time() + issued, lifetime=lifetime,
                          **claims)
    r = post(jwt_relay.url, body, headers)
    assert (r.status_code, r.json()["error"]) == (401, reason)
    # the same call with a good token still goes through: nothing was burnt
    assert post(jwt_relay.url, body, jwt_headers(body, es256[0])).status_code == 201


def test_a_jwt_the_template_html_escaped_binds_the_call_it_names(
        jwt_relay: RelayServer, es256: tuple[Any, Any]) -> None:
    """Handlebars HTML-escapes what it renders, in the body and in the JWT alike: the body
    is read unescaped, so its claims differ from its fields as text and are compared
    unescaped (the relay's quick comparison of the very text falls through to that one):
    the call is taken, and any field changed is still refused."""
    body = call_body("A-042", "call-1", poc="Cabina &lt;3&gt; &amp; &#x27;A&#x27;",
                     queue_name="Caja &amp; Seguros")
    r = post(jwt_relay.url, body, jwt_headers(body, es256[0]))
    assert r.status_code == 201, r.text
    other = jwt_headers(body, es256[0], poc={"id": "poc-3", "label": "Cabina &lt;4&gt;"})
    again = call_body("A-042", "call-2", poc="Cabina &lt;3&gt; &amp; &#x27;A&#x27;")
    r = post(jwt_relay.url, again, jwt_headers(again, es256[0], poc={
        "id": "poc-3", "label": "Cabina &lt;4&gt; &amp; &#x27;A&#x27;"}))
    assert (r.status_code, r.json()["error"]) == (401, "unbound_jwt")
    assert post(jwt_relay.url, body, other).json()["error"] == "unbound_jwt"


def test_a_captured_jwt_cannot_show_its_escaped_text_by_a_body_written_otherwise(
        jwt_relay: RelayServer, es256: tuple[Any, Any]) -> None:
    """The template escapes "Caja & Seguros" as ``Caja &amp; Seguros`` in the body and in
    the JWT alike. A captured delivery whose body wrote that ``&`` as ``\\u0026``, or
    escaped it twice, was taken (201) with the claim's escaped text itself: the screens
    showed "Caja &amp; Seguros", and the genuine delivery, sent after it, was refused as a
    replay. Now every text is read unescaped however it is written, and so is each claim:
    the one spelling shows the provider's text, the other names another booth."""
    genuine = call_body("A-042", "call-1", poc="Caja &amp; Seguros")
    headers = jwt_headers(genuine, es256[0])
    twice = genuine.replace(b"Caja &amp;", b"Caja &amp;amp;")
    r = post(jwt_relay.url, twice, headers)
    assert (r.status_code, r.json()["error"]) == (401, "unbound_jwt"), r.text
    screen = SseReader(jwt_relay.url, BRANCH_A, TOKEN_A).start_connected()
    written = genuine.replace(b"Caja &amp;", b"Caja \\u0026amp;")
    assert post(jwt_relay.url, written, headers).status_code == 201
    [(_, data)] = screen.take(1)
    assert data["poc"]["label"] == "Caja & Seguros"
    r = post(jwt_relay.url, genuine, headers)  # the same call, the same JWT: used once
    assert (r.status_code, r.json()["error"]) == (401, "replayed_jwt"), r.text
    assert contract.parse(genuine) == contract.parse(written)


@pytest.mark.parametrize(("issued", "way"), [(-7200, "before"), (7200, "after")])
def test_a_jwt_out_of_the_window_says_which_way_and_points_at_the_clock(
        jwt_relay: RelayServer, es256: tuple[Any, Any], issued: float, way: str) -> None:
    """A relay whose clock is off (a Raspberry Pi before NTP) refuses every call: its log
    and answer say how far and which way, and to check the clock (it said "issued +7200 s
    from now" of a JWT issued two hours *ago*)."""
    body = call_body("A-042", "call-1")
    r = post(jwt_relay.url, body, jwt_headers(body, es256[0], issued=time.time() + issued))
    assert (r.status_code, r.json()["error"]) == (401, "stale_jwt")
    said = re.match(r"issued (\d+) s (\w+) this machine's time", r.json()["detail"])
    assert said and abs(int(said.group(1)) - 7200) <= 2 and said.group(2) == way, said
    assert "check this machine's clock" in r.json()["detail"]


def test_a_captured_jwt_cannot_change_the_calls_language_or_priority(
        jwt_relay: RelayServer, es256: tuple[Any, Any]) -> None:
    """The screens announce a call in its ``lang`` and mark a priority ticket: both are in
    the template's JWT, so a captured delivery sent first with them changed is refused
    (they were unbound: 201, and the screens said it in Portuguese, marked 'senior')."""
    genuine = call_body("A-042", "call-1", lang="en", priority="")
    headers = jwt_headers(genuine, es256[0])
    for changed in (call_body("A-042", "call-1", lang="pt", priority=""),
                    call_body("A-042", "call-1", lang="en", priority="senior"),
                    call_body("A-042", "call-1", lang="en", priority="true")):
        r = post(jwt_relay.url, changed, headers)
        assert (r.status_code, r.json()["error"]) == (401, "unbound_jwt")
    assert post(jwt_relay.url, genuine, headers).status_code == 201
    # a JWT from a template that leaves them out (before December 2026) still binds the rest
    older = jwt_headers(genuine, es256[0], lang=None, priority=None, callId="call-2")
    assert post(jwt_relay.url, call_body("A-042", "call-2"), older).status_code == 201
    # a signer's true or null reads as the template's text would ("true", "")
    marked = call_body("A-043", "call-3", priority="true")
    claims = {"priority": True}
    assert post(jwt_relay.url, marked, jwt_headers(marked, es256[0], **claims)
                ).status_code == 201
    import jwt as pyjwt
    plain = call_body("A-044", "call-4")
    token = jwt_headers(plain, es256[0])["Authorization"].removeprefix("Bearer ")
    payload = pyjwt.decode(token, options={"verify_signature": False}) | {"priority": None}
    headers = {"Authorization": "Bearer " + pyjwt.encode(payload, es256[0], algorithm="ES256")}
    assert post(jwt_relay.url, plain, headers).status_code == 201


def test_a_jwt_with_another_key_or_algorithm_is_refused(
        tmp_path: Path, jwt_relay: RelayServer, es256: tuple[Any, Any]) -> None:
    body = call_body("A-042", "call-1")
    other, _ = es256_pair()
    for headers in (
            jwt_headers(body, other),  # another key
            _hs256_signed_with(body, _pem(es256[1]).encode()),  # the public key as secret
            jwt_headers(body, SECRET, "HS256"),  # no secret here: HS256 has no key
            {"Authorization": "Bearer " + jwt.encode(
                {"iat": int(time.time()), "exp": int(time.time()) + 60},
                None, algorithm="none")},  # type: ignore[arg-type]
            {"Authorization": "Bearer not.a.jwt"}):
        r = post(jwt_relay.url, body, headers)
        assert (r.status_code, r.json()["error"]) == (401, "bad_jwt"), headers
    r = post(jwt_relay.url, body, sign(body))  # HMAC without the JWT: require_jwt
    assert r.status_code == 401


def test_rs256_and_key_rotation_from_a_pem_file(tmp_path: Path,
                                                es256: tuple[Any, Any]) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "webhook-jwt.pub"
    pem.write_text(_pem(es256[1]) + _pem(rsa_key.public_key()), encoding="ascii")
    s = load_settings(_config(tmp_path, jwt_public_key_file=str(pem), require_jwt=True))
    with RelayServer(dataclasses.replace(s, sqlite_path=tmp_path / "r.sqlite3")) as relay:
        for i, (key, alg) in enumerate([(es256[0], "ES256"), (rsa_key, "RS256")]):
            body = call_body(f"A-{i}", f"c-{i}")
            assert post(relay.url, body, jwt_headers(body, key, alg)).status_code == 201


@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512",
                                 "HS256", "HS384", "HS512"])
def test_each_accepted_algorithm_checks_its_own_signature(alg: str) -> None:
    """Every algorithm the relay accepts takes a token its key signed, and refuses one
    another key of the same kind signed, or one its key signed over another hash (each
    asymmetric signature is checked over a digest the relay makes itself)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

    from kiosk.relay import contract

    def pair() -> tuple[Any, Any]:
        if alg.startswith("RS"):
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return key, key.public_key()
        if alg.startswith("ES"):
            curve = {"256": ec.SECP256R1(), "384": ec.SECP384R1(), "512": ec.SECP521R1()}
            key = ec.generate_private_key(curve[alg[2:]])
            return key, key.public_key()
        secret = os.urandom(64)
        return secret, secret

    (signer, checker), (stranger, _) = pair(), pair()
    body = call_body()
    call = contract.parse(body)

    def check(headers: dict[str, str]) -> contract.JwtAccepted:
        token = headers["Authorization"].removeprefix("Bearer ")
        keys, secrets = ((), (checker,)) if alg.startswith("HS") else ((checker,), ())
        return contract.verify_jwt(token, call, secrets=secrets, keys=keys, now=time.time(),
                                   window_s=300, max_lifetime_s=900)

    accepted = check(jwt_headers(body, signer, alg))
    assert accepted.replay_key.startswith("jwt:") and len(accepted.replay_key) == 68
    with pytest.raises(contract.JwtRefused, match="signature not valid"):
        check(jwt_headers(body, stranger, alg))
    # the same token signed with this key over another hash, under this algorithm's name
    signed = jwt_headers(body, signer, alg)["Authorization"].removeprefix("Bearer ")
    signing_input = signed.rpartition(".")[0].encode()
    other = {"256": hashes.SHA384(), "384": hashes.SHA512(), "512": hashes.SHA256()}[alg[2:]]
    if alg.startswith("RS"):
        forged = signer.sign(signing_input, padding.PKCS1v15(), other)
    elif alg.startswith("ES"):
        r, s = utils.decode_dss_signature(signer.sign(signing_input, ec.ECDSA(other)))
        size = (signer.curve.key_size + 7) // 8
        forged = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    else:
        forged = hmac.new(signer, signing_input, other.name).digest()
    token = signing_input.decode() + "." + jwt.utils.base64url_encode(forged).decode()
    with pytest.raises(contract.JwtRefused, match="signature not valid"):
        check({"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize(("text", "expected"), [
    ("not a key", "one or two PEM public keys"),
    ("-----BEGIN PRIVATE KEY-----\nMIG...\n-----END PRIVATE KEY-----\n", "holds a private key"),
    ("small", "at least 2048 bits"),
])
def test_a_bad_public_key_file_stops_start_up(tmp_path: Path, text: str,
                                              expected: str) -> None:
    pem = tmp_path / "webhook-jwt.pub"
    if text == "small":
        text = _pem(rsa.generate_private_key(public_exponent=65537,
                                             key_size=1024).public_key())
    pem.write_text(text, encoding="ascii")
    with pytest.raises(RelayConfigError) as err:
        load_settings(_config(tmp_path, jwt_public_key_file=str(pem)))
    assert "relay.jwt_public_key_file" in str(err.value) and expected in str(err.value)


def test_kiosk_webhook_keys_makes_a_pair_the_template_and_relay_agree_on(
        tmp_path: Path) -> None:
    from kiosk.cli import main
    from kiosk.mock.webhooks import compile_template
    from kiosk.relay.contract import template
    out = io.StringIO()
    assert main(["webhook-keys", str(tmp_path / "keys")], out=out) == 0
    secret = tmp_path / "keys" / "webhook-jwt.provider-secret"
    public = tmp_path / "keys" / "webhook-jwt.pub"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert len(secret.read_text().strip()) <= 2000  # the provider's limit for a secret
    assert "BEGIN PRIVATE KEY" not in public.read_text()
    assert main(["webhook-keys", str(tmp_path / "keys")], out=io.StringIO()) == 2  # kept
    # the provider renders the default template with the secret as pasted
    render = compile_template(template())
    ctx = {"call": {"id": "64f0c0ffee", "ticketId": "A-042"},
           "branch": {"id": BRANCH_A, "label": "Sucursal \"Providencia\""},
           "segment": {"id": "q1", "name": "Atención & cuentas"},
           "poc": {"id": "p3", "label": "Cabina <3>"}, "integrationData": {"lang": "pt"},
           "secrets": {"kioskJwtPrivateKey": secret.read_text().strip()}}
    _, _, headers, body = render(ctx)
    s = load_settings(_config(tmp_path, jwt_public_key_file=str(public), require_jwt=True))
    with RelayServer(dataclasses.replace(s, sqlite_path=tmp_path / "r.sqlite3")) as relay:
        screen = SseReader(relay.url, BRANCH_A, TOKEN_A).start_connected()
        assert post(relay.url, body.encode(), headers).status_code == 201
        [(_, data)] = screen.take(1)
        assert data["poc"] == {"label": "Cabina <3>"}
        assert data["queue"] == {"name": "Atención & cuentas"}
        forged = body.replace("Cabina &lt;3&gt;", "Cabina 9")  # bound: the booth is signed
        r = post(relay.url, forged.encode(), render(ctx)[2])
        assert (r.status_code, r.json()["error"]) == (401, "unbound_jwt")


# --------------------------------------------------------------------------- the HMAC


def _on_a_clock(offset: str) -> dict[str, str]:
    """``env`` for a process on a clock ``offset`` from ours (libfaketime)."""
    import glob
    import os
    libs = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    assert libs, "faketime is not installed (packaging/dev.sh test installs it as root)"
    return dict(os.environ, LD_PRELOAD=libs[0], FAKETIME=offset,
                FAKETIME_DONT_FAKE_MONOTONIC="1")


@pytest.mark.slow
def test_an_hmac_delivery_replayed_15_days_later_is_still_one_call(tmp_path: Path) -> None:
    """A captured HMAC delivery has no time in it: replayed 15 days later (by then the
    relay has restarted and dropped the call itself) it is still the same call, 200,
    never a new call on the screens (issue 16.4). The relay runs on a clock 15 days on."""
    assert DEDUP_CALL_S >= 30 * 86400
    secret = write_private(tmp_path / "secret", SECRET.decode())
    config = _config(tmp_path, webhook_secret_file=str(secret))
    captured = call_body("A-010", "call-10")
    headers = sign(captured)
    with relay_process(config) as proc:
        first = post(proc.url, captured, headers)
        assert first.status_code == 201
    with relay_process(config, env=_on_a_clock("+15d")) as proc:
        screen = SseReader(proc.url, BRANCH_A, TOKEN_A, last_id="0").start_connected()
        r = post(proc.url, captured, headers)
        assert r.status_code == 200 and r.headers["x-relay-duplicate"] == "true"
        assert screen.nothing_more()


# --------------------------------------------------------------------------- logs


def _log_text(caplog: pytest.LogCaptureFixture) -> str:
    fmt = logging.Formatter("%(levelname)s %(name)s: %(message)s")
    return "\n".join(fmt.format(r) for r in caplog.records)


def test_hostile_signed_text_never_forges_a_log_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, es256: tuple[Any, Any]) -> None:
    """A booth label, ticket or call id with a line break (signed: the provider sent it)
    is quoted in every line the relay logs: accepted, repeated, refused (issue 16.7)."""
    caplog.set_level(logging.INFO)
    forged = "\nW kiosk.relay: relay: call Z-999"
    with RelayServer(settings(tmp_path, jwt_keys=(es256[1],))) as relay:
        body = call_body("A-1" + forged, "c-1" + forged, poc="Cabina 3" + forged + "\u2028x")
        assert post(relay.url, body).status_code == 201
        assert post(relay.url, body).status_code == 200  # logged as a repeated delivery
        unbound = jwt_headers(body, es256[0], ticketId="other")
        assert post(relay.url, body, unbound).status_code == 401
        stale = jwt_headers(body, es256[0], issued=time.time() - 900)
        assert post(relay.url, body, stale).status_code == 401
        import base64
        hostile = ".".join(base64.urlsafe_b64encode(part).decode().rstrip("=") for part in (
            b'{"alg": "X\\nW kiosk.relay: relay: call Z-999"}', b'{"a": 1}', b"sig"))
        r = post(relay.url, body, {"Authorization": f"Bearer {hostile}"})
        assert (r.status_code, r.json()["error"]) == (401, "bad_jwt")
    text = _log_text(caplog)
    assert "Z-999" in text  # the hostile text was logged, quoted
    lines = text.splitlines()
    assert not any(line.startswith("W kiosk.relay: relay: call Z-999") for line in lines)
    assert len(lines) == len(caplog.records)  # one line per record: no line break inside
    assert not any("\u2028" in line for line in lines)


def test_refusals_are_logged_once_a_minute_per_reason_and_all_counted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "kiosk.relay")
    with RelayServer(settings(tmp_path)) as relay:
        body = call_body()
        for _ in range(40):
            assert post(relay.url, body, {"X-Kiosk-Signature": "sha256=" + "1" * 64}
                        ).status_code == 401
        for _ in range(5):
            assert post(relay.url, body, {}).status_code == 401
        refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(refused) == 2, refused  # one per reason, not 45
        assert metric(relay.url, 'relay_webhooks_total{reason="bad_signature",'
                                 'result="rejected"}') == 40
        assert metric(relay.url, 'relay_webhooks_total{reason="missing_signature",'
                                 'result="rejected"}') == 5
        relay.relay.refusals._kinds["bad_signature"].next_log = 0  # a minute later
        assert post(relay.url, body, {"X-Kiosk-Signature": "sha256=" + "1" * 64}
                    ).status_code == 401
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 3 and "39 more refused since" in refused[-1]


def test_the_answer_to_a_refusal_names_the_reason_only(jwt_relay: RelayServer,
                                                       es256: tuple[Any, Any]) -> None:
    body = call_body("A-042", "call-1")
    r = post(jwt_relay.url, body, jwt_headers(body, es256[0], issued=time.time() - 3600))
    data = r.json()
    assert set(data) == {"error", "detail"} and data["error"] == "stale_jwt"
    assert "Bearer" not in json.dumps(data)
