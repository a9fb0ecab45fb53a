"""The benchmark's CPU placement (bench/placement.py) and its fake exporters' bodies rendered ahead."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import placement
from tests.aggregator_fakes import FakeExporters, FakeNode

REPO = Path(__file__).resolve().parents[1]
CPUS = sorted(os.sched_getaffinity(0))
AFFINITY = "import os; print(','.join(map(str, sorted(os.sched_getaffinity(0)))))"
two_cpus = pytest.mark.skipif(len(CPUS) < 2, reason="pinning needs 2 CPUs")


def test_no_pinning_when_asked_for_none() -> None:
    plan = placement.plan(False)
    assert plan.aggregator == frozenset() and plan.others == frozenset(CPUS)
    assert placement.aggregator_env(plan) == {}


@two_cpus
def test_the_aggregator_gets_the_last_cpu_and_everything_else_the_rest() -> None:
    plan = placement.plan(True)
    assert plan.aggregator == {CPUS[-1]} and plan.others == set(CPUS[:-1])
    assert placement.aggregator_env(plan) == {placement.AGGREGATOR_CPUS_ENV: str(CPUS[-1])}


@two_cpus
def test_what_the_driver_starts_while_placed_inherits_the_others_cpus_and_it_gets_its_own_back() -> None:
    plan = placement.plan(True)
    before = os.sched_getaffinity(0)
    with placement.driver_on(plan):
        child = subprocess.run([sys.executable, "-c", AFFINITY], capture_output=True, text=True, check=True)
        assert os.sched_getaffinity(0) == plan.others
    assert child.stdout.strip() == ",".join(map(str, sorted(plan.others)))
    assert os.sched_getaffinity(0) == before


@two_cpus
def test_the_aggregator_child_pins_itself_from_its_environment() -> None:
    code = f"from bench.placement import pin_from_env; pin_from_env(); {AFFINITY}"
    env = {**os.environ, "PYTHONPATH": str(REPO), placement.AGGREGATOR_CPUS_ENV: str(CPUS[-1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == str(CPUS[-1])
    env.pop(placement.AGGREGATOR_CPUS_ENV)  # not given: left where it was
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == ",".join(map(str, CPUS))


def test_the_figure_says_whether_the_aggregator_shares_a_cpu() -> None:
    alone = placement.describe({1}, {0})
    assert alone.startswith("aggregator alone on CPU 1; fakes, API clients and the driver on CPU 0"), alone
    assert placement.describe({0, 1}, {0, 1}).startswith("not pinned")


def test_fake_exporters_render_the_next_snapshot_before_it_is_due() -> None:
    """Requests at a snapshot change are answered with bodies rendered ahead, not rendered then."""
    node = FakeNode("127.0.0.1", "node-a", pods=2)
    with FakeExporters([node], interval=1.0, prerender=True) as fakes:
        deadline = time.monotonic() + 10
        while fakes._seq() + 1 not in node._cache and time.monotonic() < deadline:
            time.sleep(0.02)
        seq = fakes._seq()
        ahead = node._cache.get(seq + 1)
        assert ahead is not None, f"snapshot {seq + 1} not rendered ahead: {sorted(node._cache)}"
        while fakes._seq() == seq and time.monotonic() < deadline:
            time.sleep(0.02)
        assert fakes._seq() == seq + 1
        assert fakes.body(node) is ahead  # served as rendered ahead
        plain, _packed = ahead
        assert node._template is not None and plain == node._template.render(seq + 1)
        assert min(node._cache) >= seq + 1  # older snapshots are let go
