"""Helpers for the relay tests: signed webhooks and a Server-Sent Events reader."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import json
import queue
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from kiosk.relay import RelaySettings
from kiosk.relay.devices import Device

SECRET = b"s3cret-for-tests-0123456789abcdef"
TOKEN_A = "display-token-branch-a-0123456789"
TOKEN_B = "display-token-branch-b-0123456789"
BRANCH_A = "652720d479497a1b62df288b"
BRANCH_B = "652720d479497a1b62df2890"
KIOSK = "device-token-lobby-1-0123456789ab"
TABLET = "device-token-greeter-0123456789ab"
TV = "device-token-tv-1-0123456789abcdef"
KIOSK_B = "device-token-branch-b-0123456789ab"
DEVICES = {KIOSK: Device("lobby-1", BRANCH_A, "kiosk"),
           TABLET: Device("greeter", BRANCH_A, "tablet"),
           TV: Device("tv-1", BRANCH_A, "display"),
           KIOSK_B: Device("b-kiosk", BRANCH_B, "kiosk")}
"""The hub tests' devices: a kiosk, a greeter's tablet and a calling screen of branch A,
and a kiosk of branch B (by token)."""


def settings(tmp_path: Path, **kw: object) -> RelaySettings:
    """A test relay's settings: one secret, a token per branch, SQLite in ``tmp_path``;
    ``kw`` overrides any of them."""
    base = RelaySettings(secrets=(SECRET,), displays={TOKEN_A: BRANCH_A, TOKEN_B: BRANCH_B},
                         sqlite_path=tmp_path / "relay.sqlite3", keepalive_s=15.0)
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def call_body(ticket: str = "A-042", call_id: str = "call-1", branch: str = BRANCH_A,
              poc: str = "Cabina 3", queue_name: str = "Atención a clientes",
              lang: str | None = "en", priority: str = "") -> bytes:
    """A webhook body as the published template renders it (``priority``: what
    ``{{integrationData.priority}}`` renders, "" for a regular ticket)."""
    data: dict[str, Any] = {
        "event": "qms.ticket.assigned", "ticketId": ticket, "callId": call_id,
        "branch": {"id": branch, "label": "Sucursal Providencia"},
        "queue": {"id": "652a1ae848880e168884e49b", "name": queue_name},
        "poc": {"id": "poc-3", "label": poc},
        "integrationData": {"lang": lang or "", "source": "kiosk", "kiosk": "lobby-1",
                            "day": "2026-12-01", "priority": priority}}
    return json.dumps(data, ensure_ascii=False).encode()


def sign(body: bytes, secret: bytes = SECRET) -> dict[str, str]:
    """Headers with the raw-body signature."""
    sig = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Kiosk-Signature": f"sha256={sig}"}


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    """POST a webhook to the relay at ``url``."""
    return httpx.post(url + "/webhooks/videsk", content=body,
                      headers=sign(body) if headers is None else headers, timeout=10)


def event_id(r: httpx.Response) -> int:
    """The event id of a stored call (201's ``X-Relay-Event-Id``)."""
    assert r.status_code == 201, (r.status_code, r.text)
    return int(r.headers["x-relay-event-id"])


def jwt_headers(body: bytes, key: Any, alg: str = "ES256", *, issued: float | None = None,
                lifetime: float = 60, **claims: Any) -> dict[str, str]:
    """Headers with a bearer JWT bound to ``body``'s call, as the default template makes
    it (``claims`` override or add claims; a claim set to None is left out)."""
    import jwt
    call = json.loads(body)
    iat = int(time.time() if issued is None else issued)
    payload: dict[str, Any] = {
        "iat": iat, "exp": int(iat + lifetime), "branch": call["branch"]["id"],
        "ticketId": call["ticketId"], "callId": call.get("callId", ""),
        "queue": call.get("queue", {}).get("name", ""),
        "poc": {"id": call["poc"].get("id", ""), "label": call["poc"]["label"]}}
    extra = call.get("integrationData")
    if isinstance(extra, dict):  # the template renders these two into the JWT too
        payload.update(lang=extra.get("lang", ""), priority=extra.get("priority", ""))
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    token = jwt.encode(payload, key, algorithm=alg)
    return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}


