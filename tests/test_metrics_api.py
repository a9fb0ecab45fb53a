"""The Resource Metrics API (metrics.k8s.io) app through falcon.testing: shapes, units, selectors, errors."""

from __future__ import annotations

from collections.abc import Mapping

import falcon.testing
import pytest

from aggregator.metricsapi import quantity, selectors
from aggregator.metricsapi.app import create_metrics_app
from aggregator.metricsapi.metadata import LabelIndex
from aggregator.model import ContainerReading, NodeReading, PodReading
from aggregator.stats import AggregatorStats
from aggregator.store.store import Store

NOW = 1_700_000_000.0
V1B1 = "/apis/metrics.k8s.io/v1beta1"


class FixedLabels:
    def __init__(self, pods: Mapping[tuple[str, str], Mapping[str, str]],
                 nodes: Mapping[str, Mapping[str, str]]) -> None:
        self._pods, self._nodes = pods, nodes

    def pod(self, namespace: str, name: str) -> Mapping[str, str]:
        return self._pods.get((namespace, name), {})

    def node(self, name: str) -> Mapping[str, str]:
        return self._nodes.get(name, {})


def _container(name: str, cores: float | None, memory: float | None) -> ContainerReading:
    values = {}
    if cores is not None:
        values["cpu_usage_cores"] = cores
    if memory is not None:
        values["memory_working_set_bytes"] = memory
    return ContainerReading(name=name, values=values)


def _pod(ns: str, name: str, *containers: ContainerReading) -> PodReading:
    return PodReading(namespace=ns, pod=name, uid=f"uid-{ns}-{name}", values={"cpu_usage_cores": 0.5},
                      containers=containers)


@pytest.fixture
def store() -> Store:
    clock = lambda: NOW  # noqa: E731
    store = Store(clock=clock, interval=5.0)
    pods = (
        _pod("shop", "web-1", _container("app", 0.25, 64 << 20), _container("sidecar", 0.0012345, 4096 * 3)),
        _pod("shop", "web-2", _container("app", 0.5, 100 << 20)),
        _pod("shop", "db-0", _container("db", 1.0, 1 << 30)),
        _pod("kube-system", "dns", _container("coredns", 0.002, 20 << 20)),
        _pod("shop", "new-0", _container("app", None, 1 << 20)),  # CPU not measured yet: left out
        _pod("shop", "bare-0"),  # no containers at all: left out
    )
    store.ingest(NodeReading(node="node-a", timestamp=NOW - 10,
                             values={"cpu_usage_cores": 1.5, "memory_used_bytes": 2 << 30}, pods=pods))
    store.ingest(NodeReading(node="node-a", timestamp=NOW - 5,
                             values={"cpu_usage_cores": 1.75, "memory_used_bytes": 3 << 30}, pods=pods))
    store.ingest(NodeReading(node="node-b", timestamp=NOW - 2,
                             values={"cpu_usage_cores": 0.000000001, "memory_used_bytes": 1500}))
    return store


@pytest.fixture
def client(store: Store) -> falcon.testing.TestClient:
    labels = FixedLabels(
        pods={("shop", "web-1"): {"app": "web", "tier": "front"}, ("shop", "web-2"): {"app": "web"},
              ("shop", "db-0"): {"app": "db"}},
        nodes={"node-a": {"zone": "a"}, "node-b": {"zone": "b"}},
    )
    app = create_metrics_app(store=store, labels=labels, stats=AggregatorStats(), default_window=5.0,
                             clock=lambda: NOW)
    return falcon.testing.TestClient(app)


@pytest.mark.parametrize(("nanocores", "text"), [
    (0, "0"), (1, "1n"), (123456789, "123456789n"), (1_500_000, "1500u"), (2_000_000, "2m"),
    (1_000_000_000, "1"), (1_234_000, "1234u"), (250_000_000, "250m"), (10_000_000_000, "10"),
    (12_000_000_000_000, "12k"),
])
def test_cpu_quantities_are_canonical(nanocores: int, text: str) -> None:
    assert quantity.decimal_quantity(nanocores, -9) == text


