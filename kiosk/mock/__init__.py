"""A mock of the Videsk QMS API that behaves like the real one (see ``kiosk.mock.app``)."""

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
