"""The ticket on the phone (issue 18) as a customer meets it: a real relay on loopback,
real webhooks, the page in Debian's headless Chromium (selenium + chromium-driver), and
the page's HTTP rules (headers, 404, 410, 429, size)."""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from kiosk.relay import RelayServer
from kiosk.relay.phone import HEADERS, PhoneTicket, RateLimiter
from tests.phone_helpers import CallsJoined
from tests.relay_helpers import BRANCH_A, call_body, post, settings

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "artifacts" / "phone"
QUEUE = "Atención a clientes"


class Branch:
    """A relay serving phone pages, and the day's tickets reported to it."""

    def __init__(self, relay: RelayServer, source: CallsJoined) -> None:
        self.relay = relay
        self.source = source
        self.url = relay.url
        self.day = relay.relay.today(BRANCH_A)
        self.zone = relay.relay.zone_of(BRANCH_A)

    def ticket(self, number: str, lang: str = "es", minutes_ago: float = 5, *,
               day: str | None = None, priority: object = None,
               wait_min: float | None = 12) -> str:
        """Report a ticket with a phone token; the token."""
        token = secrets.token_urlsafe(16)
        issued = datetime.now(self.zone) - timedelta(minutes=minutes_ago)
        self.source.report(PhoneTicket(
            BRANCH_A, day or self.day, number, "q-1", QUEUE, lang,
            issued.isoformat(timespec="seconds"), priority=priority, wait_min=wait_min), token)
        return token

    def call(self, number: str, booth: str = "Cabina 3", call_id: str | None = None) -> float:
        """The provider calls ``number`` to ``booth``; when the webhook was answered."""
        r = post(self.url, call_body(number, call_id or f"call-{number}-{booth}", poc=booth,
                                     queue_name=QUEUE))
        assert r.status_code == 201, r.text
        return time.monotonic()


@pytest.fixture
def branch(tmp_path: Path) -> Iterator[Branch]:
    source = CallsJoined()
    with RelayServer(settings(tmp_path), phone_source=source) as relay:
        source.store = relay.relay.store
        yield Branch(relay, source)


# --------------------------------------------------------------------------- HTTP


def test_the_page_shows_number_queue_and_who_is_ahead(branch: Branch) -> None:
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
    branch.call("A-002")
    deadline = time.monotonic() + 5
    while httpx.get(f"{branch.url}/t/{mine}/state").json()["ahead"] != 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)


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
    phone = branch.relay.app.state.phone
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
    yesterday = (datetime.fromisoformat(branch.day) - timedelta(days=1)).date().isoformat()
    old = branch.ticket("A-009", lang="en", day=yesterday)
    r = httpx.get(f"{branch.url}/t/{old}")
    assert r.status_code == 410
    assert '<html lang="en">' in r.text and "This ticket has ended" in r.text
    assert "take a new ticket" in r.text
    s = httpx.get(f"{branch.url}/t/{old}/state")
    assert s.status_code == 410 and s.json()["state"] == "expired"


def test_requests_per_address_are_limited(branch: Branch) -> None:
    phone = branch.relay.app.state.phone
    mine = branch.ticket("A-001")
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
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("chromium and chromium-driver are needed (packaging/dev.sh installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=412,915", "--force-device-scale-factor=1",
                "--autoplay-policy=user-gesture-required"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or ""),
                              options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


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
            raise AssertionError(f"not within {timeout} s: {script}")
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
    time.sleep(0.3)
    shot(browser, f"called-{lang}")

    branch.call("A-003", "Cabina 5", call_id="recall-1")  # a re-call to another booth
    wait_for(browser, "return document.getElementById('booth').textContent === 'Cabina 5'")
    shot(browser, f"recalled-{lang}")


@pytest.mark.slow
def test_without_a_stream_the_page_gets_the_call_by_polling(branch: Branch,
                                                            browser: Any) -> None:
    phone = branch.relay.app.state.phone
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
    yesterday = (datetime.fromisoformat(branch.day) - timedelta(days=1)).date().isoformat()
    old = branch.ticket("A-007", lang, day=yesterday)
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


def test_behind_the_proxy_each_phone_is_limited_apart(branch: Branch) -> None:
    """Through this machine's reverse proxy (a loopback peer) the limit counts the address
    the proxy forwards; what a client wrote before it counts for nothing."""
    phone = branch.relay.app.state.phone
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
