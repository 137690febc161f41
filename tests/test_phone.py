"""The ticket on the phone (issue 18) as a customer meets it: a real relay on loopback,
real webhooks, the page in Debian's headless Chromium (selenium + chromium-driver), and
the page's HTTP rules (headers, 404, 410, 429, size)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from kiosk.relay import RelayServer
from kiosk.relay.devices import Device
from kiosk.relay.phone import HEADERS, RateLimiter
from tests.browser import chromium
from tests.redis_helpers import RedisProcess
from tests.relay_helpers import BRANCH_A, KIOSK, call_body, post, settings

from .conftest import ATENCION

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "artifacts" / "phone"
QUEUE = "Atención a clientes"


class Branch:
    """A relay serving phone pages (``url``; with Redis, a second replica ``other`` takes
    the webhooks), and the day's tickets reported to its ledger by the lobby's kiosk."""

    def __init__(self, relay: RelayServer, other: RelayServer | None = None) -> None:
        self.relay = relay
        self.url = relay.url
        self.hook_url = (other or relay).url
        self.day = relay.relay.today(BRANCH_A)
        self.zone = relay.relay.zone_of(BRANCH_A)

    @property
    def phone(self) -> Any:
        return self.relay.app.state.phone

    def ticket(self, number: str, lang: str = "es", minutes_ago: float = 5, *,
               yesterday: bool = False, priority: object = None,
               wait_min: float | None = 12) -> str:
        """Report a ticket with a phone token, as the kiosk's outbox does; the token."""
        token = secrets.token_urlsafe(16)
        issued = datetime.now(self.zone) - timedelta(minutes=minutes_ago,
                                                    days=1 if yesterday else 0)
        body = {"ticketId": number, "queue": {"id": "q-1", "name": QUEUE}, "lang": lang,
                "issuedAt": issued.isoformat(timespec="seconds"), "outcome": "issued",
                "device": "lobby-1", "priority": priority, "phone": token,
                "wait_min": wait_min}
        r = httpx.post(f"{self.url}/v1/branches/{BRANCH_A}/tickets", json=body,
                       headers={"Authorization": f"Bearer {KIOSK}"}, timeout=10)
        assert r.status_code == 201, r.text
        return token

    def call(self, number: str, booth: str = "Cabina 3", call_id: str | None = None) -> float:
        """The provider calls ``number`` to ``booth``; when the webhook was answered."""
        r = post(self.hook_url, call_body(number, call_id or f"call-{number}-{booth}",
                                          poc=booth, queue_name=QUEUE))
        assert r.status_code == 201, r.text
        return time.monotonic()


def relay_settings(tmp_path: Path, **kw: Any) -> Any:
    return settings(tmp_path, devices={KIOSK: Device("lobby-1", BRANCH_A, "kiosk")},
                    zones={BRANCH_A: "America/Santiago"}, **kw)


@pytest.fixture
def branch(tmp_path: Path) -> Iterator[Branch]:
    with RelayServer(relay_settings(tmp_path)) as relay:
        yield Branch(relay)


@pytest.fixture(params=["sqlite", "redis"])
def any_branch(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Branch]:
    """One relay on SQLite; or two replicas on one real redis-server, the page on one and
    the webhooks to the other."""
    if request.param == "sqlite":
        with RelayServer(relay_settings(tmp_path)) as relay:
            yield Branch(relay)
        return
    server: RedisProcess = request.getfixturevalue("redis_server")
    redis.Redis.from_url(server.url).flushdb()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with RelayServer(relay_settings(tmp_path, store=server.url,
                                    sqlite_path=tmp_path / "a" / "r.sqlite3")) as a, \
            RelayServer(relay_settings(tmp_path, store=server.url,
                                       sqlite_path=tmp_path / "b" / "r.sqlite3")) as b:
        yield Branch(a, b)


# --------------------------------------------------------------------------- HTTP


