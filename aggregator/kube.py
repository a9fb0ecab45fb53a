"""The aggregator's only door to the Kubernetes API: list and watch Endpoints / EndpointSlices as dicts.

Objects come back as the API server's JSON (camelCase dicts), not the client's model classes:
discovery needs five fields and the raw form avoids deserialising every watch event.

Errors (everything the client raises is wrapped, chained with `from`):

    KubeError                  any failure talking to the API server
    ├── KubeGone               410: the resourceVersion expired; relist
    └── KubeUnavailable        connection refused/reset, timeouts, 5xx: retry with backoff
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException

CONNECT_TIMEOUT = 5.0
LIST_TIMEOUT = 15.0


class KubeError(Exception):
    """A Kubernetes API call failed."""


class KubeGone(KubeError):
    """The watch's resourceVersion is too old (HTTP 410 Gone); list again."""


class KubeUnavailable(KubeError):
    """The API server could not be reached or answered 5xx; try again later."""


def _wrap(exc: Exception, what: str) -> KubeError:
    if isinstance(exc, ApiException):
        status = exc.status or 0
        if status == 410:
            return KubeGone(f"{what}: 410 Gone")
        reason = f"{what}: HTTP {status} {exc.reason or ''}".strip()
        return KubeUnavailable(reason) if status >= 500 or status in {0, 429} else KubeError(reason)
    return KubeUnavailable(f"{what}: {type(exc).__name__}: {exc}"[:300])


_CLIENT_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError)


def api_client(kubeconfig: str = "", *, environ: Mapping[str, str] | None = None) -> Any:
    """An ApiClient from a kubeconfig file, or in-cluster when `kubeconfig` is empty."""
    env = os.environ if environ is None else environ
    try:
        if kubeconfig:
            return config.new_client_from_config(config_file=kubeconfig)
        if not env.get("KUBERNETES_SERVICE_HOST"):
            raise KubeError("no --kubeconfig and not running in a pod (KUBERNETES_SERVICE_HOST unset)")
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    except (ConfigException, OSError, ValueError, TypeError) as exc:
        raise KubeError(f"cannot configure the Kubernetes client: {exc}") from exc


class ServiceEndpointsApi:
    """List/watch the Endpoints object and the EndpointSlices of one Service."""

    def __init__(self, api: Any, *, namespace: str, service: str) -> None:
        self._core = client.CoreV1Api(api)
        self._discovery = client.DiscoveryV1Api(api)
        self.namespace = namespace
        self.service = service
        self._watching: Any = None  # the open watch response, so another thread can interrupt it

    def _list_call(self, kind: str) -> tuple[Any, dict[str, str]]:
        if kind == "endpoints":
            return self._core.list_namespaced_endpoints, {"field_selector": f"metadata.name={self.service}"}
        return self._discovery.list_namespaced_endpoint_slice, {
            "label_selector": f"kubernetes.io/service-name={self.service}"
        }

    def list(self, kind: str) -> tuple[list[dict[str, Any]], str]:
        """(items, resourceVersion) of `endpoints` or `endpointslices` for the Service."""
        call, selector = self._list_call(kind)
        try:
            resp = call(self.namespace, _preload_content=False,
                        _request_timeout=(CONNECT_TIMEOUT, LIST_TIMEOUT), **selector)
            doc = json.loads(resp.data)
        except _CLIENT_ERRORS as exc:
            raise _wrap(exc, f"list {kind}") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
            raise KubeError(f"list {kind}: unexpected answer")
        return doc["items"], str(doc.get("metadata", {}).get("resourceVersion", ""))

    def watch(self, kind: str, *, resource_version: str, timeout_seconds: int) -> Iterator[tuple[str, Any]]:
        """(type, object) events after `resource_version`, until the server ends the watch."""
        call, selector = self._list_call(kind)
        try:
            resp = call(
                self.namespace,
                watch=True,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout_seconds,
                _preload_content=False,
                _request_timeout=(CONNECT_TIMEOUT, timeout_seconds + 10),
                **selector,
            )
        except _CLIENT_ERRORS as exc:
            raise _wrap(exc, f"watch {kind}") from exc
        self._watching = resp
        try:
            yield from _events(resp, kind)
        except _CLIENT_ERRORS as exc:
            raise _wrap(exc, f"watch {kind}") from exc
        finally:
            self._watching = None
            resp.release_conn()

    def interrupt(self) -> None:
        """End a watch blocked on its socket (from another thread), so a stop need not wait for it."""
        resp = self._watching
        if resp is None:
            return
        # urllib3 >= 2.3 can shut the socket down under a blocked read; close() is the older fallback.
        stop = getattr(resp, "shutdown", None) or resp.close
        with contextlib.suppress(OSError, AttributeError):  # already closed: nothing left to interrupt
            stop()


def _events(resp: Any, kind: str) -> Iterator[tuple[str, Any]]:
    buffer = b""
    for chunk in resp.stream(amt=64 * 1024, decode_content=True):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            event = json.loads(line)
            kind_of_event = event.get("type", "")
            obj = event.get("object", {})
            if kind_of_event == "ERROR":
                code = obj.get("code") if isinstance(obj, dict) else None
                if code == 410:
                    raise KubeGone(f"watch {kind}: 410 Gone ({obj.get('message', '')})")
                raise KubeUnavailable(f"watch {kind}: error event {obj}"[:300])
            yield kind_of_event, obj
