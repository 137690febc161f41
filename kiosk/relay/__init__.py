"""The calling relay, the branch's hub: receives the provider's QMS webhook and streams
each branch's calls to its calling screens (Server-Sent Events); hands out the branch's
ticket numbers in blocks and keeps its day of tickets (docs/hub.md).

It stands apart from the kiosk, like a separate service: of ``kiosk`` it may import only
the foundation (errors, secret files, loopback checks, redaction, i18n). Files:

- ``config.py``: the ``relay:`` section of the YAML file, secrets and device tokens;
- ``devices.py``: the branch's devices, their roles, who may do what (docs/hub.md);
- ``contract.py``: the webhook body we publish, its signature, ``webhook-template.json``;
- ``app.py``: the routes (webhook, SSE stream, health, metrics);
- ``hub.py``: fan-out to connected screens and phone pages, slow ones dropped;
- ``phone.py``: the customer's phone ticket page (``/t/{token}``: HTML, JSON, SSE) and its
  templates (``templates/``);
- ``guard.py``: nobody holds it down: the accept loop, deadlines for headers and bodies,
  the cap on connections below the open-file limit;
- ``ratelog.py``: refusals logged at most once a minute per kind, all counted;
- ``store.py``: the store interface and the SQLite store (one relay);
- ``redis_store.py``: the Redis store (several replicas);
- ``ledger.py``: the branch's numbers (leases) and its day of tickets, SQLite or Redis;
- ``quota.py``: how many numbers one device may lease (a reserve refilled by the hour);
- ``changes.py``: who follows a branch's day (a ticket reported, a ticket called);
- ``fleet.py``: the devices' heartbeats in (``PUT /v1/devices/{id}/state``), their states
  out (``GET /v1/fleet``, the ``kiosk_device_*`` series of ``/metrics``);
- ``fleet_store.py``: the devices' last heartbeats (SQLite table, or a Redis hash);
- ``fleet_page.py``: the operations team's page ``/fleet`` (sign-in, live), with
  ``templates/`` (Jinja2, shared with the phone's page) and ``static/`` (CSS, script);
- ``server.py``: uvicorn (under the guard), in the foreground, on a thread, or in its own
  process;
- ``collector.py``: garbage collection with thousands of streams open (``kiosk relay``
  freezes long-lived objects out of the collector's way, a full pass hourly).
"""

from __future__ import annotations

from kiosk.relay.config import RelayConfigError, RelaySettings, load_settings
from kiosk.relay.server import RelayProcess, RelayServer, relay_process

__all__ = ["RelayConfigError", "RelayProcess", "RelayServer", "RelaySettings", "load_settings",
           "relay_process"]
