"""`kubectl top`, `kubectl get --raw` and the HPA's request through the fake API server's aggregation layer,
answered by a real aggregator from real exporters measuring real cgroup pods; every figure is checked
against the raw metrics API, and the raw metrics API against the JSON API."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from fractions import Fraction

import pytest
from kubernetes import client

from tests.support import require, require_root, require_tool
from tests.support.cgroups import cgroups_writable
from tests.support.metrics_cluster import PODS, MetricsCluster, metrics_cluster, wait_complete

pytestmark = pytest.mark.root
_SUFFIX = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": Fraction(1),
           "k": Fraction(1000), "M": Fraction(10**6), "G": Fraction(10**9),
           "Ki": Fraction(1024), "Mi": Fraction(1 << 20), "Gi": Fraction(1 << 30)}
V1B1 = "/apis/metrics.k8s.io/v1beta1"


def quantity(text: str) -> Fraction:
    digits = text.rstrip("nuμmkMGKiT")
    return int(digits) * _SUFFIX[text[len(digits):]]


def milli(cpu: str) -> int:
    """kubectl's CPU column: MilliValue() rounds up."""
    return math.ceil(quantity(cpu) * 1000)


def mebi(memory: str) -> int:
    """kubectl's memory column: Value() / 2^20, rounded down."""
    return int(quantity(memory) // (1 << 20))


def table(stdout: str) -> list[list[str]]:
    lines = stdout.strip().splitlines()
    return [line.split() for line in lines[1:]]


@pytest.fixture(scope="module")
def cluster() -> Iterator[MetricsCluster]:
    require_root()
    require_tool("kubectl")
    ok, why = cgroups_writable()
    require(ok, why)
    with metrics_cluster("i12") as c:
        wait_complete(c)
        yield c


def raw(cluster: MetricsCluster, path: str) -> dict:
    return json.loads(cluster.kubectl("get", "--raw", path).stdout)


def test_discovery_through_the_aggregation_layer(cluster: MetricsCluster) -> None:
    groups = json.loads(cluster.kubectl("get", "--raw", "/apis").stdout)["groups"]
    metrics = next(g for g in groups if g["name"] == "metrics.k8s.io")
    assert {v["version"] for v in metrics["versions"]} == {"v1beta1", "v1"}
    assert cluster.kube.aggregation.discovery_fallbacks > 0  # kube-aggregator's 406 fallback taken
    for version in ("v1beta1", "v1"):
        doc = raw(cluster, f"/apis/metrics.k8s.io/{version}")
        assert doc["kind"] == "APIResourceList" and {r["name"] for r in doc["resources"]} == {"nodes", "pods"}
    assert raw(cluster, "/apis/metrics.k8s.io")["kind"] == "APIGroup"
    assert "metrics.k8s.io/v1beta1" in cluster.kubectl("api-versions").stdout.split()


# The JSON API rounds millicores to 3 decimals: a half-way value (98.4855 -> 98.486) differs by exactly
# 5e-4, which float subtraction makes a hair more.
HALF_A_THOUSANDTH = 5e-4 + 1e-9


def test_raw_paths_match_the_json_api(cluster: MetricsCluster) -> None:
    for version in ("v1beta1", "v1"):
        base = f"/apis/metrics.k8s.io/{version}"
        nodes = raw(cluster, f"{base}/nodes")
        assert nodes["kind"] == "NodeMetricsList" and len(nodes["items"]) == 2
        for item in nodes["items"]:
            name = item["metadata"]["name"]
            assert item["metadata"]["labels"]["zone"] == name[-1]
            ours = cluster.json(f"/api/nodes/{name}")
            cpu = float(quantity(item["usage"]["cpu"]) * 1000)
            assert cpu == pytest.approx(ours["cpu_millicores"], abs=HALF_A_THOUSANDTH)
            assert quantity(item["usage"]["memory"]) == ours["memory_bytes"]
            assert raw(cluster, f"{base}/nodes/{name}")["usage"] == item["usage"]
        pods = raw(cluster, f"{base}/pods")
        assert sorted((p["metadata"]["namespace"], p["metadata"]["name"]) for p in pods["items"]) == sorted(
            (s.namespace, s.name) for s in PODS)
        for spec in PODS:
            ours = cluster.json(f"/api/pods/{spec.name}", namespace=spec.namespace)
            by_name = {c["name"]: c for c in ours["containers"]}
            listed = f"{base}/namespaces/{spec.namespace}/pods"
            for path in (listed, f"{listed}/{spec.name}"):
                doc = raw(cluster, path)
                item = doc if doc["kind"] == "PodMetrics" else next(
                    p for p in doc["items"] if p["metadata"]["name"] == spec.name)
                assert item["metadata"]["labels"] == spec.labels
                assert [c["name"] for c in item["containers"]] == sorted(c.name for c in spec.containers)
                for container in item["containers"]:
                    mine = by_name[container["name"]]
                    cpu = float(quantity(container["usage"]["cpu"]) * 1000)
                    assert cpu == pytest.approx(mine["cpu_millicores"], abs=HALF_A_THOUSANDTH)
                    assert quantity(container["usage"]["memory"]) == mine["memory_bytes"]
    # the working set the test's processes hold is what is reported (to within the interpreter's pages)
    web1 = raw(cluster, f"{V1B1}/namespaces/shop/pods/web-1")
    app = next(c for c in web1["containers"] if c["name"] == "app")
    assert 24 <= mebi(app["usage"]["memory"]) <= 40


def test_kubectl_top_node(cluster: MetricsCluster) -> None:
    rows = table(cluster.kubectl("top", "node").stdout)
    expected = {i["metadata"]["name"]: i["usage"] for i in raw(cluster, f"{V1B1}/nodes")["items"]}
    assert {r[0] for r in rows} == set(expected)
    for name, cpu, cpu_pct, mem, mem_pct in rows:
        usage = expected[name]
        assert cpu == f"{milli(usage['cpu'])}m"
        assert cpu_pct == f"{milli(usage['cpu']) * 100 // 4000}%"  # allocatable 4 CPUs
        assert mem == f"{mebi(usage['memory'])}Mi"
        assert mem_pct == f"{int(quantity(usage['memory']) * 100 // (16 << 30))}%"
    one = table(cluster.kubectl("top", "node", "node-b").stdout)
    assert [r[0] for r in one] == ["node-b"] and one[0][1] == f"{milli(expected['node-b']['cpu'])}m"
    by_label = table(cluster.kubectl("top", "node", "-l", "zone=a").stdout)
    assert [r[0] for r in by_label] == ["node-a"]


def _pod_sums(cluster: MetricsCluster) -> dict[tuple[str, str], tuple[int, int]]:
    out = {}
    for item in raw(cluster, f"{V1B1}/pods")["items"]:
        cpu = sum(quantity(c["usage"]["cpu"]) for c in item["containers"])
        mem = sum(quantity(c["usage"]["memory"]) for c in item["containers"])
        out[(item["metadata"]["namespace"], item["metadata"]["name"])] = (math.ceil(cpu * 1000),
                                                                           int(mem // (1 << 20)))
    return out


def test_kubectl_top_pod_all_namespaces_and_selectors(cluster: MetricsCluster) -> None:
    sums = _pod_sums(cluster)
    rows = table(cluster.kubectl("top", "pod", "-A").stdout)
    assert {(r[0], r[1]): (r[2], r[3]) for r in rows} == {
        key: (f"{cpu}m", f"{mem}Mi") for key, (cpu, mem) in sums.items()}
    web = table(cluster.kubectl("top", "pod", "-n", "shop", "-l", "app=web").stdout)
    assert sorted(r[0] for r in web) == ["web-1", "web-2"]
    assert {r[0]: (r[1], r[2]) for r in web} == {
        name: (f"{sums[('shop', name)][0]}m", f"{sums[('shop', name)][1]}Mi") for name in ("web-1", "web-2")}
    one = table(cluster.kubectl("top", "pod", "-n", "shop", "db-0").stdout)
    assert one == [["db-0", f"{sums[('shop', 'db-0')][0]}m", f"{sums[('shop', 'db-0')][1]}Mi"]]


def test_kubectl_top_pod_containers(cluster: MetricsCluster) -> None:
    rows = table(cluster.kubectl("top", "pod", "-n", "shop", "--containers").stdout)
    expected = set()
    for item in raw(cluster, f"{V1B1}/namespaces/shop/pods")["items"]:
        for c in item["containers"]:
            expected.add((item["metadata"]["name"], c["name"], f"{milli(c['usage']['cpu'])}m",
                          f"{mebi(c['usage']['memory'])}Mi"))
    assert {tuple(r) for r in rows} == expected
    assert ("web-1", "sidecar") in {(r[0], r[1]) for r in rows}


@pytest.mark.parametrize(("column", "index"), [("cpu", 2), ("memory", 3)])
def test_kubectl_top_pod_sorted(cluster: MetricsCluster, column: str, index: int) -> None:
    rows = table(cluster.kubectl("top", "pod", "-A", f"--sort-by={column}").stdout)
    values = [int(r[index].rstrip("mMi")) for r in rows]
    assert values == sorted(values, reverse=True) and len(rows) == len(PODS)
    if column == "memory":
        assert rows[0][1] == "db-0"  # holds 48 MiB, the most


def test_not_found_through_the_proxy_is_a_status(cluster: MetricsCluster) -> None:
    result = cluster.kubectl("get", "--raw", f"{V1B1}/nodes/nope", check=False)
    assert result.returncode == 1
    assert 'nodemetrics.metrics.k8s.io "nope" not found' in result.stderr
    result = cluster.kubectl("top", "pod", "-n", "shop", "missing", check=False)
    assert result.returncode == 1 and "not found" in result.stderr


def test_hpa_request_pattern_through_the_kubernetes_client(cluster: MetricsCluster) -> None:
    """What the HPA's metrics client does: list the namespace's pods by the scale target's selector and
    sum each pod's containers."""
    before = len(cluster.kube.aggregation.proxied)
    with cluster.kube.api_client() as api:
        doc = client.CustomObjectsApi(api).list_namespaced_custom_object(
            "metrics.k8s.io", "v1beta1", "shop", "pods", label_selector="app=web")
    assert doc["kind"] == "PodMetricsList"
    per_pod = {i["metadata"]["name"]: sum(quantity(c["usage"]["cpu"]) for c in i["containers"])
               for i in doc["items"]}
    assert set(per_pod) == {"web-1", "web-2"}
    for name, cpu in per_pod.items():
        ours = cluster.json(f"/api/pods/{name}", namespace="shop")
        json_cpu = sum(c["cpu_millicores"] for c in ours["containers"])
        assert float(cpu * 1000) == pytest.approx(json_cpu, abs=2e-3)
    # the client's token: the proxy passed the authenticated user on
    proxied = cluster.kube.aggregation.proxied[before:]
    assert [(user, status) for _path, user, status in proxied] == [("tester", 200)]
