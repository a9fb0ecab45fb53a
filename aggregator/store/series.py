"""Bounded time series with exact values in compressed chunks: one per node, pod, namespace, deployment.

A point is a float64 timestamp and one float64 value per column. The newest points form the open
chunk, kept plain (one float64 array, a point's timestamp and values side by side) so an append is a
few list operations; when it holds `chunk_points` points it is closed: encoded once in bulk by
`chunks.py` (delta-of-delta timestamps, decimal or whole values as delta + zigzag integers, other
floats XORed with their predecessor, bitmaps of missing and zero values, byte planes, zstd). Measured
with bench/history_bench.py on realistic values: 1.75 B per value with timestamps (10.5 B a point of
six values, open chunks included; the plain layout before took 37 B).

Values come back exactly as appended, bit for bit: None stays None (stored as one NaN bit pattern,
`chunks.NONE`), other NaNs keep their payload, -0.0 stays -0.0, whole numbers up to 2**53 come back
as `int` (as `float` otherwise), so JSON shows them as integers.

Capacity: the series keeps at least `capacity` points and shows exactly the newest `capacity`
(like `deque(maxlen=capacity)`); older points go a whole closed chunk at a time, once the chunks after
it hold `capacity` points, so up to one chunk of hidden points is held beyond the capacity. The first
chunk of each series closes after a different number of points (a per-series offset), so the series
of one store do not all close a chunk in the same round.

Reads decode only the chunks a window touches: each closed chunk keeps its smallest and largest
timestamp beside its bytes. Not thread-safe by itself (the Store holds its lock).
"""

from __future__ import annotations

import itertools
import math
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from aggregator.store import chunks

# What the API serves per point; the order is the column order.
COLUMNS: tuple[str, ...] = (
    "cpu_millicores",
    "memory_bytes",
    "disk_read_bytes",  # bytes moved during the interval ending at this point
    "disk_write_bytes",
    "net_recv_bytes",
    "net_sent_bytes",
)
CHUNK_POINTS = 240  # points per closed chunk (20 min at 5 s): measured against 120 in bench/history_bench.py
NONE = chunks.NONE
MISSING_WHOLE = 0xFFFFFFFF  # "no value" in a uint32 column of a version-2 state file
Row = tuple[float | int | None, ...]
_stagger = itertools.count()


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """A series as stored in a state file: closed chunks as their bytes, the open chunk's raw points."""

    hidden: int  # the oldest points of the first chunk that are past the capacity (not shown)
    counts: array  # "H": points per closed chunk
    bounds: array  # "d": smallest and largest timestamp of each closed chunk
    blobs: tuple[bytes, ...]  # the closed chunks, as chunks.encode made them
    open: array  # "d": the open chunk's points, timestamp and values side by side


