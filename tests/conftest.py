"""Shared fixtures: the mock API (in-process and on loopback), configs, clocks."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from kiosk.api import QmsClient, RetryPolicy
from kiosk.config import Config, config_from_mapping
from kiosk.core.runtime import Runtime
from kiosk.mock import MockServer, MockState, create_app, default_scenario_path, load_scenario
from tests.redis_helpers import RedisProcess

REPO = Path(__file__).resolve().parent.parent
KEY = "mock.kiosk.key"
BRANCH = "652720d479497a1b62df288b"
ATENCION = "652a1ae848880e168884e49b"
CUENTAS = "652a1ae848880e168884e4a0"
CREDITOS = "652a1ae848880e168884e4a1"
SEGUROS = "652a1ae848880e168884e4a2"

# Retries without waiting: the waits themselves are checked in test_api_client.
FAST_RETRY = RetryPolicy(initial_delay_s=0.0, max_delay_s=0.0, jitter=0.0, max_retry_after_s=0.0)


@pytest.fixture(autouse=True)
def _no_api_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIDESK_API_KEY", raising=False)
    monkeypatch.delenv("KIOSK_CONFIG", raising=False)


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A test that runs a command in this process (``kiosk.logs.setup_logging``) leaves a
    root handler writing to that test's captured stderr, closed once it ends: a relay
    thread of a later test logging through it printed "--- Logging error ---" tracebacks
    in CI's output. Such handlers are removed after each test (pytest's own stay)."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if type(handler) is logging.StreamHandler and handler not in before:
            root.removeHandler(handler)
    root.setLevel(level)


class FakeClock:
    """A monotonic clock tests move by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class WallClock:
    """An aware UTC wall clock tests move by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> MockState:
    """A fresh mock state over the default scenario, on a hand-moved clock."""
    return MockState(load_scenario(default_scenario_path()), clock=clock)


@pytest.fixture
async def api(state: MockState) -> AsyncIterator[QmsClient]:
    """A client talking to the mock in-process (ASGI, no socket)."""
    client = QmsClient("http://mock.invalid", KEY,
                       transport=httpx.ASGITransport(app=create_app(state)), retry=FAST_RETRY)
    yield client
    await client.aclose()


@pytest.fixture
def server(state: MockState) -> Iterator[MockServer]:
    """The same mock state served over real loopback HTTP."""
    with MockServer(state) as srv:
        yield srv


def make_config(tmp_path: Path, **overrides: Any) -> Config:
    data: dict[str, Any] = {
        "api": {"base_url": "http://127.0.0.1:9", "timeout_s": 2},
        "branch": BRANCH,
        "kiosk": {"id": "test-1", "data_dir": str(tmp_path / "data"),
                  "timezone": "America/Santiago"},
        "queues": [{"id": ATENCION, "prefix": "A", "names": {"en": "Customer care"}},
                   {"id": CUENTAS, "prefix": "B"}, {"id": CREDITOS, "prefix": "C"},
                   {"id": SEGUROS, "prefix": "D"}],
        "printer": {"type": "file", "path": str(tmp_path / "printer.bin")},
        "ticket": {"header": ["Banco Ejemplo"], "qr": "https://example.com/t/{ticketId}"},
    }
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        if field:
            data.setdefault(section, {})[field] = value
        else:
            data[section] = value
    return config_from_mapping(data, "test.yaml")


@pytest.fixture
def config_factory(tmp_path: Path) -> Callable[..., Config]:
    return lambda **kw: make_config(tmp_path, **kw)


@pytest.fixture
def utc_clock() -> WallClock:
    return WallClock(datetime(2026, 11, 27, 15, 0, tzinfo=UTC))


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running ``kiosk`` as a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIDESK_", "KIOSK_"))}
    env["VIDESK_API_KEY"] = KEY
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """A real redis-server without persistence, one per test module."""
    with RedisProcess(tmp_path_factory.mktemp("redis"), "none") as server:
        yield server


@pytest.fixture
async def devices() -> AsyncIterator[list[Runtime]]:
    """The devices (core runtimes) a test starts, closed at its end."""
    rts: list[Runtime] = []
    yield rts
    for rt in rts:
        await rt.aclose()
