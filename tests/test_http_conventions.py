"""One convention across the exporter and the aggregator: error shape, ISO-8601 times, HEAD, number types."""

from __future__ import annotations

import http.client
import re
import time

import falcon
import falcon.testing
import pytest

from aggregator.api import human
from aggregator.api.app import create_app as aggregator_app
from aggregator.federation import FederationCache
from aggregator.stats import AggregatorStats
from aggregator.store.store import Store
from exporter.server import create_app as exporter_app
from k8smon_common.http_server import ServerHandle
from tests.aggregator_fakes import FakeStatus
from tests.test_api import World, make_world
from tests.test_exporter_collector import golden_snapshot
from tests.test_store import Clock

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def world() -> World:
    return make_world()


@pytest.fixture(scope="module")
def exporter() -> falcon.testing.TestClient:
    snapshot = golden_snapshot()
    return falcon.testing.TestClient(exporter_app(latest=lambda: snapshot, node="worker-1"))


def _clients(world: World, exporter: falcon.testing.TestClient) -> dict[str, falcon.testing.TestClient]:
    return {"aggregator": world.client, "exporter": exporter}


@pytest.mark.parametrize("component", ["aggregator", "exporter"])
def test_unknown_route_and_wrong_method_have_one_error_shape(
    world: World, exporter: falcon.testing.TestClient, component: str
) -> None:
    """The exporter's 404 used to be falcon's {"title": "404 Not Found"}."""
    client = _clients(world, exporter)[component]
    missing = client.simulate_get("/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/json")
    assert missing.json["error"] == "not_found" and missing.json["description"]
    assert "title" not in missing.json
    wrong = client.simulate_delete("/metrics")
    assert wrong.status_code == 405
    assert wrong.json["error"] == "method_not_allowed" and "GET" in wrong.json["allowed"]
    assert "DELETE is not allowed on /metrics" in wrong.json["description"]


def test_exporter_health_errors_have_the_shared_shape() -> None:
    client = falcon.testing.TestClient(exporter_app(latest=lambda: None, node="n"))
    r = client.simulate_get("/healthz")
    assert r.status_code == 503
    assert r.json == {"error": "starting", "description": "no sample taken yet", "status": "starting"}
    old = golden_snapshot()
    stale = falcon.testing.TestClient(exporter_app(latest=lambda: old, node="n", liveness_timeout=1.0))
    r = stale.simulate_get("/healthz")
    assert r.status_code == 503 and r.json["error"] == r.json["status"] == "stalled"
    assert "--liveness-timeout 1s" in r.json["description"]


def test_exporter_status_gives_iso_times_like_the_aggregator(
    world: World, exporter: falcon.testing.TestClient
) -> None:
    """The exporter's `/` gave the sample time as an epoch float."""
    sample = exporter.simulate_get("/").json["sample"]
    assert isinstance(sample["timestamp"], str) and ISO.match(sample["timestamp"])
    assert sample["timestamp"] == human.iso(golden_snapshot().timestamp)
    status = world.client.simulate_get("/").json
    assert ISO.match(status["started_at"]) and ISO.match(status["last_scrape"])


AGGREGATOR_GETS = [
    "/", "/healthz", "/readyz", "/metrics", "/openapi.json", "/api/nodes", "/api/nodes/node-a",
    "/api/nodes/node-a/pods", "/api/nodes/node-a/timeseries", "/api/pods", "/api/pods/web-7d9f-abc12",
    "/api/pods/web-7d9f-abc12/timeseries", "/api/namespaces", "/api/namespaces/shop",
    "/api/namespaces/shop/pods", "/api/namespaces/shop/timeseries", "/api/namespaces/shop/deployments",
    "/api/namespaces/shop/deployments/web", "/api/namespaces/shop/deployments/web/pods",
    "/api/deployments/web/timeseries", "/api/nodes/nope",
]


