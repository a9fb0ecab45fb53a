"""Delegated authentication and authorization of the metrics API, against the fake API server's
ConfigMap, TokenReview and SubjectAccessReview: each bad credential is rejected, and how is asserted."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from aggregator.config import load
from aggregator.metricsapi.auth import attributes
from aggregator.model import ContainerReading, NodeReading, PodReading
from aggregator.service import Aggregator
from tests.kube import FakeKube
from tests.kube.pki import CertificateAuthority
from tests.support.metrics_cluster import register_apiservices

PODS = "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods"
REJECTED = (requests.exceptions.SSLError, requests.exceptions.ConnectionError)


class Env:
    def __init__(self, kube: FakeKube, aggregator: Aggregator, tmp: Path) -> None:
        self.kube, self.aggregator, self.tmp = kube, aggregator, tmp
        assert aggregator.metrics_api is not None
        self.url = aggregator.metrics_api.url
        agg = kube.aggregation
        self.front_proxy = (agg.client_cert_file, agg.client_key_file)
        self.served = tmp / "served.crt"  # the listener's self-signed certificate: verified, not skipped
        self.served.write_bytes(aggregator.metrics_api.server.certificate)

    def cert(self, ca: CertificateAuthority, name: str, **kw: Any) -> tuple[str, str]:
        return ca.issue(name, **kw).write(self.tmp, f"{name}-{time.monotonic_ns()}")

    def get(self, path: str, *, cert: tuple[str, str] | None = None,
            headers: dict[str, str] | None = None, token: str | None = None) -> requests.Response:
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        return requests.get(f"{self.url}{path}", cert=cert, headers=h, verify=str(self.served),
                            timeout=10)

    def reviews(self, kind: str) -> list[dict]:
        return [r for r in self.kube.aggregation.reviews if r.get("kind") == kind]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with FakeKube(aggregation=True) as kube:
        kube.create(kube.aggregation.authentication_configmap())
        settings = load(["--listen", "127.0.0.1:0", "--targets", "127.0.0.1:9", "--metrics-api-listen",
                         "127.0.0.1:0", "--kubeconfig", str(kube.kubeconfig)], environ={})
        with Aggregator(settings, environ={}) as aggregator:
            pod = PodReading(namespace="shop", pod="web", uid="u1", containers=(
                ContainerReading("app", {"cpu_usage_cores": 0.2, "memory_working_set_bytes": 4 << 20}),))
            node = {"cpu_usage_cores": 1.0, "memory_used_bytes": 1 << 30}
            aggregator.store.ingest(NodeReading(node="n1", timestamp=time.time(), pods=(pod,), values=node))
            yield Env(kube, aggregator, tmp_path)


def _status(resp: requests.Response, code: int, reason: str) -> dict:
    assert resp.status_code == code, resp.text
    doc = resp.json()
    assert (doc["kind"], doc["code"], doc["reason"]) == ("Status", code, reason)
    return doc


def test_probes_are_open_everything_else_needs_credentials(env: Env) -> None:
    for probe in ("/healthz", "/livez", "/readyz"):
        assert env.get(probe).status_code == 200
    _status(env.get(PODS), 401, "Unauthorized")
    _status(env.get("/apis/metrics.k8s.io/v1beta1"), 401, "Unauthorized")
    assert env.reviews("SubjectAccessReview") == []


def test_front_proxy_headers_become_the_user_of_the_review(env: Env) -> None:
    resp = env.get(f"{PODS}/web", cert=env.front_proxy, headers={
        "X-Remote-User": "alice", "X-Remote-Group": "devs, system:authenticated",
        "X-Remote-Extra-Scopes": "read"})
    assert resp.status_code == 200 and resp.json()["metadata"]["name"] == "web"
    (review,) = env.reviews("SubjectAccessReview")
    assert review["spec"] == {"user": "alice", "groups": ["devs", "system:authenticated"],
                              "extra": {"scopes": ["read"]}, "uid": "",
                              "resourceAttributes": {"verb": "get", "group": "metrics.k8s.io",
                                                     "version": "v1beta1", "resource": "pods",
                                                     "namespace": "shop", "name": "web"}}


def test_spoofed_headers_without_a_certificate_are_ignored(env: Env) -> None:
    _status(env.get(PODS, headers={"X-Remote-User": "system:admin", "X-Remote-Group": "system:masters"}),
            401, "Unauthorized")
    # with a valid token beside them, the token's user is the one reviewed, never the header's
    env.kube.aggregation.token_users["t0ken"] = {"username": "bob", "groups": ["system:authenticated"]}
    assert env.get(PODS, token="t0ken", headers={"X-Remote-User": "system:admin"}).status_code == 200
    assert [r["spec"]["user"] for r in env.reviews("SubjectAccessReview")] == ["bob"]


def test_certificate_of_a_name_not_allowed_does_not_carry_headers(env: Env) -> None:
    agg = env.kube.aggregation
    mallory = env.cert(agg.front_proxy_ca, "mallory")
    _status(env.get(PODS, cert=mallory, headers={"X-Remote-User": "system:admin"}), 401, "Unauthorized")
    assert env.reviews("SubjectAccessReview") == []


def test_foreign_ca_and_expired_certificates_are_refused_at_the_handshake(env: Env) -> None:
    foreign = env.cert(CertificateAuthority("front-proxy-ca"), "front-proxy-client")  # same names, other key
    with pytest.raises(REJECTED):
        env.get(PODS, cert=foreign, headers={"X-Remote-User": "system:admin"}).raise_for_status()
    expired = env.cert(env.kube.aggregation.front_proxy_ca, "front-proxy-client", expired=True)
    with pytest.raises(REJECTED):
        env.get(PODS, cert=expired, headers={"X-Remote-User": "system:admin"}).raise_for_status()
    # the Kubernetes client CA is not trusted for request headers either
    client_ca_cert = env.cert(env.kube.aggregation.client_ca, "front-proxy-client")
    with pytest.raises(REJECTED):
        env.get(PODS, cert=client_ca_cert, headers={"X-Remote-User": "system:admin"}).raise_for_status()
    assert env.reviews("SubjectAccessReview") == []


def test_tokens_are_reviewed_and_cached(env: Env) -> None:
    env.kube.aggregation.token_users["good"] = {"username": "system:serviceaccount:kube-system:hpa",
                                                "groups": ["system:serviceaccounts"], "uid": "42"}
    for _ in range(3):
        assert env.get(PODS, token="good").status_code == 200
    assert len(env.reviews("TokenReview")) == 1  # cached for 10 s
    assert len(env.reviews("SubjectAccessReview")) == 1
    _status(env.get(PODS, token="bad"), 401, "Unauthorized")
    _status(env.get(PODS, headers={"Authorization": "Basic Zm9vOmJhcg=="}), 401, "Unauthorized")


def test_denied_reviews_are_forbidden_status(env: Env) -> None:
    agg = env.kube.aggregation
    agg.token_users["t"] = {"username": "eve", "groups": ["system:authenticated"]}
    agg.authorize = lambda spec: (spec["user"] != "eve", "no RBAC rule")
    doc = _status(env.get(PODS, token="t"), 403, "Forbidden")
    assert doc["message"] == ('pods.metrics.k8s.io is forbidden: User "eve" cannot list resource "pods" in '
                              'API group "metrics.k8s.io" in the namespace "shop": no RBAC rule')
    doc = _status(env.get("/apis/metrics.k8s.io/v1/nodes/n1", token="t"), 403, "Forbidden")
    assert 'cannot get resource "nodes"' in doc["message"] and "cluster scope" in doc["message"]
    doc = _status(env.get("/apis", token="t"), 403, "Forbidden")
    assert doc["message"].startswith('forbidden: User "eve" cannot get path "/apis"')
    headers_user = env.get(PODS, cert=env.front_proxy, headers={"X-Remote-User": "eve"})
    _status(headers_user, 403, "Forbidden")


def test_an_unreachable_api_server_is_503_never_a_pass(env: Env) -> None:
    env.kube.aggregation.token_users["t"] = {"username": "bob"}
    env.kube.fail_next(1, 500, path_contains="tokenreviews")
    _status(env.get(PODS, token="t"), 503, "ServiceUnavailable")
    assert env.get(PODS, token="t").status_code == 200  # failures are not cached


def test_kubectl_denied_through_the_proxy(env: Env) -> None:
    """The whole path: kubectl -> fake API server -> front-proxy TLS -> our SubjectAccessReview -> 403."""
    register_apiservices(env.kube, env.aggregator.metrics_api.server.port)  # type: ignore[union-attr]
    env.kube.aggregation.authorize = lambda spec: (spec["user"] != "system:anonymous", "")
    result = subprocess.run(["kubectl", "--kubeconfig", str(env.kube.kubeconfig), "--cache-dir",
                             str(env.tmp / "cache"), "get", "--raw", PODS], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 1
    assert 'User "system:anonymous" cannot list resource "pods"' in result.stderr


def test_attributes_of_every_path() -> None:
    assert attributes("/apis/metrics.k8s.io/v1/pods") == {"resourceAttributes": {
        "verb": "list", "group": "metrics.k8s.io", "version": "v1", "resource": "pods"}}
    assert attributes("/apis/metrics.k8s.io/v1beta1/nodes/n1")["resourceAttributes"]["name"] == "n1"
    assert attributes("/apis/metrics.k8s.io/v1beta1") == {"nonResourceAttributes": {
        "path": "/apis/metrics.k8s.io/v1beta1", "verb": "get"}}
