"""/metrics, /healthz and / through falcon.testing and a real waitress server on 127.0.0.1 port 0."""

from __future__ import annotations

import gzip
import subprocess
import threading

import falcon
import falcon.testing
import pytest
import requests
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from exporter.server import accepts_gzip, create_app
from exporter.snapshot import Snapshot
from k8smon_common.contract import NO_SAMPLE_YET
from k8smon_common.http_server import ServerHandle
from tests.support import require_tool
from tests.test_exporter_collector import golden_snapshot


class Holder:
    """What the sampler looks like to the server: a latest snapshot that can change."""

    def __init__(self, snapshot: Snapshot | None = None) -> None:
        self.snapshot = snapshot
        self.calls = 0

    def __call__(self) -> Snapshot | None:
        self.calls += 1
        return self.snapshot


@pytest.fixture
def holder() -> Holder:
    return Holder()


@pytest.fixture
def client(holder: Holder) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_app(latest=holder, node="worker-1"))


def test_healthz_503_until_the_first_snapshot(client: falcon.testing.TestClient, holder: Holder) -> None:
    resp = client.simulate_get("/healthz")
    assert resp.status_code == 503
    assert resp.json["status"] == "starting"
    holder.snapshot = golden_snapshot()
    resp = client.simulate_get("/healthz")
    assert resp.status_code == 200
    assert resp.json["status"] == "ok"


def test_metrics_before_and_after_the_first_snapshot(
    client: falcon.testing.TestClient, holder: Holder
) -> None:
    # No sample yet: 503 with a body the aggregator reads as "not ready yet" (a 200 without the sample
    # timestamp used to count as errors_total{source="parse"} there).
    resp = client.simulate_get("/metrics")
    assert resp.status_code == 503
    assert resp.text == f"{NO_SAMPLE_YET}\n" and resp.headers["content-type"].startswith("text/plain")
    holder.snapshot = golden_snapshot()
    resp = client.simulate_get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == CONTENT_TYPE_LATEST
    names = {f.name for f in text_string_to_metric_families(resp.text)}
    assert "k8smon_pod_cpu_usage_cores" in names and "k8smon_node_memory_total_bytes" in names


def test_metrics_rendered_once_per_snapshot() -> None:
    renders = []

    class CountingRegistry(CollectorRegistry):
        def collect(self):  # type: ignore[no-untyped-def]
            renders.append(1)
            return super().collect()

    holder = Holder(golden_snapshot())
    client = falcon.testing.TestClient(create_app(latest=holder, node="n", registry=CountingRegistry()))
    first = client.simulate_get("/metrics").content
    assert client.simulate_get("/metrics").content == first
    client.simulate_get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert len(renders) == 1
    holder.snapshot = golden_snapshot()  # a new snapshot object: rendered again
    client.simulate_get("/metrics")
    assert len(renders) == 2


def test_gzip_when_accepted(client: falcon.testing.TestClient, holder: Holder) -> None:
    holder.snapshot = golden_snapshot()
    plain = client.simulate_get("/metrics")
    zipped = client.simulate_get("/metrics", headers={"Accept-Encoding": "deflate, gzip;q=0.8"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["vary"]
    assert gzip.decompress(zipped.content) == plain.content
    assert len(zipped.content) < len(plain.content) / 3
    refused = client.simulate_get("/metrics", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, False), ("", False), ("gzip", True), ("br, GZIP", True), ("*", True), ("gzip;q=0", False),
     ("gzip; q=0.5", True), ("gzip;q=bad", False), ("deflate", False), ("x-gzip2", False)],
)
def test_accepts_gzip(header: str | None, expected: bool) -> None:
    assert accepts_gzip(header) is expected


def test_status_and_json_errors(client: falcon.testing.TestClient, holder: Holder) -> None:
    doc = client.simulate_get("/").json
    assert doc["node"] == "worker-1" and doc["sample"] is None and "/metrics" in doc["routes"]
    holder.snapshot = golden_snapshot()
    doc = client.simulate_get("/").json
    assert doc["sample"]["pods"] == 5 and doc["sample"]["kube_connected"] is True
    missing = client.simulate_get("/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/json")
    assert client.simulate_post("/metrics").status_code == 405


def test_unexpected_error_is_a_json_500(holder: Holder) -> None:
    def broken() -> Snapshot | None:
        raise RuntimeError("boom")

    client = falcon.testing.TestClient(create_app(latest=broken, node="n"))
    resp = client.simulate_get("/healthz")
    assert resp.status_code == 500
    assert resp.json["error"] == "internal_error" and "RuntimeError" in resp.json["description"]


def test_real_waitress_server_serves_and_promtool_accepts_it(holder: Holder) -> None:
    promtool = require_tool("promtool")
    holder.snapshot = golden_snapshot()
    with ServerHandle(create_app(latest=holder, node="worker-1"), host="127.0.0.1", port=0) as server:
        assert server.port != 0
        # Connection: close: an idle keep-alive socket holds waitress' loop until ServerHandle's stop timeout.
        close = {"Connection": "close"}
        with requests.get(f"{server.url}/metrics", headers=close, timeout=10) as resp:
            assert resp.status_code == 200
            assert resp.headers["Content-Encoding"] == "gzip"  # requests asks for gzip and decodes it
            body = resp.content
        with requests.get(f"{server.url}/healthz", headers=close, timeout=10) as health:
            assert health.status_code == 200
        # concurrent scrapes all get the same complete body
        bodies: list[bytes] = []
        lock = threading.Lock()

        def scrape() -> None:
            with requests.get(f"{server.url}/metrics", headers=close, timeout=10) as r, lock:
                bodies.append(r.content)

        threads = [threading.Thread(target=scrape) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert len(bodies) == 8 and all(b == body for b in bodies)
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                           timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip() == b"" and check.stderr.strip() == b"", check.stdout + check.stderr
