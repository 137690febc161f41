"""The operations team's page: every branch and its devices, the worst first, live.

::

    GET  /fleet                 the page (signed in), else the sign-in form
    POST /fleet/login           form field ``token``: the fleet token -> a session cookie
                                (429 after 10 wrong tokens a minute from one address)
    POST /fleet/logout          the cookie cleared
    GET  /fleet/data            the page's content as JSON (signed in), polled by fleet.js
    GET  /fleet/static/{name}   base.css, fleet.css, fleet.js, icon.svg

Signing in: the fleet token is typed into a form (never in a URL) and compared in
constant time; the answer sets the cookie ``kiosk_fleet`` (HttpOnly, SameSite=Strict,
Path=/fleet, Secure when the request came over https, directly or through the proxy's
``X-Forwarded-Proto``), good for :data:`SESSION_S`. The cookie holds no token: an expiry
and its HMAC under the fleet token, so changing the token signs everybody out. POSTs
are taken only from the page's own origin (``Origin`` and ``Sec-Fetch-Site``), and the
cookie is never sent by another site (SameSite=Strict), so no other site can sign in,
out, or read the fleet (no CORS). Every answer carries a strict Content-Security-Policy
(same-origin styles, scripts and requests only; no frames), ``no-store``, ``nosniff``,
``Referrer-Policy: same-origin`` (no address leaves the site; the browser still sends
``Origin`` to its own). Words are Spanish first, English and Portuguese (``Accept-Language``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from kiosk.errors import StoreError
from kiosk.i18n import DEFAULT_LANGUAGE, LANGUAGES, t
from kiosk.netloc import Network, client_address
from kiosk.relay.devices import Access
from kiosk.relay.fleet import STATES, DeviceView, Fleet, log, read_body

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
STATIC_FILES = {"base.css": "text/css; charset=utf-8", "fleet.css": "text/css; charset=utf-8",
                "fleet.js": "text/javascript; charset=utf-8", "icon.svg": "image/svg+xml"}
COOKIE = "kiosk_fleet"
SESSION_S = 12 * 3600
"""How long a sign-in lasts."""
MAX_FORM = 4096
"""Largest sign-in form body."""
FAILED_SIGN_INS = 10
"""Wrong tokens one address may type per :data:`SIGN_IN_WINDOW_S` (then 429)."""
SIGN_IN_WINDOW_S = 60.0
KEEP_ADDRESSES = 10_000
"""Addresses whose failures are remembered at most (the oldest window forgotten first)."""
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-store",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
           "X-Frame-Options": "DENY"}

STATE_WORDS = {"ok": "Working", "warning": "Warning", "error": "Fault", "offline": "Offline",
               "unknown": "Never connected"}
ROLE_WORDS = {"kiosk": "Kiosk", "tablet": "Greeter's tablet", "display": "Calling screen"}
PRINTER_WORDS = {"ok": "Printer OK", "paper_low": "Paper low", "paper_out": "Out of paper",
                 "cover_open": "Cover open", "offline": "Printer not answering",
                 "unknown": "Printer state unknown", "none": "No printer"}
REASON_WORDS = {
    "api": "The ticket service does not answer",
    "printer": "Printer fault: it cannot print",
    "clock": "Its clock is wrong: call IT",
    "journal": "It cannot save its records: call IT",
    "numbers": "It cannot get ticket numbers",
    "paper_out": "Load paper",
    "cover_open": "Close the printer's cover",
    "paper_low": "Paper low: have a roll ready",
    "numbers_offline": "Numbering on its own (the hub is away)",
    "printer_offline": "The printer does not answer",
    "printer_unknown": "The printer's state is unknown",
    "silent": "No heartbeat: check its power and network",
    "never_heard": "It has never connected to the hub"}
PAGE_WORDS = {"title": "Device fleet", "branch": "Branch", "device": "Device",
              "state": "State", "printer": "Printer", "last_seen": "Last heard",
              "tickets_today": "Tickets today", "sign_in": "Sign in", "sign_out": "Sign out",
              "token_label": "Fleet token", "live": "Live", "lost": "Connection lost: retrying",
              "summary": "Devices by state", "no_devices": "No devices are configured.",
              "login_hint": "For the bank's operations team.", "wrong": "That is not the fleet "
              "token.", "wait": "Too many wrong tokens: try again in a minute.",
              "updated": "Updated {time}"}


def language(request: Request) -> str:
    """The first of es, en, pt the browser accepts (Spanish when none)."""
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


def seen_words(age: float | None, lang: str) -> str:
    """How long ago a device was heard, for people."""
    if age is None:
        return t("never", lang)
    age = max(0.0, age)
    if age < 60:
        return t("{n} s ago", lang, n=int(age))
    if age < 3600:
        return t("{n} min ago", lang, n=int(age // 60))
    if age < 48 * 3600:
        return t("{n} h ago", lang, n=int(age // 3600))
    return t("{n} days ago", lang, n=int(age // 86400))


def sign(expires: int, token: bytes) -> str:
    """A session's HMAC (hex) under one fleet token."""
    return hmac.new(token, b"kiosk-fleet-session:%d" % expires, hashlib.sha256).hexdigest()


