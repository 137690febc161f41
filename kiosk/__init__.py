"""kiosk: the lobby ticket dispenser on the Videsk QMS API.

Package map (layers run top to bottom; a layer imports only the ones below it):

- ``kiosk.cli``         command line: parses arguments, maps outcomes to exit statuses.
- ``kiosk.ui``          the Kivy touch UI (kiosk and greeter tablet); the only Kivy user.
- ``kiosk.service``     use cases: issue a ticket, watch the queues, the demo, admin,
                        the systemd watchdog and the status file; ``runtime`` wires them.
- ``kiosk.api``         the Videsk QMS client (httpx), its models and error mapping.
- ``kiosk.printing``    tickets to ESC/POS printers and to PNG previews.
- ``kiosk.store``       the SQLite journal and the ticket numbers.
- ``kiosk.mock``        a Starlette mock of the Videsk API (for tests, demos, integrators).
- ``kiosk.config``      the YAML config, validated into typed models.
- ``kiosk.errors``      the one error tree every layer raises from.
- ``kiosk.i18n``        customer text (gettext catalogs in ``kiosk/locale``), waits, dates.
- ``kiosk.logs``        logging for commands and both kiosk processes, secrets redacted.
- ``kiosk.resources``   where shipped fonts and data files are.
"""

from __future__ import annotations

__version__ = "0.1.0"
