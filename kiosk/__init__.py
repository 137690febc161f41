"""kiosk: the lobby ticket dispenser on the Videsk QMS API.

Two processes make a device: the UI (:mod:`kiosk.ui`) and its core (:mod:`kiosk.core`),
talking over :mod:`kiosk.link`. Packages, each with what it may import in its ``__init__``
(``tests/test_layers.py`` holds them to it):

- ``kiosk.ui``       the Kivy touch UI: kiosk, greeter's tablet, calling screen
- ``kiosk.link``     the UI <-> core protocol, the UI's client, starting the core
- ``kiosk.view``     pure helpers both processes use to show things (the UI's only imports
                     besides the link and the foundation)
- ``kiosk.core``     the core process: wiring, the link's server, staff, check, status
- ``kiosk.tickets``  the use cases: issue a ticket, the queues, forms, staff PIN, the clock
- ``kiosk.calls``    a device's feed of the relay's calls
- ``kiosk.api``      the Videsk QMS client (httpx), its models and error mapping
- ``kiosk.printing`` tickets to ESC/POS printers and to PNG previews
- ``kiosk.store``    the SQLite journal and the ticket numbers
- ``kiosk.relay``    the calling relay (``kiosk relay``): a service of its own
- ``kiosk.mock``     a mock of the Videsk API (``kiosk mock-api``): a service of its own
- ``kiosk.demo``     the demo's wiring of the mock, the relay and the kiosk
- ``kiosk.config``   the YAML config, validated into typed models
- ``kiosk.cli``      the command line: parses arguments, maps outcomes to exit statuses

The foundation, standard library only and importable by all: ``errors`` (the one error
tree), ``deadlines``, ``textclean``, ``redaction``, ``secretfile``, ``netloc`` (loopback
checks), ``i18n``, ``logs``, ``tasks``, ``colours``, ``resources``.
"""

from __future__ import annotations

__version__ = "0.1.0"
