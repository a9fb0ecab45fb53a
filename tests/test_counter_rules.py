"""One counter rule, three copies: `counter_delta`, `CounterTracker.update`'s inlined loop (aggregator)
and the exporter's per-device `MonotonicTotal`.

The tracker inlines `counter_delta` because it runs for every pod of every round, and the exporter
folds per-device counters into monotonic totals by the same rule; the same cases drive all three,
so the copies cannot drift. Mutation testing found the gap this closes: `value >= before` turned
into `value > before` in the tracker alone (an unchanged counter read as a reset, so an idle pod's
lifetime bytes reported as moved in the last 5 s) passed the whole suite.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import pytest

from aggregator.rates import COUNTERS, CounterTracker, counter_delta
from exporter.counters import MonotonicTotal, cpu_rate

T0 = 1_000.0  # every interval below is exact in binary, so T0 + s - T0 == s


class Case(NamedTuple):
    previous: float
    now: float
    seconds: float
    expected: tuple[float, float] | None  # (delta, per-second rate), None: no rate this interval


CASES = {
    "rising": Case(100.0, 160.0, 5.0, (60.0, 12.0)),
    "unchanged counter moved nothing": Case(500.0, 500.0, 5.0, (0.0, 0.0)),
    "unchanged zero counter": Case(0.0, 0.0, 5.0, (0.0, 0.0)),
    "drop is a reset: the new value counts from zero": Case(1_000.0, 30.0, 5.0, (30.0, 6.0)),
    "reset to exactly zero": Case(1_000.0, 0.0, 5.0, (0.0, 0.0)),
    "one below the previous is still a reset": Case(1_000.0, 999.0, 5.0, (999.0, 199.8)),
    "one above the previous is a delta of one": Case(1_000.0, 1_001.0, 5.0, (1.0, 0.2)),
    "fractional CPU seconds": Case(12.5, 13.25, 0.5, (0.75, 1.5)),
    "sub-second interval": Case(100.0, 150.0, 0.25, (50.0, 200.0)),
    "exactly one second": Case(100.0, 150.0, 1.0, (50.0, 50.0)),
    "a missed scrape makes the interval longer": Case(100.0, 400.0, 15.0, (300.0, 20.0)),
    "counter beyond 2**53 bytes": Case(2.0**60, 2.0**60 + 2.0**20, 4.0, (2.0**20, 2.0**18)),
    "time did not advance": Case(100.0, 160.0, 0.0, None),
    "clock went back": Case(100.0, 160.0, -5.0, None),
}


def via_counter_delta(case: Case, name: str) -> tuple[float, float] | None:
    d = counter_delta(case.previous, case.now, seconds=case.seconds)
    return None if d is None else (d.delta, d.rate)


def via_tracker(case: Case, name: str) -> tuple[float, float] | None:
    t = CounterTracker()
    assert t.update({name: case.previous}, T0) == ({}, {}, None)  # the first reading has no rate
    deltas, rates, longest = t.update({name: case.now}, T0 + case.seconds)
    if case.expected is None:
        assert (deltas, rates, longest) == ({}, {}, None)
        return None
    assert set(deltas) == set(rates) == {name}
    assert longest == case.seconds
    return deltas[name], rates[name]


def via_monotonic_total(case: Case, name: str) -> tuple[float, float] | None:
    """The exporter's copy has no clock (the sampler's interval is the scrape's): the delta is what the
    total grew by; both halves of a device's pair follow the rule on their own."""
    m = MonotonicTotal()
    first = m.update({name: (case.previous, case.now)})
    assert first == (case.previous, case.now)  # the first reading starts at the kernel's figure
    m.update({name: (case.previous, case.now)})  # unchanged: the total stays
    assert m.total == first
    after = m.update({name: (case.now, case.previous)})
    grown = (after[0] - first[0], after[1] - first[1])
    back = case.previous - case.now if case.previous >= case.now else case.previous  # the mirror case
    assert grown[1] == back
    return grown[0], grown[0] / case.seconds


RULES = {"counter_delta": via_counter_delta, "tracker": via_tracker, "monotonic_total": via_monotonic_total}
PARAMS = [
    pytest.param(rule, case, id=f"{rule_id}-{case_id}")
    for rule_id, rule in RULES.items()
    for case_id, case in CASES.items()
    if rule is not via_monotonic_total or case.seconds > 0  # time rules are the aggregator's alone
]


@pytest.mark.parametrize(("rule", "case"), PARAMS)
def test_every_copy_of_the_counter_rule_agrees(
    rule: Callable[[Case, str], tuple[float, float] | None], case: Case
) -> None:
    for name in COUNTERS:  # each counter (device) is kept apart; every one follows the rule
        assert rule(case, name) == case.expected, name


