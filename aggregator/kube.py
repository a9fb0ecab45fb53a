"""The aggregator's view of the Kubernetes API: which collection discovery lists and watches.

The plumbing (client, errors, GET, list+watch loop with backoff) is k8smon_common/kube.py, shared with the
exporter's pod index. Objects are the API server's JSON (camelCase dicts): discovery needs five fields and
the raw form avoids deserialising every watch event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from k8smon_common import kube
from k8smon_common.kube import KubeError, KubeGone, KubeUnavailable, Query

__all__ = ["KubeError", "KubeGone", "KubeUnavailable", "ServiceEndpointsApi", "api_client"]


def api_client(kubeconfig: str = "", *, environ: Mapping[str, str] | None = None) -> Any:
    """An ApiClient from a kubeconfig file, or in-cluster when `kubeconfig` is empty; KubeError otherwise."""
    client = kube.api_client(kubeconfig, environ)
    if client is None:
        raise KubeError("no --kubeconfig and not running in a pod (KUBERNETES_SERVICE_HOST unset)")
    return client


class ServiceEndpointsApi:
    """Where the Endpoints object and the EndpointSlices of one Service are listed and watched."""

    def __init__(self, api: Any, *, namespace: str, service: str) -> None:
        self.client = api
        self.namespace = namespace
        self.service = service

    def request(self, kind: str) -> tuple[str, Query]:
        """Path and selector of `endpoints` (the one object, by name) or `endpointslices` (by label)."""
        if kind == "endpoints":
            return (f"/api/v1/namespaces/{self.namespace}/endpoints",
                    [("fieldSelector", f"metadata.name={self.service}")])
        return (f"/apis/discovery.k8s.io/v1/namespaces/{self.namespace}/endpointslices",
                [("labelSelector", f"kubernetes.io/service-name={self.service}")])
