"""`--auth kubernetes` on the aggregator's HTTP listener and on the exporter (kube-rbac-proxy style):
bearer tokens by TokenReview, SubjectAccessReview for `get` on the path, probes open, POST ingest on its
own token."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from aggregator.config import load as load_aggregator
from aggregator.service import Aggregator
from exporter.config import load as load_exporter
from exporter.service import ExporterService
from k8smon_common.kube import KubeError
from tests.kube import FakeKube


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube(aggregation=True) as fake:
        fake.aggregation.token_users["reader"] = {"username": "system:serviceaccount:monitoring:prometheus",
                                                  "groups": ["system:serviceaccounts"]}
        fake.aggregation.token_users["nobody"] = {"username": "nobody"}
        fake.aggregation.authorize = lambda spec: (spec["user"] != "nobody", "no rule")
        yield fake


def _sar_paths(kube: FakeKube) -> list[tuple[str, str]]:
    return [(r["spec"]["user"], r["spec"]["nonResourceAttributes"]["path"]) for r in kube.aggregation.reviews
            if r["kind"] == "SubjectAccessReview"]


def test_aggregator_listener(kube: FakeKube) -> None:
    settings = load_aggregator(["--listen", "127.0.0.1:0", "--targets", "127.0.0.1:9", "--kubeconfig",
                                str(kube.kubeconfig), "--auth", "kubernetes", "--ingest-token",
                                "push-secret"], environ={})
    with Aggregator(settings, environ={}) as agg:
        url = agg.url
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200  # probes need nothing
        assert requests.get(f"{url}/readyz", timeout=10).status_code in (200, 503)
        resp = requests.get(f"{url}/api/nodes", timeout=10)
        assert resp.status_code == 401 and resp.json()["error"] == "unauthorized"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        bad = requests.get(f"{url}/metrics", headers={"Authorization": "Bearer bad"}, timeout=10)
        assert bad.status_code == 401
        for _ in range(3):
            ok = requests.get(f"{url}/api/nodes", headers={"Authorization": "Bearer reader"}, timeout=10)
            assert ok.status_code == 200
        denied = requests.get(f"{url}/metrics", headers={"Authorization": "Bearer nobody"}, timeout=10)
        assert denied.status_code == 403
        assert denied.json()["description"] == 'User "nobody" cannot get path "/metrics": no rule'
        assert _sar_paths(kube) == [("system:serviceaccount:monitoring:prometheus", "/api/nodes"),
                                    ("nobody", "/metrics")]  # cached: one review per token and path
        assert [r["spec"]["token"] for r in kube.aggregation.reviews if r["kind"] == "TokenReview"] == [
            "bad", "reader", "nobody"]
        # POST ingest answers with its own token check, not the Kubernetes one
        push = requests.post(f"{url}/api/nodes/n1/metrics", json={}, timeout=10,
                             headers={"Authorization": "Bearer wrong"})
        assert push.status_code == 401 and "TokenReview" not in push.text
        assert all(r["spec"].get("token") != "wrong" for r in kube.aggregation.reviews)


def test_review_failures_are_503_and_not_cached(kube: FakeKube) -> None:
    settings = load_aggregator(["--listen", "127.0.0.1:0", "--targets", "127.0.0.1:9", "--kubeconfig",
                                str(kube.kubeconfig), "--auth", "kubernetes"], environ={})
    with Aggregator(settings, environ={}) as agg:
        kube.fail_next(1, 500, path_contains="subjectaccessreviews")
        headers = {"Authorization": "Bearer reader"}
        assert requests.get(f"{agg.url}/api/pods", headers=headers, timeout=10).status_code == 503
        assert requests.get(f"{agg.url}/api/pods", headers=headers, timeout=10).status_code == 200


def test_auth_kubernetes_needs_an_api_server() -> None:
    settings = load_aggregator(["--listen", "127.0.0.1:0", "--targets", "127.0.0.1:9", "--auth",
                                "kubernetes"], environ={})
    with pytest.raises(KubeError, match="--auth kubernetes needs the API server"):
        Aggregator(settings, environ={})


def test_exporter_metrics_behind_auth(kube: FakeKube) -> None:
    settings = load_exporter(["--listen", "127.0.0.1:0", "--node-name", "n1", "--kubeconfig",
                              str(kube.kubeconfig), "--auth", "kubernetes", "--interval", "0.5"], {})
    with ExporterService(settings, environ={}) as exporter:
        url = exporter.url
        deadline = time.monotonic() + 20
        while requests.get(f"{url}/healthz", timeout=10).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
        assert requests.get(f"{url}/metrics", timeout=10).status_code == 401
        scrape = requests.get(f"{url}/metrics", headers={"Authorization": "Bearer reader"}, timeout=10)
        assert scrape.status_code == 200 and "k8smon_node_cpu_usage_cores" in scrape.text
        denied = requests.get(f"{url}/metrics", headers={"Authorization": "Bearer nobody"}, timeout=10)
        assert denied.status_code == 403
    assert ("system:serviceaccount:monitoring:prometheus", "/metrics") in _sar_paths(kube)
    # what deploy/overlays/auth binds (system:auth-delegator) is what is used
    reviews = {(c.verb, c.group, c.resource) for c in kube.calls if c.resource.endswith("reviews")}
    assert reviews == {("create", "authentication.k8s.io", "tokenreviews"),
                       ("create", "authorization.k8s.io", "subjectaccessreviews")}
