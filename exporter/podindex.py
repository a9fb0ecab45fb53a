"""Pod index: uid -> PodMeta for the pods on this node, kept fresh by a list+watch in a thread.

The only exporter module that imports `kubernetes`. Its exceptions (and urllib3's) are wrapped:

    KubeError
    ├── KubeUnavailable   cannot configure the client or reach the API server
    ├── KubeGone          410: our resourceVersion is too old, relist
    └── KubeApiError      any other error status

Watches resume from the last resourceVersion seen (events and bookmarks); a 410 relists; other
errors reconnect after a capped exponential backoff with jitter. Owners are resolved Pod ->
ReplicaSet -> Deployment with one cached ReplicaSet GET per ReplicaSet.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import urllib3
import yaml
from kubernetes import client as kclient
from kubernetes import config as kconfig
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.watch.watch import iter_resp_lines

from exporter.model import ErrorSink
from exporter.podspec import Json, controller_ref, pod_meta
from exporter.snapshot import PodMeta

log = logging.getLogger(__name__)


class KubeError(Exception):
    """Something went wrong talking to the Kubernetes API."""


class KubeUnavailable(KubeError):
    """The API server cannot be configured or reached."""


class KubeGone(KubeError):
    """The resourceVersion we watch from has expired (HTTP/watch status 410)."""


class KubeApiError(KubeError):
    """The API server answered with an error status."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"API error {status}: {reason}")
        self.status = status


def api_client_from(kubeconfig: str, environ: Mapping[str, str] | None = None) -> kclient.ApiClient | None:
    """A client from `kubeconfig`, else in-cluster config when KUBERNETES_SERVICE_HOST is set, else None."""
    env = os.environ if environ is None else environ
    configuration = kclient.Configuration()
    try:
        if kubeconfig:
            kconfig.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        elif env.get("KUBERNETES_SERVICE_HOST"):
            kconfig.load_incluster_config(client_configuration=configuration)
        else:
            return None
    except (ConfigException, OSError, ValueError, yaml.YAMLError) as exc:
        raise KubeUnavailable(f"cannot load Kubernetes configuration: {exc}") from exc
    # The index retries with its own backoff; urllib3's immediate retries would only add log noise.
    configuration.retries = False
    return kclient.ApiClient(configuration)


def backoff_delay(attempt: int, *, initial: float, cap: float, rng: Callable[[], float]) -> float:
    """Capped exponential backoff with jitter: in [d/2, d] where d = min(cap, initial * 2**attempt)."""
    return min(cap, initial * 2 ** min(attempt, 60)) * (0.5 + rng() / 2)


def http_get(
    api: kclient.ApiClient, path: str, query: list[tuple[str, str]], *, timeout: tuple[float, float]
) -> Any:
    """GET `path` through the client's auth and TLS settings; the raw urllib3 response, or KubeError.

    Used instead of the generated CoreV1Api/AppsV1Api classes: importing those costs ~25 MB of RSS
    and seconds of start-up, and we parse the few fields we need from the JSON ourselves.
    """
    try:
        request = api.param_serialize(method="GET", resource_path=path, query_params=query,
                                      header_params={"Accept": "application/json"},
                                      auth_settings=["BearerToken"])
        resp = api.call_api(*request, _request_timeout=timeout)
        if not 200 <= resp.status <= 299:
            resp.read()
            raise ApiException.from_response(http_resp=resp, body=None, data=None)
    except ApiException as exc:
        if exc.status == 410:
            raise KubeGone(str(exc.reason)) from exc
        raise KubeApiError(exc.status or 0, str(exc.reason)) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise KubeUnavailable(f"GET {path}: {exc}") from exc
    return resp.response