def _get_and_head(
    client: falcon.testing.TestClient, path: str
) -> tuple[falcon.testing.Result, falcon.testing.Result]:
    """A GET and a HEAD of one body: `/` carries a live uptime whose width can change between requests,
    so the pair is retaken until a GET before and after the HEAD have the same length."""
    for _ in range(5):
        get = client.simulate_get(path)
        head = client.simulate_head(path)
        if len(client.simulate_get(path).content) == len(get.content):
            return get, head
    pytest.fail(f"the body of {path} kept changing length")


@pytest.mark.parametrize("path", AGGREGATOR_GETS)
def test_head_answers_as_get_without_a_body_on_the_aggregator(world: World, path: str) -> None:
    """HEAD used to be 405 on every route."""
    get, head = _get_and_head(world.client, path)
    assert head.status_code == get.status_code
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.content == b""
    if "gzip" not in get.headers.get("content-encoding", ""):
        assert int(head.headers["content-length"]) == len(get.content)


@pytest.mark.parametrize("path", ["/", "/healthz", "/metrics", "/nope"])
def test_head_answers_as_get_without_a_body_on_the_exporter(
    exporter: falcon.testing.TestClient, path: str
) -> None:
    get, head = _get_and_head(exporter, path)
    assert head.status_code == get.status_code
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.content == b""
    assert int(head.headers["content-length"]) == len(get.content)


def test_head_over_a_real_server_sends_no_body(world: World) -> None:
    """On the wire: the connection stays usable after HEAD, so no stray body bytes were sent."""
    with ServerHandle(world.app, host="127.0.0.1", port=0) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            conn.request("HEAD", "/api/pods")
            head = conn.getresponse()
            assert head.status == 200 and int(head.getheader("Content-Length") or 0) > 100
            assert head.read() == b""
            conn.request("GET", "/api/pods")
            get = conn.getresponse()
            assert get.status == 200 and len(get.read()) == int(head.getheader("Content-Length") or 0)
        finally:
            conn.close()


def test_window_seconds_is_a_float_whether_defaulted_or_given() -> None:
    """An app built with an integer default window served `"window_seconds": 300` and `60.0` when given."""
    clock = Clock(1_700_000_000.0)
    stats = AggregatorStats()
    store = Store(clock=clock, stats=stats, interval=5)  # integers, as a caller may well pass them
    app = aggregator_app(
        store=store, status=FakeStatus(), federation=FederationCache(store=store, stats=stats, version="x"),
        stats=stats, default_window=300, started_at=time.time(), version="x",
    )
    from aggregator.model import NodeReading

    store.ingest(NodeReading("n1", clock.now, {"cpu_usage_cores": 1.0}))
    client = falcon.testing.TestClient(app)
    defaulted = client.simulate_get("/api/nodes/n1/timeseries")
    given = client.simulate_get("/api/nodes/n1/timeseries", query_string="window=60")
    assert '"window_seconds":300.0' in defaulted.text
    assert '"window_seconds":60.0' in given.text
    assert type(defaulted.json["window_seconds"]) is type(given.json["window_seconds"]) is float


@pytest.mark.parametrize(
    ("millicores", "text"),
    [
        (1000, "1 core"),  # was "1 cores"
        (999.6, "1 core"),
        (1500, "1.5 cores"),
        (250, "0.25 cores"),
        (0, "0 cores"),
        (2_000_000, "2000 cores"),  # was "2e+03 cores" (a 1000-node cluster's sum)
        (1_234_000, "1234 cores"),
        (0.01, "0.00001 cores"),  # was "1e-05 cores"
    ],
)
def test_human_cores(millicores: float, text: str) -> None:
    assert human.cores(millicores) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1 KiB"),
        (1000 * 1024, "1000 KiB"),  # was "1e+03 KiB"
        (1010 * 2**20, "1010 MiB"),
        (2.53 * 2**30, "2.53 GiB"),
        (None, None),
        (float("nan"), None),
    ],
)
def test_human_sizes(value: float | None, text: str | None) -> None:
    assert human.size(value) == text
    assert human.rate(value) == (None if text is None else f"{text}/s")


def test_human_forms_in_a_document(world: World) -> None:
    db = world.client.simulate_get("/api/pods/db-0", query_string="namespace=shop").json
    assert db["cpu_millicores"] == 1000 and db["human"]["cpu"] == "1 core"