@pytest.mark.parametrize(("value", "text"), [
    (0, "0"), (512, "512"), (1023, "1023"), (1024, "1Ki"), (4096 * 3, "12Ki"), (1 << 20, "1Mi"),
    (1500, "1500"), (2000, "2000"), (3 << 30, "3Gi"), (1025 * 1024, "1025Ki"),
])
def test_memory_quantities_are_canonical(value: int, text: str) -> None:
    assert quantity.binary_quantity(value) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (15, "15s"), (10.062, "10.062s"), (0, "0s"), (0.25, "250ms"), (60.5, "1m0.5s"), (3723, "1h2m3s"),
])
def test_durations_as_go_prints_them(seconds: float, text: str) -> None:
    assert quantity.go_duration(seconds) == text


def test_discovery_documents(client: falcon.testing.TestClient) -> None:
    for version in ("v1beta1", "v1"):
        doc = client.simulate_get(f"/apis/metrics.k8s.io/{version}").json
        assert doc["kind"] == "APIResourceList" and doc["groupVersion"] == f"metrics.k8s.io/{version}"
        assert {(r["name"], r["namespaced"], r["kind"], tuple(r["verbs"])) for r in doc["resources"]} == {
            ("nodes", False, "NodeMetrics", ("get", "list")), ("pods", True, "PodMetrics", ("get", "list"))}
    group = client.simulate_get("/apis/metrics.k8s.io").json
    assert group["preferredVersion"]["version"] == "v1beta1"
    assert [v["version"] for v in group["versions"]] == ["v1beta1", "v1"]
    assert client.simulate_get("/apis").json["groups"][0]["name"] == "metrics.k8s.io"
    aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    refused = client.simulate_get("/apis", headers={"Accept": aggregated})
    assert refused.status_code == 406 and refused.json["reason"] == "NotAcceptable"
    both = client.simulate_get("/apis", headers={"Accept": aggregated + ",application/json"})
    assert both.status_code == 200 and both.json["kind"] == "APIGroupList"


def test_node_list_shape_units_and_window(client: falcon.testing.TestClient) -> None:
    doc = client.simulate_get(f"{V1B1}/nodes").json
    assert doc["kind"] == "NodeMetricsList" and doc["apiVersion"] == "metrics.k8s.io/v1beta1"
    assert doc["metadata"] == {}
    a, b = doc["items"]
    # timestamp: the aggregator's clock when the sample arrived (one time base with the JSON API), not the
    # exporter's NOW - 5; window: the exporter's own interval between its last two snapshots
    assert a == {"metadata": {"name": "node-a", "creationTimestamp": "2023-11-14T22:13:20Z",
                              "labels": {"zone": "a"}},
                 "timestamp": "2023-11-14T22:13:20Z", "window": "5s",
                 "usage": {"cpu": "1750m", "memory": "3Gi"}}
    # a first reading has no interval of its own: the scrape interval stands in
    assert b["usage"] == {"cpu": "1n", "memory": "1500"} and b["window"] == "5s"


def test_single_node_and_not_found_status(client: falcon.testing.TestClient) -> None:
    one = client.simulate_get("/apis/metrics.k8s.io/v1/nodes/node-a").json
    assert one["kind"] == "NodeMetrics" and one["apiVersion"] == "metrics.k8s.io/v1"
    assert one["usage"]["cpu"] == "1750m"
    missing = client.simulate_get(f"{V1B1}/nodes/nope")
    assert missing.status_code == 404
    assert missing.json == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": 'nodemetrics.metrics.k8s.io "nope" not found', "reason": "NotFound",
                            "details": {"name": "nope", "group": "metrics.k8s.io", "kind": "nodemetrics"},
                            "code": 404}


