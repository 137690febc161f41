"""The relay's rate-limited refusal log (kiosk/relay/ratelog.py): the first refusal of a
kind is logged, then one line per period with the count of those not logged, and every
refusal is counted in a real Prometheus counter."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from kiosk.relay.ratelog import RateLimitedLog


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "test.ratelog"]


def test_the_first_is_logged_then_one_line_a_period_with_the_count(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    registry = CollectorRegistry()
    counter = Counter("relay_refused", "refused", ["kind"], registry=registry)
    rl = RateLimitedLog(logging.getLogger("test.ratelog"), 60, counter=counter, clock=clock)
    caplog.set_level(logging.INFO, "test.ratelog")
    assert rl.warning("bad_signature", "refused %r", "x")
    for _ in range(500):
        clock.t += 0.1  # 50 s of a flood
        assert not rl.warning("bad_signature", "refused %r", "y")
    assert rl.warning("missing_signature", "other kind")  # each kind has its own period
    assert lines(caplog) == ["refused 'x'", "other kind"]
    assert rl.pending("bad_signature") == 500
    clock.t += 10.5  # the period is over
    assert rl.warning("bad_signature", "refused %r", "z")
    got = lines(caplog)
    assert len(got) == 3 and got[2].startswith("refused 'z'; 500 more refused since ")
    assert rl.pending("bad_signature") == 0
    text = generate_latest(registry).decode()
    assert 'relay_refused_total{kind="bad_signature"} 502.0' in text
    assert 'relay_refused_total{kind="missing_signature"} 1.0' in text


def test_label_values_before_the_kind_and_a_flush_after_silence(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    registry = CollectorRegistry()
    counter = Counter("hooks", "webhooks", ["result", "reason"], registry=registry)
    rl = RateLimitedLog(logging.getLogger("test.ratelog"), 60, counter=counter,
                        labels=("rejected",), clock=clock)
    caplog.set_level(logging.INFO, "test.ratelog")
    for _ in range(3):
        rl.warning("replayed", "replay")
    rl.flush()  # within the period: nothing to say yet
    assert lines(caplog) == ["replay"]
    clock.t += 61
    rl.flush()
    rl.flush()  # said once
    assert lines(caplog)[1:] == [lines(caplog)[1]]
    assert lines(caplog)[1].startswith("2 more refused (replayed) since ")
    assert 'hooks_total{reason="replayed",result="rejected"} 3.0' in \
        generate_latest(registry).decode()


def test_a_period_must_be_positive() -> None:
    with pytest.raises(ValueError, match="period_s"):
        RateLimitedLog(logging.getLogger("test.ratelog"), 0)


def test_what_is_not_a_refusal_is_not_called_one(caplog: pytest.LogCaptureFixture) -> None:
    """The relay's unhandled request errors go through the same log: the quiet ones are
    "more like it", not "more refused" (they were answered 500, or cut)."""
    clock = Clock()
    rl = RateLimitedLog(logging.getLogger("test.ratelog"), 60, clock=clock)
    caplog.set_level(logging.INFO, "test.ratelog")
    for _ in range(4):
        rl.log(logging.ERROR, "app_error", "a request failed", more="like it")
    clock.t += 61
    rl.log(logging.ERROR, "app_error", "a request failed", more="like it")
    for _ in range(2):
        rl.log(logging.ERROR, "app_error", "a request failed", more="like it")
    clock.t += 61
    rl.flush()
    got = lines(caplog)
    assert got[1].startswith("a request failed; 3 more like it since "), got
    assert got[2].startswith("2 more like it (app_error) since "), got
    assert not any("refused" in line for line in got)
    assert [r.levelno for r in caplog.records] == [logging.ERROR] * 3  # the summary too