class ChunkedSeries:
    """Deque-like bounded series of `(timestamp, row)` points, oldest first."""

    __slots__ = ("_blobs", "_bounds", "_capacity", "_chunk", "_close_at", "_counts", "_hidden", "_newest",
                 "_open", "_stored", "_width")

    def __init__(self, capacity: int, width: int = len(COLUMNS), *, chunk_points: int = CHUNK_POINTS) -> None:
        if capacity <= 0 or width <= 0:
            raise ValueError("capacity and width must be positive")
        if not 0 < chunk_points < 1 << 16:
            raise ValueError("chunk_points must be 1..65535")
        self._capacity = capacity
        self._width = width
        self._chunk = min(chunk_points, capacity)  # a chunk never holds more than the series shows
        self._close_at = self._chunk - next(_stagger) % self._chunk  # the first chunk: 1..chunk points
        self._open = array("d")
        self._blobs: list[bytes] = []
        self._counts = array("H")
        self._bounds = array("d")
        self._stored = 0  # points held, hidden ones included
        self._hidden = 0  # the oldest points held but no longer shown (past the capacity)
        self._newest: float | None = None

    def __len__(self) -> int:
        return self._stored - self._hidden

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def width(self) -> int:
        return self._width

    def chunk_count(self) -> int:
        """Closed chunks held."""
        return len(self._blobs)

    def append(self, timestamp: float, row: Sequence[float | None]) -> None:
        """Add the newest point (None = missing), dropping the oldest chunk once the rest hold capacity."""
        if len(row) != self._width:
            raise ValueError(f"expected {self._width} values, got {len(row)}")
        if not math.isfinite(timestamp):
            raise ValueError(f"a point needs a finite timestamp, got {timestamp!r}")
        if len(self._open) >= self._close_at * (self._width + 1):
            self._close()
        if None in row:
            row = [NONE if v is None else v for v in row]
        # fromlist adds all or nothing: a value that is not a number leaves the series as it was
        self._open.fromlist([timestamp, *row])
        self._stored += 1
        self._newest = timestamp
        if self._stored - self._hidden > self._capacity:
            self._hidden += 1
            if self._counts and self._hidden >= self._counts[0]:
                self._drop()

    def _close(self) -> None:
        stride = self._width + 1
        buf = self._open
        timestamps = buf[0::stride]
        self._blobs.append(chunks.encode(timestamps, [buf[c::stride] for c in range(1, stride)]))
        self._counts.append(len(timestamps))
        self._bounds.extend((min(timestamps), max(timestamps)))
        self._open = array("d")
        self._close_at = self._chunk

    def _drop(self) -> None:
        """Drop the oldest closed chunks once none of their points is shown."""
        while self._counts and self._counts[0] <= self._hidden:
            self._stored -= self._counts[0]
            self._hidden -= self._counts[0]
            del self._blobs[0], self._counts[0], self._bounds[0:2]

    def newest_timestamp(self) -> float | None:
        return self._newest

    def _segments(self) -> Iterator[tuple[float, float, int]]:
        """(smallest and largest timestamp, chunk number: -1 for the open chunk) of each, oldest first."""
        for k in range(len(self._counts)):
            yield self._bounds[2 * k], self._bounds[2 * k + 1], k
        if self._open:
            timestamps = self._open[0::self._width + 1]
            yield min(timestamps), max(timestamps), -1

    def _decode(self, k: int) -> list[tuple[float, Row]]:
        if k >= 0:
            timestamps, columns = chunks.decode(self._blobs[k])
            return list(zip(timestamps, zip(*columns, strict=True), strict=True))
        stride = self._width + 1
        values = list(map(chunks.output, self._open))
        return [(self._open[i], tuple(values[i + 1:i + stride])) for i in range(0, len(values), stride)]

    def points(self, since: float | None = None, *, previous: bool = False) -> list[tuple[float, Row]]:
        """The points with timestamp >= `since` (all when None), oldest first, decoding only the chunks
        that hold such points.

        `previous` adds the newest point before `since`, which a caller needs to give the first point
        in a window its per-second rates.
        """
        segments = list(self._segments())
        decoded: dict[int, list[tuple[float, Row]]] = {}

        def shown(i: int, k: int) -> list[tuple[float, Row]]:
            if k not in decoded:  # hidden points are the oldest of the first chunk (dropped once all are)
                decoded[k] = self._decode(k)[self._hidden if i == 0 else 0:]
            return decoded[k]

        keep: list[tuple[float, Row]] = []
        before: tuple[float, Row] | None = None
        if previous and since is not None:  # the newest chunk with a shown point before `since` holds it
            for i in range(len(segments) - 1, -1, -1):
                low, _high, k = segments[i]
                if low < since:
                    older = [p for p in shown(i, k) if p[0] < since]
                    if older:
                        before = older[-1]
                        break
        for i, (_low, high, k) in enumerate(segments):
            if since is None or high >= since:
                points = shown(i, k)
                keep.extend(points if since is None else (p for p in points if p[0] >= since))
        if before is not None:
            keep.insert(0, before)
        return keep

    # --- snapshots -------------------------------------------------------------------------------------

    def export(self) -> tuple[array, tuple[array, ...]]:
        """The shown points as plain arrays (timestamps, then one float64 array per column, NaN = missing)."""
        timestamps = array("d")
        columns = tuple(array("d") for _ in range(self._width))
        for t, row in self.points():
            timestamps.append(t)
            for column, v in zip(columns, row, strict=True):
                column.append(NONE if v is None else v)
        return timestamps, columns

    @classmethod
    def restore(cls, capacity: int, timestamps: array, columns: Sequence[array], *,
                chunk_points: int = CHUNK_POINTS) -> ChunkedSeries:
        """A series holding the newest `capacity` of the given points (oldest first, as `export` gives or a
        version-2 state file holds: `I` uint32 columns with 0xFFFFFFFF or `d` float64 ones with NaN for
        a missing value)."""
        if timestamps.typecode != "d":
            raise ValueError("timestamps must be float64")
        for column in columns:
            if column.typecode not in ("I", "d") or len(column) != len(timestamps):
                raise ValueError(f"{len(timestamps)} points need columns of {len(timestamps)} I/d values")
        series = cls(capacity, len(columns), chunk_points=chunk_points)
        for t, row in zip(timestamps, zip(*(_legacy(c) for c in columns), strict=True), strict=True):
            series.append(t, row)  # the oldest go as the capacity fills
        return series

    def export_chunks(self) -> ChunkRecord:
        """The series as a state file stores it: closed chunks as they are (no re-encoding)."""
        return ChunkRecord(self._hidden, array("H", self._counts), array("d", self._bounds),
                           tuple(self._blobs), array("d", self._open))

    @classmethod
    def restore_chunks(cls, capacity: int, width: int, record: ChunkRecord, *,
                       chunk_points: int = CHUNK_POINTS) -> ChunkedSeries:
        """The series of an `export_chunks` record, showing at most its newest `capacity` points."""
        stride = width + 1
        if (len(record.open) % stride or len(record.counts) != len(record.blobs)
                or len(record.bounds) != 2 * len(record.counts) or 0 in record.counts):
            raise ValueError("a chunk record whose counts, bounds, chunks and open points do not match")
        stored = sum(record.counts) + len(record.open) // stride
        if not 0 <= record.hidden < max(1, stored) or record.hidden > sum(record.counts):
            raise ValueError(f"a chunk record hiding {record.hidden} of {stored} points")
        series = cls(capacity, width, chunk_points=chunk_points)
        series._blobs = list(record.blobs)
        series._counts = array("H", record.counts)
        series._bounds = array("d", record.bounds)
        series._open = array("d", record.open)
        series._stored = stored
        if len(series._open) >= series._chunk * stride:  # saved with larger chunks than this capacity allows
            series._close()
        # points hidden before stay hidden (a larger capacity now does not bring back what was dropped)
        series._hidden = max(record.hidden, stored - capacity)
        series._newest = series._open[-stride] if series._open else series._last_closed_timestamp()
        series._close_at = series._chunk  # open chunks were staggered when they were written: they stay so
        series._drop()
        return series

    def _last_closed_timestamp(self) -> float | None:
        if not self._blobs:
            return None
        return chunks.decode(self._blobs[-1])[0][-1]

    def nbytes(self) -> int:
        """Bytes of the closed chunks, their counts and bounds, and the open chunk's points (lengths: what
        the allocator adds on top is measured by bench/history_bench.py with tracemalloc)."""
        held = sum(len(b) for b in self._blobs)
        for a in (self._open, self._counts, self._bounds):
            held += a.buffer_info()[1] * a.itemsize
        return held


def _legacy(column: array) -> list[float | None]:
    """A version-2 column's values with its missing marks as None."""
    if column.typecode == "I":
        return [None if v == MISSING_WHOLE else v for v in column]
    return [None if math.isnan(v) else v for v in column]


RingSeries = ChunkedSeries  # the name before issue 15; bench/persistence_bench.py still uses it
