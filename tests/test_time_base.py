"""One time base for every series (issue 10, item 4): the aggregator's clock, whatever the exporters' say.

Exporters whose clocks are minutes ahead and behind are scraped for real; their node, pod and
namespace series share the scrape rounds' times, windows are measured on the same clock (not empty
for the exporter that is behind), ages are never negative, and rates still come from the exporters'
own sample times (their skew cancels out).
"""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.handmade_exporter import DrivenService, HandmadeExporter
from tests.test_store import Clock

T0 = 1_760_000_000.0
SKEW = {"ahead": 300.0, "behind": -420.0, "right": 0.0}


def _t(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_exporters_minutes_ahead_and_behind_share_the_aggregators_time_base() -> None:
    clock = Clock(T0)
    exporters = [HandmadeExporter(name, pods=1) for name in SKEW]
    for e in exporters:
        e.__enter__()
    try:
        svc = DrivenService([e.target for e in exporters], clock=clock)
        rounds = []
        for k in range(4):
            clock.now = T0 + 5 * k + 0.25  # the aggregator's rounds
            for e in exporters:  # each exporter sampled 1.7 s before the scrape, by its own clock
                e.snapshot(seq=k, timestamp=T0 + 5 * k - 1.7 + SKEW[e.node])
            rounds.append(svc.round().started)
        assert all(t.up for t in svc.service.targets())
        times: dict[str, list[float]] = {}
        for name in SKEW:
            doc = svc.get(f"/api/nodes/{name}/timeseries?window=30")
            times[name] = [_t(p["timestamp"]) for p in doc["points"]]
            node = svc.get(f"/api/nodes/{name}")
            assert node["status"] == "up" and node["age_seconds"] == 0  # never negative, never 5 min
            # Rates come from the exporter's own intervals: 1e6 bytes per 5-s sample in the fake.
            assert node["disk_io"]["read_bytes_per_second"] == pytest.approx(2e5)
            (pod,) = svc.get(f"/api/nodes/{name}/pods")["pods"]
            path = f"/api/pods/{pod['pod_name']}/timeseries?namespace={pod['namespace']}&window=30"
            pod_doc = svc.get(path)
            times[f"pod on {name}"] = [_t(p["timestamp"]) for p in pod_doc["points"]]
            assert pod["age_seconds"] == 0
        ns = svc.get("/api/namespaces/shop/timeseries?window=30")
        times["namespace"] = [_t(p["timestamp"]) for p in ns["points"]]
        # Every series has every round, at the round's time: one time axis for all of them.
        assert times == dict.fromkeys(times, rounds), times
        # A window shorter than the skew still finds the exporter that is behind.
        assert len(svc.get("/api/nodes/behind/timeseries?window=6")["points"]) == 2
    finally:
        for e in exporters:
            e.__exit__(None, None, None)
