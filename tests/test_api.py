"""Every JSON API route through falcon.testing: happy paths and each error, JSON always."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import falcon
import pytest
from falcon import testing
from prometheus_client import CONTENT_TYPE_LATEST

from aggregator.api.app import create_app
from aggregator.federation import FederationCache
from aggregator.model import ContainerReading, NodeReading, PodReading, RoundResult, TargetStatus
from aggregator.stats import AggregatorStats
from aggregator.store.store import Store
from tests.aggregator_fakes import FakeStatus
from tests.test_store import Clock

TOKEN = "s3cret-token"


@dataclass
class World:
    store: Store
    stats: AggregatorStats
    status: FakeStatus
    federation: FederationCache
    clock: Clock
    app: falcon.App
    client: testing.TestClient


def _pods(i: int) -> tuple[PodReading, ...]:
    base = {
        "memory_usage_bytes": 3e8,
        "network_receive_bytes_total": 4000.0 * i,
        "cpu_seconds_total": 2.0 * i,
    }
    return (
        PodReading(
            "shop",
            "web-7d9f-abc12",
            "u-web1",
            "Deployment",
            "web",
            "web",
            {
                "cpu_usage_cores": 0.25,
                "memory_working_set_bytes": 2e8,
                "cpu_request_cores": 0.5,
                "cpu_limit_cores": 1.0,
                "memory_limit_bytes": 4e8,
                "disk_read_bytes_total": 1e5 * i,
                "disk_written_bytes_total": 5e4 * i,
                **base,
            },
            containers=(
                ContainerReading("app", {"cpu_usage_cores": 0.2, "cpu_seconds_total": 1.5 * i,
                                         "memory_working_set_bytes": 1.5e8, "cpu_request_cores": 0.4,
                                         "cpu_limit_cores": 0.8, "memory_request_bytes": 2e8,
                                         "memory_limit_bytes": 3e8}),
                ContainerReading("sidecar", {"cpu_usage_cores": 0.05, "memory_working_set_bytes": 5e7}),
            ),
        ),
        PodReading(
            "shop",
            "web-7d9f-def34",
            "u-web2",
            "Deployment",
            "web",
            "web",
            {"cpu_usage_cores": 0.75, "memory_working_set_bytes": 1e8, **base},
        ),
        PodReading(
            "shop", "db-0", "u-db0", "StatefulSet", "db", "", {"cpu_usage_cores": 1.0, "host_network": 0}
        ),
        PodReading("other", "db-0", "u-db0b", "", "", "", {"cpu_usage_cores": 0.1}),
        PodReading("", "5f0c-uid", "5f0c-uid", values={"cpu_usage_cores": 0.05}),
    )


def make_world(*, rounds: int = 3, token: str = TOKEN, cors: Sequence[str] = ("*",)) -> World:
    """A store with two nodes (one down after the last round), five pods and `rounds` rounds."""
    clock = Clock(1_700_000_000.0)
    stats = AggregatorStats()
    store = Store(clock=clock, stats=stats)
    status = FakeStatus()
    federation = FederationCache(store=store, stats=stats, version="9.9.9")
    for i in range(rounds):
        ts = clock.now
        store.ingest(
            NodeReading(
                "node-a",
                ts,
                {
                    "cpu_usage_cores": 1.5,
                    "cpu_capacity_cores": 4.0,
                    "cpu_seconds_total": 100 + 7.5 * i,
                    "memory_used_bytes": 2 * 2**30,
                    "memory_available_bytes": 6 * 2**30,
                    "memory_total_bytes": 8 * 2**30,
                    "disk_read_bytes_total": 1e6 * i,
                    "disk_written_bytes_total": 2e6 * i,
                    "network_receive_bytes_total": 3e6 * i,
                    "network_transmit_bytes_total": 4e6 * i,
                    "filesystem_size_bytes": 1e11,
                    "filesystem_avail_bytes": 4e10,
                },
                _pods(i),
            ),
            round_id=i,
        )
        store.ingest(
            NodeReading("node-b", ts, {"cpu_usage_cores": 0.5, "cpu_capacity_cores": 2.0}), round_id=i
        )
        targets = (
            TargetStatus("127.0.0.2:9100", "node-a", True, last_scrape=ts, duration_seconds=0.01, samples=80),
            TargetStatus("127.0.0.3:9100", "node-b", True, last_scrape=ts, duration_seconds=0.02, samples=9),
        )
        result = RoundResult(i, ts, 0.05, targets)
        store.end_round(result)
        federation.round_done(result)
        status.targets_, status.last = list(targets), result
        clock.now += 5
    store.mark_down("node-b", reason="connection refused", when=clock.now)
    app = create_app(
        store=store,
        status=status,
        federation=federation,
        stats=stats,
        cors_origins=cors,
        ingest_token=token,
        started_at=time.time() - 90,
        version="9.9.9",
        liveness_timeout=60.0,
    )
    return World(store, stats, status, federation, clock, app, testing.TestClient(app))


@pytest.fixture
def world() -> World:
    return make_world()


def get(world: World, path: str, status: int = 200, **kw: object) -> dict:
    r = world.client.simulate_get(path, **kw)  # type: ignore[arg-type]
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json


def test_nodes_listing_and_one_node(world: World) -> None:
    doc = get(world, "/api/nodes")
    assert doc["count"] == 2
    a, b = doc["nodes"]
    assert a["node_name"] == "node-a" and a["status"] == "up" and a["last_error"] is None
    assert (
        a["cpu_millicores"] == 1500.0 and a["cpu_capacity_millicores"] == 4000.0 and a["cpu_percent"] == 37.5
    )
    assert a["memory_bytes"] == 2 * 2**30 and a["memory_percent"] == 25.0
    assert a["disk_io"] == {
        "read_bytes": 1e6,
        "read_bytes_per_second": 2e5,
        "read_bytes_total": 2e6,
        "write_bytes": 2e6,
        "write_bytes_per_second": 4e5,
        "write_bytes_total": 4e6,
    }
    assert a["network_io"]["bytes_recv"] == 3e6 and a["network_io"]["bytes_sent_per_second"] == 8e5
    assert a["timestamp"].endswith("Z") and a["pod_count"] == 5
    assert a["human"]["memory"] == "2 GiB" and a["human"]["cpu"] == "1.5 cores"
    assert a["human"]["disk_read"] == "195 KiB/s"
    assert a["filesystem"]["used_bytes"] == 6e10 and a["filesystem"]["percent"] == 60.0
    assert b["status"] == "down" and b["last_error"] == "connection refused" and b["cpu_millicores"] == 500.0
    assert get(world, "/api/nodes/node-a") == a


def test_node_errors(world: World) -> None:
    doc = get(world, "/api/nodes/nope", 404)
    assert doc["error"] == "not_found" and "nope" in doc["description"]
    assert get(world, "/api/nodes/Bad_Name", 400)["parameter"] == "node"
    assert get(world, "/api/nodes/nope/pods", 404)["error"] == "not_found"
    assert get(world, "/api/nodes/nope/timeseries", 404)["kind"] == "node"


def test_node_pods_and_timeseries(world: World) -> None:
    doc = get(world, "/api/nodes/node-a/pods")
    assert doc["count"] == 5 and {p["node_name"] for p in doc["pods"]} == {"node-a"}
    assert get(world, "/api/nodes/node-b/pods")["count"] == 0
    ts = get(world, "/api/nodes/node-a/timeseries")
    assert ts["kind"] == "node" and ts["window_seconds"] == 300 and len(ts["points"]) == 3
    last = ts["points"][-1]
    assert last["disk_io"]["read_bytes"] == 1e6 and last["disk_io"]["read_bytes_per_second"] == 2e5
    assert ts["points"][0]["disk_io"]["read_bytes"] is None  # first sample: no rate yet
    narrow = get(world, "/api/nodes/node-a/timeseries?window=11")["points"]
    # the point before the window is not served but still gives the window's first point its rates
    assert narrow == ts["points"][1:] and narrow[0]["disk_io"]["read_bytes_per_second"] is not None


@pytest.mark.parametrize("window", ["abc", "0", "-5", "nan", "inf", "1e9", ""])
def test_bad_window_is_400_naming_the_parameter(world: World, window: str) -> None:
    doc = get(world, "/api/nodes/node-a/timeseries", 400, query_string=f"window={window}")
    assert doc["error"] == "invalid_parameter" and doc["parameter"] == "window"


def test_pods(world: World) -> None:
    doc = get(world, "/api/pods")
    assert doc["count"] == 5
    web = get(world, "/api/pods/web-7d9f-abc12")
    assert web["namespace"] == "shop" and web["deployment"] == "web" and web["owner_kind"] == "Deployment"
    assert web["cpu_millicores"] == 250.0 and web["cpu_percent_of_request"] == 50.0
    assert web["cpu_percent_of_limit"] == 25.0 and web["memory_percent_of_limit"] == 50.0
    assert web["memory_bytes"] == 2e8 and web["human"]["memory"] == "191 MiB"
    assert web["disk_io"]["read_bytes"] == 1e5 and web["network_io"]["bytes_recv_per_second"] == 800.0
    unnamed = get(world, "/api/pods/5f0c-uid")
    assert unnamed["namespace"] == "" and unnamed["uid"] == "5f0c-uid"
    assert unnamed["containers"] == []


def test_pod_containers_with_requests_limits_and_percent(world: World) -> None:
    app, sidecar = get(world, "/api/pods/web-7d9f-abc12")["containers"]
    assert app == {
        "name": "app",
        "cpu_millicores": 200.0,
        "cpu_request_millicores": 400.0,
        "cpu_limit_millicores": 800.0,
        "cpu_percent_of_request": 50.0,
        "cpu_percent_of_limit": 25.0,
        "cpu_seconds_total": 3.0,
        "memory_bytes": 1.5e8,
        "memory_request_bytes": 2e8,
        "memory_limit_bytes": 3e8,
        "memory_percent_of_request": 75.0,
        "memory_percent_of_limit": 50.0,
        "human": {"cpu": "0.2 cores", "cpu_request": "0.4 cores", "cpu_limit": "0.8 cores",
                  "memory": "143 MiB", "memory_request": "191 MiB", "memory_limit": "286 MiB"},
    }
    assert sidecar["name"] == "sidecar" and sidecar["cpu_millicores"] == 50.0
    assert sidecar["cpu_limit_millicores"] is None and sidecar["cpu_percent_of_limit"] is None
    # the listing carries them too, and the federated /metrics the container families
    listed = {p["pod_name"]: p for p in get(world, "/api/pods")["pods"]}
    assert [c["name"] for c in listed["web-7d9f-abc12"]["containers"]] == ["app", "sidecar"]
    body = world.client.simulate_get("/metrics").text
    assert ('k8smon_container_cpu_usage_cores{node="node-a",namespace="shop",pod="web-7d9f-abc12",'
            'uid="u-web1",container="app"} 0.2') in body


def test_pod_ambiguous_and_narrowed(world: World) -> None:
    doc = get(world, "/api/pods/db-0", 409)
    assert doc["error"] == "ambiguous" and doc["candidates"] == ["other", "shop"]
    assert get(world, "/api/pods/db-0?namespace=shop")["host_network"] is False
    assert get(world, "/api/pods/db-0?namespace=nope", 404)["error"] == "not_found"
    assert get(world, "/api/pods/db-0?namespace=Bad_NS", 400)["parameter"] == "namespace"
    assert get(world, "/api/pods/nope", 404)["kind"] == "pod"
    assert get(world, "/api/pods/db-0/timeseries", 409)["candidates"] == ["other", "shop"]
    ts = get(world, "/api/pods/db-0/timeseries?namespace=other&window=60")
    assert ts["namespace"] == "other" and len(ts["points"]) == 3


def test_namespaces_and_deployments(world: World) -> None:
    doc = get(world, "/api/namespaces")
    assert [n["namespace"] for n in doc["namespaces"]] == ["other", "shop"]  # unnamed pods not rolled up
    shop = get(world, "/api/namespaces/shop")
    assert shop["pod_count"] == 3 and shop["cpu_millicores"] == pytest.approx(2000.0)
    assert shop["memory_bytes"] == 3e8 and shop["round_id"] == 2
    assert get(world, "/api/namespaces/shop/pods")["count"] == 3
    deps = get(world, "/api/namespaces/shop/deployments")
    assert [d["deployment"] for d in deps["deployments"]] == ["web"]
    web = get(world, "/api/namespaces/shop/deployments/web")
    assert web["pod_count"] == 2 and web["cpu_millicores"] == pytest.approx(1000.0)
    assert {p["pod_name"] for p in get(world, "/api/namespaces/shop/deployments/web/pods")["pods"]} == {
        "web-7d9f-abc12",
        "web-7d9f-def34",
    }
    ts = get(world, "/api/namespaces/shop/timeseries")
    # The series sums each pod's counter rate where it has one (web pods: 2 s per 5 s = 400 m each),
    # while the listing sums the current gauges (250 + 750 + 1000).
    assert len(ts["points"]) == 3 and ts["points"][-1]["cpu_millicores"] == pytest.approx(1800.0)
    dts = get(world, "/api/deployments/web/timeseries?window=300")
    assert dts["namespace"] == "shop" and len(dts["points"]) == 3
    assert get(world, "/api/deployments/web/timeseries?namespace=shop")["deployment"] == "web"


def test_namespace_and_deployment_errors(world: World) -> None:
    for path in (
        "/api/namespaces/nope",
        "/api/namespaces/nope/pods",
        "/api/namespaces/nope/deployments",
        "/api/namespaces/nope/timeseries",
        "/api/namespaces/shop/deployments/nope",
        "/api/namespaces/shop/deployments/nope/pods",
        "/api/deployments/nope/timeseries",
        "/api/deployments/web/timeseries?namespace=other",
    ):
        assert get(world, path, 404)["error"] == "not_found", path
    assert get(world, "/api/namespaces/UPPER", 400)["parameter"] == "namespace"
    assert get(world, "/api/namespaces/shop/deployments/Bad_", 400)["parameter"] == "deployment"
    assert get(world, "/api/namespaces/shop/timeseries?window=x", 400)["parameter"] == "window"


def test_deployment_in_two_namespaces_is_409() -> None:
    w = make_world(rounds=1)
    w.store.ingest(
        NodeReading("node-c", w.clock.now, {}, (PodReading("qa", "web-1", "u-q", deployment="web"),))
    )
    w.store.end_round(RoundResult(9, w.clock.now, 0.1, ()))
    assert get(w, "/api/deployments/web/timeseries", 409)["candidates"] == ["qa", "shop"]


def test_status_health_ready_metrics_openapi(world: World) -> None:
    doc = get(world, "/")
    assert doc["version"] == "9.9.9" and doc["uptime_seconds"] >= 90 and doc["ready"] is True
    assert doc["targets"]["total"] == 2 and doc["targets"]["up"] == 2
    assert doc["last_round"]["round_id"] == 2 and doc["discovery_mode"] == "static"
    assert doc["last_scrape"].endswith("Z")
    assert get(world, "/healthz") == {"status": "ok", "last_progress_seconds": None}  # loop not started
    world.status.progress = 59.5
    assert get(world, "/healthz") == {"status": "ok", "last_progress_seconds": 59.5}
    world.status.progress = 61.0
    stalled = get(world, "/healthz", 503)
    assert stalled["error"] == "stalled" and stalled["last_progress_seconds"] == 61.0
    assert "--liveness-timeout 60s" in stalled["description"]
    assert get(world, "/readyz") == {"status": "ready"}
    world.status.ready_ = False
    assert get(world, "/readyz", 503)["error"] == "not_ready"
    r = world.client.simulate_get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"] == CONTENT_TYPE_LATEST
    assert 'k8smon_pod_cpu_usage_cores{node="node-a",namespace="shop",pod="web-7d9f-abc12"' in r.text
    gz = world.client.simulate_get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert gz.headers["content-encoding"] == "gzip"
    import gzip

    assert gzip.decompress(gz.content) == r.content
    spec = get(world, "/openapi.json")
    assert (
        spec["openapi"].startswith("3.")
        and spec["components"]["parameters"]["window"]["schema"]["maximum"] == 5000
    )


def test_unknown_route_and_method_are_json(world: World) -> None:
    doc = get(world, "/nothing/here", 404)
    assert doc["error"] == "not_found"
    r = world.client.simulate_delete("/api/nodes")
    assert r.status_code == 405 and r.json["error"] == "method_not_allowed"


def test_unexpected_error_is_500_json_without_traceback(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            raise RuntimeError("secret internals")

    world.app.add_route("/broken", Broken())
    r = world.client.simulate_get("/broken")
    assert r.status_code == 500 and r.json["error"] == "internal_error"
    assert "secret" not in r.text and "Traceback" not in r.text
    assert world.stats.snapshot()["errors"]["api"] == 1
    assert "secret internals" in caplog.text


def test_cors_default_and_preflight(world: World) -> None:
    r = world.client.simulate_get("/api/nodes", headers={"Origin": "http://dash.example"})
    assert r.headers["access-control-allow-origin"] == "*"
    pre = world.client.simulate_options(
        "/api/nodes/node-a/metrics",
        headers={
            "Origin": "http://dash.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert pre.status_code == 200
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert pre.headers["access-control-allow-headers"] == "authorization,content-type"


def test_cors_restricted_origins() -> None:
    w = make_world(rounds=1, cors=("http://ok.example",))
    ok = w.client.simulate_get("/api/nodes", headers={"Origin": "http://ok.example"})
    assert ok.headers["access-control-allow-origin"] == "http://ok.example"
    assert ok.headers["vary"] == "Origin"
    bad = w.client.simulate_get("/api/nodes", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in bad.headers


def test_pod_doc_cache_reuses_until_the_sample_changes(world: World) -> None:
    first = get(world, "/api/pods")["pods"]
    world.clock.now += 2
    second = get(world, "/api/pods")["pods"]
    assert [p["age_seconds"] - 2 for p in second] == pytest.approx([p["age_seconds"] for p in first])
    assert [{**p, "age_seconds": 0} for p in first] == [{**p, "age_seconds": 0} for p in second]
    world.store.ingest(
        NodeReading(
            "node-a",
            world.clock.now,
            {},
            (PodReading("other", "db-0", "u-db0b", values={"cpu_usage_cores": 2}),),
        )
    )
    third = {(p["namespace"], p["pod_name"]): p for p in get(world, "/api/pods")["pods"]}
    assert (
        third[("other", "db-0")]["cpu_millicores"] == 2000.0 and third[("other", "db-0")]["age_seconds"] == 0
    )
    assert get(world, "/api/namespaces/other/pods")["pods"][0]["cpu_millicores"] == 2000.0