def test_pod_lists_leave_out_incomplete_pods(client: falcon.testing.TestClient) -> None:
    doc = client.simulate_get(f"{V1B1}/pods").json
    assert doc["kind"] == "PodMetricsList"
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in doc["items"]] == [
        ("kube-system", "dns"), ("shop", "db-0"), ("shop", "web-1"), ("shop", "web-2")]
    web1 = doc["items"][2]
    assert web1["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert web1["containers"] == [{"name": "app", "usage": {"cpu": "250m", "memory": "64Mi"}},
                                  {"name": "sidecar", "usage": {"cpu": "1234500n", "memory": "12Ki"}}]
    assert web1["timestamp"] == "2023-11-14T22:13:20Z" and web1["window"] == "5s"
    assert "kind" not in web1 and "apiVersion" not in web1


def test_namespaced_pods_and_selectors(client: falcon.testing.TestClient) -> None:
    def names(path: str, **params: str) -> list[str]:
        resp = client.simulate_get(path, params=params)
        assert resp.status_code == 200, resp.text
        return [p["metadata"]["name"] for p in resp.json["items"]]

    assert names(f"{V1B1}/namespaces/shop/pods") == ["db-0", "web-1", "web-2"]
    assert names(f"{V1B1}/namespaces/shop/pods", labelSelector="app=web") == ["web-1", "web-2"]
    selector = "app in (web,db),tier!=front"
    assert names(f"{V1B1}/namespaces/shop/pods", labelSelector=selector) == ["db-0", "web-2"]
    assert names(f"{V1B1}/namespaces/shop/pods", labelSelector="!tier") == ["db-0", "web-2"]
    assert names(f"{V1B1}/pods", labelSelector="tier") == ["web-1"]
    assert names(f"{V1B1}/pods", fieldSelector="metadata.namespace=kube-system") == ["dns"]
    assert names(f"{V1B1}/pods", fieldSelector="metadata.namespace!=kube-system,metadata.name!=db-0") == [
        "web-1", "web-2"]
    assert names(f"{V1B1}/namespaces/kube-system/pods", labelSelector="app=web") == []
    nodes = client.simulate_get(f"{V1B1}/nodes", params={"labelSelector": "zone=b"}).json["items"]
    assert [n["metadata"]["name"] for n in nodes] == ["node-b"]
    by_name = {"fieldSelector": "metadata.name=node-a"}
    nodes = client.simulate_get(f"{V1B1}/nodes", params=by_name).json["items"]
    assert [n["metadata"]["name"] for n in nodes] == ["node-a"]


@pytest.mark.parametrize("params", [{"labelSelector": "app in (web"}, {"labelSelector": "a=b=c"},
                                    {"fieldSelector": "spec.nodeName=x"}, {"fieldSelector": "name"}])
def test_bad_selectors_are_bad_request_status(client: falcon.testing.TestClient,
                                              params: dict[str, str]) -> None:
    resp = client.simulate_get(f"{V1B1}/pods", params=params)
    assert resp.status_code == 400
    assert resp.json["kind"] == "Status" and resp.json["reason"] == "BadRequest" and resp.json["code"] == 400


def test_single_pod_and_incomplete_pod_is_not_found(client: falcon.testing.TestClient) -> None:
    pod = client.simulate_get(f"{V1B1}/namespaces/shop/pods/web-2").json
    assert pod["kind"] == "PodMetrics" and pod["metadata"]["namespace"] == "shop"
    assert pod["containers"] == [{"name": "app", "usage": {"cpu": "500m", "memory": "100Mi"}}]
    for name in ("new-0", "bare-0", "nope"):
        resp = client.simulate_get(f"{V1B1}/namespaces/shop/pods/{name}")
        assert resp.status_code == 404
        assert resp.json["message"] == f'podmetrics.metrics.k8s.io "{name}" not found'
    assert client.simulate_get(f"{V1B1}/namespaces/other/pods/web-2").status_code == 404


