"""Issue 15 target 4: bytes per stored value of the history (timestamps included), append cost, window reads.

    .venv/bin/python -m bench.history_bench                       # 6 nodes x 30 pods x 5000 points
    .venv/bin/python -m bench.history_bench --nodes 1000          # the full target shape (hours here)

`make bench` prints the same figures as target 4 of bench/aggregator_bench.py (2 nodes: the cost is
per series, so a slice stands for the whole shape).
    .venv/bin/python -m bench.history_bench --data regular        # the aggregator bench fakes' values

`measure(nodes, pods, points)` (what `make bench` calls) fills one series per pod and per node with
`points` points, the way the store appends them (one point per series per round, on one round
clock), and returns a dict:

    bytes_per_value          tracemalloc: bytes still allocated after the fill / (points x 6 values);
                             timestamps, chunk bookkeeping, open chunks and allocator slack included
    rss_bytes_per_value      the process's RSS growth over the same fill, per value (for the record)
    append_ms_per_round      CPU ms for one round of appends to every pod series (30k at 1000 x 30),
                             chunk closes included; measured over `rounds` steady-state rounds, scaled
                             to nodes x pods series
    window_p50_ms/p99_ms     `points(since=newest - 300, previous=True)` (what the API's 300-s
                             timeseries asks) on full series, one per sampled series
    fits_2gb                 the 1000 x 30 x 5000 history's projected bytes <= 2 GiB

Values (`--data realistic`, the default; `regular` is tests/aggregator_fakes.py's): the round clock jitters
by up to 5 ms; CPU is the aggregator's counter rate, millicores = (usage_usec / 1e6 delta) / (the
exporter's sample time delta, jittered by up to 5 ms) x 1000, with the true rate a random walk between 1
millicore and 4 cores (the series stores it rounded to whole nanocores: see docs/metrics.md); memory
is a working set in pages that moves by a few dozen pages most rounds and sometimes by megabytes; disk
I/O per interval is mostly 0 with 4 KiB-multiple bursts; network I/O per interval is 0 or a burst of
any byte count. The values come from a pool of 64 generated series (compression is per series, so
sharing values between series changes nothing).
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import psutil

from aggregator.store.series import COLUMNS, ChunkedSeries
from aggregator.store.views import nanocores

T0 = 1_764_000_000.0
INTERVAL = 5.0
POOL = 64
TARGET_BYTES = 2 * 2**30
Row = tuple[float | None, ...]


def realistic_rows(rng: random.Random, points: int, *, whole_nanocores: bool = True) -> list[Row]:
    """One pod's plausible points (see the module docstring); CPU at full precision if not rounded."""
    rows: list[Row] = []
    usec = rng.randrange(10**12)
    sample_time = T0 + rng.uniform(0, INTERVAL)
    rate = math.exp(rng.uniform(math.log(0.001), math.log(4.0)))  # cores
    memory = rng.randrange(5_000, 500_000) * 4096
    for _ in range(points):
        elapsed = INTERVAL + rng.uniform(-0.005, 0.005)
        rate = min(4.0, max(0.001, rate * math.exp(rng.gauss(0, 0.15))))
        new_usec = usec + int(rate * elapsed * 1e6)
        cpu = (new_usec / 1e6 - usec / 1e6) / ((sample_time + elapsed) - sample_time) * 1000.0
        usec, sample_time = new_usec, sample_time + elapsed
        if rng.random() < 0.6:
            memory += 4096 * round(rng.gauss(0, 64))
        if rng.random() < 0.01:
            memory += 4096 * round(rng.gauss(0, 5000))
        memory = max(4096 * 1000, memory)
        rows.append((
            nanocores(cpu) if whole_nanocores else cpu,
            float(memory),
            float(rng.randrange(4096, 1 << 20, 4096)) if rng.random() < 0.03 else 0.0,
            float(rng.randrange(4096, 4 << 20, 4096)) if rng.random() < 0.15 else 0.0,
            float(rng.randrange(60, 1 << 16)) if rng.random() < 0.3 else 0.0,
            float(rng.randrange(60, 1 << 16)) if rng.random() < 0.3 else 0.0,
        ))
    return rows


def regular_rows(rng: random.Random, points: int) -> list[Row]:
    """The aggregator bench fakes' values (tests/aggregator_fakes.py): rates of linear counters."""
    i = rng.randrange(30)
    return [((i + 1) * 0.05 / INTERVAL * 1000.0 * INTERVAL, 1e8 + 1e6 * i, 0.0, 0.0, 1000.0 * (s % 3), 500.0)
            for s in range(points)]


