"""`create_app`: the Falcon app with every route of SPEC.md, JSON errors, CORS and the chosen JSON codec.

JSON codec: orjson when installed, else the standard library. Measured on this machine, the
30k-pod `/api/pods` document (31 MiB): orjson 0.11 s, json 0.65 s (tests/test_api_json.py prints
the 3k-pod figure). Both get NaN-free documents: the views turn unknown values into null.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import partial
from importlib import resources
from typing import Any

import falcon
import falcon.media

from aggregator.api import errors, groups, nodes, params, pods, push, status, ui
from aggregator.api.context import ApiContext
from aggregator.api.views import PodDocCache
from aggregator.federation import FederationCache
from aggregator.ingest import MAX_BODY_BYTES, MAX_PUSH_SKEW, PushIngest
from aggregator.model import StatusProvider
from aggregator.stats import AggregatorStats
from aggregator.store.store import Store
from k8smon_common import http_api


def json_handler() -> falcon.media.JSONHandler:
    """orjson if available (faster on large listings), else the standard library."""
    try:
        import orjson
    except ImportError:
        return falcon.media.JSONHandler(dumps=lambda o: json.dumps(o, allow_nan=False), loads=json.loads)
    return falcon.media.JSONHandler(dumps=orjson.dumps, loads=orjson.loads)


def api_dumps(handler: falcon.media.JSONHandler | None = None) -> Callable[[object], bytes]:
    """The API's JSON encoder as a function (for answers joined from cached JSON: PodDocCache)."""
    return partial((handler or json_handler()).serialize, content_type=falcon.MEDIA_JSON)


def openapi_document(*, retention_span: float | None = None) -> bytes:
    """The OpenAPI document shipped with the package, with `window`'s maximum set to this store's span."""
    raw = resources.files("aggregator").joinpath("openapi.json").read_bytes()
    if retention_span is None:
        return raw
    doc = json.loads(raw)
    doc["components"]["parameters"]["window"]["schema"]["maximum"] = retention_span
    return json.dumps(doc, indent=1).encode()


class _Cors(falcon.CORSMiddleware):
    """falcon's CORS policy, plus `Vary: Origin` when the answer depends on the caller's origin."""

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        super().process_response(req, resp, resource, req_succeeded)
        if self.allow_origins != "*":
            resp.append_header("Vary", "Origin")  # caches must not serve one origin's answer to another


def _cors(origins: Sequence[str]) -> falcon.CORSMiddleware:
    allowed: str | list[str] = "*" if "*" in origins else list(origins)
    return _Cors(allow_origins=allowed)


def routes(
    ctx: ApiContext, *, ingest: PushIngest, auth: push.PushAuth, max_body_bytes: int = MAX_BODY_BYTES
) -> list[tuple[str, Any]]:
    """Every (URI template, resource) pair; the OpenAPI test compares this list with the document."""
    node_push = push.NodePush(ingest, auth, ctx.stats, max_body_bytes=max_body_bytes)
    pod_push = push.PodPush(ingest, auth, ctx.stats, max_body_bytes=max_body_bytes)
    return [
        ("/", status.Status(ctx)),
        ("/healthz", status.Health(ctx)),
        ("/readyz", status.Ready(ctx)),
        ("/metrics", status.Metrics(ctx)),
        ("/openapi.json", status.OpenApi(openapi_document(retention_span=ctx.store.retention_span))),
        ("/api/nodes", nodes.NodeList(ctx)),
        ("/api/nodes/{node}", nodes.NodeItem(ctx)),
        ("/api/nodes/{node}/pods", nodes.NodePods(ctx)),
        ("/api/nodes/{node}/timeseries", nodes.NodeTimeseries(ctx)),
        ("/api/nodes/{node}/metrics", node_push),
        ("/api/pods", pods.PodList(ctx)),
        ("/api/pods/{pod}", pods.PodItem(ctx)),
        ("/api/pods/{pod}/timeseries", pods.PodTimeseries(ctx)),
        ("/api/namespaces", groups.NamespaceList(ctx)),
        ("/api/namespaces/{namespace}", groups.NamespaceItem(ctx)),
        ("/api/namespaces/{namespace}/pods", groups.NamespacePods(ctx)),
        ("/api/namespaces/{namespace}/timeseries", groups.NamespaceTimeseries(ctx)),
        ("/api/namespaces/{namespace}/pods/{pod}/metrics", pod_push),
        ("/api/namespaces/{namespace}/deployments", groups.DeploymentList(ctx)),
        ("/api/namespaces/{namespace}/deployments/{deployment}", groups.DeploymentItem(ctx)),
        ("/api/namespaces/{namespace}/deployments/{deployment}/pods", groups.DeploymentPods(ctx)),
        ("/api/deployments/{deployment}/timeseries", groups.DeploymentTimeseries(ctx)),
    ]


def ui_routes() -> list[tuple[str, Any]]:
    """The dashboard's static files (not API routes: kept out of the OpenAPI comparison)."""
    files = ui.UiFiles()
    return [("/ui", files), ("/ui/{name:path}", files)]


def create_app(
    *,
    store: Store,
    status: StatusProvider,
    federation: FederationCache,
    stats: AggregatorStats,
    cors_origins: Sequence[str] = ("*",),
    ingest_token: str = "",
    default_window: float = 300.0,
    started_at: float,
    version: str,
    max_body_bytes: int = MAX_BODY_BYTES,
    liveness_timeout: float | None = None,
    max_push_skew: float = MAX_PUSH_SKEW,
    pod_docs: PodDocCache | None = None,
) -> falcon.App:
    """The aggregator's WSGI app; /healthz fails after `liveness_timeout` seconds without a round.

    `pod_docs`: the pod document cache, when something else (the aggregator's ListingWarmer) fills
    it too; made here otherwise."""
    handler = json_handler()
    dumps = api_dumps(handler)
    pod_docs = pod_docs if pod_docs is not None else PodDocCache(dumps)
    # RejectLog last: its process_response runs first, while the error is still a dict.
    middleware = [
        http_api.StreamLargeBodies(),  # first: its process_response runs last, on the final body
        pod_docs.requests,  # counts the requests the listing warmer gives way to
        ui.BrowserRedirect(),
        _cors(cors_origins),
        errors.RenderGuard(handler, stats),
        params.QueryGuard(),
        push.RejectLog(),
    ]
    app = falcon.App(middleware=middleware)
    app.req_options.media_handlers[falcon.MEDIA_JSON] = handler
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = handler
    app.req_options.strip_url_path_trailing_slash = True
    errors.install(app, stats=stats)
    ctx = ApiContext(
        store=store,
        status=status,
        federation=federation,
        stats=stats,
        default_window=default_window,
        started_at=started_at,
        version=version,
        liveness_timeout=liveness_timeout,
        pod_docs=pod_docs,
        dumps=dumps,
    )
    ingest = PushIngest(store=store, stats=stats, max_skew=max_push_skew)
    auth = push.PushAuth(ingest_token, stats)
    http_api.add_routes(app, routes(ctx, ingest=ingest, auth=auth, max_body_bytes=max_body_bytes))
    http_api.add_routes(app, ui_routes())
    return app
