"""Compact bounded time series: a ring of timestamps (float64) and fixed value columns (float32).

A deque of dicts of Python floats costs several hundred bytes per point; 1000 nodes x 30 pods x
1000 points would need 10+ GB. Here one point costs 8 bytes of timestamp plus 4 bytes per column
(32 bytes for the six API columns), in two `array` objects per series that grow up to `capacity`
and then overwrite their oldest point, so they behave like `deque(maxlen=capacity)`.
Missing values are stored as NaN and come back as None.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator, Sequence

# What the API serves per point; the order is the column order in the value array.
COLUMNS: tuple[str, ...] = (
    "cpu_millicores",
    "memory_bytes",
    "disk_read_bytes",  # bytes moved during the interval ending at this point
    "disk_write_bytes",
    "net_recv_bytes",
    "net_sent_bytes",
)
NAN = math.nan


class RingSeries:
    """Deque-like bounded series of `(timestamp, row)` points, oldest first; not thread-safe by itself."""

    __slots__ = ("_capacity", "_head", "_ts", "_values", "_width")

    def __init__(self, capacity: int, width: int = len(COLUMNS)) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._capacity = capacity
        self._width = width
        self._ts = array("d")
        self._values = array("f")
        self._head = 0  # index of the oldest point once the ring is full

    def __len__(self) -> int:
        return len(self._ts)

    @property
    def capacity(self) -> int:
        return self._capacity

    def append(self, timestamp: float, row: Sequence[float | None]) -> None:
        """Add the newest point, dropping the oldest when full (None values become NaN)."""
        if len(row) != self._width:
            raise ValueError(f"expected {self._width} values, got {len(row)}")
        clean = [NAN if v is None else v for v in row]
        if len(self._ts) < self._capacity:
            self._ts.append(timestamp)
            self._values.extend(array("f", clean))
            return
        i = self._head
        self._ts[i] = timestamp
        w = self._width
        self._values[i * w : (i + 1) * w] = array("f", clean)
        self._head = (i + 1) % self._capacity

    def _order(self) -> Iterator[int]:
        n = len(self._ts)
        if n < self._capacity:
            yield from range(n)
        else:
            yield from range(self._head, n)
            yield from range(self._head)

    def newest_timestamp(self) -> float | None:
        if not self._ts:
            return None
        return self._ts[(self._head - 1) % len(self._ts)] if len(self._ts) == self._capacity else self._ts[-1]

    def points(
        self, since: float | None = None, *, previous: bool = False
    ) -> list[tuple[float, tuple[float | None, ...]]]:
        """Copies of the points with timestamp >= `since` (all when None), oldest first.

        `previous` adds the newest point before `since`, which a caller needs to give the first point
        in a window its per-second rates; only the points returned are decoded.
        """
        ts = self._ts
        keep: list[int] = []
        before: int | None = None
        for i in self._order():
            if since is not None and ts[i] < since:
                before = i
            else:
                keep.append(i)
        if previous and before is not None:
            keep.insert(0, before)
        w, vals = self._width, self._values
        return [
            (ts[i], tuple(None if math.isnan(v) else v for v in vals[i * w : (i + 1) * w])) for i in keep
        ]

    def export(self) -> tuple[array, array]:
        """Copies of the timestamps and the flat value columns, oldest point first (for snapshots)."""
        if len(self._ts) < self._capacity or self._head == 0:
            return array("d", self._ts), array("f", self._values)
        h, w = self._head, self._width
        return self._ts[h:] + self._ts[:h], self._values[h * w :] + self._values[: h * w]

    @classmethod
    def restore(
        cls, capacity: int, timestamps: array, values: array, width: int = len(COLUMNS)
    ) -> RingSeries:
        """A series holding the newest `capacity` of the given points (oldest first, as `export` gives)."""
        if len(values) != len(timestamps) * width:
            raise ValueError(f"{len(timestamps)} points need {len(timestamps) * width} values")
        series = cls(capacity, width)
        skip = max(0, len(timestamps) - capacity)
        series._ts = timestamps[skip:] if skip else timestamps
        series._values = values[skip * width :] if skip else values
        return series

    def nbytes(self) -> int:
        """Bytes held by the point buffers (for the bytes-per-sample figure)."""
        return self._ts.buffer_info()[1] * self._ts.itemsize + self._values.buffer_info()[1] * 4


def bytes_per_sample(width: int = len(COLUMNS)) -> int:
    """Buffer bytes one stored point costs: an 8-byte timestamp plus 4 bytes per column."""
    return 8 + 4 * width