def test_the_page_shows_number_queue_and_who_is_ahead(any_branch: Branch) -> None:
    branch = any_branch
    branch.ticket("A-001", minutes_ago=9)
    branch.ticket("A-002", minutes_ago=8)
    mine = branch.ticket("A-003", minutes_ago=7)
    branch.ticket("A-004", minutes_ago=6)
    r = httpx.get(f"{branch.url}/t/{mine}")
    assert r.status_code == 200
    assert '<html lang="es">' in r.text
    assert ">A-003<" in r.text and QUEUE in r.text
    assert "2 personas antes que usted" in r.text
    state = httpx.get(f"{branch.url}/t/{mine}/state").json()
    assert state["state"] == "waiting" and state["ahead"] == 2 and state["booth"] is None
    assert state["queue"] == {"name": QUEUE}
    assert state["wait_min"] == pytest.approx(12 - 7, abs=0.2)  # the wait shown, less 7 min
    branch.call("A-002")
    deadline = time.monotonic() + 5
    while httpx.get(f"{branch.url}/t/{mine}/state").json()["ahead"] != 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_the_wait_follows_the_queues_pace_once_it_has_three_calls(branch: Branch) -> None:
    """Before three calls the wait shown at the kiosk less the time gone; then the tickets
    ahead times the median interval between the queue's calls that day."""
    for n in range(1, 6):
        branch.ticket(f"A-00{n}", minutes_ago=30 - n)
    mine = branch.ticket("A-006", minutes_ago=20, wait_min=40)
    state = httpx.get(f"{branch.url}/t/{mine}/state").json()
    assert state["ahead"] == 5 and state["wait_min"] == pytest.approx(20, abs=0.2)
    for n in (1, 2, 3):
        branch.call(f"A-00{n}")
        time.sleep(0.4)
    state = httpx.get(f"{branch.url}/t/{mine}/state").json()
    # two ahead, calls about 0.4 s apart: well under a minute
    assert state["ahead"] == 2 and state["wait_min"] < 0.5, state  # not the ~20 shown


def test_a_report_with_a_wait_that_is_not_one_is_refused(branch: Branch) -> None:
    body = {"ticketId": "A-001", "queue": {"id": "q-1", "name": QUEUE}, "lang": "es",
            "issuedAt": datetime.now(branch.zone).isoformat(timespec="seconds"),
            "outcome": "issued", "device": "lobby-1", "priority": None, "phone": None}
    for wait in ("12", -1, 1e9, True, float("nan"), float("inf"), 10**400):
        r = httpx.post(f"{branch.url}/v1/branches/{BRANCH_A}/tickets",
                       content=json.dumps(body | {"wait_min": wait}),
                       headers={"Authorization": f"Bearer {KIOSK}",
                                "Content-Type": "application/json"})
        assert r.status_code == 400 and "wait_min" in r.text, (wait, r.text)


def test_a_priority_ticket_says_so_never_why(branch: Branch) -> None:
    mine = branch.ticket("AP-001", priority="senior")
    page = httpx.get(f"{branch.url}/t/{mine}").text
    assert '<p class="priority" id="priority">Atención preferente</p>' in page
    assert "senior" not in page
    assert httpx.get(f"{branch.url}/t/{mine}/state").json()["priority"] is True
    plain = httpx.get(f"{branch.url}/t/{branch.ticket('A-001')}").text
    assert 'id="priority" hidden' in plain


def test_every_answer_carries_the_privacy_headers(branch: Branch) -> None:
    mine = branch.ticket("A-001")
    for path in (f"/t/{mine}", f"/t/{mine}/state", "/t/unknown-token", "/t/x/state"):
        r = httpx.get(branch.url + path)
        for name, value in HEADERS.items():
            assert r.headers.get(name) == value, (path, name)
    csp = HEADERS["Content-Security-Policy"]
    assert "'unsafe-inline'" not in csp and "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    page = httpx.get(f"{branch.url}/t/{mine}").text
    assert "<script>" not in page and "style=" not in page  # nothing inline: the CSP holds
    assert "http://" not in page and "https://" not in page  # nothing from elsewhere


def test_page_css_and_script_together_weigh_under_30_kb(branch: Branch) -> None:
    mine = branch.ticket("A-001")
    total = sum(len(httpx.get(branch.url + p).content)
                for p in (f"/t/{mine}", "/phone/phone.css", "/phone/phone.js"))
    assert total < 30 * 1024, total


