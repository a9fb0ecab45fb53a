"""The Store's per-entity state as plain records (JSON-able metadata + point arrays) and back.

A snapshot must carry everything a restarted aggregator needs to carry on as if it had not stopped:
the points of every node, pod, namespace and deployment series (with their wall-clock timestamps),
the latest sample (values, deltas, rates) that listings show, the counter readings that the next
rate is computed from, and each node's up/down state. Nothing here touches files (persistence.py
does); nothing here takes the Store's lock (the Store calls in while holding it).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aggregator.model import PodReading
from aggregator.store.live import GroupState, NodeState, PodState
from aggregator.store.series import COLUMNS, ChunkedSeries, ChunkRecord
from aggregator.store.views import GroupView, Sample

NODE, POD, GROUP = "node", "pod", "group"


class StateError(ValueError):
    """A record does not describe a valid entity (wrong types, missing fields, bad arrays)."""


@dataclass(frozen=True, slots=True)
class EntityRecord:
    """One entity: `meta` is JSON-able; its points are `chunks` (as the series holds them: what this
    build writes) or, from a version 1/2 state file, the arrays, oldest first."""

    kind: str  # node | pod | group
    meta: dict[str, Any]
    timestamps: array = field(default_factory=lambda: array("d"))  # typecode "d"
    columns: tuple[array, ...] = ()  # one per series.COLUMNS, typecode "I" or "d", len(timestamps) each
    chunks: ChunkRecord | None = None

    def point_arrays(self) -> tuple[array, tuple[array, ...]]:
        """The shown points as plain arrays whichever form the record has (NaN = missing)."""
        if self.chunks is None:
            return self.timestamps, self.columns
        return ChunkedSeries.restore_chunks(1 << 30, len(COLUMNS), self.chunks).export()


def _sample_meta(sample: Sample | None) -> dict[str, Any] | None:
    if sample is None:
        return None
    return {
        "t": sample.timestamp,
        "v": dict(sample.values),
        "d": dict(sample.deltas),
        "r": dict(sample.rates),
        "i": sample.interval_seconds,
    }


def _numbers(doc: Any, what: str) -> dict[str, float]:
    if not isinstance(doc, dict):
        raise StateError(f"{what}: expected an object")
    out: dict[str, float] = {}
    for k, v in doc.items():
        if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, int | float):
            raise StateError(f"{what}: {k!r} is not a number")
        out[k] = float(v)
    return out


def _sample(doc: Any) -> Sample | None:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise StateError("sample: expected an object")
    interval = doc.get("i")
    if interval is not None and not isinstance(interval, int | float):
        raise StateError("sample: bad interval")
    return Sample(
        timestamp=_float(doc.get("t"), "sample timestamp"),
        values=_numbers(doc.get("v"), "sample values"),
        deltas=_numbers(doc.get("d"), "sample deltas"),
        rates=_numbers(doc.get("r"), "sample rates"),
        interval_seconds=None if interval is None else float(interval),
    )


def _float(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise StateError(f"{what}: expected a finite number, got {value!r}")
    return float(value)


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise StateError(f"{what}: expected a string, got {type(value).__name__}")
    return value


def _optional_float(value: Any, what: str) -> float | None:
    return None if value is None else _float(value, what)


def _sample_time(meta: Mapping[str, Any], sample: Sample | None) -> float:
    """The source's own sample time; files from before it was kept stored only the sample's time."""
    if "sample_time" in meta:
        return _float(meta["sample_time"], "sample_time")
    return sample.timestamp if sample is not None else 0.0


def _tracker_meta(previous: Mapping[str, tuple[float, float]]) -> dict[str, list[float]]:
    return {name: [value, ts] for name, (value, ts) in previous.items()}


def _tracker(doc: Any) -> dict[str, tuple[float, float]]:
    if not isinstance(doc, dict):
        raise StateError("tracker: expected an object")
    out = {}
    for name, pair in doc.items():
        if not (isinstance(pair, list) and len(pair) == 2):
            raise StateError(f"tracker {name!r}: expected [value, timestamp]")
        out[_str(name, "tracker name")] = (_float(pair[0], "tracker value"), _float(pair[1], "tracker time"))
    return out


def _row(doc: Any) -> tuple[float | None, ...]:
    if not isinstance(doc, list):
        raise StateError("row: expected a list")
    return tuple(None if v is None else _float(v, "row value") for v in doc)


def _series(record: EntityRecord, capacity: int) -> ChunkedSeries:
    """The record's points, at most `capacity` of them (the newest: retention may have shrunk)."""
    if record.chunks is None and len(record.columns) != len(COLUMNS):
        raise StateError("point arrays do not match the column layout")
    try:
        if record.chunks is not None:
            return ChunkedSeries.restore_chunks(capacity, len(COLUMNS), record.chunks)
        return ChunkedSeries.restore(capacity, record.timestamps, record.columns)
    except ValueError as exc:
        raise StateError(f"point arrays do not match the column layout: {exc}") from None


# --- Store state -> records ----------------------------------------------------------------------------


