"""The pod index against the fake API server, through the real kubernetes client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import load
from exporter.podindex import PodIndex, api_client_from
from exporter.sampler import CountingErrors
from exporter.service import ExporterService
from tests.kube import FakeKube, objects
from tests.support import wait_until
from tests.test_exporter_cli import NODE_A, fixture_args

NODE = "n1"


def statefulset(name: str, namespace: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())}}


def web_pod(kube: FakeKube, *, node: str = NODE, name: str = "web-5d4f8-abcde", uid: str | None = None,
            namespace: str = "shop") -> dict:
    """A Deployment's pod: Deployment -> ReplicaSet -> Pod, as the controllers would leave them."""
    deploy = (kube.get("apps/v1", "Deployment", "web", namespace)
              or kube.create(objects.deployment("web", namespace)))
    rs = kube.get("apps/v1", "ReplicaSet", "web-5d4f8", namespace) or kube.create(
        objects.replicaset("web-5d4f8", namespace, deployment=deploy))
    containers = [objects.container("app", requests={"cpu": "250m", "memory": "128Mi"},
                                    limits={"cpu": "500m", "memory": "256Mi"}),
                  objects.container("sidecar", requests={"cpu": "50m", "memory": "32Mi"},
                                    limits={"cpu": "1", "memory": "1G"})]
    return kube.create(objects.pod(name, namespace, node=node, uid=uid, owner=rs, containers=containers))


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube(bookmark_interval=0.2) as fake:
        yield fake


@pytest.fixture
def index(kube: FakeKube) -> Iterator[tuple[PodIndex, CountingErrors]]:
    errors = CountingErrors()
    api = api_client_from(str(kube.kubeconfig), {})
    assert api is not None
    pod_index = PodIndex(node=NODE, api_client=api, errors=errors, backoff_initial=0.05, backoff_max=0.5)
    try:
        yield pod_index, errors
    finally:
        pod_index.stop()
        api.close()


def names(pod_index: PodIndex) -> set[str]:
    return {m.name for m in pod_index.pods().values()}


def test_names_owners_resources_and_only_this_node(
    kube: FakeKube, index: tuple[PodIndex, CountingErrors]
) -> None:
    pod_index, errors = index
    web = web_pod(kube)
    db = kube.create(objects.pod("db-0", "shop", node=NODE,
                                 owner=objects.owner_ref(statefulset("db", "shop"))))
    agent = kube.create(objects.pod("agent-x", "monitoring", node=NODE, host_network=True,
                                    owner=objects.owner_ref({"apiVersion": "apps/v1", "kind": "DaemonSet",
                                                             "metadata": {"name": "agent", "uid": "d1"}})))
    bare = kube.create(objects.pod("debug", "default", node=NODE))
    kube.create(objects.pod("elsewhere", "shop", node="n2"))
    pod_index.start()
    wait_until(lambda: pod_index.connected and len(pod_index.pods()) == 4, timeout=20,
               message="the index lists this node's four pods")
    meta = pod_index.get(web["metadata"]["uid"])
    assert meta is not None
    assert (meta.namespace, meta.name, meta.owner_kind, meta.owner_name, meta.deployment) == (
        "shop", "web-5d4f8-abcde", "Deployment", "web", "web")
    assert (meta.cpu_request_cores, meta.cpu_limit_cores) == (0.3, 1.5)
    assert (meta.memory_request_bytes, meta.memory_limit_bytes) == (160 * 2**20, 256 * 2**20 + 10**9)
    db_meta = pod_index.get(db["metadata"]["uid"])
    assert db_meta is not None and (db_meta.owner_kind, db_meta.owner_name, db_meta.deployment) == (
        "StatefulSet", "db", "")
    agent_meta = pod_index.get(agent["metadata"]["uid"])
    assert agent_meta is not None and agent_meta.host_network and agent_meta.owner_kind == "DaemonSet"
    bare_meta = pod_index.get(bare["metadata"]["uid"])
    assert bare_meta is not None and bare_meta.owner_kind == ""
    assert "elsewhere" not in names(pod_index)
    assert errors.counts() == {}
    # least privilege: pods list/watch with the node's field selector, replicasets by GET only
    verbs = {(c.verb, c.resource) for c in kube.calls if c.resource}
    assert verbs <= {("list", "pods"), ("watch", "pods"), ("get", "replicasets")}, verbs
    assert all("spec.nodeName%3Dn1" in c.path or "spec.nodeName=n1" in c.path
               for c in kube.calls if c.resource == "pods")


def test_watch_events_add_modify_delete(kube: FakeKube, index: tuple[PodIndex, CountingErrors]) -> None:
    pod_index, _ = index
    pod_index.start()
    wait_until(lambda: pod_index.connected, timeout=20, message="index connected")
    pod = web_pod(kube)
    uid = pod["metadata"]["uid"]
    wait_until(lambda: pod_index.get(uid), timeout=20, message="ADDED pod appears")
    pod["spec"]["hostNetwork"] = True
    kube.update(pod)
    wait_until(lambda: pod_index.get(uid).host_network, timeout=20, message="MODIFIED pod updated")
    kube.delete("v1", "Pod", pod["metadata"]["name"], "shop")
    wait_until(lambda: pod_index.get(uid) is None, timeout=20, message="DELETED pod leaves")
    gets = [c for c in kube.calls if c.resource == "replicasets"]
    assert len(gets) == 1, "the ReplicaSet lookup is cached"


