"""What preparing a round's pod listing costs the aggregator with and without its helper process
(`python -m bench listing_worker`): figures only, no target.

Builds a store of N nodes x 30 pods (the aggregator benchmark's pod identities); each round stores
new readings and prepares the round's whole listing as the warmer does (`PodDocCache.whole`), on
alternate rounds in-process and with `--listing-worker`'s `DocWorker` (rounds alternated, so a
machine whose speed drifts slows both alike). Printed per way: the aggregator's own CPU for it
(`time.thread_time` of the preparing thread, which is what the other threads wait for on the GIL),
the helper's CPU, and the wall time until the listing is ready; medians over the rounds, and the
ratio of the aggregator's CPU. Each round's two ways' JSON bytes are compared: a difference fails.
"""

from __future__ import annotations

import argparse
import statistics
import time

import psutil

from bench.report import figure
from bench.round_bench import INTERVAL, readings, round_result

SECTION = "listing worker: preparing a round's whole pod listing"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per way (alternated)")
    opts = parser.parse_args(argv)

    from aggregator.api import views
    from aggregator.api.app import api_dumps
    from aggregator.api.docworker import DocWorker
    from aggregator.stats import AggregatorStats
    from aggregator.store.listing import PodListing
    from aggregator.store.store import Store

    clock = [0.0]
    store = Store(stats=AggregatorStats(), clock=lambda: clock[0], interval=INTERVAL)
    worker = DocWorker()
    pods = opts.nodes * opts.pods
    print(f"{opts.nodes} nodes x {opts.pods} pods = {pods} pods, {opts.rounds} rounds per way, "
          f"alternated", flush=True)
    figures: dict[str, list[tuple[float, float, float]]] = {"in-process": [], "worker": []}
    saved_min, views.WORKER_MIN = views.WORKER_MIN, 1  # the benchmark's small sizes use it too
    try:
        worker.encode([])  # started before the first timed round, as after the aggregator's first one
        made: dict[str, list[bytes]] = {}
        for seq in range(1, 2 * opts.rounds + 1):
            clock[0] = 1_700_000_000.0 + seq * INTERVAL
            for r in readings(opts.nodes, opts.pods, seq):
                store.ingest(r, round_id=seq)  # type: ignore[arg-type]
            store.end_round(round_result(opts.nodes, seq, samples=0))
            pod_views = store.pod_listing().views
            for way in ("in-process", "worker") if seq % 2 else ("worker", "in-process"):
                # A listing of its own per way: nothing of the other's is memoized with it.
                listing = PodListing(pod_views, built_at=clock[0], oldest_seen=clock[0],
                                     stale_after=store.stale_after)
                cache = views.PodDocCache(api_dumps(), worker=worker if way == "worker" else None)
                helper = psutil.Process(worker.pid) if worker.pid else None
                h0 = sum(helper.cpu_times()[:2]) if helper else 0.0
                c0, t0 = time.thread_time(), time.perf_counter()
                made[way] = cache.whole(listing, now=clock[0])
                own, wall = time.thread_time() - c0, time.perf_counter() - t0
                helper_cpu = sum(helper.cpu_times()[:2]) - h0 if helper else 0.0
                figures[way].append((own, helper_cpu, wall))
            if made["in-process"] != made["worker"]:
                print(f"round {seq}: the worker's listing differs from the one made in-process", flush=True)
                return 1
    finally:
        views.WORKER_MIN = saved_min
        worker.close()
    medians = {way: tuple(statistics.median(f[i] for f in rows) for i in range(3))
               for way, rows in figures.items()}
    for way, (own, helper_cpu, wall) in medians.items():
        figure(SECTION, f"{way}: aggregator CPU / helper CPU / wall",
               f"{own * 1e3:.0f} / {helper_cpu * 1e3:.0f} / {wall * 1e3:.0f} ms ({pods} pods)")
    base, new = medians["in-process"][0], medians["worker"][0]
    figure(SECTION, "aggregator CPU, worker / in-process", f"{new / base:.2f}" if base else "n/a")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
