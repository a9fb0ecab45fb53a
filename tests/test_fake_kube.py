"""The fake API server, driven through the real kubernetes client and the real kubectl binary."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator

import pytest
from kubernetes import client, watch

from tests.kube import FakeKube, objects
from tests.support import require_tool, wait_until


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube(bookmark_interval=0.2) as fake:
        yield fake


@pytest.fixture
def core(kube: FakeKube) -> Iterator[client.CoreV1Api]:
    with kube.api_client() as api:
        yield client.CoreV1Api(api)


def _names(items: list) -> list[str]:
    return [item.metadata.name for item in items]


def test_list_deserializes_into_models_and_pages(kube: FakeKube, core: client.CoreV1Api) -> None:
    for i in range(5):
        kube.create(objects.pod(f"p{i}", "ns1", node="n1"))
    kube.create(objects.pod("other", "ns2", node="n1"))

    first = core.list_namespaced_pod("ns1", limit=2)
    assert isinstance(first, client.V1PodList)
    assert isinstance(first.items[0], client.V1Pod)
    assert _names(first.items) == ["p0", "p1"]
    assert first.metadata.remaining_item_count == 3
    assert int(first.metadata.resource_version) == kube.resource_version
    second = core.list_namespaced_pod("ns1", limit=2, _continue=first.metadata._continue)
    third = core.list_namespaced_pod("ns1", limit=2, _continue=second.metadata._continue)
    assert _names(second.items) + _names(third.items) == ["p2", "p3", "p4"]
    assert not third.metadata._continue
    assert _names(core.list_pod_for_all_namespaces().items) == ["p0", "p1", "p2", "p3", "p4", "other"]


def test_get_and_not_found_status(kube: FakeKube, core: client.CoreV1Api) -> None:
    created = kube.create(objects.pod("p", "ns1", node="n1"))
    pod = core.read_namespaced_pod("p", "ns1")
    assert pod.metadata.uid == created["metadata"]["uid"]
    assert pod.metadata.generation == 1
    assert pod.metadata.creation_timestamp is not None
    with pytest.raises(client.ApiException) as err:
        core.read_namespaced_pod("missing", "ns1")
    assert err.value.status == 404
    body = json.loads(err.value.body)
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "NotFound", 404)
    assert body["message"] == 'pods "missing" not found'


def test_watch_sees_added_modified_deleted_live(kube: FakeKube, core: client.CoreV1Api) -> None:
    rv = core.list_namespaced_pod("ns1").metadata.resource_version

    def writer() -> None:
        wait_until(lambda: any(c.verb == "watch" for c in kube.calls), timeout=10, message="watch opened")
        pod = kube.create(objects.pod("p", "ns1", node="n1"))
        pod["metadata"]["labels"] = {"changed": "yes"}
        kube.update(pod)
        kube.delete("v1", "Pod", "p", "ns1")

    thread = threading.Thread(target=writer)
    thread.start()
    seen = []
    try:
        for event in watch.Watch().stream(core.list_namespaced_pod, "ns1", resource_version=rv,
                                          timeout_seconds=30):
            assert isinstance(event["object"], client.V1Pod)
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                break
    finally:
        thread.join(timeout=10)
    assert seen == [("ADDED", "p"), ("MODIFIED", "p"), ("DELETED", "p")]


def test_kubectl_get_prints_created_objects(kube: FakeKube, tmp_path) -> None:
    kubectl = require_tool("kubectl")
    kube.create(objects.node("node-a"))
    dep = kube.create(objects.deployment("web", "shop"))
    rs = kube.create(objects.replicaset("web-1", "shop", deployment=dep))
    kube.create(objects.pod("web-1-x", "shop", node="node-a", owner=rs))
    kube.create(objects.endpoints("k8s-monitor-exporter", "k8s-monitor", addresses=[("10.1.2.3", "node-a")]))

    def run(*args: str) -> str:
        result = subprocess.run([kubectl, "--kubeconfig", str(kube.kubeconfig), *args],
                                capture_output=True, text=True, timeout=60, check=False,
                                env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
        assert result.returncode == 0, result.stderr
        return result.stdout

    out = run("get", "nodes,pods,endpoints", "-A")
    for expected in ("node/node-a", "pod/web-1-x", "endpoints/k8s-monitor-exporter", "10.1.2.3:9100"):
        assert expected in out
    assert "web" in run("get", "deployments", "-A")
    assert _names_json(run("get", "pods", "-A", "-o", "json")) == ["web-1-x"]


def _names_json(text: str) -> list[str]:
    return [item["metadata"]["name"] for item in json.loads(text)["items"]]
