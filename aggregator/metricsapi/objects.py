"""NodeMetrics and PodMetrics documents from the store's views, shaped as metrics-server shapes them.

Figures are the ones the JSON API serves for the same sample, so `kubectl top` and `/api/...` agree:
- node CPU: the exporter's `k8smon_node_cpu_usage_cores` (busy time from `/proc/stat`, the whole host;
  metrics-server reads the root cgroup, which on a node is the same CPU time without the idle/iowait
  split); node memory: `k8smon_node_memory_used_bytes` (MemTotal - MemAvailable; metrics-server's
  root-cgroup working set is the closest kernel figure we have, and the two differ by the kernel's own
  non-cgroup memory);
- pod containers: `k8smon_container_cpu_usage_cores` and `k8smon_container_memory_working_set_bytes`
  (usage - inactive_file, metrics-server's working set).
`timestamp` is the sample's time on the aggregator's clock (its scrape round's start: the one time base
the JSON API serves too); `window` the interval between the exporter's snapshot and the one before it
(the interval the CPU gauge covers when every snapshot is scraped), else the scrape interval.
A node that is down, or a pod with no containers or any container without both figures, is left out
(None), as metrics-server leaves out what it has no complete sample for.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from aggregator.metricsapi.quantity import cpu_quantity, go_duration, memory_quantity, rfc3339

try:
    from orjson import dumps
except ImportError:  # orjson is a runtime dependency; the standard library gives the same bytes
    import json

    def dumps(obj: Any) -> bytes:  # type: ignore[misc]
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
from aggregator.model import ContainerReading
from aggregator.store.views import NodeView, PodView, Sample

NODE_CPU, NODE_MEMORY = "cpu_usage_cores", "memory_used_bytes"
CONTAINER_CPU, CONTAINER_MEMORY = "cpu_usage_cores", "memory_working_set_bytes"


def _meta(name: str, labels: Mapping[str, str], now: float, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["creationTimestamp"] = rfc3339(now)  # metrics-server: the time the object was built
    if labels:
        meta["labels"] = dict(labels)
    return meta


def _timing(sample: Sample, default_window: float) -> dict[str, str]:
    window = sample.interval_seconds if sample.interval_seconds else default_window
    return {"timestamp": rfc3339(sample.timestamp), "window": go_duration(window)}


def node_metrics(view: NodeView, labels: Mapping[str, str], *, now: float, default_window: float,
                 version: str) -> dict[str, Any] | None:
    sample = view.sample
    if view.status != "up" or sample is None:
        return None
    cpu, memory = sample.values.get(NODE_CPU), sample.values.get(NODE_MEMORY)
    if cpu is None or memory is None:
        return None
    return {"kind": "NodeMetrics", "apiVersion": version, "metadata": _meta(view.name, labels, now),
            **_timing(sample, default_window),
            "usage": {"cpu": cpu_quantity(cpu), "memory": memory_quantity(memory)}}


def containers_doc(containers: tuple[ContainerReading, ...]) -> list[dict[str, Any]] | None:
    """`containers` of a PodMetrics; None when any container lacks CPU or memory (or there are none)."""
    out = []
    for container in containers:
        cpu, memory = container.values.get(CONTAINER_CPU), container.values.get(CONTAINER_MEMORY)
        if cpu is None or memory is None:
            return None
        out.append({"name": container.name,
                    "usage": {"cpu": cpu_quantity(cpu), "memory": memory_quantity(memory)}})
    return out or None


class PodFragments:
    """Each pod's list item as JSON bytes on either side of its `creationTimestamp` (the one per-request
    field), rendered once per reading: a 30k-pod list asked again within the scrape interval (HPAs,
    kubectl, dashboards) joins cached bytes instead of building and encoding 30k documents (1000 x 30 x 3,
    CPU per list: 1.3 s uncached, 0.5 s cached, of which `store.pods()` is about half). A fragment is
    reused only while the pod's container tuple and labels are the same objects and its timestamp and
    window unchanged; at `limit` entries the cache starts over.
    """

    def __init__(self, limit: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str, str], tuple[Any, ...]] = {}
        self._limit = limit

    def item(self, view: PodView, labels: Mapping[str, str], *, created: bytes, default_window: float,
             version: str) -> bytes | None:
        key = (view.namespace, view.pod, version)
        window = view.sample.interval_seconds or default_window
        with self._lock:
            hit = self._items.get(key)
        if not (hit is not None and hit[0] is view.containers and hit[1] is labels
                and hit[2] == view.sample.timestamp and hit[3] == window):
            rendered = self._render(view, labels, window)
            hit = (view.containers, labels, view.sample.timestamp, window, *rendered)
            with self._lock:
                if len(self._items) >= self._limit:
                    self._items.clear()
                self._items[key] = hit
        head, tail = hit[4], hit[5]
        return None if head is None else head + created + tail

    @staticmethod
    def _render(view: PodView, labels: Mapping[str, str], window: float) -> tuple[bytes | None, bytes]:
        containers = containers_doc(view.containers) if view.namespace else None
        if containers is None:
            return None, b""
        head = b'{"metadata":' + dumps({"name": view.pod, "namespace": view.namespace})[:-1]
        head += b',"creationTimestamp":"'
        tail = b'"' + (b',"labels":' + dumps(dict(labels)) if labels else b"") + b"},"
        tail += dumps({"timestamp": rfc3339(view.sample.timestamp), "window": go_duration(window),
                       "containers": containers})[1:]
        return head, tail


def pod_metrics(view: PodView, labels: Mapping[str, str], *, now: float, default_window: float,
                version: str) -> dict[str, Any] | None:
    if not view.namespace or not view.containers:
        return None  # unnamed pods have no object to name; no containers: no complete sample yet
    containers = containers_doc(view.containers)
    if containers is None:
        return None
    return {"kind": "PodMetrics", "apiVersion": version,
            "metadata": _meta(view.pod, labels, now, namespace=view.namespace),
            **_timing(view.sample, default_window), "containers": containers}


def list_bytes(kind: str, version: str, items: list[bytes]) -> bytes:
    """A list document around already rendered items (the same bytes `metrics_list` + orjson give)."""
    head = b'{"kind":"' + kind.encode() + b'","apiVersion":"' + version.encode() + b'","metadata":{},'
    return head + b'"items":[' + b",".join(items) + b"]}"


def metrics_list(kind: str, version: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """A NodeMetricsList/PodMetricsList; its items carry no kind/apiVersion (client-go encodes them
    without, and metrics-server's lists look the same)."""
    for item in items:
        del item["kind"], item["apiVersion"]
    return {"kind": kind, "apiVersion": version, "metadata": {}, "items": items}