def test_an_unknown_or_malformed_token_is_404_by_the_same_path(branch: Branch) -> None:
    """No early exit: every token is hashed and looked up, well-formed or not (timing
    tells nothing); the 404 says nothing of why."""
    phone = branch.phone
    branch.ticket("A-001")
    tokens = [secrets.token_urlsafe(16), "x", "%00", "a" * 300, "..;.~",
              "Zm9vYmFy" * 3]
    for token in tokens:
        before = phone.lookups
        r = httpx.get(f"{branch.url}/t/{token}")
        assert r.status_code == 404, token
        assert phone.lookups == before + 1, f"{token!r} was not looked up"
    bodies = {httpx.get(f"{branch.url}/t/{token}").text for token in tokens}
    assert len(bodies) == 1  # the same kind page, whatever the token
    assert httpx.get(f"{branch.url}/t/{tokens[0]}/state").status_code == 404
    assert httpx.get(f"{branch.url}/t/{tokens[0]}/events").status_code == 404


def test_yesterdays_ticket_is_410_with_kind_words(branch: Branch) -> None:
    old = branch.ticket("A-009", lang="en", yesterday=True)
    r = httpx.get(f"{branch.url}/t/{old}")
    assert r.status_code == 410
    assert '<html lang="en">' in r.text and "This ticket has ended" in r.text
    assert "take a new ticket" in r.text
    s = httpx.get(f"{branch.url}/t/{old}/state")
    assert s.status_code == 410 and s.json()["state"] == "expired"


def test_requests_per_address_are_limited(branch: Branch) -> None:
    phone = branch.phone
    mine = branch.ticket("A-001")
    assert phone.limiter.rate * 60 == 240 and phone.limiter.burst == 120  # the defaults
    phone.limiter = RateLimiter(rate_per_min=1, burst=20)  # no refill while the test runs
    burst = int(phone.limiter.burst)
    with httpx.Client() as client:
        codes = [client.get(f"{branch.url}/t/{mine}/state").status_code
                 for _ in range(burst + 5)]
        assert codes[:burst] == [200] * burst
        assert codes[-1] == 429
        r = client.get(f"{branch.url}/t/{mine}")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.headers["cache-control"] == "no-store"
    assert httpx.get(branch.url + "/healthz").status_code == 200  # only /t/ is limited


# --------------------------------------------------------------------------- browser


@pytest.fixture
def browser() -> Iterator[Any]:
    """A phone's screen (412 x 915); sound only after a tap, as on a phone."""
    with chromium("en-US", 412, 915, ("--autoplay-policy=user-gesture-required",)) as driver:
        driver.set_page_load_timeout(20)
        yield driver


def shot(driver: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def wait_for(driver: Any, script: str, timeout: float = 5.0) -> Any:
    """Poll ``script`` (JS returning a value) in the page until truthy; the value."""
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script)
        if value:
            return value
        if time.monotonic() > deadline:
            seen = driver.execute_script(
                "return [document.body.className, document.getElementById('ahead') && "
                "document.getElementById('ahead').textContent, document.title]")
            logs = [e["message"] for e in driver.get_log("browser")]
            raise AssertionError(f"not within {timeout} s: {script}; the page: {seen}; "
                                 f"its console: {logs}")
        time.sleep(0.02)


