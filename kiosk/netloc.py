"""Where a host or URL points: this machine (loopback) or elsewhere.

Standard library only: the config, the call feed and the relay check with it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine: 127.0.0.0/8, ::1 (also as
    ``::ffff:127.0.0.1`` on a dual-stack socket) or ``localhost``; not ``localhost.``,
    a name for DNS rather than /etc/hosts."""
    if host.lower() == "localhost":
        return True
    address = _address(host)
    return address is not None and address.is_loopback


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an IP address (an IPv4 address a dual-stack socket shows as
    ``::ffff:a.b.c.d`` as that IPv4 address); None for a name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return getattr(address, "ipv4_mapped", None) or address


def is_loopback_url(url: str) -> bool:
    """Whether ``url``'s host is this machine (see :func:`is_loopback`)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    return is_loopback(host)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _within(peer: str, proxies: Sequence[Network]) -> bool:
    address = _address(peer)
    return address is not None and any(address in net for net in proxies)


def client_address(scope: Mapping[str, Any], proxies: Sequence[Network] = ()) -> str:
    """The address an HTTP request comes from (its ASGI ``scope``): the peer's, or, when
    the peer is this machine or one of ``proxies`` (its reverse proxy), the address the
    proxy added last to ``X-Forwarded-For`` - the last entry of the last such line (those
    before it anyone can write, whether in one line or in lines of their own)."""
    client = scope.get("client")
    peer = str(client[0]) if client else ""
    if not (is_loopback(peer) or (proxies and _within(peer, proxies))):
        return peer
    forwarded = [value for name, value in scope["headers"] if name == b"x-forwarded-for"]
    if not forwarded:
        return peer
    last = forwarded[-1].decode("latin-1").rsplit(",", 1)[-1].strip()
    return last[:64] or peer
