"""The link between the UI process and the core process, used by both.

- ``protocol.py``  one class per request and per event, and the UI's settings
- ``codec.py``     those messages as lines of JSON, and back
- ``client.py``    :class:`RemoteCore`: the core as the UI sees it
- ``spawn.py``     starting the core process (before anything heavy is imported)
- ``watchdog.py``  systemd's watchdog, fed only while the core answers

May import: :mod:`kiosk.view` and the foundation (stdlib-only modules at the top of
``kiosk``). Nothing here loads pydantic, httpx or SQLite: the UI process imports it.
"""
