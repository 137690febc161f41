"""The touch UI (Kivy): the only package that imports Kivy.

- ``boot.py``     configures Kivy (window, input, logging) before its window exists
- ``theme.py``    colours, fonts and sizes (from config), with contrast checks
- ``widgets.py``  queue cards, buttons, the on-screen QR code, the spinner, focus ring
- ``screens.py``  one class per screen; each has its layout in ``kv/<screen>.kv``
- ``app.py``      :class:`KioskApp`: screens, language, idle reset, keyboard, admin
- ``run.py``      :func:`run_ui`: the app and the core on one asyncio loop

Screens stay thin: every decision and every call goes through :mod:`kiosk.service`.
"""
