"""The aggregator's own health counters, shared by scraper, store, ingest and the federation cache."""

from __future__ import annotations

import threading
from collections import Counter


class AggregatorStats:
    """Thread-safe counters; read with `snapshot()` so a render sees one consistent view."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._errors: Counter[str] = Counter()
        self._counters: Counter[str] = Counter()
        self._gauges: dict[str, float] = {}

    def error(self, source: str, n: int = 1) -> None:
        with self._lock:
            self._errors[source] += n

    def incr(self, name: str, n: float = 1) -> None:
        with self._lock:
            self._counters[name] += n  # type: ignore[assignment]

    def set(self, name: str, value: float) -> None:
        with self._lock:
            self._gauges[name] = value

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {
                "errors": dict(self._errors),
                "counters": dict(self._counters),
                "gauges": dict(self._gauges),
            }
