"""Push ingest (the seed's POST routes): strict body validation, then readings for the store.

Body (node, `POST /api/nodes/<node>/metrics`), the seed's format:
    {"node_name": "n1", "cpu_millicores": 250, "memory_bytes": 1073741824,
     "disk_io": {"read_bytes": 0, "write_bytes": 4096},
     "network_io": {"bytes_recv": 1200, "bytes_sent": 800},
     "timestamp": "2024-01-01T00:00:00Z"}
optionally "cpu_capacity_millicores" and "memory_total_bytes" (for percentages).
Body (pod, `POST /api/namespaces/<ns>/pods/<pod>/metrics`): the same fields, where `node_name` is
the node the pod runs on and `memory_bytes` its working set, optionally "namespace"/"pod_name"
(must match the path), "uid", "deployment", "cpu_request_millicores", "cpu_limit_millicores",
"memory_request_bytes", "memory_limit_bytes".

I/O figures are bytes moved during the pusher's last interval (the seed's meaning). The store works
with cumulative counters, so each push adds its bytes to a running total per entity; the first push
of an entity therefore has no rate yet, exactly like a first scrape. Unknown fields, wrong types,
negative or non-finite numbers, a path/body mismatch or a timestamp more than `max_skew` seconds
(--max-push-skew) from the aggregator's clock either way are rejected with a message naming the
field, and nothing is stored. The pushed timestamp times the rates and orders the pushes (a
timestamp not newer than the stored one is 409); the stored point takes the time it was received,
like every other point (see store.py).
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aggregator.model import NodeReading, PodReading
from aggregator.stats import AggregatorStats
from aggregator.store.store import Store

MAX_BODY_BYTES = 64 * 1024
MAX_PUSH_SKEW = 60.0  # default --max-push-skew: seconds a pushed timestamp may be off, either way
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

_IO = {
    "disk_io": {"read_bytes": "disk_read_bytes_total", "write_bytes": "disk_written_bytes_total"},
    "network_io": {"bytes_recv": "network_receive_bytes_total", "bytes_sent": "network_transmit_bytes_total"},
}
_NODE_OPTIONAL = {
    "cpu_capacity_millicores": ("cpu_capacity_cores", 1e-3),
    "memory_total_bytes": ("memory_total_bytes", 1.0),
}
_POD_OPTIONAL = {
    "cpu_request_millicores": ("cpu_request_cores", 1e-3),
    "cpu_limit_millicores": ("cpu_limit_cores", 1e-3),
    "memory_request_bytes": ("memory_request_bytes", 1.0),
    "memory_limit_bytes": ("memory_limit_bytes", 1.0),
}
_REQUIRED = ("node_name", "cpu_millicores", "memory_bytes", "disk_io", "network_io", "timestamp")


class IngestError(ValueError):
    """A pushed body was rejected; `field` names the offending field when there is one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class StaleTimestamp(IngestError):
    """The pushed timestamp is not newer than the one already stored for that entity."""


@dataclass(frozen=True, slots=True)
class Pushed:
    """A validated body: gauges (exporter names), interval bytes per counter, and the sample time."""

    node: str
    timestamp: float
    gauges: dict[str, float]
    interval_bytes: dict[str, float]
    extra: dict[str, str]


