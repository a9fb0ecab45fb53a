"""Node resources: listing, one node, its pods, its time series."""

from __future__ import annotations

from dataclasses import replace

import falcon

from aggregator.api import listing, params, views
from aggregator.api.context import ApiContext
from aggregator.api.errors import NotFound


class NodeList:
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        store = self._ctx.store
        now = store.now()
        nodes = self._ctx.node_docs.docs(store.nodes(), now=now)
        resp.media = {"nodes": nodes, "count": len(nodes)}


class NodeItem:
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, node: str) -> None:
        view = self._ctx.store.node(params.subdomain(node, "node"))
        if view is None:
            raise NotFound("node", node)
        resp.media = views.node_doc(view, now=self._ctx.store.now())


class NodePods:
    query_params = listing.PAGE_PARAMS

    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, node: str) -> None:
        store = self._ctx.store
        if store.node(params.subdomain(node, "node"), pod_count=False) is None:
            raise NotFound("node", node)
        query = replace(listing.parse(req, filters=False), node=node)
        resp.content_type = falcon.MEDIA_JSON
        resp.data = listing.answer_json(self._ctx.pod_docs, query, store.round_pod_listing(), now=store.now(),
                                        dumps=self._ctx.dumps, head={"node_name": node})


class NodeTimeseries:
    query_params = frozenset({"window"})

    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, node: str) -> None:
        params.subdomain(node, "node")
        store = self._ctx.store
        doc = self._ctx.series_doc(
            self._ctx.window(req),
            lambda since: store.node_series(node, since=since, previous=True),
            kind="node",
            node_name=node,
        )
        if doc is None:
            raise NotFound("node", node)
        resp.media = doc
