"""What each GET route costs the aggregator alone (`python -m bench routes`): figures only, no target.

Builds a store of N nodes x 30 pods (the aggregator benchmark's pod identities), then for every
route the API clients of `bench/api_load.py` poll: a new round is stored and ended, and the route is
answered through the WSGI app (falcon.testing, one thread, no network, no warmer) first, then 3
times more (best kept). "first" is what the first request after a round pays when nothing of that
round is cached and no warmer has prepared the round's pod documents; "warm" what the next ones pay;
for a pod listing, "prepared" what it costs once the round's documents are prepared (by the warmer
in the aggregator, by a whole listing here). Garbage collection follows the aggregator's policy
(aggregator/gcpolicy.py). Under polling clients every millisecond here is held on the GIL that the
scrape loop and the other requests share, so a route that rebuilds per request what changes once a
round shows up here first (2026-12-03: a namespace's pod listing, 0.3 s each time; the nodes
listing, 40-60 ms). Pod listings are asked for every round, as polling dashboards do (the store
keeps the round listing). The bodies of the big answers (`/api/pods`, `/metrics`) also cost
falcon.testing's own copy of them, which a real server does not make.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable

from falcon import testing

from bench.api_load import ROUTES, entity, url_path
from bench.listing_bench import _Status
from bench.report import figure
from bench.round_bench import INTERVAL, aggregator_threshold, readings, round_result

SECTION = "routes: each GET route alone (falcon.testing, one thread)"


def _paths(nodes: int, pods: int) -> list[str]:
    """Every polled route for one node, pod, namespace and deployment of the simulated cluster, picked
    as an API client picks them (seeded: the same ones every run)."""
    target = entity(random.Random(0), nodes, pods)
    return [url_path(route, target) for route in ROUTES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3, help="warm answers timed per route (best kept)")
    opts = parser.parse_args(argv)

    from aggregator.api.app import create_app
    from aggregator.federation import FederationCache
    from aggregator.gcpolicy import RoundCollector
    from aggregator.stats import AggregatorStats
    from aggregator.store.store import Store

    clock = [0.0]
    stats = AggregatorStats()
    store = Store(stats=stats, clock=lambda: clock[0], interval=INTERVAL)
    federation = FederationCache(store=store, stats=stats, version="bench")
    app = create_app(store=store, status=_Status(), federation=federation, stats=stats,
                     started_at=time.time(), version="bench")
    client = testing.TestClient(app)
    # The aggregator's collector policy (gcpolicy.tune_gc): no collection during a round, what it made
    # frozen after it; otherwise a full collection of the 30k-pod heap lands in some route's figure.
    policy = RoundCollector(full_every=math.inf)
    policy.active = True
    seq = 0

    def new_round() -> None:
        nonlocal seq
        seq += 1
        clock[0] = round_result(opts.nodes, seq, samples=0).started
        with policy.round():
            for reading in readings(opts.nodes, opts.pods, seq):
                store.ingest(reading, round_id=seq)  # type: ignore[arg-type]
            store.end_round(round_result(opts.nodes, seq, samples=0))
        clock[0] += 1.0  # asked a second into the interval
        store.round_pod_listing()  # listings asked for (by the dashboards polling), as every round

    section = f"{SECTION}, {opts.nodes} nodes x {opts.pods} pods"
    print(section, flush=True)
    with aggregator_threshold():
        return _measure(opts, section, client, new_round)


def _measure(
    opts: argparse.Namespace, section: str, client: testing.TestClient, new_round: Callable[[], None]
) -> int:
    for _ in range(2):  # history for the timeseries
        new_round()
    for path in _paths(opts.nodes, opts.pods):
        new_round()
        route, _, query = path.partition("?")
        t0 = time.perf_counter()
        first = client.simulate_get(route, query_string=query)
        cold = time.perf_counter() - t0
        best = float("inf")
        for _ in range(opts.repeat):
            t0 = time.perf_counter()
            result = client.simulate_get(route, query_string=query)
            best = min(best, time.perf_counter() - t0)
        if first.status_code != 200 or result.status_code != 200:
            figure(section, path, f"HTTP {first.status_code}/{result.status_code}: {result.text[:80]}")
            return 1
        size = len(result.content) / 1024
        value = f"first {cold * 1000:7.1f} ms  warm {best * 1000:7.1f} ms  {size:6.0f} KiB"
        if route.endswith("/pods"):  # a pod listing (whole, a page, or a part): also from the prepared round
            client.simulate_get("/api/pods")  # prepares the round's documents, as the warmer does
            t0 = time.perf_counter()
            client.simulate_get(route, query_string=query)
            value += f"  prepared {(time.perf_counter() - t0) * 1000:7.1f} ms"
        figure(section, path, value)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
