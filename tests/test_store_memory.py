"""Store memory: RSS and buffer bytes per stored sample for nodes x pods x points.

The suite runs a short form (100 nodes x 30 pods x 200 points). The full benchmark shape
(1000 nodes x 30 pods x 1000 points, target RSS <= 2 GB) runs with K8SMON_STORE_BENCH=1:
    K8SMON_STORE_BENCH=1 .venv/bin/python -m pytest -q -s tests/test_store_memory.py
Two rounds go through the real ingest path (entities, caches, rates); the remaining points are
appended to the same ring buffers directly, because a thousand real rounds of 30k pods would take
about 20 minutes and the buffers are what grows with history.
"""

from __future__ import annotations

import gc
import os

import psutil

from aggregator.model import NodeReading, PodReading, RoundResult
from aggregator.store import Store
from tests.test_store import Clock

FULL = os.environ.get("K8SMON_STORE_BENCH") == "1"


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


def test_store_memory_per_sample() -> None:
    nodes, pods, points = (1000, 30, 1000) if FULL else (100, 30, 200)
    proc = psutil.Process()
    gc.collect()
    rss0 = proc.memory_info().rss
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
                        PodReading(
                            f"ns-{p % 10}",
                            f"pod-{n}-{p}",
                            f"uid-{n}-{p}",
                            "Deployment",
                            f"d{p % 5}",
                            f"d{p % 5}",
                            _values(i, p),
                        )
                        for p in range(pods)
                    ),
                )
            )
        store.end_round(RoundResult(i, 1000.0 + 5 * i, 1.0, ()))
    row = (250.0, 1e8, 4096.0, 512.0, 1e4, 5e3)
    everything = [n.series for n in store._nodes.values()] + [p.series for p in store._pods.values()]
    everything += [g.series for g in store._groups.values()]
    for series in everything:
        for k in range(points - len(series)):
            series.append(2000.0 + 5 * k, row)
    gc.collect()
    rss = proc.memory_info().rss - rss0
    nbytes, stored = store.buffer_bytes()
    print(
        f"\nstore {nodes} nodes x {pods} pods x {points} points: {stored} samples, "
        f"buffers {nbytes / stored:.1f} B/sample, RSS +{rss / 2**20:.0f} MiB = {rss / stored:.1f} B/sample"
    )
    assert stored == len(everything) * points
    assert nbytes / stored < 40
