"""Service resources: GET / (status), /healthz, /readyz, /metrics (federated), /openapi.json."""

from __future__ import annotations

import time

import falcon
from prometheus_client import CONTENT_TYPE_LATEST

from aggregator.api import human
from aggregator.api.context import ApiContext
from aggregator.api.errors import ApiError


class Status:
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ctx = self._ctx
        targets = list(ctx.status.targets())
        up = sum(1 for t in targets if t.up)
        last = ctx.status.last_round()
        uptime = max(0.0, time.time() - ctx.started_at)
        nodes = {"up": 0, "down": 0, "gone": 0}  # the nodes /api/nodes lists, by the status it shows
        for n in ctx.store.nodes(pod_counts=False):  # statuses only: no pod listing built for them
            nodes[n.status] = nodes.get(n.status, 0) + 1
        resp.media = {
            "service": "k8s-monitor-aggregator",
            "version": ctx.version,
            "started_at": human.iso(ctx.started_at),
            "uptime_seconds": round(uptime, 3),
            "uptime": human.duration(uptime),
            "ready": ctx.status.ready(),
            "discovery_mode": ctx.status.discovery_mode(),
            "targets": {
                "total": len(targets),
                "up": up,
                "down": len(targets) - up,
                "items": [
                    {
                        "target": t.target,
                        "node_name": t.node,
                        "up": t.up,
                        "last_error": t.last_error,
                        "last_scrape": human.iso(t.last_scrape),
                        "duration_seconds": t.duration_seconds,
                        "samples": t.samples,
                    }
                    for t in targets
                ],
            },
            "last_round": None
            if last is None
            else {
                "round_id": last.round_id,
                "started": human.iso(last.started),
                "duration_seconds": last.duration_seconds,
            },
            "last_scrape": human.iso(last.started) if last else None,
            "nodes": nodes,
            "series": ctx.store.series_counts(),
        }


class Health:
    """Liveness: fails when the scrape loop has made no progress for --liveness-timeout seconds.

    Discovery or every exporter being away does not fail it (rounds still complete, and a restart
    would not help); a loop stuck in a round does, so Kubernetes restarts the aggregator.
    """

    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        age = self._ctx.status.progress_age()
        limit = self._ctx.liveness_timeout
        if age is not None and limit is not None and age > limit:
            raise ApiError(
                falcon.HTTP_503,
                error="stalled",
                description=f"no scrape round completed for {age:.0f}s (--liveness-timeout {limit:g}s)",
                last_progress_seconds=round(age, 3),
            )
        resp.media = {"status": "ok", "last_progress_seconds": None if age is None else round(age, 3)}


class Ready:
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not self._ctx.status.ready():
            raise ApiError(
                falcon.HTTP_503,
                error="not_ready",
                description="waiting for discovery to answer and a first scrape round to complete",
            )
        resp.media = {"status": "ready"}


class Metrics:
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = CONTENT_TYPE_LATEST
        resp.vary = ("Accept-Encoding",)
        if "gzip" in (req.get_header("Accept-Encoding") or ""):
            resp.set_header("Content-Encoding", "gzip")
            resp.data = self._ctx.federation.body_gzip()
        else:
            resp.data = self._ctx.federation.body()


class OpenApi:
    def __init__(self, document: bytes) -> None:
        self._document = document

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self._document