def _number(doc: Mapping[str, Any], key: str, path: str) -> float:
    value = doc[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IngestError(f"{path} must be a number, got {type(value).__name__}", field=path)
    # Range first: int/float comparisons are exact, while isfinite(10**400) raises OverflowError.
    if value < 0 or value > 1e18 or not math.isfinite(value):
        raise IngestError(f"{path} must be a finite number between 0 and 1e18, got {value!r}", field=path)
    return float(value)


def _name(doc: Mapping[str, Any], key: str) -> str:
    value = doc[key]
    if not isinstance(value, str) or len(value) > 253 or not _NAME.fullmatch(value):
        raise IngestError(f"{key} must be a Kubernetes object name, got {value!r}", field=key)
    return value


def _timestamp(value: Any, *, now: float, max_skew: float) -> float:
    if not isinstance(value, str):
        raise IngestError(
            "timestamp must be an ISO-8601 string such as 2024-01-01T00:00:00Z", field="timestamp"
        )
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise IngestError(f"timestamp is not ISO-8601: {value!r}", field="timestamp") from None
    if parsed.tzinfo is None:
        raise IngestError("timestamp needs a time zone (end it with Z for UTC)", field="timestamp")
    ts = parsed.timestamp()
    if ts <= 0:
        raise IngestError(f"timestamp {value!r} is before 1970", field="timestamp")
    off = ts - now
    if abs(off) > max_skew:
        where = "ahead of" if off > 0 else "behind"
        raise IngestError(
            f"timestamp {value!r} is {abs(off):.0f}s {where} the aggregator's clock "
            f"(--max-push-skew {max_skew:g}s)",
            field="timestamp",
        )
    return ts


def _common(
    doc: Any,
    *,
    optional: Mapping[str, tuple[str, float]],
    names: tuple[str, ...],
    now: float,
    max_skew: float,
) -> Pushed:
    if not isinstance(doc, dict):
        raise IngestError("the body must be a JSON object")
    allowed = {*_REQUIRED, *optional, *names}
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise IngestError(f"unknown field(s): {', '.join(unknown)}", field=unknown[0])
    missing = [k for k in _REQUIRED if k not in doc]
    if missing:
        raise IngestError(f"missing field(s): {', '.join(missing)}", field=missing[0])
    gauges = {"cpu_usage_cores": _number(doc, "cpu_millicores", "cpu_millicores") / 1000.0}
    interval: dict[str, float] = {}
    for group, fields in _IO.items():
        sub = doc[group]
        if not isinstance(sub, dict):
            raise IngestError(f"{group} must be an object", field=group)
        extra_keys = sorted(set(sub) - set(fields))
        if extra_keys:
            raise IngestError(f"unknown field(s) in {group}: {', '.join(extra_keys)}", field=group)
        for key, counter in fields.items():
            if key not in sub:
                raise IngestError(f"missing field {group}.{key}", field=f"{group}.{key}")
            interval[counter] = _number(sub, key, f"{group}.{key}")
    for key, (name, scale) in optional.items():
        if key in doc:
            gauges[name] = _number(doc, key, key) * scale
    extra = {k: _name(doc, k) for k in names if k in doc and k != "uid"}
    if "uid" in doc:
        uid = doc["uid"]
        if not isinstance(uid, str) or not 0 < len(uid) <= 128:
            raise IngestError("uid must be a non-empty string", field="uid")
        extra["uid"] = uid
    return Pushed(
        node=_name(doc, "node_name"),
        timestamp=_timestamp(doc["timestamp"], now=now, max_skew=max_skew),
        gauges=gauges,
        interval_bytes=interval,
        extra=extra,
    )


def parse_node_body(doc: Any, *, node: str, now: float, max_skew: float = MAX_PUSH_SKEW) -> Pushed:
    """Validate a node push for the path's `node`."""
    pushed = _common(doc, optional=_NODE_OPTIONAL, names=(), now=now, max_skew=max_skew)
    if pushed.node != node:
        raise IngestError(
            f"node_name {pushed.node!r} does not match the path's node {node!r}", field="node_name"
        )
    pushed.gauges["memory_used_bytes"] = _number(doc, "memory_bytes", "memory_bytes")
    total = pushed.gauges.get("memory_total_bytes")
    if total is not None:
        pushed.gauges["memory_available_bytes"] = max(0.0, total - pushed.gauges["memory_used_bytes"])
    return pushed


def parse_pod_body(
    doc: Any, *, namespace: str, pod: str, now: float, max_skew: float = MAX_PUSH_SKEW
) -> Pushed:
    """Validate a pod push for the path's `namespace`/`pod`."""
    pushed = _common(
        doc,
        optional=_POD_OPTIONAL,
        names=("namespace", "pod_name", "uid", "deployment"),
        now=now,
        max_skew=max_skew,
    )
    for key, want in (("namespace", namespace), ("pod_name", pod)):
        got = pushed.extra.get(key)
        if got is not None and got != want:
            raise IngestError(f"{key} {got!r} does not match the path's {want!r}", field=key)
    pushed.gauges["memory_working_set_bytes"] = _number(doc, "memory_bytes", "memory_bytes")
    return pushed


class PushIngest:
    """Feeds validated pushes into the store, turning interval bytes into running counter totals."""

    def __init__(
        self,
        *,
        store: Store,
        stats: AggregatorStats,
        clock: Callable[[], float] | None = None,
        max_skew: float = MAX_PUSH_SKEW,
    ) -> None:
        self._store = store
        self._max_skew = max_skew
        self._stats = stats
        self._clock = clock or store.now
        self._lock = threading.Lock()  # serialises pushes so totals and the store stay in step
        self._totals: dict[tuple[str, ...], dict[str, float]] = {}

    def _counters(self, key: tuple[str, ...], pushed: Pushed) -> dict[str, float]:
        before = self._totals.get(key, {})
        return {c: before.get(c, 0.0) + b for c, b in pushed.interval_bytes.items()}

    def push_node(self, node: str, doc: Any) -> int:
        """Validate and store a node push; returns samples stored. Raises IngestError (nothing stored)."""
        pushed = self._checked(
            lambda: parse_node_body(doc, node=node, now=self._clock(), max_skew=self._max_skew)
        )
        with self._lock:
            key = ("node", node)
            counters = self._counters(key, pushed)
            reading = NodeReading(
                node=node, timestamp=pushed.timestamp, values={**pushed.gauges, **counters}, source="push"
            )
            current = self._store.node(node, pod_count=False)
            if (
                current is not None
                and current.sample_time is not None
                and pushed.timestamp <= current.sample_time
            ):
                raise self._stale(node)
            stored = self._store.ingest(reading)
            self._totals[key] = counters
        return stored

    def push_pod(self, namespace: str, pod: str, doc: Any) -> int:
        """Validate and store a pod push; returns samples stored. Raises IngestError (nothing stored)."""
        pushed = self._checked(
            lambda: parse_pod_body(
                doc, namespace=namespace, pod=pod, now=self._clock(), max_skew=self._max_skew
            )
        )
        with self._lock:
            key = ("pod", namespace, pod)
            counters = self._counters(key, pushed)
            deployment = pushed.extra.get("deployment", "")
            reading = PodReading(
                namespace=namespace,
                pod=pod,
                uid=pushed.extra.get("uid", f"push:{namespace}/{pod}"),
                owner_kind="Deployment" if deployment else "",
                owner_name=deployment,
                deployment=deployment,
                values={**pushed.gauges, **counters},
            )
            stored = self._store.ingest_pod(pushed.node, reading, timestamp=pushed.timestamp)
            if stored == 0:
                raise self._stale(f"{namespace}/{pod}")
            self._totals[key] = counters
        return stored

    def _checked(self, parse: Callable[[], Pushed]) -> Pushed:
        try:
            return parse()
        except IngestError:
            self._stats.error("ingest")
            raise

    def _stale(self, what: str) -> StaleTimestamp:
        self._stats.error("ingest")
        return StaleTimestamp(f"timestamp is not newer than the one stored for {what}", field="timestamp")
