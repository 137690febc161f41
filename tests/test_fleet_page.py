"""The operations team's page ``/fleet`` (issue 19): signed in with the fleet token through
a form (an HttpOnly, SameSite=Strict cookie; no token in a URL; no other site can sign in,
out or read), a strict CSP, every branch and its devices worst first, updated live.
In headless Chromium, with screenshots in artifacts/screenshots/, and over plain HTTP for
what a browser hides."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kiosk.relay import RelayServer
from kiosk.relay.fleet_page import COOKIE, SESSION_S, make_session
from tests.browser import chromium, console_errors, screenshot
from tests.fleet_helpers import FLEET_TOKEN, beat, fleet_settings, put_state
from tests.relay_helpers import BRANCH_A, BRANCH_B


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayServer]:
    with RelayServer(fleet_settings(tmp_path, heartbeat_s=3.0)) as server:
        yield server


def sign_in(driver: Any, url: str, token: str = FLEET_TOKEN) -> None:
    from selenium.webdriver.common.by import By
    driver.get(url + "/fleet")
    field = driver.find_element(By.ID, "token")
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    # the answer is a new page: wait for it (reading page_source at once could still see
    # the form, as a CI run did)
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait
    WebDriverWait(driver, 10).until(expected_conditions.staleness_of(field))


def wait_for(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, "the page did not show it in time"
        time.sleep(0.1)


def row_text(driver: Any, device: str) -> str:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    try:
        return str(driver.find_element(By.CSS_SELECTOR, f'tr[data-device="{device}"]').text)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


@pytest.mark.slow
def test_the_page_in_chromium_signs_in_shows_worst_first_live_and_signs_out(
        relay: RelayServer) -> None:
    from selenium.webdriver.common.by import By
    url = relay.url

    def beats() -> None:
        put_state(url, "lobby-1", beat(in_service=False, reason="printer",
                                       printer="paper_out", tickets_today=12))
        put_state(url, "greeter", beat("tablet", printer="paper_low", tickets_today=30))
        put_state(url, "tv-1", beat("display"))
        put_state(url, "b-kiosk", beat(tickets_today=7))

    with chromium("es") as driver:
        driver.get(url + "/fleet")
        assert driver.find_element(By.ID, "token").get_attribute("type") == "password"
        assert "Token de operaciones" in driver.page_source
        screenshot(driver, "fleet-login-es")
        sign_in(driver, url, FLEET_TOKEN + "-wrong")
        assert "Ese no es el token de operaciones" in driver.page_source
        beats()  # heard just now (Chromium takes a while to start on a busy machine)
        sign_in(driver, url)
        assert driver.current_url == url + "/fleet"  # no token in any URL
        cookie = driver.get_cookie(COOKIE)
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
        assert FLEET_TOKEN not in cookie["value"]
        assert driver.execute_script("return document.cookie") == ""  # not for scripts
        # worst first: branch A (a kiosk out of paper) before branch B (all well)
        sections = driver.find_elements(By.CSS_SELECTOR, "section.branch")
        assert [s.get_attribute("data-branch") for s in sections] == [BRANCH_A, BRANCH_B]
        rows = [r.get_attribute("data-device") for r in
                sections[0].find_elements(By.CSS_SELECTOR, "tbody tr")]
        assert rows == ["lobby-1", "greeter", "tv-1"]
        lobby = row_text(driver, "lobby-1")
        assert "Falla" in lobby and "Sin papel" in lobby and "12" in lobby
        assert "Tótem" in lobby and "hace" in lobby
        assert "Queda poco papel" in row_text(driver, "greeter")
        assert "paper_" not in driver.find_element(By.TAG_NAME, "main").text  # no raw words
        screenshot(driver, "fleet-es")
        # live: paper loaded on lobby-1, the greeter goes silent
        put_state(url, "lobby-1", beat(tickets_today=13))
        wait_for(lambda: "Funciona" in row_text(driver, "lobby-1"), timeout=5)
        assert "13" in row_text(driver, "lobby-1")
        wait_for(lambda: "Sin conexión" in row_text(driver, "greeter"), timeout=20)
        first = driver.find_element(By.CSS_SELECTOR, "section.branch tbody tr")
        assert first.get_attribute("data-device") == "greeter"  # offline: now the worst
        screenshot(driver, "fleet-es-live")
        assert not console_errors(driver)  # no CSP violation, no script error
        driver.find_element(By.CSS_SELECTOR, "header form button").click()
        wait_for(lambda: driver.find_elements(By.ID, "token"))
        assert driver.get_cookie(COOKIE) is None
        driver.get(url + "/fleet/data")
        assert "signed out" in driver.page_source


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["en", "pt"])
def test_the_page_speaks_the_browsers_language(relay: RelayServer, lang: str) -> None:
    from selenium.webdriver.common.by import By
    phone = lang == "pt"  # and on a phone's width
    with chromium(lang, *((390, 844) if phone else ())) as driver:
        put_state(relay.url, "lobby-1", beat(printer="cover_open"))
        sign_in(driver, relay.url)
        text = driver.find_element(By.TAG_NAME, "body").text
        assert {"en": "Close the printer's cover", "pt": "Feche a tampa da impressora"}[lang] \
            in text
        assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == lang
        if phone:  # nothing wider than the screen
            assert driver.execute_script("return [document.documentElement.scrollWidth, "
                                         "window.innerWidth]") == [390, 390]
        screenshot(driver, f"fleet-{lang}" + ("-phone" if phone else ""))


# --------------------------------------------------------------------------- over HTTP


def test_sign_in_sets_a_strict_cookie_and_the_data_needs_it(relay: RelayServer) -> None:
    url = relay.url
    r = httpx.post(url + "/fleet/login", data={"token": FLEET_TOKEN})
    assert r.status_code == 303 and r.headers["location"] == "/fleet"
    set_cookie = r.headers["set-cookie"].lower()
    for part in ("httponly", "samesite=strict", "path=/fleet"):
        assert part in set_cookie
    assert "secure" not in set_cookie  # plain http on loopback: a browser would drop it
    value = r.cookies[COOKIE]
    assert FLEET_TOKEN not in value
    assert httpx.get(url + "/fleet/data").status_code == 401
    ok = httpx.get(url + "/fleet/data", cookies={COOKIE: value})
    assert ok.status_code == 200 and ok.json()["branches"]
    # behind the TLS proxy the cookie is Secure
    r = httpx.post(url + "/fleet/login", data={"token": FLEET_TOKEN},
                   headers={"X-Forwarded-Proto": "https"})
    assert "secure" in r.headers["set-cookie"].lower()
    # a wrong token: no cookie
    r = httpx.post(url + "/fleet/login", data={"token": "fleet-token-operations-012345678X"})
    assert r.status_code == 401 and "set-cookie" not in r.headers


def test_forged_tampered_expired_or_rotated_sessions_are_refused(tmp_path: Path) -> None:
    settings = fleet_settings(tmp_path)
    with RelayServer(settings) as server:
        now = time.time()
        good = make_session([FLEET_TOKEN.encode()], now)
        expires, mac = good.split(".")
        data = server.url + "/fleet/data"
        assert httpx.get(data, cookies={COOKIE: good}).status_code == 200
        for bad in (f"{int(expires) + 1}.{mac}", f"{expires}.{'0' * 64}", "", "x.y",
                    make_session([b"another-token-0123456789abcdef"], now),
                    make_session([FLEET_TOKEN.encode()], now - SESSION_S - 5),
                    f"{int(now) + 10 * SESSION_S}.{mac}"):
            assert httpx.get(data, cookies={COOKIE: bad}).status_code == 401, bad
        # a digit that is not ASCII ("²".isdigit()) was int()'s ValueError: a 500
        forged = f"{COOKIE}=\xb2.{mac}".encode("latin-1")
        for page in (data, server.url + "/fleet"):
            r = httpx.get(page, headers={"Cookie": forged})
            assert r.status_code in (401, 303, 200) and r.status_code != 500, page
        assert httpx.get(data, headers={"Cookie": forged}).status_code == 401
    rotated = fleet_settings(tmp_path, fleet_tokens=(b"fleet-token-the-new-one-012345678",))
    with RelayServer(rotated) as server:
        assert httpx.get(server.url + "/fleet/data", cookies={COOKIE: good}).status_code == 401


def test_guessing_the_token_is_stopped_per_address(relay: RelayServer) -> None:
    """Ten wrong tokens a minute from one address, then 429 (even for the right one, so a
    guess is never tested); another address (behind this machine's proxy) is not held."""
    url = relay.url
    for i in range(10):
        r = httpx.post(url + "/fleet/login", data={"token": f"guess-{i}-0123456789abcdef"})
        assert r.status_code == 401
    r = httpx.post(url + "/fleet/login", data={"token": FLEET_TOKEN})
    assert r.status_code == 429 and int(r.headers["retry-after"]) <= 61
    # a form with more fields than the page's (parse_qs refuses it: was a 500, uncounted)
    crowded = {f"f{i}": "x" for i in range(12)}
    r = httpx.post(url + "/fleet/login", data=crowded, headers={"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 401
    for _ in range(9):
        httpx.post(url + "/fleet/login", data=crowded, headers={"X-Forwarded-For": "203.0.113.9"})
    r = httpx.post(url + "/fleet/login", data={"token": FLEET_TOKEN},
                   headers={"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 429  # the crowded forms were wrong sign-ins, counted
    # a proxy that adds a line of its own (HAProxy's "option forwardfor"): the client's
    # own line before it counts for nothing (the first line was read: never limited)
    for i in range(10):
        r = httpx.post(url + "/fleet/login", data={"token": f"guess-{i}-0123456789abcdef"},
                       headers=[("X-Forwarded-For", f"198.51.100.{i}"),
                                ("X-Forwarded-For", "203.0.113.77")])
        assert r.status_code == 401
    r = httpx.post(url + "/fleet/login", data={"token": FLEET_TOKEN},
                   headers=[("X-Forwarded-For", "198.51.100.99"),
                            ("X-Forwarded-For", "203.0.113.77")])
    assert r.status_code == 429
    assert "set-cookie" not in r.headers and "minuto" in r.text
    other = httpx.post(url + "/fleet/login", data={"token": FLEET_TOKEN},
                       headers={"X-Forwarded-For": "203.0.113.7"})
    assert other.status_code == 303


@pytest.mark.parametrize(("trusted", "other"), [((), 429), (("10.0.0.0/24",), 303)])
async def test_behind_a_proxy_on_another_machine_each_address_counts_when_it_is_trusted(
        tmp_path: Path, trusted: tuple[str, ...], other: int) -> None:
    """Replicas behind Caddy on the front machine ("Several replicas"): every request's
    peer is the proxy. Unless ``relay.trusted_proxies`` names it, its ``X-Forwarded-For``
    is not believed, so all clients are one address: ten wrong tokens from anyone locked
    the operations team out for the minute (429); trusted, each client counts apart.
    (The peer is not this machine: the app is called in-process with that peer.)"""
    from ipaddress import ip_network

    from kiosk.relay.app import create_app
    settings = fleet_settings(tmp_path, trusted_proxies=tuple(ip_network(t) for t in trusted))
    transport = httpx.ASGITransport(app=create_app(settings), client=("10.0.0.2", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://calls") as client:
        for i in range(10):
            r = await client.post("/fleet/login", data={"token": f"guess-{i}-0123456789abcd"},
                                  headers={"X-Forwarded-For": f"198.51.100.{i}, 203.0.113.9"})
            assert r.status_code == 401
        r = await client.post("/fleet/login", data={"token": FLEET_TOKEN},
                              headers={"X-Forwarded-For": "203.0.113.7"})
        assert r.status_code == other
        r = await client.post("/fleet/login", data={"token": FLEET_TOKEN},  # the guesser
                              headers={"X-Forwarded-For": "198.51.100.99, 203.0.113.9"})
        assert r.status_code == 429


def test_no_other_site_can_sign_in_or_out(relay: RelayServer) -> None:
    url = relay.url
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": "null"}, {"Sec-Fetch-Site": "same-site"},
                    {"Origin": "http://[::1"}):  # not a URL (urlsplit raised: a 500)
        r = httpx.post(url + "/fleet/login", data={"token": FLEET_TOKEN}, headers=headers)
        assert r.status_code == 403 and "set-cookie" not in r.headers, headers
        assert httpx.post(url + "/fleet/logout", headers=headers).status_code == 403
    host = url.removeprefix("http://")
    r = httpx.post(url + "/fleet/login", data={"token": FLEET_TOKEN},
                   headers={"Origin": url, "Sec-Fetch-Site": "same-origin", "Host": host})
    assert r.status_code == 303
    # no CORS: nothing invites another origin to read
    r = httpx.get(url + "/fleet/data", headers={"Origin": "https://evil.example"},
                  cookies={COOKIE: r.cookies[COOKIE]})
    assert "access-control-allow-origin" not in r.headers


def test_every_answer_has_a_strict_csp_and_no_third_party_resource(relay: RelayServer
                                                                   ) -> None:
    url = relay.url
    signed = httpx.post(url + "/fleet/login", data={"token": FLEET_TOKEN}).cookies[COOKIE]
    pages = [httpx.get(url + "/fleet"), httpx.get(url + "/fleet", cookies={COOKIE: signed}),
             httpx.get(url + "/fleet/data", cookies={COOKIE: signed})]
    for r in pages:
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "same-origin"
    size = 0
    for name in ("base.css", "fleet.css", "fleet.js", "icon.svg"):
        r = httpx.get(url + f"/fleet/static/{name}")
        assert r.status_code == 200
        text = r.text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a name, no fetch
        assert "http://" not in text and "https://" not in text
        size += len(r.content)
    assert size < 30_000
    for html in (pages[0].text, pages[1].text):
        assert "http://" not in html and "https://" not in html and "<script>" not in html
        assert "style=" not in html  # no inline style either
    assert httpx.get(url + "/fleet/static/..%2Fapp.py").status_code == 404
    assert httpx.get(url + "/fleet/static/fleet.html").status_code == 404


def test_device_ids_are_text_on_the_page_never_markup(tmp_path: Path) -> None:
    """A branch id or device id is never HTML (ids are restricted by the config, and the
    page escapes them anyway): what a heartbeat sends never reaches the page as markup."""
    with RelayServer(fleet_settings(tmp_path)) as server:
        put_state(server.url, "lobby-1", beat(version="1.0+<b>"))
        signed = httpx.post(server.url + "/fleet/login",
                            data={"token": FLEET_TOKEN}).cookies[COOKIE]
        page = httpx.get(server.url + "/fleet", cookies={COOKIE: signed}).text
        assert "<b>" not in page
