"""Pod index pieces that need no API server: quantities, owners, resources, backoff, standalone mode."""

from __future__ import annotations

import socket
import time
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes import client as kclient
from kubernetes.utils.quantity import parse_quantity

from exporter.podindex import KubeUnavailable, PodIndex, api_client_from, backoff_delay
from exporter.podspec import quantity, sum_resources
from exporter.sampler import CountingErrors
from tests.support import wait_until


@pytest.mark.parametrize(
    ("text", "expected"),
    [("250m", "0.25"), ("1.5", "1.5"), ("128Mi", "134217728"), ("1G", "1000000000"), ("1e3", "1000"),
     ("1E3", "1000"), ("0.5Gi", "536870912"), ("100u", "0.0001"), ("2k", "2000"), ("500n", "0.0000005"),
     ("1Ki", "1024"), ("3", "3"), ("12e-3", "0.012")],
)
def test_quantities(text: str, expected: str) -> None:
    assert quantity(text) == Decimal(expected)


@pytest.mark.parametrize("text", ["", "abc", "1.5.5", "12Zi", "m", "--1"])
def test_bad_quantities(text: str) -> None:
    with pytest.raises(ValueError, match="bad quantity"):
        quantity(text)


def container(requests: dict | None = None, limits: dict | None = None) -> dict:
    resources = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": "c", "resources": resources}


def test_sum_resources_over_containers() -> None:
    containers = [container({"cpu": "250m", "memory": "128Mi"}, {"cpu": "500m", "memory": "256Mi"}),
                  container({"cpu": "1", "memory": "1G"}, {"cpu": "1.5", "memory": "1Gi"})]
    assert sum_resources(containers, "cpu") == (1.25, 2.0)
    assert sum_resources(containers, "memory") == (128 * 2**20 + 10**9, 256 * 2**20 + 2**30)


def test_unset_requests_and_unlimited_containers() -> None:
    containers = [container({"cpu": "100m"}, {"cpu": "200m"}), container()]
    assert sum_resources(containers, "cpu") == (0.1, None)  # second container unlimited
    assert sum_resources(containers, "memory") == (None, None)
    assert sum_resources([], "cpu") == (None, None)
    with pytest.raises(ValueError):
        sum_resources([container({"cpu": "lots"})], "cpu")


def test_backoff_grows_is_capped_and_jittered() -> None:
    low, high = (lambda: 0.0), (lambda: 1.0)
    assert [backoff_delay(n, initial=0.5, cap=30, rng=high) for n in range(8)] == [
        0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff_delay(3, initial=0.5, cap=30, rng=low) == 2.0  # jitter: half at the low end
    assert backoff_delay(10_000, initial=0.5, cap=30, rng=high) == 30


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again on exit: connections are refused


def unreachable_client() -> kclient.ApiClient:
    configuration = kclient.Configuration()
    configuration.host = f"http://127.0.0.1:{closed_port()}"
    configuration.retries = False
    return kclient.ApiClient(configuration)


def pod(uid: str, *, owner: tuple[str, str] | None = None, host_network: bool = False, **meta: str) -> dict:
    doc = {
        "metadata": {"uid": uid, "namespace": meta.get("namespace", "ns"), "name": meta.get("name", "p"),
                     "resourceVersion": "1"},
        "spec": {"nodeName": "n1", "hostNetwork": host_network,
                 "containers": [container({"cpu": "100m", "memory": "64Mi"}, {"cpu": "200m"})]},
    }
    if owner is not None:
        doc["metadata"]["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "not-the-controller", "uid": "x"},
            {"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "uid": "y", "controller": True},
        ]
    return doc


def test_pod_metadata_from_pod_objects_without_api_calls() -> None:
    errors = CountingErrors()
    index = PodIndex(node="n1", api_client=unreachable_client(), errors=errors)
    stateful = index._meta(pod("u1", owner=("StatefulSet", "db"), name="db-0"))
    assert stateful is not None
    assert (stateful.owner_kind, stateful.owner_name, stateful.deployment) == ("StatefulSet", "db", "")
    assert (stateful.cpu_request_cores, stateful.cpu_limit_cores) == (0.1, 0.2)
    assert (stateful.memory_request_bytes, stateful.memory_limit_bytes) == (64 * 2**20, None)
    static = index._meta(pod("u2", owner=("Node", "n1"), host_network=True))
    assert static is not None and static.owner_kind == "Node" and static.host_network is True
    bare = index._meta(pod("u3"))
    assert bare is not None and (bare.owner_kind, bare.owner_name) == ("", "")
    bad = pod("u4")
    bad["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "a lot"
    meta = index._meta(bad)
    assert meta is not None and meta.cpu_request_cores is None and meta.name == "p"
    assert index._meta({"metadata": {"name": "no-uid"}}) is None
    assert errors.counts() == {"kube": 2}


def test_replicaset_owner_unresolvable_is_labelled_by_replicaset_and_counted() -> None:
    errors = CountingErrors()
    index = PodIndex(node="n1", api_client=unreachable_client(), errors=errors)
    meta = index._meta(pod("u1", owner=("ReplicaSet", "web-5d4f")))
    assert meta is not None
    assert (meta.owner_kind, meta.owner_name, meta.deployment) == ("ReplicaSet", "web-5d4f", "")
    assert errors.counts() == {"kube": 1}


def test_standalone_when_the_api_server_is_absent_keeps_retrying_and_stops_quickly() -> None:
    errors = CountingErrors()
    index = PodIndex(node="n1", api_client=unreachable_client(), errors=errors,
                     backoff_initial=0.01, backoff_max=0.05)
    index.start()
    try:
        wait_until(lambda: errors.counts().get("kube", 0) >= 3, timeout=20,
                   message="pod index retries an absent API server")
        assert index.connected is False
        assert index.get("anything") is None
    finally:
        started = time.monotonic()
        index.stop()
    assert time.monotonic() - started < 2.0


def test_client_configuration_choices(tmp_path: Path) -> None:
    assert api_client_from("", {}) is None  # no kubeconfig, not in a cluster: standalone
    with pytest.raises(KubeUnavailable):
        # in-cluster variables but no service account token mounted here
        api_client_from("", {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"})
    broken = tmp_path / "kubeconfig"
    broken.write_text("this: [is not: a kubeconfig")
    with pytest.raises(KubeUnavailable):
        api_client_from(str(broken), {})


GRAMMAR = r"\A[+-]?(\d{1,6}(\.\d{0,4})?|\.\d{1,4})(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d{1,2})?\Z"


@settings(max_examples=300, deadline=None)
@given(st.from_regex(GRAMMAR))
def test_quantity_agrees_with_the_kubernetes_client_on_the_grammar(text: str) -> None:
    assert quantity(text) == Decimal(parse_quantity(text))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789.+-eEKMGTPiunmk x", max_size=8))
def test_quantity_accepts_nothing_the_kubernetes_client_rejects(text: str) -> None:
    try:
        ours = quantity(text)
    except ValueError:
        return  # stricter than the client is fine: the API server only sends canonical quantities
    assert ours == Decimal(parse_quantity(text))
