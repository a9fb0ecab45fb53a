"""Discovery documents: the group, each version's APIResourceList, and `/apis` for kube-aggregator.

kube-aggregator first asks a backend for `/apis` with the aggregated-discovery Accept header
(`as=APIGroupDiscoveryList`) and falls back to the classic documents on 406; we answer 406, since the
classic ones describe everything there is.
"""

from __future__ import annotations

from typing import Any

import falcon

from aggregator.metricsapi.status import StatusError

GROUP = "metrics.k8s.io"
VERSIONS = ("v1beta1", "v1")
PREFERRED = "v1beta1"  # what metrics-server serves; kubectl and the HPA ask for it


def group_doc() -> dict[str, Any]:
    return {"name": GROUP,
            "versions": [{"groupVersion": f"{GROUP}/{v}", "version": v} for v in VERSIONS],
            "preferredVersion": {"groupVersion": f"{GROUP}/{PREFERRED}", "version": PREFERRED}}


def resource_list(version: str) -> dict[str, Any]:
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/{version}",
            "resources": [
                {"name": "nodes", "singularName": "", "namespaced": False, "kind": "NodeMetrics",
                 "verbs": ["get", "list"]},
                {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics",
                 "verbs": ["get", "list"]},
            ]}


def _refuse_aggregated(req: falcon.Request) -> None:
    accept = req.get_header("Accept") or ""
    wanted = [part for part in accept.split(",") if part.strip()]
    if wanted and all("as=APIGroupDiscoveryList" in part for part in wanted):
        raise StatusError(406, "aggregated discovery is not served; ask for application/json")


class Apis:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        _refuse_aggregated(req)
        resp.media = {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group_doc()]}


class Group:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"kind": "APIGroup", "apiVersion": "v1", **group_doc()}


class Resources:
    def __init__(self, version: str) -> None:
        self.doc = resource_list(version)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.doc