TEXT = {"es": {"two": "2 personas antes que usted", "one": "1 persona antes que usted",
               "turn": "Es su turno"},
        "en": {"two": "2 people ahead of you", "one": "1 person ahead of you",
               "turn": "It's your turn"}}


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["es", "en"])
def test_a_customer_follows_the_turn_and_is_called(branch: Branch, browser: Any,
                                                    lang: str) -> None:
    branch.ticket("A-001", lang, minutes_ago=9)
    branch.ticket("A-002", lang, minutes_ago=8)
    mine = branch.ticket("A-003", lang, minutes_ago=7)
    browser.get(f"{branch.url}/t/{mine}")
    assert browser.find_element("id", "number").text == "A-003"
    assert browser.execute_script("return document.documentElement.lang") == lang
    assert browser.find_element("id", "ahead").text == TEXT[lang]["two"]
    wait_for(browser, "return window.performance && document.readyState === 'complete'")
    shot(browser, f"waiting-{lang}")

    browser.find_element("id", "sound").click()  # the one tap that allows the chime
    assert browser.find_element("id", "sound").get_attribute("aria-pressed") == "true"

    branch.call("A-001", "Cabina 1")
    wait_for(browser, f"return document.getElementById('ahead').textContent === "
                      f"{TEXT[lang]['one']!r}")
    shot(browser, f"one-ahead-{lang}")

    answered = branch.call("A-003", "Cabina 3")
    wait_for(browser, "return !document.getElementById('called').hidden && "
                      "document.getElementById('booth').textContent === 'Cabina 3'", 2.0)
    took = time.monotonic() - answered
    assert took < 2.0, took
    assert browser.find_element("id", "called-title").text == TEXT[lang]["turn"]
    assert browser.find_element("id", "called-number").text == "A-003"
    wait_for(browser, "return document.title.indexOf('Cabina 3') >= 0")  # the tab flashes
    size = browser.execute_script("return parseFloat(getComputedStyle("
                                  "document.getElementById('booth')).fontSize)")
    assert size >= 40  # the booth very large
    time.sleep(0.3)
    shot(browser, f"called-{lang}")

    branch.call("A-003", "Cabina 5", call_id="recall-1")  # a re-call to another booth
    wait_for(browser, "return document.getElementById('booth').textContent === 'Cabina 5'")
    shot(browser, f"recalled-{lang}")


@pytest.mark.slow
def test_without_a_stream_the_page_gets_the_call_by_polling(branch: Branch,
                                                            browser: Any) -> None:
    phone = branch.phone
    branch.ticket("A-001", "en", minutes_ago=9)
    mine = branch.ticket("A-002", "en", minutes_ago=8)
    browser.get(f"{branch.url}/t/{mine}")
    wait_for(browser, "return document.getElementById('ahead').textContent === "
                      "'1 person ahead of you'")
    deadline = time.monotonic() + 5
    while phone.open_pages != 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    phone.max_pages = 0  # the stream is cut and cannot come back: 503 from now on
    branch.relay.relay.loop.call_soon_threadsafe(_drop_all_pages, branch.relay)
    deadline = time.monotonic() + 5
    while phone.open_pages:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    branch.call("A-001", "Cabina 1")
    branch.call("A-002", "Cabina 2")
    wait_for(browser, "return !document.getElementById('called').hidden && "
                      "document.getElementById('booth').textContent === 'Cabina 2'", 10.0)
    assert phone.open_pages == 0  # it came by polling
    shot(browser, "called-by-polling-en")


def _drop_all_pages(relay: RelayServer) -> None:
    for pages in list(relay.relay.hub.pages.values()):
        for page in list(pages):
            page.drop()


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["es", "en"])
def test_after_the_day_the_link_shows_a_kind_page(branch: Branch, browser: Any,
                                                  lang: str) -> None:
    old = branch.ticket("A-007", lang, yesterday=True)
    browser.get(f"{branch.url}/t/{old}")
    heading = browser.find_element("tag name", "h1").text
    assert heading == {"es": "Este número ya terminó", "en": "This ticket has ended"}[lang]
    shot(browser, f"expired-{lang}")
    browser.get(f"{branch.url}/t/{secrets.token_urlsafe(16)}")
    shot(browser, f"unknown-{lang}")


def test_the_pages_colours_meet_wcag_aa_contrast() -> None:
    """Every text colour of phone.css against what it stands on: 4.5:1 at least (AA)."""
    import re

    from kiosk.colours import contrast
    from kiosk.relay.phone import TEMPLATES
    css = (TEMPLATES / "phone.css").read_text()
    v = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-f]{6})", css))
    pairs = [("ink", "paper"), ("ink", "soft"), ("muted", "paper"), ("brand", "paper"),
             ("accent", "paper"), ("turn-ink", "turn")]
    for fg, bg in pairs:
        assert contrast(v[fg], v[bg]) >= 4.5, (fg, bg, contrast(v[fg], v[bg]))
    assert contrast(v["brand"], "#e3ecfa") >= 4.5  # "N ahead of you"
    assert contrast("#ffffff", v["brand"]) >= 4.5  # the sound button
    assert contrast(v["turn-ink"], "#06391f") >= 4.5  # the called screen's pulse


