"""State-file size and timings at the target scale: 1000 nodes x 30 pods x 1000 points (31M points).

    .venv/bin/python -m bench persistence            # full shape (~2.5 GB RSS, a few minutes)
    K8SMON_PERSIST_NODES=100 .venv/bin/python -m bench persistence   # smaller

Two rounds go through the real ingest path (entities, samples, counter trackers, roll-ups); the
rings are then filled with 1000 points of plausible values (jittered timestamps, noisy CPU, drifting
memory, bursty I/O) taken from a pool of templates, since compressibility depends on the data.
Prints, for zlib on and off: file size, write time, the longest lock hold (one export batch), and
the restore time.
"""

from __future__ import annotations

import gc
import os
import random
import tempfile
import time
from pathlib import Path

from aggregator.model import NodeReading, PodReading, RoundResult
from aggregator.stats import AggregatorStats
from aggregator.store.series import COLUMNS, RingSeries
from aggregator.store.statefile import restore, write_snapshot
from aggregator.store.store import Store

T0 = 1_764_000_000.0
TEMPLATES = 64


def plausible_series(rng: random.Random, points: int) -> RingSeries:
    """A series of plausible points, appended the way the store appends them (same column types); the
    aggregator benchmark pads its histories with these too."""
    series = RingSeries(points, len(COLUMNS))
    memory = rng.uniform(5e7, 2e9)
    for k in range(points):
        memory = max(1e6, memory + rng.gauss(0, 2e6))
        burst = rng.random() < 0.2
        series.append(T0 + 5 * k + rng.uniform(-0.05, 0.05), (
            rng.uniform(1, 500),
            float(int(memory) // 4096 * 4096),
            float(rng.randrange(0, 1 << 20, 4096)) if burst else 0.0,
            float(rng.randrange(0, 1 << 22, 4096)) if burst else 0.0,
            float(rng.randrange(0, 1 << 18)),
            float(rng.randrange(0, 1 << 18)),
        ))
    return series


def build(nodes: int, pods: int, points: int) -> Store:
    """A store with real entities and `points` plausible points in every series."""
    store = Store(retention_points=points, clock=lambda: T0 + 5 * points, interval=5.0)
    for i in range(2):
        for n in range(nodes):
            store.ingest(NodeReading(
                f"node-{n}", T0 + 5 * i,
                {"cpu_usage_cores": 1.0, "cpu_seconds_total": 100.0 * i, "memory_used_bytes": 3e9},
                tuple(
                    PodReading(f"ns-{p % 10}", f"pod-{n}-{p}", f"uid-{n}-{p}", "Deployment", f"d{p % 5}",
                               f"d{p % 5}", {"cpu_seconds_total": 10.0 * i + p,
                                              "memory_working_set_bytes": 1e6 * p,
                                              "network_receive_bytes_total": 1e4 * i})
                    for p in range(pods)
                ),
            ))
        store.end_round(RoundResult(i, T0 + 5 * i, 1.0, ()))
    rng = random.Random(6)
    pool = [plausible_series(rng, points) for _ in range(TEMPLATES)]
    states = list(store._nodes.values()) + list(store._pods.values()) + list(store._groups.values())
    for k, state in enumerate(states):
        ts, columns = pool[k % TEMPLATES].export()
        state.series = RingSeries.restore(points, ts, columns)
    return store


def _timed_batches(store: Store, holds: list[float]):  # type: ignore[no-untyped-def]
    """export_state, timing each batch (the time the Store's lock is held for it)."""
    batches = store.export_state()
    while True:
        t0 = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            return
        holds.append(time.perf_counter() - t0)
        yield batch


def main() -> int:
    nodes = int(os.environ.get("K8SMON_PERSIST_NODES", "1000"))
    pods, points = 30, 1000
    t0 = time.perf_counter()
    store = build(nodes, pods, points)
    nbytes, stored = store.buffer_bytes()
    print(f"store: {nodes} nodes x {pods} pods x {points} points = {stored} points, "
          f"{nbytes / 2**20:.0f} MiB of buffers, built in {time.perf_counter() - t0:.0f} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="k8smon-persist-") as tmp:
        path = Path(tmp) / "state.bin"
        for compress in (False, True):
            holds: list[float] = []
            t0 = time.perf_counter()
            size = write_snapshot(path, _timed_batches(store, holds), compress=compress)
            write = time.perf_counter() - t0
            gc.collect()
            t0 = time.perf_counter()
            fresh = Store(retention_points=points, clock=lambda: T0 + 5 * points, interval=5.0)
            result = restore(fresh, path, stats=AggregatorStats())
            load = time.perf_counter() - t0
            assert result.counts["pod"] == nodes * pods, result
            del fresh
            gc.collect()
            print(f"zlib={'on ' if compress else 'off'}: {size / 2**20:7.0f} MiB "
                  f"({size / stored:.1f} B/point), "
                  f"write {write:5.1f} s, longest lock hold {max(holds) * 1000:.0f} ms over {len(holds)} "
                  f"batches, restore {load:5.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
