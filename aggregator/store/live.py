"""Mutable per-entity state inside the Store (never handed out; readers get `views.py` copies)."""

from __future__ import annotations

import math

from aggregator.model import PodReading
from aggregator.rates import CounterTracker
from aggregator.store.series import ChunkedSeries
from aggregator.store.views import GroupView, PodView, Sample

PodKey = tuple[str, str]  # (namespace, pod)
# (node, namespace, pod, uid, owner_kind, owner_name, deployment): a pod's federation labels
PodIdentity = tuple[str, str, str, str, str, str, str]


class NodeState:
    __slots__ = (
        "down_since",
        "last_error",
        "last_report",
        "last_seen",
        "name",
        "pod_keys",
        "sample",
        "sample_time",
        "series",
        "source",
        "status",
        "tracker",
    )

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.series = ChunkedSeries(capacity)
        self.tracker = CounterTracker()
        self.sample: Sample | None = None
        self.sample_time = 0.0  # the exporter's own time of `sample` (rates and duplicates only)
        self.status = "up"  # up | down | gone (store.py says what each means)
        self.last_error: str | None = None
        self.source = "scrape"
        self.last_seen = 0.0  # clock() of the last successful ingest
        self.last_report = 0.0  # clock() of the last ingest or mark_down
        self.down_since: float | None = None
        self.pod_keys: tuple[PodKey, ...] = ()


class PodState:
    __slots__ = ("last_seen", "node", "reading", "row", "sample", "sample_time", "series", "tracker", "view")

    def __init__(self, capacity: int) -> None:
        self.series = ChunkedSeries(capacity)
        self.tracker = CounterTracker()
        self.reading: PodReading | None = None
        self.node = ""
        self.sample: Sample | None = None
        self.sample_time = 0.0  # the exporter's (or pusher's) own time of `sample`
        self.row: tuple[float | None, ...] = ()
        self.last_seen = 0.0
        self.view: PodView | None = None  # the listed view of the above, built once (None: changed since)


class GroupState:
    __slots__ = ("last_seen", "series", "view")

    def __init__(self, view: GroupView, capacity: int) -> None:
        self.view = view
        self.series = ChunkedSeries(capacity)
        self.last_seen = 0.0


def finite_values(values: dict[str, float]) -> dict[str, float]:
    """Drop NaN/Inf and non-numbers (an exporter may expose NaN; it is "unknown", not a value).

    The reading's own dict is kept when every value is fine (the usual case), saving a copy per pod.
    """
    try:
        if all(map(math.isfinite, values.values())):  # C-level loop: the hot path at 30k pods
            return values
    except TypeError:
        pass  # a non-number somewhere: the filtering below drops it
    return {
        k: float(v)
        for k, v in values.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
