"""Pod and node labels for label selectors, from a metadata-only list+watch of pods and of nodes.

As metrics-server does, the watch asks for `PartialObjectMetadata` (name, namespace, labels only), so a
30k-pod cluster costs a dict of labels per pod, not every pod spec; the labels never become
Prometheus labels. Without a Kubernetes client (static targets, the local demo) every object has no
labels, which only an empty or negative selector matches.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, Protocol

from aggregator.stats import AggregatorStats
from k8smon_common.kube import Json, KubeError, ListWatch

log = logging.getLogger(__name__)
LIST_ACCEPT = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"
WATCH_ACCEPT = "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io,application/json"
EMPTY: Mapping[str, str] = {}


class Labels(Protocol):
    def pod(self, namespace: str, name: str) -> Mapping[str, str]: ...

    def node(self, name: str) -> Mapping[str, str]: ...


class NoLabels:
    """Labels when there is no API server to ask."""

    def pod(self, namespace: str, name: str) -> Mapping[str, str]:
        return EMPTY

    def node(self, name: str) -> Mapping[str, str]:
        return EMPTY


def _key(obj: Json) -> tuple[str, str] | None:
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        return None
    return (str(meta.get("namespace") or ""), meta["name"])


def _labels(obj: Json) -> Mapping[str, str]:
    labels = (obj.get("metadata") or {}).get("labels")
    if not isinstance(labels, dict):
        return EMPTY
    return {str(k): str(v) for k, v in labels.items()}


class LabelIndex:
    """(namespace, name) -> labels of one collection, kept by a ListWatch's callbacks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._labels: dict[tuple[str, str], Mapping[str, str]] = {}

    def replace(self, items: list[Json]) -> None:
        fresh = {key: _labels(obj) for obj in items if isinstance(obj, dict) and (key := _key(obj))}
        with self._lock:
            self._labels = fresh

    def apply(self, kind: str, obj: Json) -> None:
        key = _key(obj)
        if key is None:
            return
        with self._lock:
            if kind == "DELETED":
                self._labels.pop(key, None)
            elif kind in ("ADDED", "MODIFIED"):
                self._labels[key] = _labels(obj)

    def get(self, namespace: str, name: str) -> Mapping[str, str]:
        with self._lock:
            return self._labels.get((namespace, name), EMPTY)

    def __len__(self) -> int:
        return len(self._labels)


class KubeLabels:
    """Watches pods and nodes (metadata only) in two threads; `pod()`/`node()` read the latest labels."""

    def __init__(self, api: Any, *, stats: AggregatorStats) -> None:
        self.pods, self.nodes = LabelIndex(), LabelIndex()
        self._stats = stats
        self._watches = [self._watch(api, "/api/v1/pods", "pods", self.pods),
                         self._watch(api, "/api/v1/nodes", "nodes", self.nodes)]
        self._threads: list[threading.Thread] = []

    def _watch(self, api: Any, path: str, what: str, index: LabelIndex) -> ListWatch:
        def on_error(exc: KubeError) -> None:
            self._stats.error("metrics_api_watch")
            log.warning("metrics API: watching %s metadata: %s", what, exc)

        return ListWatch(api, what=f"{what} metadata", request=lambda: (path, []), on_list=index.replace,
                         on_event=index.apply, on_error=on_error, accept=LIST_ACCEPT,
                         watch_accept=WATCH_ACCEPT)

    def pod(self, namespace: str, name: str) -> Mapping[str, str]:
        return self.pods.get(namespace, name)

    def node(self, name: str) -> Mapping[str, str]:
        return self.nodes.get("", name)

    def start(self) -> None:
        for watch in self._watches:
            thread = threading.Thread(target=watch.run, name=f"watch:{watch.what}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        for watch in self._watches:
            watch.stop()
        for thread in self._threads:
            thread.join(timeout)
