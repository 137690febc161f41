"""The core process (``kiosk core``): it owns the config, the API key, the journal, the
printer and the PIN hash, and serves one UI over the link.

- ``main.py``         the entry point: config, hello, then the kiosk's or display's core
- ``runtime.py``      the wiring: a device's objects built from its config
- ``server.py``       the link's core end: one handler per request, kiosk and display
- ``settings.py``     what the UI and the deadlines take from the config
- ``admin.py``        the staff screen's actions and summary
- ``diagnostics.py``  ``kiosk check``, line by line
- ``status.py``       ``status.json`` for monitoring
- ``state.py``        the device's state in one place: status.json, check, staff, heartbeat
- ``reload.py``       a new config, all or nothing

May import anything of ``kiosk`` but :mod:`kiosk.ui`, :mod:`kiosk.relay`, :mod:`kiosk.mock`
and :mod:`kiosk.demo`; never Kivy.
"""