def test_monotonic_total_keeps_what_a_device_that_left_contributed() -> None:
    m = MonotonicTotal()
    assert m.update({"sda": (100, 10), "sdb": (50, 5)}) == (150, 15)
    assert m.update({"sda": (100, 10), "sdb": (80, 9)}) == (180, 19)
    assert m.update({"sda": (130, 10)}) == (210, 19)  # sdb detached: its bytes stay counted
    assert m.update({"sda": (130, 10), "sdb": (7, 1)}) == (217, 20)  # back, counting from 0 again
    assert m.update({}) == (217, 20)
    assert m.total == (217, 20)


def test_counter_delta_keeps_the_interval() -> None:
    d = counter_delta(10.0, 25.0, seconds=3.0)
    assert d is not None and (d.delta, d.seconds, d.rate) == (15.0, 3.0, 5.0)


def test_tracker_counters_with_different_intervals_report_the_longest() -> None:
    t = CounterTracker()
    t.update({"disk_read_bytes_total": 0.0}, 0.0)
    t.update({"cpu_seconds_total": 0.0}, 10.0)  # disk missing here: its interval keeps growing
    deltas, rates, longest = t.update({"cpu_seconds_total": 5.0, "disk_read_bytes_total": 40.0}, 20.0)
    assert deltas == {"cpu_seconds_total": 5.0, "disk_read_bytes_total": 40.0}
    assert rates == {"cpu_seconds_total": 0.5, "disk_read_bytes_total": 2.0}
    assert longest == 20.0


def test_tracker_a_counter_whose_time_did_not_advance_does_not_hide_the_others() -> None:
    t = CounterTracker()
    t.update({"cpu_seconds_total": 1.0, "disk_read_bytes_total": 100.0}, 10.0)
    t.update({"cpu_seconds_total": 2.0}, 20.0)  # disk missing: its previous reading stays at t=10
    # Same timestamp again (an unchanged snapshot): CPU has no interval, disk's spans 10 s.
    deltas, rates, longest = t.update({"cpu_seconds_total": 2.0, "disk_read_bytes_total": 300.0}, 20.0)
    assert deltas == {"disk_read_bytes_total": 200.0}
    assert rates == {"disk_read_bytes_total": 20.0}
    assert longest == 10.0


def test_tracker_ignores_values_that_are_not_counters() -> None:
    t = CounterTracker()
    t.update({"memory_working_set_bytes": 100.0, "cpu_seconds_total": 1.0}, 0.0)
    deltas, rates, _ = t.update({"memory_working_set_bytes": 50.0, "cpu_seconds_total": 3.0}, 2.0)
    assert deltas == {"cpu_seconds_total": 2.0} and rates == {"cpu_seconds_total": 1.0}
    assert set(t.export()) == {"cpu_seconds_total"}


def test_tracker_export_and_restore_resume_across_a_restart() -> None:
    before = CounterTracker()
    before.update({"cpu_seconds_total": 10.0, "network_receive_bytes_total": 1_000.0}, 100.0)
    saved = before.export()
    assert saved == {"cpu_seconds_total": (10.0, 100.0), "network_receive_bytes_total": (1_000.0, 100.0)}
    saved_copy = dict(saved)
    before.update({"cpu_seconds_total": 11.0}, 105.0)
    assert saved == saved_copy  # export is a copy, not a view of the live readings

    after = CounterTracker()
    after.restore(saved)
    saved["cpu_seconds_total"] = (0.0, 0.0)  # restore took a copy too
    deltas, rates, longest = after.update(
        {"cpu_seconds_total": 40.0, "network_receive_bytes_total": 4_000.0}, 130.0
    )
    # The first rate after the restart spans the gap since the saved reading.
    assert deltas == {"cpu_seconds_total": 30.0, "network_receive_bytes_total": 3_000.0}
    assert rates == {"cpu_seconds_total": 1.0, "network_receive_bytes_total": 100.0}
    assert longest == 30.0


def test_tracker_reset_forgets_history() -> None:
    t = CounterTracker()
    t.update({"cpu_seconds_total": 10.0}, 0.0)
    t.reset()
    assert t.export() == {}
    assert t.update({"cpu_seconds_total": 20.0}, 5.0) == ({}, {}, None)  # first reading again


@pytest.mark.parametrize(
    ("previous", "seconds", "stamp", "expected"),
    [
        (None, 5.0, 10.0, None),  # first reading: no interval yet
        ((2.0, 8.0), 5.0, 10.0, 1.5),  # 3 cpu-seconds over 2 s
        ((2.0, 9.5), 3.0, 10.0, 2.0),  # an interval under a second counts too
        ((5.0, 8.0), 5.0, 10.0, 0.0),  # idle: zero, not missing
        ((6.0, 8.0), 5.0, 10.0, None),  # counter went back (re-created cgroup): never negative
        ((2.0, 10.0), 5.0, 10.0, None),  # no time passed
        ((2.0, 11.0), 5.0, 10.0, None),  # clock went back
    ],
)
def test_cpu_rate_of_pods_and_containers(
    previous: tuple[float, float] | None, seconds: float, stamp: float, expected: float | None
) -> None:
    """The one rule the sampler (pods) and the container tracker use for cores."""
    assert cpu_rate(previous, seconds, stamp) == expected
