"""Per-interval deltas and per-second rates from cumulative counters, across resets and missed scrapes.

Rules (Prometheus' own): the delta between two readings is `new - old`; when the counter went down
the exporter (or the pod) restarted, so the new value itself is the delta since the reset. The
interval spans from the previous reading the counter appeared in, so a missed scrape makes the
interval longer and the rate stays right. The first reading has no rate (None), never 0.
"""

from __future__ import annotations

from dataclasses import dataclass

COUNTERS: tuple[str, ...] = (
    "cpu_seconds_total",
    "disk_read_bytes_total",
    "disk_written_bytes_total",
    "network_receive_bytes_total",
    "network_transmit_bytes_total",
)


@dataclass(frozen=True, slots=True)
class CounterDelta:
    """What one counter moved since its previous reading."""

    delta: float  # counter units moved during the interval
    seconds: float  # length of that interval

    @property
    def rate(self) -> float:
        return self.delta / self.seconds


def counter_delta(previous: float, now: float, *, seconds: float) -> CounterDelta | None:
    """Delta of one counter between two readings `seconds` apart; None when time did not advance."""
    if seconds <= 0:
        return None
    delta = now - previous if now >= previous else now  # a drop means a reset: count from zero
    return CounterDelta(delta=delta, seconds=seconds)


class CounterTracker:
    """Remembers the previous value and time of each counter of one series."""

    __slots__ = ("_previous",)

    def __init__(self) -> None:
        self._previous: dict[str, tuple[float, float]] = {}  # name -> (value, timestamp)

    def reset(self) -> None:
        """Forget history (the series now belongs to a different object, e.g. a new pod UID)."""
        self._previous.clear()

    def export(self) -> dict[str, tuple[float, float]]:
        """The previous reading of each counter, name -> (value, timestamp) (for snapshots)."""
        return dict(self._previous)

    def restore(self, previous: dict[str, tuple[float, float]]) -> None:
        """Resume from exported readings, so the first rate after a restart spans the gap."""
        self._previous = dict(previous)

    def update(
        self, values: dict[str, float], timestamp: float
    ) -> tuple[dict[str, float], dict[str, float], float | None]:
        """(deltas, per-second rates, longest interval) of the counters in `values` that have a previous
        reading; `counter_delta` inlined, since this runs for every pod of every round."""
        deltas: dict[str, float] = {}
        rates: dict[str, float] = {}
        longest: float | None = None
        previous = self._previous
        for name in COUNTERS:
            value = values.get(name)
            if value is None:
                continue  # missing this time: keep the old reading, the next interval spans the gap
            before = previous.get(name)
            previous[name] = (value, timestamp)
            if before is None:
                continue
            seconds = timestamp - before[1]
            if seconds <= 0:
                continue
            delta = value - before[0] if value >= before[0] else value  # a drop means a reset
            deltas[name] = delta
            rates[name] = delta / seconds
            if longest is None or seconds > longest:
                longest = seconds
        return deltas, rates, longest
