"""A mock of the Videsk QMS API that behaves like the real one, quirks included (for tests,
demos and integrators): ``kiosk mock-api``.

- ``app.py``       the routes (Starlette), the provider's statuses and bodies
- ``scenario.py``  the branch: queues, agents, forms, faults, from a YAML scenario
- ``hostile.py``   answers a bad day brings: trickled, malformed, oversized
- ``webhooks.py``  the QMS webhook a mock agent's call sends, as the provider renders it
- ``server.py``    uvicorn in a thread or a process of its own

A service of its own: of ``kiosk`` it may import only the foundation.
"""

from __future__ import annotations

from kiosk.mock.app import create_app
from kiosk.mock.scenario import (
           MockState,
           Scenario,
           ScriptedFault,
           default_scenario_path,
           load_scenario,
)
from kiosk.mock.server import MockServer, mock_process

__all__ = [
           "MockServer",
           "MockState",
           "Scenario",
           "ScriptedFault",
           "create_app",
           "default_scenario_path",
           "load_scenario",
           "mock_process",
]
