"""The device's side of the branch hub (docs/hub.md).

- ``heartbeat.py``  this device's state to the hub, every ``hub.heartbeat_s`` and on a change

May import the foundation, :mod:`kiosk.config` and :mod:`kiosk.view`; never the core's
other packages (the core wires the hub in), Kivy or the relay.
"""
