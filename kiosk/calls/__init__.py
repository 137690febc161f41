"""The calling side of a device (in its core): the relay's stream of calls.

- ``feed.py``       :class:`CallFeed`: the relay's Server-Sent Events, reconnecting
- ``announced.py``  the newest call a screen announced, kept across restarts
- ``recorder.py``   a kiosk's own tickets' calls, into its journal

How a call reads and sounds is :mod:`kiosk.view.calling` and :mod:`kiosk.view.speech`
(the UI process says it aloud). May import :mod:`kiosk.config`, :mod:`kiosk.store`,
:mod:`kiosk.view` and the foundation.
"""