DATA: dict[str, Callable[[random.Random, int], list[Row]]] = {
    "realistic": realistic_rows,
    "realistic-full-cpu": lambda rng, n: realistic_rows(rng, n, whole_nanocores=False),  # before the rounding
    "regular": regular_rows,
}


def round_clock(rng: random.Random, points: int) -> list[float]:
    """The aggregator's round starts: every interval, each a few ms late."""
    return [T0 + INTERVAL * k + rng.uniform(0, 0.005) for k in range(points)]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(
    nodes: int, pods: int, points: int, *, data: str = "realistic", rounds: int = 240, reads: int = 300,
    seed: int = 15, series_class: Callable[..., Any] = ChunkedSeries,
) -> dict[str, Any]:
    """Fill nodes x (pods + 1) series with `points` points each and measure them (see the module doc)."""
    rng = random.Random(seed)
    make = DATA[data]
    pool = [make(rng, points + rounds) for _ in range(POOL)]
    clock = round_clock(rng, points + rounds)
    count = nodes * (pods + 1)
    gc.collect()
    rss0 = psutil.Process().memory_info().rss
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    everything = [series_class(points) for _ in range(count)]
    for k in range(points):  # round by round, as the store appends
        at = clock[k]
        for s, series in enumerate(everything):
            series.append(at, pool[s % POOL][k])
    fill_s = time.perf_counter() - t0
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    rss = psutil.Process().memory_info().rss - rss0
    values = count * points * len(COLUMNS)
    pod_series = everything[:nodes * pods]
    cpu0 = time.process_time()
    for k in range(points, points + rounds):
        at = clock[k]
        for s, series in enumerate(pod_series):
            series.append(at, pool[s % POOL][k])
    append_s = (time.process_time() - cpu0) / rounds
    sample = random.Random(seed).sample(everything, min(reads, count))
    times = []
    for series in sample:
        newest = series.newest_timestamp()
        t = time.perf_counter()
        window = series.points(since=newest - 300, previous=True)
        times.append(time.perf_counter() - t)
        assert 60 <= len(window) <= 62, len(window)
    per_value = traced / values
    return {
        "series": count,
        "points": points,
        "data": data,
        "layout": series_class.__name__,
        "fill_seconds": round(fill_s, 1),
        "bytes_per_value": round(per_value, 3),
        "bytes_per_point": round(per_value * len(COLUMNS), 2),
        "rss_bytes_per_value": round(rss / values, 3),
        "append_ms_per_round": round(append_s * 1e3 * (1000 * 30) / len(pod_series), 1),
        "append_us_per_point": round(append_s * 1e6 / len(pod_series), 2),
        "window_p50_ms": round(statistics.median(times) * 1e3, 3),
        "window_p99_ms": round(_percentile(times, 0.99) * 1e3, 3),
        "projected_1000x30x5000_gib": round(per_value * 1000 * 31 * 5000 * len(COLUMNS) / 2**30, 2),
        "fits_2gb": per_value * 1000 * 31 * 5000 * len(COLUMNS) <= TARGET_BYTES,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=6)
    parser.add_argument("--pods", type=int, default=30)
    parser.add_argument("--points", type=int, default=5000)
    parser.add_argument("--data", choices=sorted(DATA), default="realistic")
    args = parser.parse_args(argv)
    result = measure(args.nodes, args.pods, args.points, data=args.data)
    print(f"history: {result['series']} series x {args.points} points ({args.data} values, "
          f"{result['layout']}), load {' '.join(f'{x:.1f}' for x in psutil.getloadavg())}")
    print(f"  stored: {result['bytes_per_value']:.2f} B per value (tracemalloc, timestamps included; "
          f"{result['bytes_per_point']:.1f} B per point of {len(COLUMNS)} values), "
          f"RSS {result['rss_bytes_per_value']:.2f} B per value; target <= 2 B: "
          f"{'met' if result['bytes_per_value'] <= 2 else 'MISSED'}")
    print(f"  1000 nodes x 30 pods x 5000 points: {result['projected_1000x30x5000_gib']:.2f} GiB "
          f"({'fits' if result['fits_2gb'] else 'does NOT fit'} in 2 GiB)")
    print(f"  appends: {result['append_ms_per_round']:.0f} ms CPU per 30k-pod round "
          f"({result['append_us_per_point']:.2f} us per point, chunk closes included)")
    print(f"  300-s window read: p50 {result['window_p50_ms']:.2f} ms, p99 {result['window_p99_ms']:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
