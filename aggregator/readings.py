"""Parsed exporter samples → one NodeReading (the names are docs/metrics.md's contract)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aggregator.model import ContainerReading, NodeReading, PodReading
from aggregator.parser import Sample
from k8smon_common import snapshotdoc

NODE_PREFIX = "k8smon_node_"
POD_PREFIX = "k8smon_pod_"
CONTAINER_PREFIX = "k8smon_container_"
TIMESTAMP_METRIC = "k8smon_exporter_sample_timestamp_seconds"
ROOT_MOUNTPOINT = "/"


class ReadingError(ValueError):
    """The exposition parsed but is not a usable exporter snapshot (no node, no timestamp)."""


@dataclass(frozen=True, slots=True)
class Conversion:
    """A reading plus what was left out of it."""

    reading: NodeReading
    samples: int  # samples in the exposition
    dropped: int  # non-finite or unusable values left out of the reading
    rejected: int = 0  # pods left out for breaking --max-label-length / --max-labels-per-series


_OTHER, _TIMESTAMP, _POD, _NODE, _FILESYSTEM, _CONTAINER = range(6)
# Sample name -> (kind, values key); bounded: a target inventing names must not grow it forever.
_ROUTES: dict[str, tuple[int, str]] = {}
_ROUTES_LIMIT = 10_000


def _route(name: str) -> tuple[int, str]:
    if name.startswith(POD_PREFIX):
        route = (_POD, name[len(POD_PREFIX):])
    elif name.startswith(CONTAINER_PREFIX):
        route = (_CONTAINER, name[len(CONTAINER_PREFIX):])
    elif name.startswith(NODE_PREFIX):
        key = name[len(NODE_PREFIX):]
        route = (_FILESYSTEM if key.startswith("filesystem_") else _NODE, key)
    elif name == TIMESTAMP_METRIC:
        route = (_TIMESTAMP, "")
    else:
        route = (_OTHER, "")
    if len(_ROUTES) < _ROUTES_LIMIT:
        _ROUTES[name] = route
    return route


class _Accumulator:
    """Collects one exposition's samples by kind (node, filesystem, pod, exporter timestamp)."""

    def __init__(self, *, max_label_length: int | None = None, max_labels: int | None = None) -> None:
        self.max_label_length = max_label_length
        self.max_labels = max_labels
        self.rejected: set[tuple[str, str, str]] = set()
        self.node: str | None = None
        self.timestamp: float | None = None
        self.node_values: dict[str, float] = {}
        self.filesystems: dict[str, dict[str, float]] = {}
        self.pods: dict[tuple[str, str, str], tuple[dict[str, str], dict[str, float]]] = {}
        # (pod key, container name) -> values; joined to the pods at the end (a container whose pod has
        # no pod sample is dropped)
        self.containers: dict[tuple[str, str, str, str], dict[str, float]] = {}
        self.count = 0
        self.dropped = 0

    def add(self, name: str, labels: dict[str, str], value: float) -> None:
        self.count += 1
        route = _ROUTES.get(name)
        if route is None:
            route = _route(name)
        kind, key_name = route
        if kind == _OTHER:
            return
        if kind == _TIMESTAMP:
            if math.isfinite(value) and value > 0:
                self.timestamp = value
            self.node = labels.get("node") or self.node
            return
        if not math.isfinite(value):
            self.dropped += 1
            return
        if kind == _CONTAINER:
            self.add_container(key_name, labels, value)
            return
        if kind == _POD:
            uid = labels.get("uid", "")
            key = (labels.get("namespace", ""), labels.get("pod", uid), uid)
            entry = self.pods.get(key)
            if entry is None:
                # Checked once per pod: every stored label value comes from this first sample or the key.
                if key in self.rejected or self.too_big(labels):
                    self.rejected.add(key)
                    return
                entry = self.pods[key] = (labels, {})
            entry[1][key_name] = value
        elif kind == _FILESYSTEM:
            self.filesystems.setdefault(labels.get("mountpoint", ""), {})[key_name] = value
        else:
            self.node_values[key_name] = value
        if self.node is None:
            self.node = labels.get("node")

    def add_container(self, key_name: str, labels: dict[str, str], value: float) -> None:
        uid = labels.get("uid", "")
        key = (labels.get("namespace", ""), labels.get("pod", uid), uid, labels.get("container", ""))
        values = self.containers.get(key)
        if values is None:
            if not key[3] or key[:3] in self.rejected or self.too_big(labels):
                self.dropped += 1
                return
            values = self.containers[key] = {}
        values[key_name] = value

    def pod_containers(self) -> dict[tuple[str, str, str], list[ContainerReading]]:
        """The containers by pod key, each pod's sorted by name."""
        out: dict[tuple[str, str, str], list[ContainerReading]] = {}
        for (ns, pod, uid, name), values in self.containers.items():
            out.setdefault((ns, pod, uid), []).append(ContainerReading(name=name, values=values))
        for per_pod in out.values():
            per_pod.sort(key=lambda c: c.name)
        return out

    def too_big(self, labels: dict[str, str]) -> bool:
        """True when the labels break the configured count or value-length limit."""
        if self.max_labels is not None and len(labels) > self.max_labels:
            return True
        limit = self.max_label_length
        return limit is not None and any(len(v) > limit for v in labels.values())

    def root_filesystem(self) -> dict[str, float]:
        # The model keeps the root filesystem only; an exporter configured with another --rootfs reports
        # one mountpoint, which then stands for it.
        rootfs = self.filesystems.get(ROOT_MOUNTPOINT)
        if rootfs is None and len(self.filesystems) == 1:
            rootfs = next(iter(self.filesystems.values()))
        return rootfs or {}