def test_dropped_watch_resumes_from_the_last_resource_version(
    kube: FakeKube, index: tuple[PodIndex, CountingErrors]
) -> None:
    pod_index, _ = index
    web_pod(kube)
    pod_index.start()
    wait_until(lambda: len(pod_index.pods()) == 1, timeout=20, message="first list")
    for i in range(3):
        kube.drop_watches()
        kube.create(objects.pod(f"later-{i}", "default", node=NODE))
        wait_until(lambda i=i: f"later-{i}" in names(pod_index), timeout=20,
                   message=f"pod created after drop {i} arrives through the resumed watch")
    assert pod_index.relists == 1, "a dropped watch resumes; it does not relist"
    watches = [c for c in kube.calls if c.verb == "watch"]
    assert len(watches) >= 4
    assert all("resourceVersion=" in c.path for c in watches)


def test_expired_resource_version_relists(kube: FakeKube, index: tuple[PodIndex, CountingErrors]) -> None:
    pod_index, _ = index
    gone = kube.create(objects.pod("gone-soon", "default", node=NODE))
    pod_index.start()
    wait_until(lambda: pod_index.connected and "gone-soon" in names(pod_index), timeout=20,
               message="first list")
    kube.pause()  # history moves on while the index is cut off ...
    kube.delete("v1", "Pod", "gone-soon", "default")
    kube.create(objects.pod("new-one", "default", node=NODE))
    kube.compact()  # ... and is forgotten, so resuming from the old resourceVersion gets 410
    kube.resume()
    wait_until(lambda: pod_index.relists >= 2, timeout=20, message="410 Gone leads to a relist")
    wait_until(lambda: names(pod_index) == {"new-one"}, timeout=20, message="relist replaces the index")
    assert pod_index.get(gone["metadata"]["uid"]) is None


def test_api_server_going_away_and_coming_back(
    kube: FakeKube, index: tuple[PodIndex, CountingErrors]
) -> None:
    pod_index, errors = index
    web_pod(kube)
    pod_index.start()
    wait_until(lambda: pod_index.connected and len(pod_index.pods()) == 1, timeout=20, message="listed")
    kube.pause()
    wait_until(lambda: not pod_index.connected, timeout=20, message="disconnected while the API is gone")
    wait_until(lambda: errors.counts().get("kube", 0) >= 2, timeout=20, message="keeps retrying")
    assert len(pod_index.pods()) == 1, "the last known names stay while the API is away"
    kube.create(objects.pod("while-away", "default", node=NODE))
    kube.resume()
    wait_until(lambda: pod_index.connected and "while-away" in names(pod_index), timeout=30,
               message="reconnects and catches up")


def test_exporter_names_fixture_pods_from_the_api(kube: FakeKube) -> None:
    """Usage from a recorded node tree, names from the fake API, through the whole service."""
    pod_a1 = "1f3a9c2e-5b7d-4e21-9a0b-6c8d7e5f4a31"
    pod_a2 = "2b4c6d8e-0f1a-4b3c-8d5e-7f9a0b1c2d43"
    web_pod(kube, node="node-a", uid=pod_a1)
    kube.create(objects.pod("coredns-1", "kube-system", node="node-a", uid=pod_a2))
    args = fixture_args(NODE_A, "--kubeconfig", str(kube.kubeconfig), "--exclude-namespaces", "kube-system")
    service = ExporterService(load(args, {}), environ={})
    service.start()
    try:
        def scrape() -> dict:
            with requests.get(f"{service.url}/metrics", headers={"Connection": "close"}, timeout=10) as r:
                if r.status_code == 503:  # no sample yet
                    return {}
                return {f.name: f for f in text_string_to_metric_families(r.text)}

        def named() -> dict | None:
            families = scrape()
            pods = {s.labels["uid"]: s.labels for s in families.get("k8smon_pod_cpu_seconds", []).samples} \
                if "k8smon_pod_cpu_seconds" in families else {}
            return families if pods.get(pod_a1, {}).get("pod") == "web-5d4f8-abcde" else None

        families = wait_until(named, timeout=30, message="fixture pod named from the fake API")
    finally:
        service.stop()
    labels = {s.labels["uid"]: s.labels for s in families["k8smon_pod_cpu_seconds"].samples}
    assert labels[pod_a1]["deployment"] == "web" and labels[pod_a1]["namespace"] == "shop"
    assert pod_a2 not in labels, "kube-system is excluded"
    assert families["k8smon_exporter_kube_connected"].samples[0].value == 1
    requests_ = {s.labels["uid"]: s.value for s in families["k8smon_pod_cpu_request_cores"].samples}
    assert requests_[pod_a1] == pytest.approx(0.3)