def node_record(node: NodeState) -> EntityRecord:
    meta = {
        "name": node.name,
        "status": node.status,
        "last_error": node.last_error,
        "source": node.source,
        "last_seen": node.last_seen,
        "last_report": node.last_report,
        "down_since": node.down_since,
        "pod_keys": [list(k) for k in node.pod_keys],
        "sample": _sample_meta(node.sample),
        "sample_time": node.sample_time,
        "tracker": _tracker_meta(node.tracker.export()),
    }
    return EntityRecord(NODE, meta, chunks=node.series.export_chunks())


def pod_record(key: tuple[str, str], pod: PodState) -> EntityRecord:
    r = pod.reading
    meta = {
        "namespace": key[0],
        "pod": key[1],
        "node": pod.node,
        "last_seen": pod.last_seen,
        "reading": None if r is None else {
            "uid": r.uid, "owner_kind": r.owner_kind, "owner_name": r.owner_name, "deployment": r.deployment
        },
        "sample": _sample_meta(pod.sample),
        "sample_time": pod.sample_time,
        "row": list(pod.row),
        "tracker": _tracker_meta(pod.tracker.export()),
    }
    return EntityRecord(POD, meta, chunks=pod.series.export_chunks())


def group_record(group: GroupState) -> EntityRecord:
    v = group.view
    meta = {
        "namespace": v.namespace,
        "deployment": v.deployment,
        "round_id": v.round_id,
        "pod_count": v.pod_count,
        "sample": _sample_meta(v.sample),
        "last_seen": group.last_seen,
    }
    return EntityRecord(GROUP, meta, chunks=group.series.export_chunks())


# --- records -> Store state ----------------------------------------------------------------------------


def node_state(record: EntityRecord, *, capacity: int) -> NodeState:
    m = record.meta
    node = NodeState(_str(m.get("name"), "node name"), capacity)
    node.series = _series(record, capacity)
    node.status = _str(m.get("status"), "node status")
    if node.status not in ("up", "down", "gone"):
        raise StateError(f"node status {node.status!r}")
    last_error = m.get("last_error")
    node.last_error = None if last_error is None else _str(last_error, "node last_error")
    node.source = _str(m.get("source"), "node source")
    node.last_seen = _float(m.get("last_seen"), "node last_seen")
    node.last_report = _float(m.get("last_report"), "node last_report")
    node.down_since = _optional_float(m.get("down_since"), "node down_since")
    keys = m.get("pod_keys")
    if not isinstance(keys, list) or not all(isinstance(k, list) and len(k) == 2 for k in keys):
        raise StateError("node pod_keys: expected [[namespace, pod], ...]")
    node.pod_keys = tuple((_str(ns, "namespace"), _str(p, "pod")) for ns, p in keys)
    node.sample = _sample(m.get("sample"))
    node.sample_time = _sample_time(m, node.sample)
    node.tracker.restore(_tracker(m.get("tracker")))
    return node


def pod_state(record: EntityRecord, *, capacity: int) -> tuple[tuple[str, str], PodState]:
    m = record.meta
    key = (_str(m.get("namespace"), "pod namespace"), _str(m.get("pod"), "pod name"))
    pod = PodState(capacity)
    pod.series = _series(record, capacity)
    pod.node = _str(m.get("node"), "pod node")
    pod.last_seen = _float(m.get("last_seen"), "pod last_seen")
    pod.sample = _sample(m.get("sample"))
    pod.sample_time = _sample_time(m, pod.sample)
    reading = m.get("reading")
    if reading is not None:
        if not isinstance(reading, dict):
            raise StateError("pod reading: expected an object")
        pod.reading = PodReading(
            namespace=key[0],
            pod=key[1],
            uid=_str(reading.get("uid"), "pod uid"),
            owner_kind=_str(reading.get("owner_kind"), "pod owner_kind"),
            owner_name=_str(reading.get("owner_name"), "pod owner_name"),
            deployment=_str(reading.get("deployment"), "pod deployment"),
            values=dict(pod.sample.values) if pod.sample is not None else {},
        )
    pod.row = _row(m.get("row"))
    if pod.row and len(pod.row) != len(COLUMNS):
        raise StateError("pod row does not match the column layout")
    if pod.sample is not None and (pod.reading is None or not pod.row):
        # The store writes all three together; a listing of a pod without its reading, or a roll-up
        # of one without its row, would fail or lose the pod's gauges: refuse the file instead.
        raise StateError("pod sample without its reading and row")
    pod.tracker.restore(_tracker(m.get("tracker")))
    return key, pod


def group_state(record: EntityRecord, *, capacity: int) -> tuple[tuple[str, str], GroupState]:
    m = record.meta
    sample = _sample(m.get("sample"))
    if sample is None:
        raise StateError("group without a sample")
    round_id, pod_count = m.get("round_id"), m.get("pod_count")
    if not isinstance(round_id, int) or not isinstance(pod_count, int):
        raise StateError("group round_id/pod_count: expected integers")
    view = GroupView(
        namespace=_str(m.get("namespace"), "group namespace"),
        deployment=_str(m.get("deployment"), "group deployment"),
        round_id=round_id,
        pod_count=pod_count,
        sample=sample,
    )
    group = GroupState(view, capacity)
    group.series = _series(record, capacity)
    group.last_seen = _float(m.get("last_seen"), "group last_seen")
    return (view.namespace, view.deployment), group
