"""A node's status follows what the aggregator knows, the same on every route (issue 10, items 6-8).

* A node whose target left discovery is `gone` from the next round: /api/nodes and
  /api/nodes/<n> say so, `/` counts it, and /metrics drops its node series (as Prometheus marks a
  vanished target's series stale); an exporter that moved to a new address stays `up`.
* A pushed node that stopped pushing is `stale` after --stale-after, never `up` with a growing age;
  pushed timestamps outside --max-push-skew (a year ago, 200 s ahead) are 400 and store nothing.
* An exporter without its first sample answers 503 "exporter has no sample yet": the target is
  down with that reason, and nothing is counted as a parse error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime

from aggregator.discovery import StaticDiscovery
from tests.handmade_exporter import DrivenService, HandmadeExporter
from tests.test_store import Clock

T0 = 1_760_000_000.0
AUTH = {"Authorization": "Bearer t0ken", "Content-Type": "application/json"}


class MovingTargets(StaticDiscovery):
    """Discovery whose targets (and the nodes they name) the test changes; the rest is StaticDiscovery's
    (KubeDiscovery's own handling of Endpoints removals is tested in test_discovery.py; this is what the
    scrape service does with them)."""

    mode = "endpoints"

    def __init__(self, targets: Mapping[str, str | None]) -> None:
        super().__init__(())
        self.current = dict(targets)

    def targets(self) -> Mapping[str, str | None]:
        return dict(self.current)


def _node_lines(metrics: str, node: str) -> list[str]:
    return [line for line in metrics.splitlines() if f'node="{node}"' in line and not line.startswith("#")]


def test_node_whose_target_left_discovery_is_gone_by_the_next_round() -> None:
    clock = Clock(T0)
    with HandmadeExporter("keep") as keep, HandmadeExporter("leave") as leave, \
            HandmadeExporter("keep") as keep_moved:
        targets = MovingTargets({keep.target: "keep", leave.target: "leave"})
        svc = DrivenService(targets, clock=clock, stale_after=15.0)
        for k in range(2):
            clock.now = T0 + 5 * k
            for e in (keep, leave, keep_moved):
                e.snapshot(seq=k, timestamp=clock.now)
            svc.round()
        assert {n["node_name"]: n["status"] for n in svc.get("/api/nodes")["nodes"]} == {
            "keep": "up", "leave": "up"}
        assert _node_lines(svc.metrics(), "leave")
        # The Endpoints object loses `leave`; `keep`'s exporter restarts on a new address.
        del targets.current[leave.target], targets.current[keep.target]
        targets.current[keep_moved.target] = "keep"
        clock.now += 5
        svc.round()
        listed = {n["node_name"]: n for n in svc.get("/api/nodes")["nodes"]}
        assert listed["keep"]["status"] == "up"
        assert listed["leave"]["status"] == "gone"
        assert listed["leave"]["last_error"] == "target left discovery"
        assert listed["leave"]["memory_bytes"] is not None  # last values kept, like a down node
        assert listed["leave"]["pod_count"] == 0 and svc.get("/api/nodes/leave/pods")["pods"] == []
        one = svc.get("/api/nodes/leave")
        assert one["status"] == "gone" and one["down_since"] is not None
        assert svc.get("/")["nodes"] == {"up": 1, "down": 0, "gone": 1}
        metrics = svc.metrics()
        assert _node_lines(metrics, "leave") == []  # no node series, no target_up left for it
        assert _node_lines(metrics, "keep")
        # Still gone (not up, not stale) on /api/nodes/<n> once it has left the listings.
        clock.now += 16
        svc.round()
        assert "leave" not in {n["node_name"] for n in svc.get("/api/nodes")["nodes"]}
        assert svc.get("/api/nodes/leave")["status"] == "gone"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _push(svc: DrivenService, node: str, ts: float, status: int) -> dict:
    body = {"node_name": node, "cpu_millicores": 250, "memory_bytes": 1 << 30,
            "disk_io": {"read_bytes": 0, "write_bytes": 0}, "network_io": {"bytes_recv": 0, "bytes_sent": 0},
            "timestamp": _iso(ts)}
    r = svc.client.simulate_post(f"/api/nodes/{node}/metrics", body=json.dumps(body), headers=AUTH)
    assert r.status_code == status, r.text
    return r.json


def test_pushed_node_that_stopped_pushing_is_stale_everywhere() -> None:
    clock = Clock(T0)
    svc = DrivenService([], clock=clock, stale_after=15.0)
    _push(svc, "pusher", clock.now, 201)
    svc.round()
    assert svc.get("/api/nodes/pusher")["status"] == "up"
    clock.now += 16
    svc.round()
    assert svc.get("/api/nodes")["nodes"] == []
    one = svc.get("/api/nodes/pusher")
    assert one["status"] == "stale" and "--stale-after" in one["last_error"]
    assert svc.get("/")["nodes"] == {"up": 0, "down": 0, "gone": 0}
    assert _node_lines(svc.metrics(), "pusher") == []
    _push(svc, "pusher", clock.now, 201)  # pushing again: up again
    assert svc.get("/api/nodes/pusher")["status"] == "up"


def test_pushed_timestamps_outside_the_skew_are_400_and_store_nothing() -> None:
    clock = Clock(T0)
    svc = DrivenService([], clock=clock)
    year_ago = _push(svc, "far", T0 - 365 * 86400, 400)
    assert year_ago["field"] == "timestamp" and "behind" in year_ago["description"]
    ahead = _push(svc, "far", T0 + 200, 400)
    assert "ahead of" in ahead["description"] and "--max-push-skew 60s" in ahead["description"]
    svc.get("/api/nodes/far", status=404)  # nothing stored
    # Within the skew: accepted, and a later correct push is not blocked for long.
    _push(svc, "far", T0 + 30, 201)
    assert svc.get("/api/nodes/far")["age_seconds"] == 0  # the point's time is when it arrived
    clock.now += 31
    _push(svc, "far", clock.now, 201)


def test_exporter_without_a_sample_is_not_ready_not_a_parse_error() -> None:
    clock = Clock(T0)
    with HandmadeExporter("starting") as exporter:
        svc = DrivenService([exporter.target], clock=clock)
        exporter.body = None  # what exporter/server.py answers before its first sample
        svc.round()
        (target,) = svc.get("/")["targets"]["items"]
        assert not target["up"] and target["last_error"] == "exporter has no sample yet"
        assert svc.stats.snapshot()["errors"] == {}
        assert 'source="parse"' not in svc.metrics()
        exporter.snapshot(seq=1, timestamp=T0)
        clock.now += 5
        svc.round()
        assert svc.get("/")["targets"]["items"][0]["up"]
        assert svc.get("/api/nodes/starting")["status"] == "up"
