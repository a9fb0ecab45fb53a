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
from decimal import Decimal, InvalidOperation
from typing import Any

import urllib3
import yaml
from kubernetes import client as kclient
from kubernetes import config as kconfig
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.utils.quantity import parse_quantity
from kubernetes.watch.watch import iter_resp_lines

from exporter.model import ErrorSink
from exporter.snapshot import PodMeta

log = logging.getLogger(__name__)
Json = dict[str, Any]
_WORKLOAD_KINDS = {"StatefulSet", "DaemonSet", "Job", "Node", "ReplicaSet", "Deployment", "CronJob"}


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


def quantity(text: object) -> Decimal:
    """A Kubernetes quantity ("250m", "1.5", "128Mi", "1G", "1e3") as a Decimal; ValueError if bad."""
    try:
        return Decimal(parse_quantity(str(text)))
    except (ValueError, TypeError, InvalidOperation) as exc:
        raise ValueError(f"bad quantity {text!r}") from exc


def sum_resources(containers: list[Json], resource: str) -> tuple[float | None, float | None]:
    """(requests, limits) of `resource` summed over containers; requests None if none set one,
    limits None if any container is unlimited. ValueError on a malformed quantity."""
    requests: Decimal | None = None
    limits: Decimal | None = Decimal(0)
    for container in containers:
        res = container.get("resources") or {}
        req = (res.get("requests") or {}).get(resource)
        lim = (res.get("limits") or {}).get(resource)
        if req is not None:
            requests = (requests or Decimal(0)) + quantity(req)
        if lim is None:
            limits = None
        elif limits is not None:
            limits += quantity(lim)
    if not containers:
        limits = None
    return (float(requests) if requests is not None else None, float(limits) if limits is not None else None)


def backoff_delay(attempt: int, *, initial: float, cap: float, rng: Callable[[], float]) -> float:
    """Capped exponential backoff with jitter: in [d/2, d] where d = min(cap, initial * 2**attempt)."""
    return min(cap, initial * 2 ** min(attempt, 60)) * (0.5 + rng() / 2)


def controller_ref(meta: Json) -> Json | None:
    """The ownerReference marked controller, else the first one, else None."""
    refs = meta.get("ownerReferences") or []
    for ref in refs:
        if ref.get("controller"):
            return ref
    return refs[0] if refs else None


class ReplicaSetOwners:
    """ReplicaSet -> owning Deployment name, one GET per ReplicaSet, cached with expiry."""

    def __init__(
        self, apps: kclient.AppsV1Api, *, ttl: float = 600.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._apps = apps
        self._ttl = ttl
        self._monotonic = monotonic
        self._cache: dict[tuple[str, str], tuple[str, str, float]] = {}  # -> (rs uid, deployment, expiry)

    def deployment(self, namespace: str, name: str, uid: str = "") -> str:
        """The Deployment owning ReplicaSet `namespace/name` ("" if none); raises KubeError."""
        now = self._monotonic()
        hit = self._cache.get((namespace, name))
        if hit is not None and hit[2] > now and (not uid or hit[0] == uid):
            return hit[1]
        try:
            resp = self._apps.read_namespaced_replica_set(name, namespace, _preload_content=False,
                                                          _request_timeout=(5, 10))
            doc = json.loads(resp.data)
        except ApiException as exc:
            raise KubeApiError(exc.status or 0, str(exc.reason)) from exc
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
        self._core = kclient.CoreV1Api(api_client)
        apps = kclient.AppsV1Api(api_client)
        self._owners = ReplicaSetOwners(apps, ttl=replicaset_ttl, monotonic=monotonic)
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
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        uid, namespace, name = meta.get("uid"), meta.get("namespace", ""), meta.get("name", "")
        if not uid:
            self._errors.record("kube", f"pod {namespace}/{name} without uid")
            return None
        owner_kind = owner_name = deployment = ""
        ref = controller_ref(meta)
        if ref is not None:
            owner_kind, owner_name = ref.get("kind", ""), ref.get("name", "")
            if owner_kind not in _WORKLOAD_KINDS:
                log.debug("pod %s/%s has an unusual owner kind %s", namespace, name, owner_kind)
            if owner_kind == "ReplicaSet":
                try:
                    deployment = self._owners.deployment(namespace, owner_name, ref.get("uid", ""))
                except KubeError as exc:
                    # Label it by its ReplicaSet for now; the next event for the pod or relist retries.
                    self._errors.record("kube", f"replicaset {namespace}/{owner_name}", exc)
                if deployment:
                    owner_kind, owner_name = "Deployment", deployment
        containers = spec.get("containers") or []
        try:
            cpu_req, cpu_lim = sum_resources(containers, "cpu")
            mem_req, mem_lim = sum_resources(containers, "memory")
        except ValueError as exc:
            self._errors.record("kube", f"pod {namespace}/{name} resources", exc)
            cpu_req = cpu_lim = mem_req = mem_lim = None
        return PodMeta(
            uid=uid, namespace=namespace, name=name, owner_kind=owner_kind, owner_name=owner_name,
            deployment=deployment, host_network=bool(spec.get("hostNetwork")),
            cpu_request_cores=cpu_req, cpu_limit_cores=cpu_lim,
            memory_request_bytes=mem_req, memory_limit_bytes=mem_lim,
        )

    # --- list and watch ------------------------------------------------------------------------

    def _call(self, **kwargs: Any) -> Any:
        """One list or watch request; returns the raw urllib3 response, raises KubeError."""
        try:
            return self._core.list_pod_for_all_namespaces(
                field_selector=f"spec.nodeName={self.node}", _preload_content=False, **kwargs
            )
        except ApiException as exc:
            if exc.status == 410:
                raise KubeGone(str(exc.reason)) from exc
            raise KubeApiError(exc.status or 0, str(exc.reason)) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeUnavailable(str(exc)) from exc

    def relist(self) -> None:
        """Replace the index with a fresh list and remember its resourceVersion."""
        resp = self._call(_request_timeout=(5, 30))
        try:
            doc = json.loads(resp.data)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise KubeUnavailable(f"pod list: {exc}") from exc
        finally:
            resp.release_conn()
        pods: dict[str, PodMeta] = {}
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
        resp = self._call(watch=True, allow_watch_bookmarks=True, resource_version=self._rv,
                          timeout_seconds=max(1, timeout), _request_timeout=(5, timeout + 30))
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
                started = time.monotonic()
                events = self.watch()
                self._connected = True
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