def test_unknown_paths_and_methods_are_status(client: falcon.testing.TestClient) -> None:
    resp = client.simulate_get(f"{V1B1}/deployments")
    assert resp.status_code == 404 and resp.json["kind"] == "Status" and resp.json["reason"] == "NotFound"
    resp = client.simulate_post(f"{V1B1}/nodes")
    assert resp.status_code == 405 and resp.json["reason"] == "MethodNotAllowed"
    assert client.simulate_get("/healthz").text == "ok"


def test_label_selector_parser_edge_cases() -> None:
    sel = selectors.parse_labels("a.b/c-d = x , e notin ( y , z )")
    assert sel is not None
    assert sel.matches({"a.b/c-d": "x"}) and not sel.matches({"a.b/c-d": "x", "e": "y"})
    assert selectors.parse_labels("") is None and selectors.parse_fields("  ") is None
    with pytest.raises(selectors.SelectorError):
        selectors.parse_labels("app=web,")


def test_label_index_follows_list_and_events() -> None:
    index = LabelIndex()
    index.replace([{"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}}},
                   {"metadata": {"namespace": "ns"}}])  # no name: ignored
    assert index.get("ns", "p") == {"app": "web"} and len(index) == 1
    index.apply("MODIFIED", {"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "api"}}})
    assert index.get("ns", "p") == {"app": "api"}
    index.apply("DELETED", {"metadata": {"name": "p", "namespace": "ns"}})
    assert index.get("ns", "p") == {}


def test_rendered_containers_follow_each_new_reading(store: Store, client: falcon.testing.TestClient) -> None:
    """The per-reading cache of rendered containers never serves a previous scrape's figures."""
    first = client.simulate_get(f"{V1B1}/namespaces/shop/pods/web-2").json["containers"]
    assert client.simulate_get(f"{V1B1}/pods").json["items"][3]["containers"] == first  # cached, same
    store.ingest(NodeReading(node="node-a", timestamp=NOW - 1, values={"cpu_usage_cores": 1.0,
                                                                         "memory_used_bytes": 1 << 30},
                             pods=(_pod("shop", "web-2", _container("app", 0.75, 50 << 20)),)))
    assert client.simulate_get(f"{V1B1}/namespaces/shop/pods/web-2").json["containers"] == [
        {"name": "app", "usage": {"cpu": "750m", "memory": "50Mi"}}]
    items = {p["metadata"]["name"]: p for p in client.simulate_get(f"{V1B1}/pods").json["items"]}
    assert items["web-2"]["containers"][0]["usage"]["cpu"] == "750m"


def test_list_items_are_the_single_objects_and_follow_label_changes(store: Store) -> None:
    """List items come from cached byte fragments; they must equal what a single GET builds."""
    index = LabelIndex()
    index.replace([{"metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}}}])

    class IndexLabels:
        def pod(self, namespace: str, name: str) -> Mapping[str, str]:
            return index.get(namespace, name)

        def node(self, name: str) -> Mapping[str, str]:
            return {}

    client = falcon.testing.TestClient(create_metrics_app(store=store, labels=IndexLabels(),
                                                          stats=AggregatorStats(), default_window=5.0,
                                                          clock=lambda: NOW))
    for _ in range(2):  # rendered, then from the cache
        for item in client.simulate_get(f"{V1B1}/pods").json["items"]:
            meta = item["metadata"]
            single = client.simulate_get(f"{V1B1}/namespaces/{meta['namespace']}/pods/{meta['name']}").json
            assert {k: v for k, v in single.items() if k not in ("kind", "apiVersion")} == item
    index.apply("MODIFIED", {"metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "api"}}})
    items = client.simulate_get(f"{V1B1}/pods", params={"labelSelector": "app=api"}).json["items"]
    assert [(i["metadata"]["name"], i["metadata"]["labels"]) for i in items] == [("web-1", {"app": "api"})]
