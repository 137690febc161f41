"""The fleet's alerting rules and dashboard (packaging/prometheus, packaging/grafana):
checked with Prometheus's own promtool (Debian's `prometheus` package, installed by the
test command), each alert proven to fire by `promtool test rules`, and every series they
name one the hub exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import REPO

RULES = REPO / "packaging" / "prometheus" / "kiosk-alerts.yml"
RULE_TESTS = REPO / "packaging" / "prometheus" / "kiosk-alerts.test.yml"
DASHBOARD = REPO / "packaging" / "grafana" / "kiosk-fleet.json"
FLEET_SERIES = {"kiosk_device_up", "kiosk_device_in_service", "kiosk_device_fault",
                "kiosk_printer_state", "kiosk_device_last_seen_seconds", "kiosk_tickets_today"}
"""The per-device series the hub's /metrics exports (kiosk/relay)."""
ALERTS = {"KioskDeviceOffline", "KioskOutOfService", "KioskPaperOut", "KioskPaperLow",
          "KioskClockFault", "KioskNumbersOffline"}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool is missing: `packaging/dev.sh test` installs Debian's prometheus"
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_promtool_checks_the_rules() -> None:
    p = promtool("check", "rules", RULES.name, cwd=RULES.parent)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"{len(ALERTS)} rules found" in p.stdout


def test_promtool_proves_each_alert_fires_when_it_should() -> None:
    p = promtool("test", "rules", RULE_TESTS.name, cwd=RULES.parent)
    assert p.returncode == 0, p.stdout + p.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text(encoding="utf-8")))
    assert tested == ALERTS


def test_the_rule_tests_bite(tmp_path: Path) -> None:
    """The same tests against rules that wait too long for an offline device fail."""
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    text = RULES.read_text(encoding="utf-8")
    broken = text.replace("expr: kiosk_device_up == 0\n        for: 2m",
                          "expr: kiosk_device_up == 0\n        for: 10m")
    assert broken != text
    (tmp_path / RULES.name).write_text(broken, encoding="utf-8")
    p = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert p.returncode != 0 and "KioskDeviceOffline" in p.stdout + p.stderr


def test_every_alert_has_a_duration_a_severity_and_names_device_and_branch() -> None:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == ALERTS
    for r in rules:
        assert re.fullmatch(r"\d+[smh]", r["for"]), r["alert"]
        assert r["labels"]["severity"] in ("critical", "warning"), r["alert"]
        for key in ("summary", "description"):
            text = r["annotations"][key]
            assert "$labels.device" in text and "$labels.branch" in text, (r["alert"], key)


def series_in(expr: str) -> set[str]:
    return set(re.findall(r"\b(kiosk_[a-z_]+)", expr))


def test_rules_and_dashboard_name_only_series_the_hub_exports() -> None:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"][0]["rules"]
    named = set().union(*(series_in(r["expr"]) for r in rules))
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    named |= set().union(*(series_in(e) for e in exprs))
    named |= series_in(dash["templating"]["list"][0]["query"]["query"])
    assert named and named <= FLEET_SERIES, named - FLEET_SERIES


def test_the_dashboard_is_one_grafana_can_import() -> None:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dash["uid"] == "kiosk-fleet" and dash["schemaVersion"] >= 36
    assert dash["__inputs"][0]["pluginId"] == "prometheus"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert {"h", "w", "x", "y"} <= p["gridPos"].keys()
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        assert p["targets"] and all(t["refId"] for t in p["targets"])


@pytest.mark.parametrize("path", [RULES, RULE_TESTS])
def test_the_files_are_valid_yaml(path: Path) -> None:
    assert yaml.safe_load(path.read_text(encoding="utf-8"))