@functools.cache
def rs256_pair(name: str = "provider") -> tuple[Any, str]:
    """An RS256 key pair as the template's (``kiosk webhook-keys``), made once per
    ``name``: the private key loaded (loading a PEM checks the RSA key: tens of ms), the
    public key as PEM."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from kiosk.relay.contract import new_key_pair
    private, public = new_key_pair()
    return load_pem_private_key(private.encode(), None), public


def es256_pair() -> tuple[Any, Any]:
    """A fresh ES256 key pair (private, public key objects)."""
    from cryptography.hazmat.primitives.asymmetric import ec
    private = ec.generate_private_key(ec.SECP256R1())
    return private, private.public_key()


def write_private(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


class SseReader(threading.Thread):
    """Reads a relay's call stream on a thread; ``events`` get ``(id, data)``."""

    def __init__(self, url: str, branch: str, token: str | None,
                 last_id: str | None = None) -> None:
        super().__init__(daemon=True)
        self.url = f"{url}/v1/branches/{branch}/calls"
        self.headers = {"Accept": "text/event-stream"}
        if token is not None:
            self.headers["Authorization"] = f"Bearer {token}"
        if last_id is not None:
            self.headers["Last-Event-ID"] = last_id
        self.events: queue.Queue[tuple[int, dict[str, Any]]] = queue.Queue()
        self.comments: list[str] = []
        self.status: int | None = None
        self.connected = threading.Event()
        self.ended = threading.Event()
        self._stop = False

    def run(self) -> None:
        try:
            with httpx.stream("GET", self.url, headers=self.headers,
                              timeout=httpx.Timeout(30, read=60)) as r:
                self.status = r.status_code
                self.connected.set()
                if r.status_code != 200:
                    return
                ev_id, ev_type, data = None, None, None
                for line in r.iter_lines():
                    if self._stop:
                        return
                    if line.startswith(":"):
                        self.comments.append(line)
                    elif line.startswith("id:"):
                        ev_id = int(line[3:].strip())
                    elif line.startswith("event:"):
                        ev_type = line[6:].strip()
                    elif line.startswith("data:"):
                        data = json.loads(line[5:].strip())
                    elif line == "":
                        if ev_type == "call" and ev_id is not None and data is not None:
                            self.events.put((ev_id, data))
                        ev_id, ev_type, data = None, None, None
        except httpx.HTTPError:
            pass
        finally:
            self.connected.set()
            self.ended.set()

    def start_connected(self, timeout: float = 10) -> SseReader:
        self.start()
        assert self.connected.wait(timeout), "the stream did not answer"
        return self

    def take(self, n: int, timeout: float = 10) -> list[tuple[int, dict[str, Any]]]:
        """The next ``n`` events (fails after ``timeout``)."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            assert left > 0, f"got {len(out)} of {n} events: {out}"
            try:
                out.append(self.events.get(timeout=left))
            except queue.Empty:
                continue
        return out

    def nothing_more(self, wait: float = 0.5) -> bool:
        time.sleep(wait)
        return self.events.empty()

    def stop(self) -> None:
        self._stop = True


def raw_stream(url: str, branch: str, token: str, rcvbuf: int | None = None,
               timeout: float = 10) -> tuple[socket.socket, int]:
    """Open a call stream over a bare socket (``rcvbuf``: a tiny receive buffer, set before
    connecting); the socket after the response head, and the status."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect((host, int(port)))
    sock.sendall(f"GET /v1/branches/{branch}/calls HTTP/1.1\r\nHost: relay\r\n"
                 f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # byte by byte: nothing of the body is read
        if not chunk:
            break
        head += chunk
    return sock, int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0


def tcp_state(sock: socket.socket) -> int:
    """The kernel's TCP state of ``sock`` (Linux ``tcpi_state``: 1 established, 7 closed,
    8 close-wait), read without consuming anything."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def metric(url: str, name: str) -> float:
    """One sample of the relay's ``/metrics`` (0 when absent)."""
    answer = httpx.get(url + "/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    for line in answer.text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
