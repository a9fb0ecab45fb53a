"""Pod index: uid -> PodMeta for the pods on this node, kept fresh by a list+watch in a thread.

The Kubernetes plumbing (client, errors, list+watch loop with its backoff and spin guard) is
k8smon_common/kube.py, shared with the aggregator's discovery; this module only turns pods into PodMeta.
Owners are resolved Pod -> ReplicaSet -> Deployment with one cached ReplicaSet GET per ReplicaSet.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from exporter.model import ErrorSink
from exporter.podspec import Json, controller_ref, pod_meta
from exporter.snapshot import PodMeta
from k8smon_common.kube import (
    KubeApiError,
    KubeError,
    KubeGone,
    KubeUnavailable,
    ListWatch,
    backoff_delay,
    get_json,
)
from k8smon_common.kube import api_client as api_client_from

__all__ = ["KubeApiError", "KubeError", "KubeGone", "KubeUnavailable", "PodIndex", "ReplicaSetOwners",
           "api_client_from", "backoff_delay"]

log = logging.getLogger(__name__)


class ReplicaSetOwners:
    """ReplicaSet -> owning Deployment name, one GET per ReplicaSet, cached with expiry."""

    def __init__(
        self, api: Any, *, ttl: float = 600.0, monotonic: Callable[[], float] = time.monotonic
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
        doc = get_json(self._api, f"/apis/apps/v1/namespaces/{namespace}/replicasets/{name}", [],
                       timeout=(5, 10))
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
        api_client: Any,
        errors: ErrorSink,
        watch_timeout: float = 300.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        replicaset_ttl: float = 600.0,
        monotonic: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.node = node
        self._owners = ReplicaSetOwners(api_client, ttl=replicaset_ttl, monotonic=monotonic)
        self._errors = errors
        self._pods: dict[str, PodMeta] = {}
        self._unresolved: dict[str, Json] = {}  # uid -> pod whose ReplicaSet lookup failed, retried later
        self._thread: threading.Thread | None = None
        self._loop = ListWatch(
            api_client, what=f"pods on node {node}",
            request=lambda: ("/api/v1/pods", [("fieldSelector", f"spec.nodeName={self.node}")]),
            on_list=self._replace, on_event=self._event, on_error=self._failed,
            before_watch=self.retry_unresolved, watch_timeout=watch_timeout, backoff_initial=backoff_initial,
            backoff_max=backoff_max, rng=rng)

    @property
    def connected(self) -> bool:
        """True while the last list/watch call succeeded."""
        return self._loop.connected

    @property
    def relists(self) -> int:
        """Full lists done (the first one included); tests and logs read it."""
        return self._loop.relists

    def set_backoff(self, *, initial: float, cap: float) -> None:
        """Change the list+watch backoff (tests make faults play out quickly)."""
        self._loop.set_backoff(initial=initial, cap=cap)

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

    # --- list and watch callbacks --------------------------------------------------------------

    def retry_unresolved(self) -> None:
        """Look up the ReplicaSets that failed before, for pods still in the index."""
        for uid, pod in list(self._unresolved.items()):
            if uid not in self._pods:
                self._unresolved.pop(uid, None)
                continue
            meta = self._meta(pod)
            if meta is not None and uid not in self._unresolved:
                self._pods = {**self._pods, uid: meta}

    def _replace(self, items: list[Json]) -> None:
        pods: dict[str, PodMeta] = {}
        self._unresolved.clear()
        for item in items:
            meta = self._meta(item) if isinstance(item, dict) else None
            if meta is not None:
                pods[meta.uid] = meta
        self._pods = pods  # swapped whole: get() sees the old index or the new one
        log.info("pod index listed %d pods on node %s", len(pods), self.node)

    def _event(self, kind: str, obj: Json) -> None:
        if kind in {"ADDED", "MODIFIED"}:
            meta = self._meta(obj)
            if meta is not None:
                self._pods = {**self._pods, meta.uid: meta}
        elif kind == "DELETED":
            uid = (obj.get("metadata") or {}).get("uid")
            self._unresolved.pop(uid, None)
            if uid in self._pods:
                self._pods = {k: v for k, v in self._pods.items() if k != uid}
        else:
            self._errors.record("kube", f"unknown watch event type {kind!r}")

    def _failed(self, exc: KubeError) -> None:
        self._errors.record("kube", "pod list/watch failed", exc)
        log.warning("pod index: %s; retrying", exc)

    # --- background thread ---------------------------------------------------------------------

    def run(self) -> None:
        """List, then watch until stop() (k8smon_common.kube.ListWatch)."""
        self._loop.run()

    def start(self) -> PodIndex:
        """Run the list+watch loop in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name="podindex", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop, interrupting a blocked watch read."""
        self._loop.stop()
        if self._thread is not None:
            self._thread.join(timeout)
