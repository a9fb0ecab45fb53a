"""NodeMetrics/PodMetrics documents and list bytes, exactly (aggregator/metricsapi/objects.py): which
samples are left out, the window, the quantities, and the per-pod fragment cache that must never serve
one pod's or one sample's bytes for another.

Unit tests on hand-made store views (no store, no server).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from aggregator.metricsapi import objects
from aggregator.model import ContainerReading
from aggregator.store.views import NodeView, PodView, Sample

V = "metrics.k8s.io/v1beta1"
TS = 1_700_000_000.0
TS_ISO = "2023-11-14T22:13:20Z"


def sample(values: dict[str, float] | None = None, *, ts: float = TS, interval: float | None = 4.5) -> Sample:
    return Sample(timestamp=ts, values=values or {}, deltas={}, rates={}, interval_seconds=interval)


def node_view(s: Sample | None, status: str = "up") -> NodeView:
    return NodeView(name="n1", status=status, last_error=None, source="scrape", last_seen=TS, down_since=None,
                    sample=s, pod_count=0)


APP = ContainerReading("app", {"cpu_usage_cores": 0.25, "memory_working_set_bytes": 64 * 1024**2})
SIDE = ContainerReading("side", {"cpu_usage_cores": 0.0015, "memory_working_set_bytes": 2000.0})


def pod_view(containers: tuple[ContainerReading, ...] = (APP, SIDE), *, namespace: str = "shop",
             pod: str = "web-1", s: Sample | None = None) -> PodView:
    return PodView(namespace=namespace, pod=pod, uid="u", node="n1", deployment="", owner_kind="",
                   owner_name="", last_seen=TS, sample=s or sample(), containers=containers)


NODE_VALUES = {"cpu_usage_cores": 1.5, "memory_used_bytes": 3 * 1024**3}


def test_node_metrics_document() -> None:
    doc = objects.node_metrics(node_view(sample(NODE_VALUES)), {"role": "worker"}, now=TS + 7,
                               default_window=15.0, version=V)
    assert doc == {"kind": "NodeMetrics", "apiVersion": V,
                   "metadata": {"name": "n1", "creationTimestamp": "2023-11-14T22:13:27Z",
                                "labels": {"role": "worker"}},
                   "timestamp": TS_ISO, "window": "4.5s", "usage": {"cpu": "1500m", "memory": "3Gi"}}


def test_window_falls_back_to_the_default_on_a_first_sample() -> None:
    for interval in (None, 0.0):
        doc = objects.node_metrics(node_view(sample(NODE_VALUES, interval=interval)), {}, now=TS,
                                   default_window=15.0, version=V)
        assert doc is not None and doc["window"] == "15s" and "labels" not in doc["metadata"]


@pytest.mark.parametrize(("status", "values"), [
    ("down", NODE_VALUES), ("stale", NODE_VALUES), ("gone", NODE_VALUES),
    ("up", {"cpu_usage_cores": 1.5}), ("up", {"memory_used_bytes": 1.0}), ("up", {}),
])
def test_node_without_a_complete_current_sample_is_left_out(status: str, values: dict[str, float]) -> None:
    assert objects.node_metrics(node_view(sample(values), status), {}, now=TS, default_window=15.0,
                                version=V) is None
    assert objects.node_metrics(node_view(None), {}, now=TS, default_window=15.0, version=V) is None


def test_pod_metrics_document() -> None:
    doc = objects.pod_metrics(pod_view(), {"app": "web"}, now=TS + 1, default_window=15.0, version=V)
    assert doc == {"kind": "PodMetrics", "apiVersion": V,
                   "metadata": {"name": "web-1", "namespace": "shop",
                                "creationTimestamp": "2023-11-14T22:13:21Z", "labels": {"app": "web"}},
                   "timestamp": TS_ISO, "window": "4.5s",
                   "containers": [{"name": "app", "usage": {"cpu": "250m", "memory": "64Mi"}},
                                  {"name": "side", "usage": {"cpu": "1500u", "memory": "2000"}}]}


@pytest.mark.parametrize("view", [
    pod_view(namespace=""),  # unnamed: no object to name, even with containers
    pod_view(()),
    pod_view((APP, ContainerReading("half", {"cpu_usage_cores": 0.1}))),
    pod_view((ContainerReading("half", {"memory_working_set_bytes": 1.0}), APP)),
], ids=["unnamed", "no containers", "one without memory", "one without cpu"])
def test_pod_without_a_complete_sample_is_left_out(view: PodView) -> None:
    assert objects.pod_metrics(view, {}, now=TS, default_window=15.0, version=V) is None
    assert objects.PodFragments().item(view, {}, created=b"C", default_window=15.0, version=V) is None


def test_list_bytes_and_list_document() -> None:
    assert objects.list_bytes("PodMetricsList", V, [b'{"a":1}', b'{"b":2}']) == (
        b'{"kind":"PodMetricsList","apiVersion":"metrics.k8s.io/v1beta1","metadata":{},"items":[{"a":1},{"b":2}]}')
    assert objects.list_bytes("PodMetricsList", V, []) == (
        b'{"kind":"PodMetricsList","apiVersion":"metrics.k8s.io/v1beta1","metadata":{},"items":[]}')
    item = {"kind": "NodeMetrics", "apiVersion": V, "metadata": {"name": "n1"}}
    assert objects.metrics_list("NodeMetricsList", V, [item]) == {
        "kind": "NodeMetricsList", "apiVersion": V, "metadata": {}, "items": [{"metadata": {"name": "n1"}}]}


NO_LABELS: dict[str, str] = {}  # one object: the cache reuses a fragment only for the same labels object


def fragment(cache: objects.PodFragments, view: PodView, labels: dict[str, str] = NO_LABELS,
             created: bytes = b"2023-11-14T22:13:21Z") -> Any:
    raw = cache.item(view, labels, created=created, default_window=15.0, version=V)
    assert raw is not None
    return json.loads(raw)


def test_fragment_is_the_list_item_of_the_pod_document() -> None:
    labels = {"app": "web"}
    doc = objects.pod_metrics(pod_view(), labels, now=TS + 1, default_window=15.0, version=V)
    assert doc is not None
    del doc["kind"], doc["apiVersion"]
    assert fragment(objects.PodFragments(), pod_view(), labels) == doc
    raw = objects.PodFragments().item(pod_view(), {}, created=b"X", default_window=15.0, version=V)
    assert raw is not None and raw.startswith(
        b'{"metadata":{"name":"web-1","namespace":"shop","creationTimestamp":"X"},"timestamp":')


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = objects.PodFragments._render

    def counting(view: PodView, labels: Any, window: float) -> tuple[bytes | None, bytes]:
        seen.append(view.pod)
        return real(view, labels, window)

    monkeypatch.setattr(objects.PodFragments, "_render", staticmethod(counting))
    return seen


def test_fragment_cache_reuses_only_the_same_pod_containers_labels_timestamp_and_window(
        renders: list[str]) -> None:
    cache = objects.PodFragments()
    containers, labels = (APP,), {"app": "web"}
    a = pod_view(containers, pod="a")
    b = pod_view(containers, pod="b")  # the same containers and labels objects as a
    assert fragment(cache, a, labels)["metadata"]["name"] == "a"
    assert fragment(cache, b, labels)["metadata"]["name"] == "b"
    assert fragment(cache, a, labels, created=b"later")["metadata"] == {
        "name": "a", "namespace": "shop", "creationTimestamp": "later", "labels": {"app": "web"}}
    assert renders == ["a", "b"]  # the third was the cached bytes
    # a new sample time, window, container tuple or labels object renders again
    newer = pod_view(containers, pod="a", s=sample(ts=TS + 5))
    assert fragment(cache, newer, labels)["timestamp"] == "2023-11-14T22:13:25Z"
    wider = pod_view(containers, pod="a", s=sample(ts=TS + 5, interval=9.0))
    assert fragment(cache, wider, labels)["window"] == "9s"
    other_figures = (ContainerReading("app", {"cpu_usage_cores": 0.5, "memory_working_set_bytes": 1024.0}),)
    changed = pod_view(other_figures, pod="a", s=sample(ts=TS + 5, interval=9.0))
    assert fragment(cache, changed, labels)["containers"][0]["usage"] == {"cpu": "500m", "memory": "1Ki"}
    relabelled = fragment(cache, changed, {"app": "api"})
    assert relabelled["metadata"]["labels"] == {"app": "api"}
    assert renders == ["a", "b", "a", "a", "a", "a"]
    # a version is its own entry
    raw = cache.item(changed, labels, created=b"c", default_window=15.0, version="v1")
    assert raw is not None and len(renders) == 7


def test_fragment_cache_starts_over_at_its_limit(renders: list[str]) -> None:
    cache = objects.PodFragments(limit=2)
    a, b, c = (pod_view(pod=p) for p in "abc")
    for view in (a, b, a, b):
        fragment(cache, view)
    assert renders == ["a", "b"]  # two entries fit
    fragment(cache, c)  # the third starts the cache over with only c
    fragment(cache, c)
    fragment(cache, a)
    assert renders == ["a", "b", "c", "a"]
