"""Monotonic totals over per-device (or per-interface) kernel counters.

The kernel keeps one counter per disk and per interface; a sum over them drops when one goes away (a
PVC's disk detached, an interface deleted, a pod's cgroup forgetting a device), which Prometheus'
`rate()` and the aggregator read as a counter reset and count the whole remaining total as one interval.
So the exporter sums *deltas* per device instead, as node_exporter and cAdvisor users expect of a
`_total`:
- the first reading starts the total at the sum of every device's value (the kernel's own figure);
- a device seen before adds what it moved since; one whose counter went backwards (re-created under the
  same name, wrapped) adds its new value, as `rate()` does for a reset;
- a device that appears adds its whole value (its counter started at 0 when it appeared, after the
  previous reading);
- a device that goes away keeps what it contributed: the total never decreases.
The total resets only when the exporter restarts (or, for a pod, when the pod leaves and comes back).
"""

from __future__ import annotations

from collections.abc import Mapping

Pair = tuple[int, int]  # (read, written) bytes of a disk, (received, transmitted) of an interface


class MonotonicTotal:
    """A (first, second) total that only grows, fed with per-device cumulative pairs."""

    __slots__ = ("_prev", "_total")

    def __init__(self) -> None:
        self._prev: dict[str, Pair] | None = None
        self._total: Pair = (0, 0)

    def update(self, devices: Mapping[str, Pair]) -> Pair:
        """Fold in one reading of every counted device; the new total."""
        prev = self._prev or {}
        a, b = self._total
        for dev, (x, y) in devices.items():
            old = prev.get(dev)
            if old is None:
                a += x
                b += y
            else:
                a += x - old[0] if x >= old[0] else x
                b += y - old[1] if y >= old[1] else y
        self._prev = dict(devices)
        self._total = (a, b)
        return self._total

    @property
    def total(self) -> Pair:
        return self._total


def cpu_rate(previous: tuple[float, float] | None, seconds: float, stamp: float) -> float | None:
    """Cores used since `previous` (cpu seconds, monotonic stamp): None on a first reading, when the
    counter went back (a re-created cgroup) or when no time passed, so a rate is never negative."""
    if previous is None:
        return None
    used, elapsed = seconds - previous[0], stamp - previous[1]
    return used / elapsed if used >= 0 and elapsed > 0 else None
