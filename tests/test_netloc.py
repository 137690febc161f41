"""Whose address a request is (kiosk.netloc.client_address): a forwarded address is
believed only from this machine or a proxy the relay was told of."""

from __future__ import annotations

from ipaddress import ip_network
from typing import Any

import pytest

from kiosk.netloc import client_address

PROXIES = (ip_network("10.0.0.0/24"), ip_network("fd00::/64"))


def scope(peer: str, *forwarded: str) -> dict[str, Any]:
    return {"client": (peer, 40000),
            "headers": [(b"x-forwarded-for", f.encode()) for f in forwarded]}


@pytest.mark.parametrize(("peer", "forwarded", "proxies", "who"), [
    ("127.0.0.1", ("1.2.3.4, 203.0.113.7",), (), "203.0.113.7"),  # this machine's proxy
    ("10.0.0.2", ("203.0.113.7",), (), "10.0.0.2"),  # not told of: its word is not taken
    ("10.0.0.2", ("203.0.113.7",), PROXIES, "203.0.113.7"),
    ("::ffff:10.0.0.2", ("203.0.113.7",), PROXIES, "203.0.113.7"),  # dual-stack socket
    ("fd00::5", ("2001:db8::1",), PROXIES, "2001:db8::1"),
    ("10.0.1.2", ("203.0.113.7",), PROXIES, "10.0.1.2"),  # outside the network
    ("203.0.113.50", ("10.0.0.9",), PROXIES, "203.0.113.50"),  # a client forging
    ("10.0.0.2", ("198.51.100.1", "203.0.113.7"), PROXIES, "203.0.113.7"),  # its own line
    ("10.0.0.2", (), PROXIES, "10.0.0.2"),  # nothing forwarded: the proxy itself
    ("not-an-address", ("203.0.113.7",), PROXIES, "not-an-address"),
])
def test_a_forwarded_address_is_believed_only_from_a_known_proxy(
        peer: str, forwarded: tuple[str, ...], proxies: Any, who: str) -> None:
    assert client_address(scope(peer, *forwarded), proxies) == who