def to_reading(
    samples: Iterable[Sample],
    *,
    node_hint: str | None = None,
    source: str = "scrape",
    max_label_length: int | None = None,
    max_labels: int | None = None,
) -> Conversion:
    """Build the NodeReading of one exporter's exposition; ReadingError when it has no snapshot yet.

    Pods whose labels break `max_labels`/`max_label_length` are left out (counted in `rejected`);
    a node name longer than `max_label_length` makes the whole exposition unusable.
    """
    acc = _Accumulator(max_label_length=max_label_length, max_labels=max_labels)
    for name, labels, value, _ts in samples:
        acc.add(name, labels, value)
    if acc.timestamp is None:
        raise ReadingError(f"no {TIMESTAMP_METRIC} sample (the exporter has no snapshot yet)")
    node = acc.node or node_hint
    if not node:
        raise ReadingError("no node label in the exposition and no node name from discovery")
    if max_label_length is not None and len(node) > max_label_length:
        raise ReadingError(f"node label longer than {max_label_length} characters")
    values = dict(acc.node_values)
    values.update(acc.root_filesystem())
    containers = acc.pod_containers()
    pods = tuple(
        PodReading(
            namespace=ns,
            pod=pod,
            uid=uid,
            owner_kind=labels.get("owner_kind", ""),
            owner_name=labels.get("owner_name", ""),
            deployment=labels.get("deployment", ""),
            values=pod_values,
            containers=tuple(containers.pop((ns, pod, uid), ())),
        )
        for (ns, pod, uid), (labels, pod_values) in acc.pods.items()
    )
    # container samples of pods that are not in the reading (rejected, or no pod sample at all)
    acc.dropped += sum(len(c.values) for per_pod in containers.values() for c in per_pod)
    reading = NodeReading(node=node, timestamp=acc.timestamp, values=values, pods=pods, source=source)
    return Conversion(reading=reading, samples=acc.count, dropped=acc.dropped, rejected=len(acc.rejected))


# --- the JSON snapshot document (k8smon_common/snapshotdoc.py) -------------------------------------

POD_LABEL_COUNT = 7  # node + snapshotdoc.POD_FIELDS: the labels each pod sample carries in the text
CONTAINER_LABEL_COUNT = 5  # node, namespace, pod, uid, container


_FLOATS = {float}
_STRINGS = {str}
_EMPTY_STRINGS = ("",) * len(snapshotdoc.POD_FIELDS)  # each pod field's default


def _values(raw: object) -> tuple[dict[str, float], int]:
    """(finite values, how many were not finite) of one values object; ReadingError when malformed
    (the caller says whose values)."""
    if not isinstance(raw, dict):
        raise ReadingError("values must be an object")
    if set(map(type, raw.values())) <= _FLOATS and all(map(math.isfinite, raw.values())):
        return raw, 0  # the usual case: every number a finite float already (two C-level passes)
    out: dict[str, float] = {}
    for k, v in raw.items():
        if type(v) is int:
            v = float(v)  # noqa: PLW2901 - JSON integers are numbers too
        elif type(v) is not float:
            raise ReadingError(f"value of {k!r} is not a number")
        if math.isfinite(v):
            out[k] = v
    return out, len(raw) - len(out)


def _text(raw: Mapping[str, Any], field: str, what: str) -> str:
    value = raw.get(field, "")
    if not isinstance(value, str):
        raise ReadingError(f"{what}: {field} must be a string")
    return value


