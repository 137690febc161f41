"""The relay's garbage collection (kiosk.relay.collector): long-lived objects frozen out of
the collector's way, reference cycles among them freed by the full pass, the figures in
``/metrics``; only ``kiosk relay`` runs it (an embedded relay leaves its host's collection
alone). What it is for, the pauses with 10,000 phone pages open, ``bench_phone.py`` measures."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from kiosk.relay import RelayServer
from kiosk.relay.collector import Collector
from kiosk.relay.server import relay_process

from .relay_helpers import metric, settings
from .test_hub_numbers import hub_config


class Node:
    other: Node


async def test_a_cycle_frozen_waits_for_the_full_pass_and_is_freed_there() -> None:
    registry = CollectorRegistry()
    collector = Collector(freeze_s=3600, full_pass_s=3600, registry=registry)
    collector.start()
    try:
        assert gc.get_freeze_count() > 0  # what start-up made: frozen at once
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        collector.step()  # no full pass due: a freeze
        del a, b
        gc.collect()
        assert gone() is not None  # a cycle frozen: out of the collector's way
        assert collector.full_pass() >= 2
        assert gone() is None
        assert registry.get_sample_value("relay_gc_full_passes_total") == 1
        freed = registry.get_sample_value("relay_gc_full_pass_freed_objects")
        assert freed is not None and freed >= 2
        frozen = registry.get_sample_value("relay_gc_frozen_objects")
        assert frozen == gc.get_freeze_count() > 0
        collector.full_pass_s = 0  # due: the next turn is a full pass
        collector.step()
        assert registry.get_sample_value("relay_gc_full_passes_total") == 2
    finally:
        await collector.stop()
    assert gc.get_freeze_count() == 0  # stopped: every object back to the collector


def test_an_embedded_relay_leaves_its_hosts_collection_alone(tmp_path: Path) -> None:
    with RelayServer(settings(tmp_path)) as relay:
        assert metric(relay.url, "relay_gc_frozen_objects") == 0
        assert gc.get_freeze_count() == 0


@pytest.mark.parametrize("freeze_s", [0.2, 0])
def test_kiosk_relay_freezes_unless_told_not_to(tmp_path: Path, freeze_s: float) -> None:
    config = hub_config(tmp_path)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["relay"]["gc_freeze_s"] = freeze_s
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    with relay_process(config) as proc:
        frozen = metric(proc.url, "relay_gc_frozen_objects")
        if freeze_s:
            assert frozen > 10_000  # the modules and what start-up made, at least
        else:
            assert frozen == 0
            assert metric(proc.url, "relay_gc_full_passes_total") == 0
