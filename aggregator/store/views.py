"""Read-only values the store hands to the API and the federation cache (copies, never live state)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter

from aggregator.model import ContainerReading

# Counter -> the series column its per-interval delta goes to.
IO_COLUMNS: dict[str, str] = {
    "disk_read_bytes_total": "disk_read_bytes",
    "disk_written_bytes_total": "disk_write_bytes",
    "network_receive_bytes_total": "net_recv_bytes",
    "network_transmit_bytes_total": "net_sent_bytes",
}


@dataclass(slots=True)
class Sample:
    """The latest full-precision reading of one node, pod, namespace or deployment.

    Read-only by convention like PodView, not `frozen=True` (model.py says why): both are built once
    per pod per round."""

    timestamp: float  # unix seconds on the aggregator's clock: when received (scrape round start for
    # scraped samples and roll-ups); the exporter's own sample time is kept beside it in the store
    values: Mapping[str, float]  # exporter gauges and counter totals, by family name without prefix
    deltas: Mapping[str, float]  # counter -> amount moved during the last interval
    rates: Mapping[str, float]  # counter -> per second over the last interval
    interval_seconds: float | None  # length of the last interval (None on a first reading)

    @property
    def cpu_millicores(self) -> float | None:
        """Current CPU: the exporter's gauge (its own last sampling interval), else the counter rate."""
        gauge = self.values.get("cpu_usage_cores")
        if gauge is not None:
            return gauge * 1000.0
        rate = self.rates.get("cpu_seconds_total")
        return None if rate is None else rate * 1000.0


def make_sample(
    values: Mapping[str, float],
    timestamp: float,
    deltas: Mapping[str, float],
    rates: Mapping[str, float],
    interval_seconds: float | None,
) -> Sample:
    """A Sample from raw values and what the counter tracker computed."""
    return Sample(
        timestamp=timestamp, values=values, deltas=deltas, rates=rates, interval_seconds=interval_seconds
    )


def nanocores(millicores: float) -> float:
    """Millicores rounded to whole nanocores (six decimals), kubelet's `usageNanoCores` unit.

    A rate is a quotient of two measurements with no short decimal form, so stored as is it costs
    the history ~7 bytes a point; to whole nanocores it is a 6-place decimal the chunks keep exactly
    in ~3 (bench/history_bench.py). cgroup counts CPU in microseconds: over a 5-s interval that is 200
    nanocores, so the rounding (at most half a nanocore) is far below what was measured.
    """
    return round(millicores * 1e6) / 1e6 if math.isfinite(millicores) else millicores


def series_row(sample: Sample, *, memory_key: str) -> tuple[float | None, ...]:
    """The stored point for a sample, in `series.COLUMNS` order.

    CPU in the series is the counter rate (exact average over the interval since the previous stored
    point, right across missed scrapes), falling back to the gauge on a first reading; the gauge and
    the rate agree whenever every exporter snapshot is scraped. Stored in whole nanocores (`nanocores`).
    """
    rate = sample.rates.get("cpu_seconds_total")
    cpu = rate * 1000.0 if rate is not None else sample.cpu_millicores
    deltas = sample.deltas
    return (
        None if cpu is None else nanocores(cpu),
        sample.values.get(memory_key),
        *map(deltas.get, IO_COLUMNS),
    )


def sum_rows(rows: list[tuple[float | None, ...]], width: int) -> tuple[float | None, ...]:
    """Column sums of rows of `width` values, ignoring missing ones (None, NaN), added in the rows'
    order; a column missing everywhere stays missing. A column at a time: half the time of row by row
    at 30k rows (a round's roll-up sums every pod's row twice: its leaf group, its namespace)."""
    out: list[float | None] = [None] * width
    for i in range(width):
        acc = None
        for v in map(itemgetter(i), rows):
            if v is not None and v == v:  # noqa: PLR0124 - False for NaN, cheaper than math.isnan
                acc = v if acc is None else acc + v
        out[i] = acc
    return tuple(out)


@dataclass(frozen=True, slots=True)
class NodeView:
    """A node as listed: status, last error and its latest sample (the last known one when down)."""

    name: str
    status: str  # up | down | gone | stale (see store.py)
    last_error: str | None
    source: str  # scrape | push
    last_seen: float  # unix seconds of the last successful ingest (0 when never)
    down_since: float | None
    sample: Sample | None
    pod_count: int
    sample_time: float | None = None  # the exporter's (pusher's) own time of `sample`


@dataclass(slots=True)
class PodView:
    namespace: str  # "" when the exporter could not name the pod
    pod: str  # the UID when unnamed
    uid: str
    node: str
    deployment: str
    owner_kind: str
    owner_name: str
    last_seen: float
    sample: Sample
    containers: tuple[ContainerReading, ...] = ()  # the latest reading's containers (no history)


@dataclass(frozen=True, slots=True)
class GroupView:
    """A namespace (deployment "" ) or deployment roll-up: sums over its pods in one round."""

    namespace: str
    deployment: str
    round_id: int
    pod_count: int
    sample: Sample  # values/deltas/rates are sums over the pods that had them


@dataclass(frozen=True, slots=True)
class Point:
    """One stored series point (None = unknown)."""

    timestamp: float
    row: tuple[float | None, ...]  # series.COLUMNS order
