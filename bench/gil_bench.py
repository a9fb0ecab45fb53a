"""The longest time one step of the aggregator's per-round work keeps every other thread waiting.

The aggregator's threads share one GIL: while one C call runs (joining a 69 MB text, freeing 30k
objects, a full garbage collection), no request and not the scrape loop can run, whatever the switch
interval. Here each step runs in the main thread, in-process on N nodes x P pods (bench/round_bench.py's
synthetic readings), while a probe thread asks to wake every 0.5 ms with a 1-ms switch interval; the
longest it waited beyond its sleep is the step's longest hold. Steps: the loop's `ingest`,
`end_round` and federation hand-over (automatic collection off, as gcpolicy.py has it during a
round), the first `/metrics` after a round and its gzip form, the round's pod listing, preparing its
documents and answering the whole listing from them, and one full collection. Figures only.

    python -m bench gil                      # 1000 nodes x 30 pods
    python -m bench.gil_bench --nodes 200
"""

from __future__ import annotations

import argparse
import gc
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


class Probe:
    """A thread that sleeps `tick` seconds at a time and records how late each wake-up came."""

    def __init__(self, tick: float = 0.0005) -> None:
        self._tick = tick
        self._late: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gil-probe", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            time.sleep(self._tick)
            self._late.append(time.perf_counter() - t0 - self._tick)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def step(self, fn: Callable[[], Any]) -> tuple[Any, float, float]:
        """fn()'s result, its wall seconds and the longest wake-up delay while it ran."""
        time.sleep(0.01)  # the probe is awake and waiting before the step starts
        self._late.clear()
        t0 = time.perf_counter()
        out = fn()
        elapsed = time.perf_counter() - t0
        time.sleep(0.002)  # a wake-up due during the step's last instant lands
        return out, elapsed, max(self._late, default=0.0)


def measure(
    nodes: int, pods: int, *, warmup: int = 2
) -> tuple[list[tuple[str, float, float]], dict[str, int]]:
    """(step, wall seconds, longest hold seconds) for one round after `warmup` rounds, and the bytes
    of its `/metrics` text and whole pod listing."""
    import orjson

    from aggregator.api.listing import PodQuery, answer_json
    from aggregator.api.views import PodDocCache
    from aggregator.federation import FederationCache
    from aggregator.stats import AggregatorStats
    from aggregator.store.store import Store
    from bench.round_bench import INTERVAL, readings, round_result

    now = [1_700_000_000.0]
    stats = AggregatorStats()
    store = Store(retention_points=1000, stale_after=3 * INTERVAL, stats=stats, clock=lambda: now[0])
    cache = FederationCache(store=store, stats=stats, version="bench")

    docs = PodDocCache(orjson.dumps)
    for seq in range(1, warmup + 1):  # as under polling clients: what the measured round replaces exists
        now[0] = 1_700_000_000.0 + seq * INTERVAL
        for reading in readings(nodes, pods, seq):
            store.ingest(reading)  # type: ignore[arg-type]
        done = round_result(nodes, seq, samples=12 + 13 * pods)
        store.end_round(done)
        cache.round_done(done)
        cache.body_gzip()
        answer_json(docs, PodQuery(), store.round_pod_listing(), now=now[0], dumps=orjson.dumps)
    seq = warmup + 1
    now[0] = 1_700_000_000.0 + seq * INTERVAL
    batch, done = readings(nodes, pods, seq), round_result(nodes, seq, samples=12 + 13 * pods)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    out: list[tuple[str, float, float]] = []
    gc.disable()
    try:
        with Probe() as probe:
            def run(name: str, fn: Callable[[], Any]) -> Any:
                value, wall, hold = probe.step(fn)
                out.append((name, wall, hold))
                return value

            run("ingest (the round's readings)", lambda: [store.ingest(r) for r in batch])  # type: ignore[arg-type]
            run("end_round", lambda: store.end_round(done))
            run("federation hand-over (round_done)", lambda: cache.round_done(done))
            body = run("first /metrics after the round (render)", cache.body)
            run("its gzip form", cache.body_gzip)
            listing = run("the round's pod listing", store.round_pod_listing)
            run("preparing its documents", lambda: docs.prepare(listing))
            whole = run("answering the whole listing", lambda: answer_json(
                docs, PodQuery(), listing, now=now[0], dumps=orjson.dumps))
            gc.enable()
            run("one full garbage collection", gc.collect)
    finally:
        gc.enable()
        sys.setswitchinterval(switch)
    return out, {"/metrics": len(body), "whole listing": len(whole)}


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(REPO))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=30)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    print(f"N={args.nodes} pods={args.nodes * args.pods}: step, wall time, longest hold of the GIL")
    steps, sizes = measure(args.nodes, args.pods)
    for name, wall, hold in steps:
        print(f"  {name:<42} {wall * 1000:8.1f} ms   longest hold {hold * 1000:6.1f} ms", flush=True)
    print(f"  (sizes: /metrics {sizes['/metrics'] / 2**20:.1f} MiB, "
          f"whole listing {sizes['whole listing'] / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
