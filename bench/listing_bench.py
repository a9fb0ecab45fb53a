"""`/api/pods` filters, sort and paging at 1000 nodes x 30 pods (`python -m bench listing`).

Builds a 30,000-pod store, then times the WSGI app (falcon.testing, no network) answering the
queries a dashboard or `k8smon top` sends: a page, a page sorted by CPU, a name search, a namespace
filter, the last page, and the whole listing. Prints the best of 3 per query; figures only, no target
(a shared 2-core machine gives noisy timings).
"""

from __future__ import annotations

import time

from falcon import testing

from aggregator.api.app import create_app
from aggregator.federation import FederationCache
from aggregator.model import NodeReading, PodReading, RoundResult, TargetStatus
from aggregator.stats import AggregatorStats
from aggregator.store.store import Store

QUERIES = (
    "limit=50",
    "sort=-cpu&limit=50",
    "q=pod-12&limit=50",
    "namespace=ns-3&sort=-memory&limit=50",
    "sort=-cpu&limit=50&offset=29950",
    "",
)


class _Status:
    def targets(self) -> list[TargetStatus]:
        return []

    def last_round(self) -> None:
        return None

    def ready(self) -> bool:
        return True

    def discovery_mode(self) -> str:
        return "static"

    def progress_age(self) -> float | None:
        return None


def build(nodes: int = 1000, pods: int = 30) -> Store:
    stats = AggregatorStats()
    now = time.time()
    # The store's clock stays at the build's start: building takes longer than --stale-after on a busy
    # machine, and on the real clock the later queries would list an empty store.
    store = Store(stats=stats, clock=lambda: now)
    for n in range(nodes):
        readings = tuple(
            PodReading(
                f"ns-{p % 7}", f"pod-{n}-{p}", f"uid-{n}-{p}", "Deployment", f"dep-{p % 3}", f"dep-{p % 3}",
                {"cpu_usage_cores": 0.001 * ((n * 31 + p * 17) % 997), "memory_working_set_bytes": 1e6 * p},
            )
            for p in range(pods)
        )
        store.ingest(NodeReading(f"node-{n}", now, {"cpu_usage_cores": 1.0}, readings), round_id=0)
    store.end_round(RoundResult(0, now, 0.1, ()))
    return store


def main() -> int:
    t0 = time.perf_counter()
    store = build()
    stats = AggregatorStats()
    app = create_app(store=store, status=_Status(), federation=FederationCache(store=store, stats=stats,
                     version="bench"), stats=stats, started_at=time.time(), version="bench")
    client = testing.TestClient(app)
    print(f"store of {len(store.pods())} pods built in {time.perf_counter() - t0:.1f} s")
    for query in QUERIES:
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            r = client.simulate_get("/api/pods", query_string=query)
            best = min(best, time.perf_counter() - t0)
        assert r.status_code == 200, r.text[:200]
        doc = r.json
        print(f"  /api/pods?{query or '(whole listing)':40s} {best * 1000:7.1f} ms  "
              f"total={doc['total']} count={doc['count']} {len(r.content) / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
