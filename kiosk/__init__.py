"""kiosk: the lobby ticket dispenser on the Videsk QMS API.

Package map (layers run top to bottom; a layer imports only the ones below it):

- ``kiosk.cli``         command line: parses arguments, maps outcomes to exit statuses.
- ``kiosk.service``     use cases: issue a ticket, watch the queues, the headless demo.
- ``kiosk.api``         the Videsk QMS client (httpx), its models and error mapping.
- ``kiosk.printing``    tickets to ESC/POS printers and to PNG previews.
- ``kiosk.store``       the SQLite journal and the ticket numbers.
- ``kiosk.mock``        a Starlette mock of the Videsk API (for tests, demos, integrators).
- ``kiosk.config``      the YAML config, validated into typed models.
- ``kiosk.errors``      the one error tree every layer raises from.
"""

from __future__ import annotations

__version__ = "0.1.0"