class _DocumentReader:
    """One document's conversion: counts of samples, drops and rejections beside the reading's parts."""

    def __init__(self, node: str, *, max_label_length: int | None, max_labels: int | None) -> None:
        self.node = node
        self.limit = max_label_length
        self.max_labels = max_labels
        self.count = 1  # the sample timestamp
        self.dropped = 0
        self.rejected = 0

    def values(self, raw: object, what: str, *names: str) -> dict[str, float]:
        """The finite values of `raw`; a ReadingError names them as `what.format(*names)`, formatted
        only then (this runs for every pod and container)."""
        try:
            values, dropped = _values(raw)
        except ReadingError as exc:
            raise ReadingError(f"{what.format(*names)}: {exc}") from None
        self.count += len(values) + dropped
        self.dropped += dropped
        return values

    def root_filesystem(self, filesystems: object) -> dict[str, float]:
        if not isinstance(filesystems, dict):
            raise ReadingError("filesystems must be an object")
        parsed = {m: self.values(raw, "filesystem {}", m) for m, raw in filesystems.items()}
        root = parsed.get(ROOT_MOUNTPOINT)
        if root is None and len(parsed) == 1:  # one other --rootfs stands for it (as with the text)
            root = next(iter(parsed.values()))
        return root or {}

    def too_big(self, labels: Iterable[str], count: int) -> bool:
        """The --max-labels-per-series / --max-label-length test of `to_reading`, on label values
        (never empty: a pod's include the node's name, a container's is its name)."""
        if self.max_labels is not None and count > self.max_labels:
            return True
        return self.limit is not None and max(map(len, labels)) > self.limit

    def pod(self, raw: object) -> PodReading | None:
        """The pod's reading; None when it is left out (over the label limits, no finite pod value)."""
        if not isinstance(raw, dict):
            raise ReadingError("a pod must be an object")
        fields = tuple(map(raw.get, snapshotdoc.POD_FIELDS, _EMPTY_STRINGS))
        if set(map(type, fields)) != _STRINGS:  # one C-level test for the six
            for f in snapshotdoc.POD_FIELDS:
                _text(raw, f, "pod")  # raises, naming the first that is not
        ns, name, uid, owner_kind, owner_name, deployment = fields
        values = self.values(raw.get("values", {}), "pod {}/{}", ns, name)
        raw_containers = raw.get("containers", {})
        if not isinstance(raw_containers, dict):
            raise ReadingError(f"pod {ns}/{name}: containers must be an object")
        # by name (names are a dict's keys, so the tuples never compare their values)
        containers = sorted((c, self.values(v, "container {} of {}/{}", c, ns, name))
                            for c, v in raw_containers.items())
        rejected = self.too_big((self.node, *fields), POD_LABEL_COUNT)
        if rejected or not values:  # a pod with no finite pod value is no pod (as with the text)
            self.rejected += rejected
            self.dropped += sum(len(v) for _c, v in containers)
            return None
        kept: list[ContainerReading] = []
        for c, v in containers:
            if not c or self.too_big((c, ), CONTAINER_LABEL_COUNT):
                self.dropped += len(v)
            else:
                kept.append(ContainerReading(name=c, values=v))
        return PodReading(namespace=ns, pod=name, uid=uid, owner_kind=owner_kind, owner_name=owner_name,
                          deployment=deployment, values=values, containers=tuple(kept))


def from_document(
    doc: object,
    *,
    node_hint: str | None = None,
    max_label_length: int | None = None,
    max_labels: int | None = None,
) -> Conversion:
    """The NodeReading of one exporter's JSON snapshot document, by the same rules as `to_reading`:
    non-finite values dropped and counted, pods over the label limits left out, the root filesystem
    only. `samples` counts the values it carries. ReadingError when it is not such a document or the
    exporter has no snapshot yet."""
    if not isinstance(doc, dict) or doc.get("version") != snapshotdoc.VERSION:
        raise ReadingError(f"not a version {snapshotdoc.VERSION} snapshot document")
    ts = doc.get("timestamp")
    if type(ts) not in (int, float) or not math.isfinite(ts) or ts <= 0:
        raise ReadingError(f"no {TIMESTAMP_METRIC} sample (the exporter has no snapshot yet)")
    node = _text(doc, "node", "document") or node_hint
    if not node:
        raise ReadingError("no node label in the exposition and no node name from discovery")
    if max_label_length is not None and len(node) > max_label_length:
        raise ReadingError(f"node label longer than {max_label_length} characters")
    acc = _DocumentReader(node, max_label_length=max_label_length, max_labels=max_labels)
    values = acc.values(doc.get("node_values", {}), "node")
    values = {**values, **acc.root_filesystem(doc.get("filesystems", {}))}
    raw_pods = doc.get("pods", [])
    if not isinstance(raw_pods, list):
        raise ReadingError("pods must be a list")
    pods = tuple(p for p in map(acc.pod, raw_pods) if p is not None)
    reading = NodeReading(node=node, timestamp=float(ts), values=values, pods=pods)
    return Conversion(reading=reading, samples=acc.count, dropped=acc.dropped, rejected=acc.rejected)
