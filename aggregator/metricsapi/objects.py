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
from aggregator.model import ContainerReading
from aggregator.records import NodeView, PodView, Sample

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


class ContainerDocs:
    """Rendered `containers` per reading: a reading's container tuple lives until the next scrape of its
    node, so a list asked again within the interval (HPAs, kubectl, dashboards) renders each pod once.

    Keyed by the tuple's identity, the tuple kept in the entry so its id cannot be reused while cached;
    `sweep()` (after an all-pods list) keeps only the tuples that list used. Never mutate what it returns.
    """

    def __init__(self, limit: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._docs: dict[int, tuple[tuple[ContainerReading, ...], list[dict[str, Any]] | None]] = {}
        self._used: set[int] = set()
        self._limit = limit

    def get(self, containers: tuple[ContainerReading, ...]) -> list[dict[str, Any]] | None:
        key = id(containers)
        with self._lock:
            hit = self._docs.get(key)
            self._used.add(key)
        if hit is not None and hit[0] is containers:
            return hit[1]
        doc = containers_doc(containers)
        with self._lock:
            if len(self._docs) >= self._limit:
                self._docs.clear()
            self._docs[key] = (containers, doc)
        return doc

    def sweep(self) -> None:
        """Forget every entry not asked for since the last sweep."""
        with self._lock:
            self._docs = {k: v for k, v in self._docs.items() if k in self._used}
            self._used = set()


def pod_metrics(view: PodView, labels: Mapping[str, str], *, now: float, default_window: float,
                version: str, cache: ContainerDocs | None = None) -> dict[str, Any] | None:
    if not view.namespace or not view.containers:
        return None  # unnamed pods have no object to name; no containers: no complete sample yet
    containers = containers_doc(view.containers) if cache is None else cache.get(view.containers)
    if containers is None:
        return None
    return {"kind": "PodMetrics", "apiVersion": version,
            "metadata": _meta(view.pod, labels, now, namespace=view.namespace),
            **_timing(view.sample, default_window), "containers": containers}


def metrics_list(kind: str, version: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """A NodeMetricsList/PodMetricsList; its items carry no kind/apiVersion (client-go encodes them
    without, and metrics-server's lists look the same)."""
    for item in items:
        del item["kind"], item["apiVersion"]
    return {"kind": kind, "apiVersion": version, "metadata": {}, "items": items}
