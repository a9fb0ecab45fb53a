"""Pod resources: listing, one pod (searched across namespaces), its time series."""

from __future__ import annotations

import falcon

from aggregator.api import listing, params, views
from aggregator.api.context import ApiContext
from aggregator.api.errors import Ambiguous, NotFound
from aggregator.store.views import PodView


def find_one(ctx: ApiContext, req: falcon.Request, pod: str, *, current: bool) -> PodView:
    """The pod called `pod` (narrowed by ?namespace=): 404 when none, 409 with candidates when several."""
    params.subdomain(pod, "pod")
    namespace = params.optional_namespace(req)
    found = ctx.store.find_pods(pod, namespace=namespace, current=current)
    if not found:
        raise NotFound("pod", pod, namespace=namespace)
    if len(found) > 1:
        raise Ambiguous("pod", pod, [p.namespace for p in found])
    return found[0]


class PodList:
    """Every current pod, filtered, sorted and paged as `listing` describes."""

    query_params = listing.ALL_PODS_PARAMS

    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = listing.parse(req, filters=True)
        store = self._ctx.store
        pods = store.round_pod_listing()
        resp.content_type = falcon.MEDIA_JSON
        resp.data = listing.answer_json(self._ctx.pod_docs, query, pods, now=store.now(),
                                        dumps=self._ctx.dumps)


class PodItem:
    query_params = frozenset({"namespace"})

    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, pod: str) -> None:
        view = find_one(self._ctx, req, pod, current=True)
        resp.media = views.pod_doc(view, now=self._ctx.store.now())


class PodTimeseries:
    query_params = frozenset({"namespace", "window"})

    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, pod: str) -> None:
        window = self._ctx.window(req)
        view = find_one(self._ctx, req, pod, current=False)  # history outlives the listing
        store = self._ctx.store
        resp.media = self._ctx.series_doc(
            window,
            lambda since: store.pod_series(view.namespace, view.pod, since=since, previous=True) or [],
            kind="pod",
            namespace=view.namespace,
            pod_name=view.pod,
        )
