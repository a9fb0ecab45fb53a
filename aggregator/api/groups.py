"""Namespace and deployment resources: roll-ups (sums over their pods per round), pods, time series."""

from __future__ import annotations

from dataclasses import replace

import falcon

from aggregator.api import listing, params, views
from aggregator.api.context import ApiContext
from aggregator.api.errors import Ambiguous, NotFound


def _known_namespace(ctx: ApiContext, namespace: str) -> str:
    params.label(namespace, "namespace")
    if not ctx.store.namespace_known(namespace):
        raise NotFound("namespace", namespace)
    return namespace


class NamespaceList:
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        docs = [views.group_doc(g) for g in self._ctx.store.groups()]
        resp.media = {"namespaces": docs, "count": len(docs)}


class NamespaceItem:
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, namespace: str) -> None:
        params.label(namespace, "namespace")
        group = self._ctx.store.group(namespace)
        if group is None:
            raise NotFound("namespace", namespace)
        resp.media = views.group_doc(group)


class NamespacePods:
    query_params = listing.PAGE_PARAMS

    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, namespace: str) -> None:
        _known_namespace(self._ctx, namespace)
        query = listing.parse(req, filters=False)
        store = self._ctx.store
        query = replace(query, namespace=namespace)
        resp.content_type = falcon.MEDIA_JSON
        resp.data = listing.answer_json(self._ctx.pod_docs, query, store.round_pod_listing(), now=store.now(),
                                        dumps=self._ctx.dumps, head={"namespace": namespace})


class NamespaceTimeseries:
    query_params = frozenset({"window"})

    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, namespace: str) -> None:
        params.label(namespace, "namespace")
        store = self._ctx.store
        doc = self._ctx.series_doc(
            self._ctx.window(req),
            lambda since: store.group_series(namespace, since=since, previous=True),
            kind="namespace",
            namespace=namespace,
        )
        if doc is None:
            raise NotFound("namespace", namespace)
        resp.media = doc


class DeploymentList:
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, namespace: str) -> None:
        _known_namespace(self._ctx, namespace)
        docs = [views.group_doc(g) for g in self._ctx.store.groups(namespace=namespace, deployments=True)]
        resp.media = {"namespace": namespace, "deployments": docs, "count": len(docs)}


class DeploymentItem:
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, namespace: str, deployment: str) -> None:
        params.label(namespace, "namespace")
        params.subdomain(deployment, "deployment")
        group = self._ctx.store.group(namespace, deployment)
        if group is None:
            raise NotFound("deployment", deployment, namespace=namespace)
        resp.media = views.group_doc(group)


class DeploymentPods:
    query_params = listing.PAGE_PARAMS

    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, namespace: str, deployment: str) -> None:
        params.label(namespace, "namespace")
        params.subdomain(deployment, "deployment")
        store = self._ctx.store
        if store.group(namespace, deployment) is None:
            raise NotFound("deployment", deployment, namespace=namespace)
        query = replace(listing.parse(req, filters=False), namespace=namespace, deployment=deployment)
        resp.content_type = falcon.MEDIA_JSON
        head = {"namespace": namespace, "deployment": deployment}
        resp.data = listing.answer_json(self._ctx.pod_docs, query, store.round_pod_listing(), now=store.now(),
                                        dumps=self._ctx.dumps, head=head)


class DeploymentTimeseries:
    query_params = frozenset({"namespace", "window"})

    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    def on_get(self, req: falcon.Request, resp: falcon.Response, deployment: str) -> None:
        params.subdomain(deployment, "deployment")
        namespace = params.optional_namespace(req)
        window = self._ctx.window(req)
        store = self._ctx.store
        candidates = store.deployment_namespaces(deployment)
        if namespace is not None:
            candidates = [ns for ns in candidates if ns == namespace]
        if not candidates:
            raise NotFound("deployment", deployment, namespace=namespace)
        if len(candidates) > 1:
            raise Ambiguous("deployment", deployment, candidates)
        resp.media = self._ctx.series_doc(
            window,
            lambda since: store.group_series(candidates[0], deployment, since=since, previous=True) or [],
            kind="deployment",
            namespace=candidates[0],
            deployment=deployment,
        )
