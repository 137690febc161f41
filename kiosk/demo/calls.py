"""The demo's branch hub and calling loop: mock API → QMS webhook → relay → screens.

Nothing to configure: :func:`demo_relay` starts a relay on a free loopback port, the
branch's hub (docs/hub.md), with a fresh key pair for the webhook's JWT (the relay holds
the public key, the mock the private one as the provider would) and a token per device
(files 0600 in the demo's folder): the kiosk ``demo-1``, the greeter's tablet
``demo-greeter`` and the lobby TV ``demo-tv``. The mock sends its JWT-signed webhook there
when an agent takes a ticket (:func:`with_webhook`), and the kiosk's config gets a ``hub``
section pointing at it (:func:`add_calls`): its numbers are leased from the hub, its
tickets reported there, and its home shows "now calling" (``ui.calls``). ``kiosk demo
--mode display`` shows the calling screen while customers keep arriving (:func:`lobby`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from kiosk.calls.feed import CallFeed
from kiosk.config import Config, config_from_mapping
from kiosk.mock.scenario import Scenario
from kiosk.relay import RelayServer, RelaySettings
from kiosk.relay.config import read_public_keys
from kiosk.relay.contract import new_key_pair
from kiosk.relay.devices import Device, Role
from kiosk.view.calling import Call
from kiosk.view.outcomes import Outcome

log = logging.getLogger(__name__)

CALL_DELAY_S = (2.0, 5.0)
"""From a ticket to its call by a mock agent (before WEBHOOK_SCALE)."""
WEBHOOK_SCALE = 0.6
"""The demo's calls come 1.2 to 3 seconds after the ticket."""


DEVICES: tuple[tuple[str, Role], ...] = (
    ("demo-1", "kiosk"), ("demo-greeter", "tablet"), ("demo-tv", "display"))
"""The demo branch's devices: ``(id, role)``."""


@dataclass
class DemoRelay:
    """The demo's relay (the branch's hub) and what each device needs to reach it."""

    server: RelayServer
    branch: str
    token: SecretStr
    """The kiosk's (``demo-1``) device token."""
    token_file: Path
    jwt_key_file: Path
    """The provider's secret ``kioskJwtPrivateKey`` (the private key as a JSON string)."""
    token_files: dict[str, Path]
    """Each device's token file, by device id (:data:`DEVICES`)."""

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def private_key(self) -> str:
        """The JWT's private key (PEM): what the provider signs with."""
        pem: str = json.loads(self.jwt_key_file.read_text(encoding="utf-8"))
        return pem


def _private(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text + "\n", encoding="utf-8")
    return path


@contextlib.contextmanager
def demo_relay(folder: Path, branch: str, timezone: str = "UTC") -> Iterator[DemoRelay]:
    """A relay on a free loopback port for ``branch`` (its hub) that takes only JWT-signed
    calls, with a new key pair and a token per device of :data:`DEVICES`."""
    private_pem, public_pem = new_key_pair()
    jwt_key_file = _private(folder / "relay" / "webhook-jwt.provider-secret",
                            json.dumps(private_pem))
    public_file = folder / "relay" / "webhook-jwt.pub"
    public_file.write_text(public_pem, encoding="ascii")
    tokens = {device_id: secrets.token_urlsafe(32) for device_id, _ in DEVICES}
    files = {device_id: _private(folder / "relay" / f"device-{device_id}", token)
             for device_id, token in tokens.items()}
    settings = RelaySettings(
        jwt_keys=read_public_keys("(demo)", "relay.jwt_public_key_file", public_file),
        require_jwt=True, devices={tokens[i]: Device(i, branch, role) for i, role in DEVICES},
        zones={branch: timezone},
        sqlite_path=folder / "relay" / "relay.sqlite3", timezone=timezone, keepalive_s=10)
    with RelayServer(settings) as server:
        yield DemoRelay(server, branch, SecretStr(tokens["demo-1"]), files["demo-1"],
                        jwt_key_file, files)


def with_webhook(scenario: Scenario, relay: DemoRelay) -> Scenario:
    """``scenario`` with the mock's QMS webhook sent to ``relay``."""
    hook = scenario.webhook.model_copy(update={
        "url": f"{relay.url}/webhooks/videsk", "jwt_key_file": relay.jwt_key_file,
        "delay_s": CALL_DELAY_S, "time_scale": WEBHOOK_SCALE})
    return scenario.model_copy(update={"webhook": hook})


def add_calls(data: dict[str, Any], relay: DemoRelay, device: str = "demo-1") -> None:
    """Point a config mapping at the demo's hub as ``device`` (its numbers, reports and
    calls), with the "now calling" strip on."""
    data["hub"] = {"url": relay.url, "token_file": str(relay.token_files[device])}
    data.setdefault("ui", {})["calls"] = True


def display_config(kiosk: Config, relay: DemoRelay) -> Config:
    """A calling screen's config for the demo's branch (beside the demo kiosk)."""
    return config_from_mapping({
        "branch": kiosk.branch,
        "kiosk": {"id": "demo-tv", "mode": "display", "data_dir": str(kiosk.kiosk.data_dir),
                  "language": kiosk.kiosk.language, "timezone": kiosk.kiosk.timezone},
        "hub": {"url": relay.url, "token_file": str(relay.token_files["demo-tv"])},
        "ticket": {"branch_label": kiosk.ticket.branch_label or "Sucursal Providencia"},
        "ui": {"fullscreen": False, "admin_pin_hash": kiosk.ui.admin_pin_hash
               .get_secret_value() if kiosk.ui.admin_pin_hash else None},
    }, "(demo display)")


def echo_calls(echo: Callable[[str], None]) -> Callable[[CallFeed, list[Call]], None]:
    """A feed listener printing each call (the headless demo)."""
    def listener(feed: CallFeed, received: list[Call]) -> None:
        for call in received:
            echo(f"{'':<30} >> now calling {call.ticket_id} → {call.poc}")
    return listener


async def lobby(rt: Any, rng: random.Random | None = None,
                every_s: tuple[float, float] = (3.0, 7.0)) -> None:
    """Customers keep arriving and taking tickets (``kiosk demo --mode display``), in
    queues that have agents, in the three languages; until cancelled."""
    rng = rng or random.Random()
    while True:
        await rt.monitor.poll_once()
        open_queues = [q for q in rt.service.views("es") if q.users > 0]
        if open_queues:
            q = rng.choice(open_queues)
            lang = rng.choice(("es", "es", "en", "pt"))
            r = await rt.service.issue(q.id, language=lang)
            if r.outcome is Outcome.ISSUED:
                log.info("demo lobby: %s took %s (%s)", lang, r.ticket_id, q.name)
        await asyncio.sleep(rng.uniform(*every_s))
