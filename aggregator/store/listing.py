"""The current pods as one shared, immutable listing: built once per store change, read by every request.

At 1000 nodes x 30 pods, building a PodView per pod and sorting 30,000 of them for each request cost
0.15-0.3 s of CPU, even for a 50-pod page. The store's data changes only when something is stored
(scrape, push) or at the end of a round, so the store keeps one `PodListing` and hands it to every
reader until the next change, or until the first listed pod goes stale (a listing also changes with
time). Indexes (by namespace, node, deployment) and sort orders are derived on first use and kept
with the listing; a listing never changes after it is built, so readers need no store lock.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

from aggregator.release import references
from aggregator.store.views import PodView

T = TypeVar("T")
_MISSING = object()
_FIELDS = ("namespace", "node", "deployment")


class PodListing:
    """The pods current at `built_at`; `views` come in namespace/name order."""

    def __init__(
        self,
        views: Sequence[PodView],
        *,
        built_at: float,
        oldest_seen: float,
        window: Callable[[], float],
    ) -> None:
        self.views: tuple[PodView, ...] = tuple(views)
        self.built_at = built_at
        self._oldest_seen = oldest_seen  # the listed pod seen longest ago: the first to go stale
        self._window = window  # the store's staleness window now (Store.stale_window)
        self._lock = threading.Lock()
        self._memo: dict[Hashable, Any] = {}
        self._building: dict[Hashable, threading.Lock] = {}

    def current(self, now: float) -> bool:
        """True when no listed pod has gone stale since `built_at` and none left out could be current
        again (the clock went back). The staleness test is the store's, to the same float, with its
        window as it is now; a window grown since (rounds falling further behind) brings back no pod
        left out until the next write or round builds another listing."""
        return self.built_at <= now and now - self._oldest_seen <= self._window()

    def keeping(self, keep: Callable[[PodView], bool], *, now: float) -> PodListing:
        """A new listing, as of `now`, of this one's pods that `keep` keeps (their views, in order)."""
        views = [v for v in self.views if keep(v)]
        oldest = min((v.last_seen for v in views), default=math.inf)
        return PodListing(views, built_at=now, oldest_seen=oldest, window=self._window)

    def memo(self, key: Hashable, build: Callable[[], T]) -> T:
        """`build()`, computed once per listing: a thread that finds it being built waits for it (the
        whole listing's JSON takes ~1 s at 30k pods; four requests must not build it four times).

        For values derived from `views` only, under a bounded set of keys (a listing lives one round).
        """
        with self._lock:
            hit = self._memo.get(key, _MISSING)
            if hit is not _MISSING:
                return hit  # type: ignore[no-any-return]
            gate = self._building.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                hit = self._memo.get(key, _MISSING)
            if hit is _MISSING:
                hit = build()
                with self._lock:
                    self._memo[key] = hit
                    del self._building[key]
        return hit  # type: ignore[no-any-return]

    def contents(self) -> list[Any]:
        """References to everything this listing keeps (its views and what was derived from them),
        to `release` in slices once the listing itself is dropped (aggregator/release.py)."""
        with self._lock:
            derived = list(self._memo.values())
        return references(self.views, *derived)

    def built(self, key: Hashable) -> bool:
        """True when `memo(key, ...)` would answer at once."""
        with self._lock:
            return key in self._memo

    def building(self, key: Hashable) -> bool:
        """True while a thread builds `memo(key, ...)` (a caller would wait for it)."""
        with self._lock:
            return key in self._building and key not in self._memo

    def select(
        self, *, namespace: str | None = None, node: str | None = None, deployment: str | None = None
    ) -> Sequence[PodView]:
        """The pods matching every given field exactly, in name order, from the narrowest index."""
        wanted = {f: v for f, v in zip(_FIELDS, (namespace, node, deployment), strict=True) if v is not None}
        if not wanted:
            return self.views
        subsets = {f: self.index(f).get(v, ()) for f, v in wanted.items()}
        field = min(subsets, key=lambda f: len(subsets[f]))
        out = subsets[field]
        rest = [(f, v) for f, v in wanted.items() if f != field]
        if rest:
            out = tuple(p for p in out if all(getattr(p, f) == v for f, v in rest))
        return out

    def index(self, field: str) -> dict[str, tuple[PodView, ...]]:
        """Pods by the value of `field` (namespace, node or deployment), each in name order."""
        if field not in _FIELDS:
            raise ValueError(f"no index on {field!r}")

        def build() -> dict[str, tuple[PodView, ...]]:
            groups: dict[str, list[PodView]] = {}
            for p in self.views:
                groups.setdefault(getattr(p, field), []).append(p)
            return {k: tuple(v) for k, v in groups.items()}

        return self.memo(("index", field), build)

    def node_counts(self) -> Counter[str]:
        """Listed pods per node (a node's `pod_count`)."""
        return self.memo("node_counts", lambda: Counter(p.node for p in self.views))
