"""The touch UI (Kivy): the only package that imports Kivy, and all the UI process runs.

- ``boot.py``       configures Kivy (window, input, logging) before its window exists
- ``run.py``        :func:`run_ui`: the app beside the core process, until either stops
- ``base.py``       :class:`LobbyApp`: language, large text, high contrast, idle reset,
                    keys, staff screen, lockdown
- ``app.py``        :class:`KioskApp`: the lobby kiosk and the greeter's tablet; priority
                    service; audio guidance's keys
- ``display.py``    :class:`CallingApp`: the calling screen on the lobby's TV
- ``flow.py``       from a tap (or a form) to a ticket on screen and on paper
- ``screens.py``    one class per screen; each has its layout in ``kv/<screen>.kv``
- ``form.py``       the form screen: a queue's few details, checked as they are typed
- ``keyboard.py``   the lobby's on-screen keyboard
- ``calling.py``    the calling screen and the kiosk's "now calling" strip
- ``announcer.py``  a new call's chime and speech, synthesised on a worker
- ``guide.py``      audio guidance's voice: one text at a time, cut short by a key
- ``widgets.py``    queue cards, buttons, the on-screen QR code, the focus ring
- ``theme.py``      colours, fonts and sizes (from config), with contrast checks; the
                    high-contrast theme
- ``drawing.py``    what a frame may cost without a GPU, and what draws cheaply

May import :mod:`kiosk.link` (the core, over the link), :mod:`kiosk.view` (pure helpers)
and the foundation, besides Kivy; never the core's packages, pydantic, httpx or SQLite.
Screens stay thin: every decision is the core's.
"""
