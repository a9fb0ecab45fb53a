"""The Falcon resources of `metrics.k8s.io/<version>`: nodes and pods, lists and single objects."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import falcon

from aggregator.metricsapi import objects, selectors
from aggregator.metricsapi.metadata import Labels
from aggregator.metricsapi.quantity import rfc3339
from aggregator.metricsapi.status import BadRequest, NotFound
from aggregator.store.store import Store
from aggregator.store.views import PodView

GROUP = "metrics.k8s.io"


@dataclass(frozen=True)
class MetricsContext:
    store: Store
    labels: Labels
    clock: Callable[[], float]
    default_window: float  # window when the sample does not say (the scrape interval)
    fragments: objects.PodFragments = field(default_factory=objects.PodFragments)


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
                                   default_window=self.ctx.default_window, version=self.api_version)


class NodeList(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        label_sel, field_sel = _selectors(req)
        items = []
        for view in self.ctx.store.nodes(pod_counts=False):
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
        view = self.ctx.store.node(name, pod_count=False)
        doc = None if view is None else self.node_doc(view)
        if doc is None:
            raise NotFound("nodemetrics", name)
        resp.media = doc


class PodList(_Base):
    """`/pods` (every namespace) and `/namespaces/{namespace}/pods`."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, namespace: str | None = None) -> None:
        label_sel, field_sel = _selectors(req)
        items = list(self._items(self.ctx.store.pods(namespace=namespace), label_sel, field_sel))
        resp.data = objects.list_bytes("PodMetricsList", self.api_version, items)
        resp.content_type = falcon.MEDIA_JSON

    def _items(self, views: Iterable[PodView], label_sel: selectors.LabelSelector | None,
               field_sel: selectors.FieldSelector | None) -> Iterable[bytes]:
        created = rfc3339(self.ctx.clock()).encode()
        labels_of, fragments = self.ctx.labels.pod, self.ctx.fragments
        for view in views:
            if field_sel is not None and not field_sel.matches(name=view.pod, namespace=view.namespace):
                continue
            labels = labels_of(view.namespace, view.pod)
            if label_sel is not None and not label_sel.matches(labels):
                continue
            item = fragments.item(view, labels, created=created, default_window=self.ctx.default_window,
                                  version=self.api_version)
            if item is not None:
                yield item


class PodItem(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response, namespace: str, name: str) -> None:
        found = self.ctx.store.find_pods(name, namespace=namespace)
        doc = self.pod_doc(found[0]) if found else None
        if doc is None:
            raise NotFound("podmetrics", name)
        resp.media = doc
