"""What every resource needs, passed explicitly (no globals)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import falcon

from aggregator.api import params, views
from aggregator.api.views import NodeDocCache, PodDocCache
from aggregator.federation import FederationCache
from aggregator.model import StatusProvider
from aggregator.stats import AggregatorStats
from aggregator.store.store import Store
from aggregator.store.views import Point


@dataclass(frozen=True)
class ApiContext:
    store: Store
    status: StatusProvider
    federation: FederationCache
    stats: AggregatorStats
    default_window: float
    started_at: float
    version: str
    liveness_timeout: float | None = None  # see Health
    pod_docs: PodDocCache = field(default_factory=PodDocCache)
    node_docs: NodeDocCache = field(default_factory=NodeDocCache)
    # The app's JSON encoder (orjson or json), for answers joined from cached JSON (PodDocCache.encoded).
    dumps: Callable[[object], bytes] = field(default=views.json_dumps)

    def window(self, req: falcon.Request) -> float:
        """The validated `?window=` of a timeseries request, always a float (`window_seconds` is one type)."""
        return float(params.window(req, default=self.default_window, maximum=self.store.retention_span))

    def series_doc(
        self, window: float, fetch: Callable[[float], Sequence[Point] | None], **ident: Any
    ) -> dict[str, Any] | None:
        """A timeseries document from `fetch(since)`, or None when `fetch` knows no such entity.

        `fetch` also returns the newest point before `since` (`previous=True` in the store), which
        gives the first point in the window its per-second rates and is not itself served.
        """
        since = self.store.now() - window
        points = fetch(since)
        if points is None:
            return None
        return {**ident, "window_seconds": window, "points": views.points_doc(points, since=since)}