class ReplicaSetOwners:
    """ReplicaSet -> owning Deployment name, one GET per ReplicaSet, cached with expiry."""

    def __init__(
        self, api: kclient.ApiClient, *, ttl: float = 600.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._api = api
        self._ttl = ttl
        self._monotonic = monotonic
        self._cache: dict[tuple[str, str], tuple[str, str, float]] = {}  # -> (rs uid, deployment, expiry)

    def deployment(self, namespace: str, name: str, uid: str = "") -> str:
        """The Deployment owning ReplicaSet `namespace/name` ("" if none); raises KubeError."""
        now = self._monotonic()
        hit = self._cache.get((namespace, name))
        if hit is not None and hit[2] > now and (not uid or hit[0] == uid):
            return hit[1]
        resp = http_get(self._api, f"/apis/apps/v1/namespaces/{namespace}/replicasets/{name}", [],
                        timeout=(5, 10))
        try:
            doc = json.loads(resp.data)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise KubeUnavailable(f"replicaset {namespace}/{name}: {exc}") from exc
        meta = doc.get("metadata") or {}
        ref = controller_ref(meta)
        deployment = ref.get("name", "") if ref and ref.get("kind") == "Deployment" else ""
        if len(self._cache) > 4096:  # pods churn through ReplicaSets; keep the cache bounded
            self._cache = {k: v for k, v in self._cache.items() if v[2] > now}
        self._cache[(namespace, name)] = (meta.get("uid", ""), deployment, now + self._ttl)
        return deployment


class PodIndex:
    """Background list+watch of this node's pods; `get(uid)` never blocks on the network."""

    def __init__(
        self,
        *,
        node: str,
        api_client: kclient.ApiClient,
        errors: ErrorSink,
        watch_timeout: float = 300.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        replicaset_ttl: float = 600.0,
        monotonic: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.node = node
        self._api = api_client
        self._owners = ReplicaSetOwners(api_client, ttl=replicaset_ttl, monotonic=monotonic)
        self._errors = errors
        self._watch_timeout = watch_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._rng = rng
        self._pods: dict[str, PodMeta] = {}
        self._rv: str | None = None
        self._connected = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._resp: Any = None
        self.relists = 0  # full lists done (the first one included); tests and logs read it
        self._unresolved: dict[str, Json] = {}  # uid -> pod whose ReplicaSet lookup failed, retried later

    @property
    def connected(self) -> bool:
        """True while the last list/watch call succeeded."""
        return self._connected

    def get(self, uid: str) -> PodMeta | None:
        """Metadata of pod `uid`, or None when the index does not know it (yet)."""
        return self._pods.get(uid)

    def pods(self) -> dict[str, PodMeta]:
        """A copy of the index."""
        return dict(self._pods)

    # --- one pod object -> PodMeta -------------------------------------------------------------

    def _meta(self, pod: Json) -> PodMeta | None:
        uid = (pod.get("metadata") or {}).get("uid", "")

        def resolve(namespace: str, name: str, rs_uid: str) -> str | None:
            try:
                deployment = self._owners.deployment(namespace, name, rs_uid)
            except KubeError as exc:
                self._errors.record("kube", f"replicaset {namespace}/{name}", exc)
                self._unresolved[uid] = pod  # retried before each watch (retry_unresolved)
                return None
            self._unresolved.pop(uid, None)
            return deployment

        return pod_meta(pod, resolve_replicaset=resolve, errors=self._errors)

    # --- list and watch ------------------------------------------------------------------------

    def _call(self, query: list[tuple[str, str]], *, timeout: tuple[float, float]) -> Any:
        """One list or watch request for this node's pods; the raw urllib3 response, or KubeError."""
        return http_get(self._api, "/api/v1/pods", [("fieldSelector", f"spec.nodeName={self.node}"), *query],
                        timeout=timeout)

    def retry_unresolved(self) -> None:
        """Look up the ReplicaSets that failed before, for pods still in the index."""
        for uid, pod in list(self._unresolved.items()):
            if uid not in self._pods:
                self._unresolved.pop(uid, None)
                continue
            meta = self._meta(pod)
            if meta is not None and uid not in self._unresolved:
                self._pods = {**self._pods, uid: meta}

    def relist(self) -> None:
        """Replace the index with a fresh list and remember its resourceVersion."""
        resp = self._call([], timeout=(5, 30))
        try:
            doc = json.loads(resp.data)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise KubeUnavailable(f"pod list: {exc}") from exc
        finally:
            resp.release_conn()
        pods: dict[str, PodMeta] = {}
        self._unresolved.clear()
        for item in doc.get("items") or []:
            meta = self._meta(item)
            if meta is not None:
                pods[meta.uid] = meta
        self._pods = pods  # swapped whole: get() sees the old index or the new one
        self._rv = (doc.get("metadata") or {}).get("resourceVersion")
        self._connected = True
        self.relists += 1
        log.info("pod index listed %d pods on node %s (resourceVersion %s)", len(pods), self.node, self._rv)

    def watch(self) -> int:
        """Follow events from the current resourceVersion until the server ends the stream; events seen."""
        timeout = int(self._watch_timeout * (0.75 + self._rng() / 4))  # spread reconnects out
        query = [("watch", "true"), ("allowWatchBookmarks", "true"), ("timeoutSeconds", str(max(1, timeout)))]
        if self._rv:
            query.append(("resourceVersion", self._rv))
        resp = self._call(query, timeout=(5, timeout + 30))
        self._connected = True  # the API answered; a stream with no events is still "synced"
        self._resp = resp
        events = 0
        try:
            for line in iter_resp_lines(resp):
                if self._stop.is_set():
                    return events
                if line:
                    self._event(json.loads(line))
                    events += 1
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            if self._stop.is_set():
                return events
            raise KubeUnavailable(f"watch stream: {exc}") from exc
        finally:
            self._resp = None
            resp.release_conn()
        return events

    def _event(self, event: Json) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code", 0)
            if code == 410:
                raise KubeGone(str(obj.get("message", "")))
            raise KubeApiError(code, str(obj.get("message", "")))
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if kind in {"ADDED", "MODIFIED"}:
            meta = self._meta(obj)
            if meta is not None:
                self._pods = {**self._pods, meta.uid: meta}
        elif kind == "DELETED":
            uid = (obj.get("metadata") or {}).get("uid")
            self._unresolved.pop(uid, None)
            if uid in self._pods:
                self._pods = {k: v for k, v in self._pods.items() if k != uid}
        elif kind != "BOOKMARK":
            self._errors.record("kube", f"unknown watch event type {kind!r}")
            return
        if rv:
            self._rv = rv

    # --- background thread ---------------------------------------------------------------------

    def run(self) -> None:
        """List, then watch forever; relist on 410, back off and resume on other errors."""
        attempt = 0
        while not self._stop.is_set():
            try:
                if self._rv is None:
                    self.relist()
                self.retry_unresolved()
                started = time.monotonic()
                events = self.watch()
                if events or time.monotonic() - started > 1.0:
                    attempt = 0
                    continue
                # A stream that ends at once with nothing in it: don't spin, back off quietly.
            except KubeGone as exc:
                log.info("pod watch expired (%s); relisting", exc)
                self._rv = None
                continue
            except KubeError as exc:
                if self._stop.is_set():
                    return
                self._connected = False
                self._errors.record("kube", "pod list/watch failed", exc)
                log.warning("pod index: %s; retrying", exc)
            delay = backoff_delay(attempt, initial=self._backoff_initial, cap=self._backoff_max,
                                  rng=self._rng)
            attempt += 1
            if self._stop.wait(delay):
                return

    def start(self) -> PodIndex:
        """Run the list+watch loop in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name="podindex", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop, interrupting a blocked watch read."""
        self._stop.set()
        resp = self._resp
        if resp is not None:
            # shutdown() (urllib3 >= 2.3) wakes a read blocked in another thread; close() may not.
            closer = getattr(resp, "shutdown", None) or resp.close
            try:
                closer()
            except (OSError, urllib3.exceptions.HTTPError) as exc:
                log.debug("closing the watch stream: %s", exc)
        if self._thread is not None:
            self._thread.join(timeout)