@pytest.fixture(params=["", "*"])
def forwarded_allow_ips(request: pytest.FixtureRequest,
                        monkeypatch: pytest.MonkeyPatch) -> str:
    """uvicorn's ``FORWARDED_ALLOW_IPS`` as an operator may have left it in the relay's
    environment (``*``: uvicorn would trust every peer's ``X-Forwarded-For``)."""
    if request.param:
        monkeypatch.setenv("FORWARDED_ALLOW_IPS", request.param)
    else:
        monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    return str(request.param)


def test_behind_the_proxy_each_phone_is_limited_apart(forwarded_allow_ips: str,
                                                      branch: Branch) -> None:
    """Through this machine's reverse proxy (a loopback peer) the limit counts the address
    the proxy forwards; what a client wrote before it counts for nothing. The relay reads
    forwarding headers itself, by its own rule, whatever uvicorn's ``FORWARDED_ALLOW_IPS``
    says (with ``*`` uvicorn put the forged first address in the peer's place: every
    request a new address, no limit)."""
    phone = branch.phone
    mine = branch.ticket("A-001")
    phone.limiter = RateLimiter(rate_per_min=1, burst=10)
    burst = int(phone.limiter.burst)
    with httpx.Client() as client:
        def get(forwarded: str) -> int:
            return client.get(f"{branch.url}/t/{mine}/state",
                              headers={"X-Forwarded-For": forwarded}).status_code
        assert [get(f"1.2.3.{n}, 203.0.113.7") for n in range(burst)] == [200] * burst
        assert get("9.9.9.9, 203.0.113.7") == 429  # the same phone, whatever it forged
        assert get("203.0.113.8") == 200  # another phone behind the same proxy


@pytest.mark.slow
async def test_the_printed_tickets_qr_opens_its_page_which_calls_the_customer(
        tmp_path: Path, config_factory: Any, state: Any, browser: Any) -> None:
    """End to end, as a customer: the kiosk (its core, the mock API) prints a ticket with
    the hub at a real relay; the QR read from the printed bytes opens the page in
    Chromium; the agents' calls (webhooks) move it, then call it."""
    from tests.escpos_text import decode
    from tests.test_hub_numbers import LOBBY, device, hub_relay, until

    relay = hub_relay(tmp_path / "relay")
    rts = []
    try:
        rt = await device(config_factory, state, relay.url, "test-1", LOBBY)
        rts.append(rt)
        # the kiosk's first block is on its disk before the lobby opens (as after its start)
        await until(lambda: rt.journal.lease_left("A") > 0)
        issued = [await rt.service.issue(ATENCION, language="en") for _ in range(3)]
        assert all(r.printed for r in issued)
        assert rt.config.printer.path is not None
        printed = decode(rt.config.printer.path.read_bytes())[1]["qr"]
        link = printed[-1]  # the third ticket's QR, as the printer got it
        assert link == issued[-1].qr and link.startswith(relay.url + "/t/")
        await until(lambda: rt.journal.outbox_size() == 0)  # the reports reached the hub
        number = issued[-1].ticket_id

        def customer() -> float:
            browser.get(link)
            assert browser.find_element("id", "number").text == number
            wait_for(browser, "return document.getElementById('ahead').textContent === "
                              "'2 people ahead of you'")
            post(relay.url, call_body(issued[0].ticket_id, "c-first", poc="Cabina 1",
                                      queue_name=QUEUE))
            wait_for(browser, "return document.getElementById('ahead').textContent === "
                              "'1 person ahead of you'")
            r = post(relay.url, call_body(number, "c-mine", poc="Cabina 4", queue_name=QUEUE))
            assert r.status_code == 201
            answered = time.monotonic()
            wait_for(browser, "return document.getElementById('booth').textContent === "
                              "'Cabina 4'", 2.0)
            shot(browser, "printed-ticket-called-en")
            return time.monotonic() - answered

        assert await asyncio.to_thread(customer) < 2.0
    finally:
        for rt in rts:
            await rt.aclose()
        relay.stop()