def make_session(tokens: Sequence[bytes], moment: float) -> str:
    """A new session cookie's value (expiry and its HMAC; no token in it)."""
    expires = int(moment) + SESSION_S
    return f"{expires}.{sign(expires, tokens[0])}"


def session_ok(value: str | None, tokens: Sequence[bytes], moment: float) -> bool:
    """Whether ``value`` is a live session signed with a current fleet token."""
    if not value or not tokens:
        return False
    expires, _, mac = value.partition(".")
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 12 and len(mac) == 64):
        return False
    ok = False
    for token in tokens:  # all compared, constant time
        ok |= hmac.compare_digest(mac.encode(), sign(int(expires), token).encode())
    return ok and moment < int(expires) <= moment + SESSION_S


def same_origin(request: Request) -> bool:
    """Whether a POST comes from this site's own page (no other site signs in or out):
    the browser's ``Sec-Fetch-Site`` when it sends one, else ``Origin`` must be ours."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:  # browsers send one with every POST; a script or curl may not
        return True
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:  # e.g. "http://[::1" (an unclosed IPv6 address): not ours
        return False
    return origin != "null" and netloc == request.headers.get("host", "")


def over_https(request: Request) -> bool:
    """Whether the browser reached us over https (directly or through the TLS proxy)."""
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or proto == "https"


class FleetPage:
    """The page's routes over a :class:`~kiosk.relay.fleet.Fleet`."""

    def __init__(self, fleet: Fleet, access: Access, fleet_tokens: Sequence[bytes],
                 clock: Callable[[], float], proxies: Sequence[Network] = ()) -> None:
        self.fleet = fleet
        self.proxies = tuple(proxies)
        """Proxies on other machines whose ``X-Forwarded-For`` names the client."""
        self.access = access
        self.tokens = tuple(fleet_tokens)
        self.clock = clock
        self._failed: dict[str, tuple[float, int]] = {}
        """Address -> when its window began and the wrong tokens it typed in it."""
        self.env = Environment(loader=FileSystemLoader(TEMPLATES),
                               autoescape=select_autoescape(default=True, default_for_string=True),
                               auto_reload=False)

    def routes(self) -> list[Route]:
        """The page's routes."""
        return [Route("/fleet", self.page, methods=["GET"]),
                Route("/fleet/login", self.login, methods=["POST"]),
                Route("/fleet/logout", self.logout, methods=["POST"]),
                Route("/fleet/data", self.data, methods=["GET"]),
                Route("/fleet/static/{name}", self.static, methods=["GET"])]

    # ---- the content

    def model(self, views: list[DeviceView], lang: str, moment: float) -> dict[str, Any]:
        """What the page shows (the template's and ``/fleet/data``'s)."""
        by_branch: dict[str, list[DeviceView]] = {}
        for v in views:  # worst first already
            by_branch.setdefault(v.branch, []).append(v)
        rank = {s: i for i, s in enumerate(STATES)}
        branches = []
        for branch, devs in sorted(by_branch.items(),
                                   key=lambda kv: (rank[kv[1][0].state], kv[0])):
            worst = devs[0].state
            branches.append({"id": branch, "state": worst,
                             "word": t(STATE_WORDS[worst], lang), "devices": [{
                                 "id": v.id, "role": v.role,
                                 "role_word": t(ROLE_WORDS[v.role], lang),
                                 "state": v.state, "state_word": t(STATE_WORDS[v.state], lang),
                                 "reason_word": self.why(v, lang),
                                 "printer": v.printer,
                                 "printer_word": t(PRINTER_WORDS[v.printer], lang),
                                 "seen_word": seen_words(None if v.last_seen is None
                                                         else moment - v.last_seen, lang),
                                 "tickets": int((v.beat or {}).get("tickets_today", 0))}
                                 for v in devs]})
        counts = [{"state": s, "n": sum(1 for v in views if v.state == s),
                   "word": t(STATE_WORDS[s], lang)} for s in STATES]
        clock = datetime.fromtimestamp(moment).strftime("%H:%M:%S")
        return {"branches": branches, "counts": [c for c in counts if c["n"]],
                "updated": t(PAGE_WORDS["updated"], lang, time=clock),
                "poll_s": max(1.0, min(self.fleet.heartbeat_s / 3, 10.0)),
                "words": self.words(lang)}

    @staticmethod
    def why(v: DeviceView, lang: str) -> str:
        """Why a device is in its state, and what to do (the printer's own words when the
        printer is why it is out of service: "Load paper")."""
        if v.reason is None:
            return ""
        reason = v.printer if v.reason == "printer" and v.printer in REASON_WORDS else v.reason
        return t(REASON_WORDS[reason], lang)

    @staticmethod
    def words(lang: str) -> dict[str, str]:
        """The page's own words in ``lang``."""
        return {k: t(v, lang) for k, v in PAGE_WORDS.items() if "{" not in v}

    def render(self, name: str, status: int = 200, headers: dict[str, str] | None = None,
               **context: Any) -> Response:
        html = self.env.get_template(name).render(static="/fleet/static", **context)
        return Response(html, status_code=status, media_type="text/html; charset=utf-8",
                        headers={**HEADERS, **(headers or {})})

    def signed_in(self, request: Request) -> bool:
        """Whether the request carries a live session."""
        return session_ok(request.cookies.get(COOKIE), self.tokens, self.clock())

    # ---- the routes

    async def page(self, request: Request) -> Response:
        """The fleet, or the sign-in form."""
        lang = language(request)
        if not self.signed_in(request):
            return self.render("fleet_login.html", lang=lang, w=self.words(lang), error="")
        moment = self.clock()
        try:
            views = await self.fleet.views(moment)
        except StoreError as exc:
            log.error("relay: the fleet cannot be read: %s", exc)
            return Response("503", status_code=503, headers=HEADERS)
        return self.render("fleet.html", lang=lang, w=self.words(lang),
                           page=await self.fleet.off_loop(
                               lambda: self.model(views, lang, moment)))

    async def login(self, request: Request) -> Response:
        """Check the typed fleet token; a session cookie when it is one."""
        if not same_origin(request):
            return Response("forbidden", status_code=403, headers=HEADERS)
        lang = language(request)
        who = client_address(request.scope, self.proxies)  # behind a proxy: what it forwarded
        moment = self.clock()
        began, failures = self._failed.get(who, (moment, 0))
        if moment - began >= SIGN_IN_WINDOW_S:
            began, failures = moment, 0
        if failures >= FAILED_SIGN_INS:  # guessing: not even checked until the window ends
            retry = str(int(began + SIGN_IN_WINDOW_S - moment) + 1)
            return self.render("fleet_login.html", status=429, lang=lang, w=self.words(lang),
                               error=t(PAGE_WORDS["wait"], lang),
                               headers={"Retry-After": retry})
        body = await read_body(request, MAX_FORM)
        given = b""
        if body is not None:
            try:
                values = parse_qs(body.decode("latin-1"), max_num_fields=8).get("token", [""])
            except ValueError:  # more fields than the form has: a wrong sign-in, counted
                values = [""]
            given = values[0].strip().encode("latin-1", "replace")
        if not (given and self.access.is_fleet(b"Bearer " + given)):
            if len(self._failed) >= KEEP_ADDRESSES:
                self._failed.clear()
            self._failed[who] = (began, failures + 1)
            return self.render("fleet_login.html", status=401, lang=lang, w=self.words(lang),
                               error=t(PAGE_WORDS["wrong"], lang))
        answer = RedirectResponse("/fleet", status_code=303, headers=HEADERS)
        answer.set_cookie(COOKIE, make_session(self.tokens, self.clock()), max_age=SESSION_S,
                          path="/fleet", httponly=True, samesite="strict",
                          secure=over_https(request))
        return answer

    async def logout(self, request: Request) -> Response:
        """Forget the session in this browser."""
        if not same_origin(request):
            return Response("forbidden", status_code=403, headers=HEADERS)
        answer = RedirectResponse("/fleet", status_code=303, headers=HEADERS)
        answer.delete_cookie(COOKIE, path="/fleet", httponly=True, samesite="strict",
                             secure=over_https(request))
        return answer

    async def data(self, request: Request) -> Response:
        """The page's content, for fleet.js."""
        if not self.signed_in(request):
            return JSONResponse({"error": "signed out"}, status_code=401, headers=HEADERS)
        lang = language(request)
        moment = self.clock()
        try:
            views = await self.fleet.views(moment)
        except StoreError as exc:
            log.error("relay: the fleet cannot be read: %s", exc)
            return JSONResponse({"error": "store"}, status_code=503, headers=HEADERS)
        page = await self.fleet.off_loop(lambda: self.model(views, lang, moment))
        return JSONResponse(page, headers=HEADERS)

    async def static(self, request: Request) -> Response:
        """One of the page's same-origin files."""
        name = request.path_params["name"]
        kind = STATIC_FILES.get(name)
        if kind is None:
            return Response("not found", status_code=404, headers=HEADERS)
        body = (STATIC / name).read_bytes()
        return Response(body, media_type=kind,
                        headers={**HEADERS, "Cache-Control": "no-cache"})
