"""`create_metrics_app`: the Falcon app of the Resource Metrics API listener."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon

from aggregator.api.app import json_handler
from aggregator.metricsapi import discovery, resources, status
from aggregator.metricsapi.metadata import Labels
from aggregator.stats import AggregatorStats
from aggregator.store.store import Store


class Probe:
    """`/healthz`, `/readyz`, `/livez`: plain `ok`, as an API server answers them (no auth needed)."""

    def __init__(self, ready: Callable[[], bool]) -> None:
        self._ready = ready

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        if not self._ready():
            resp.status = falcon.HTTP_503
            resp.text = "not ready"
            return
        resp.text = "ok"


def routes(ctx: resources.MetricsContext, *, ready: Callable[[], bool]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [
        ("/healthz", Probe(lambda: True)),
        ("/livez", Probe(lambda: True)),
        ("/readyz", Probe(ready)),
        ("/apis", discovery.Apis()),
        (f"/apis/{discovery.GROUP}", discovery.Group()),
    ]
    for version in discovery.VERSIONS:
        base = f"/apis/{discovery.GROUP}/{version}"
        out += [
            (base, discovery.Resources(version)),
            (f"{base}/nodes", resources.NodeList(ctx, version)),
            (f"{base}/nodes/{{name}}", resources.NodeItem(ctx, version)),
            (f"{base}/pods", resources.PodList(ctx, version)),
            (f"{base}/namespaces/{{namespace}}/pods", resources.PodList(ctx, version)),
            (f"{base}/namespaces/{{namespace}}/pods/{{name}}", resources.PodItem(ctx, version)),
        ]
    return out


def create_metrics_app(*, store: Store, labels: Labels, stats: AggregatorStats, default_window: float,
                       clock: Callable[[], float], ready: Callable[[], bool] = lambda: True,
                       middleware: list[object] | None = None) -> falcon.App:
    """The metrics.k8s.io app; `middleware` (authentication/authorization) runs before every resource."""
    handler = json_handler()
    app = falcon.App(middleware=middleware or [])
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = handler
    app.req_options.strip_url_path_trailing_slash = True
    status.install(app, stats)
    ctx = resources.MetricsContext(store=store, labels=labels, clock=clock, default_window=default_window)
    for template, resource in routes(ctx, ready=ready):
        app.add_route(template, resource)
    return app
