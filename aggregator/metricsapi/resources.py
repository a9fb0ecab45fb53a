"""The Falcon resources of `metrics.k8s.io/<version>`: nodes and pods, lists and single objects."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import falcon

from aggregator.metricsapi import objects, selectors
from aggregator.metricsapi.metadata import Labels
from aggregator.metricsapi.status import BadRequest, NotFound
from aggregator.records import PodView
from aggregator.store import Store

GROUP = "metrics.k8s.io"


@dataclass(frozen=True)
class MetricsContext:
    store: Store
    labels: Labels
    clock: Callable[[], float]
    default_window: float  # window when the sample does not say (the scrape interval)
    containers: objects.ContainerDocs = field(default_factory=objects.ContainerDocs)


def _selectors(req: falcon.Request) -> tuple[selectors.LabelSelector | None, selectors.FieldSelector | None]:
    try:
        return (selectors.parse_labels(req.get_param("labelSelector")),
                selectors.parse_fields(req.get_param("fieldSelector")))
    except selectors.SelectorError as exc:
        raise BadRequest(str(exc)) from exc


class _Base:
    def __init__(self, ctx: MetricsContext, version: str) -> None:
        self.ctx = ctx
        self.api_version = f"{GROUP}/{version}"

    def node_doc(self, view: Any) -> dict[str, Any] | None:
        return objects.node_metrics(view, self.ctx.labels.node(view.name), now=self.ctx.clock(),
                                    default_window=self.ctx.default_window, version=self.api_version)

    def pod_doc(self, view: PodView) -> dict[str, Any] | None:
        return objects.pod_metrics(view, self.ctx.labels.pod(view.namespace, view.pod), now=self.ctx.clock(),
                                   default_window=self.ctx.default_window, version=self.api_version,
                                   cache=self.ctx.containers)


class NodeList(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        label_sel, field_sel = _selectors(req)
        items = []
        for view in self.ctx.store.nodes():
            if field_sel is not None and not field_sel.matches(name=view.name, namespace=""):
                continue
            if label_sel is not None and not label_sel.matches(self.ctx.labels.node(view.name)):
                continue
            doc = self.node_doc(view)
            if doc is not None:
                items.append(doc)
        resp.media = objects.metrics_list("NodeMetricsList", self.api_version, items)


class NodeItem(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        view = self.ctx.store.node(name)
        doc = None if view is None else self.node_doc(view)
        if doc is None:
            raise NotFound("nodemetrics", name)
        resp.media = doc


class PodList(_Base):
    """`/pods` (every namespace) and `/namespaces/{namespace}/pods`."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, namespace: str | None = None) -> None:
        label_sel, field_sel = _selectors(req)
        resp.media = objects.metrics_list("PodMetricsList", self.api_version,
                                          list(self._docs(self.ctx.store.pods(namespace=namespace),
                                                          label_sel, field_sel)))
        if namespace is None and label_sel is None and field_sel is None:
            self.ctx.containers.sweep()  # every current pod was asked for: the rest are gone

    def _docs(self, views: Iterable[PodView], label_sel: selectors.LabelSelector | None,
              field_sel: selectors.FieldSelector | None) -> Iterable[dict[str, Any]]:
        for view in views:
            if field_sel is not None and not field_sel.matches(name=view.pod, namespace=view.namespace):
                continue
            if label_sel is not None and not label_sel.matches(self.ctx.labels.pod(view.namespace, view.pod)):
                continue
            doc = self.pod_doc(view)
            if doc is not None:
                yield doc


class PodItem(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response, namespace: str, name: str) -> None:
        found = self.ctx.store.find_pods(name, namespace=namespace)
        doc = self.pod_doc(found[0]) if found else None
        if doc is None:
            raise NotFound("podmetrics", name)
        resp.media = doc
