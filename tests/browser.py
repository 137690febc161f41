"""Headless Chromium for the hub's web pages (Debian's ``chromium`` and
``chromium-driver``, driven by selenium; nothing downloaded)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"


@contextmanager
def chromium(lang: str = "es", width: int = 1280, height: int = 900,
             extra: tuple[str, ...] = ()) -> Iterator[Any]:
    """A headless Chromium whose browser language is ``lang``; its console is logged;
    ``extra``: more command-line switches."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    exe, driver_exe = shutil.which("chromium"), shutil.which("chromedriver")
    assert exe and driver_exe, "chromium and chromium-driver are missing: " \
        "`packaging/dev.sh test` installs Debian's"
    opts = webdriver.ChromeOptions()
    opts.binary_location = exe
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", f"--lang={lang}",
                "--disable-extensions", "--no-first-run", "--disable-background-networking",
                *extra):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"intl.accept_languages": lang})
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(driver_exe))
    if width < 500:  # a headless window is 500 px wide at least: a phone is emulated
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": True})
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: Any, name: str) -> Path:
    """Save the whole page (beyond the window) as ``artifacts/screenshots/<name>.png``."""
    import base64
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    size = driver.execute_script("return [document.documentElement.clientWidth, "
                                 "document.documentElement.scrollHeight]")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def console_errors(driver: Any) -> list[str]:
    """The page's console errors and CSP violations so far (a 401 the page asked for, a
    refused sign-in, is no error of the page)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"
            and "status of 401" not in e["message"]]
