"""The demo's wiring: the mock API, a relay and the kiosk, on loopback, nothing to set up.

- ``headless.py``  ``kiosk demo --headless``: a morning in the lobby, through the use case
- ``calls.py``     the demo's relay and its webhooks, a lobby of arriving customers
- ``core.py``      ``kiosk demo-core``: the core process of ``kiosk demo``

May import anything of ``kiosk`` but :mod:`kiosk.ui` (the only package that may start
the mock and the relay in-process beside a kiosk).
"""
