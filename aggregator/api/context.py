"""What every resource needs, passed explicitly (no globals)."""

from __future__ import annotations

from dataclasses import dataclass, field

import falcon

from aggregator.api import params
from aggregator.api.views import PodDocCache
from aggregator.federation import FederationCache
from aggregator.model import StatusProvider
from aggregator.stats import AggregatorStats
from aggregator.store import Store


@dataclass(frozen=True)
class ApiContext:
    store: Store
    status: StatusProvider
    federation: FederationCache
    stats: AggregatorStats
    default_window: float
    started_at: float
    version: str
    pod_docs: PodDocCache = field(default_factory=PodDocCache)

    def window(self, req: falcon.Request) -> float:
        """The validated `?window=` of a timeseries request."""
        return params.window(req, default=self.default_window, maximum=self.store.retention_span)
