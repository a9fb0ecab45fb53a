"""Store memory per stored sample, measured (tracemalloc, and RSS for the record), with a bound.

The suite runs a short form (20 nodes x 30 pods x 200 points). The full benchmark shape
(1000 nodes x 30 pods x 1000 points, target RSS <= 2 GB) runs with K8SMON_STORE_BENCH=1:
    K8SMON_STORE_BENCH=1 .venv/bin/python -m pytest -q -s tests/test_store_memory.py
Two rounds go through the real ingest path (entities, caches, rates); the rest of the history is
appended to every series through its public `append` with plausible, varying values (a whole
number of bytes per interval, a fractional CPU rate), so the figure is what the layout really
costs, allocator slack included, not a length times an item size. A point holds six values, so
"per sample" here is per stored point of one series.
"""

from __future__ import annotations

import gc
import itertools
import os
import random
import tracemalloc
from pathlib import Path

import psutil
import pytest

from aggregator.model import NodeReading, PodReading, RoundResult
from aggregator.store import series as series_module
from aggregator.store.store import Store
from tests.test_store import Clock

FULL = os.environ.get("K8SMON_STORE_BENCH") == "1"
# Measured 38.3 B per point in this short form (chunked series, store/series.py: at 200 points most
# of a series is still its open chunk, plain float64, 56 B a point; closed chunks ~10 B a point).
# The layout before chunks measured 36.9-37.1 B; a deque of dicts several hundred.
BOUND_BYTES_PER_POINT = 40
STORE_CODE = str(Path(__file__).resolve().parents[1] / "aggregator" / "store" / "*")


def _values(i: int, p: int) -> dict[str, float]:
    return {
        "cpu_usage_cores": 0.01 * p,
        "cpu_seconds_total": 10.0 * i + p,
        "memory_working_set_bytes": 1e6 * p,
        "memory_usage_bytes": 2e6 * p,
        "disk_read_bytes_total": 4096.0 * i,
        "disk_written_bytes_total": 512.0 * i,
        "network_receive_bytes_total": 1e4 * i,
        "network_transmit_bytes_total": 5e3 * i,
        "host_network": 0.0,
        "cpu_request_cores": 0.1,
        "cpu_limit_cores": 0.5,
        "memory_request_bytes": 1e8,
        "memory_limit_bytes": 2e8,
    }


def _store(nodes: int, pods: int, points: int) -> Store:
    clock = Clock()
    store = Store(clock=clock, retention_points=points)
    for i in range(2):
        for n in range(nodes):
            store.ingest(
                NodeReading(
                    f"node-{n}",
                    1000.0 + 5 * i,
                    {"cpu_usage_cores": 1.0, "cpu_seconds_total": 100.0 * i, "memory_used_bytes": 3e9},
                    tuple(
                        PodReading(f"ns-{p % 10}", f"pod-{n}-{p}", f"uid-{n}-{p}", "Deployment",
                                   f"d{p % 5}", f"d{p % 5}", _values(i, p))
                        for p in range(pods)
                    ),
                )
            )
        store.end_round(RoundResult(i, 1000.0 + 5 * i, 1.0, ()))
    return store


def test_store_memory_per_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each series' first chunk closes at an offset drawn from a process-wide counter, so the series
    # made by earlier tests moved this figure by 2 B (38.3-40.5): start the counter where a fresh
    # process does.
    monkeypatch.setattr(series_module, "_stagger", itertools.count())
    nodes, pods, points = (1000, 30, 1000) if FULL else (20, 30, 200)
    proc = psutil.Process()
    store = _store(nodes, pods, points)
    everything = [n.series for n in store._nodes.values()] + [p.series for p in store._pods.values()]
    everything += [g.series for g in store._groups.values()]
    rng = random.Random(10)
    rows = [
        (rng.uniform(1, 900), float(rng.randrange(1 << 20, 1 << 31)), float(rng.randrange(0, 1 << 22)),
         float(rng.randrange(0, 1 << 20)), float(rng.randrange(0, 1 << 18)), float(rng.randrange(0, 1 << 18)))
        for _ in range(97)
    ]
    gc.collect()
    rss0 = proc.memory_info().rss
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]  # (0: nothing traced before start)
    added = 0
    for k, series in enumerate(everything):
        for j in range(points - len(series)):
            series.append(2000.0 + 5 * j, rows[(k + j) % len(rows)])
            added += 1
    gc.collect()
    # Only what the store's own code allocated and still holds: tracemalloc sees every thread (in
    # the full suite, threads left by earlier tests added ~0.4 B a point in this window).
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, STORE_CODE)])
    traced = sum(stat.size for stat in snapshot.statistics("filename"))
    everywhere = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    rss = proc.memory_info().rss - rss0
    stored = sum(len(s) for s in everything)
    per_point = traced / added
    print(
        f"\nstore {nodes} nodes x {pods} pods x {points} points: {stored} points, {len(everything)} series; "
        f"history added {added} points: {per_point:.1f} B/point (tracemalloc, store code; "
        f"{everywhere / added:.1f} B with every thread's), "
        f"RSS +{rss / 2**20:.0f} MiB = {rss / added:.1f} B/point"
    )
    assert stored == len(everything) * points
    assert added > 0.9 * stored
    assert per_point <= BOUND_BYTES_PER_POINT, f"{per_point:.1f} B per stored point"
