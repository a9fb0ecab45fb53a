"""Pod objects (API JSON) -> PodMeta: owners, host network, requests/limits in base units, and which
container id (from `containerStatuses`, `initContainerStatuses`, `ephemeralContainerStatuses`) is which
container. No I/O here."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from exporter.model import ErrorSink
from exporter.snapshot import ContainerMeta, PodMeta

log = logging.getLogger(__name__)
Json = dict[str, Any]
# Looks up the Deployment owning ReplicaSet (namespace, name, uid): its name, "" if none, None if unknown.
ReplicaSetResolver = Callable[[str, str, str], "str | None"]

_QUANTITY = re.compile(
    r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))"  # number
    r"([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$"  # decimal exponent first: "1E3" is 1000, "1E" is exa
)
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_WORKLOAD_KINDS = {"StatefulSet", "DaemonSet", "Job", "Node", "ReplicaSet", "Deployment", "CronJob"}


def quantity(text: object) -> Decimal:
    """A Kubernetes quantity ("250m", "1.5", "128Mi", "1G", "1e3") as a Decimal; ValueError if bad."""
    match = _QUANTITY.match(str(text))
    if match is None:
        raise ValueError(f"bad quantity {text!r}")
    number, suffix = match.groups()
    try:
        value = Decimal(number)
        if not suffix:
            return value
        if suffix in _BINARY:
            return value * (2 ** _BINARY[suffix])
        if suffix in _DECIMAL:
            return value.scaleb(_DECIMAL[suffix])
        return value.scaleb(int(suffix[1:]))
    except (InvalidOperation, ValueError) as exc:
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


def _resource(container: Json, kind: str, resource: str) -> float | None:
    value = ((container.get("resources") or {}).get(kind) or {}).get(resource)
    return None if value is None else float(quantity(value))


def runtime_id(container_id: object) -> str:
    """The runtime's id in a status' `containerID` ("containerd://<id>", "cri-o://<id>"); "" if none."""
    if not isinstance(container_id, str):
        return ""
    return container_id.partition("://")[2].lower()


_STATUS_LISTS = (("containers", "containerStatuses", "container"),
                 ("initContainers", "initContainerStatuses", "init"),
                 ("ephemeralContainers", "ephemeralContainerStatuses", "ephemeral"))


def container_metas(pod: Json, errors: ErrorSink) -> tuple[dict[str, ContainerMeta], frozenset[str]]:
    """Current container id -> ContainerMeta, and the ids of containers that ran before a restart.

    Statuses without an id (still waiting) are skipped. A malformed quantity costs that container's
    resources only (reported, source "kube").
    """
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    meta = pod.get("metadata") or {}
    current: dict[str, ContainerMeta] = {}
    retired: set[str] = set()
    for spec_key, status_key, kind in _STATUS_LISTS:
        specs = {c.get("name"): c for c in spec.get(spec_key) or [] if isinstance(c, dict)}
        for st in status.get(status_key) or []:
            if not isinstance(st, dict) or not isinstance(st.get("name"), str):
                continue
            last = runtime_id(((st.get("lastState") or {}).get("terminated") or {}).get("containerID"))
            if last:
                retired.add(last)
            cid = runtime_id(st.get("containerID"))
            if not cid:
                continue
            name, container = st["name"], specs.get(st["name"]) or {}
            try:
                current[cid] = ContainerMeta(
                    name=name, kind=kind,
                    cpu_request_cores=_resource(container, "requests", "cpu"),
                    cpu_limit_cores=_resource(container, "limits", "cpu"),
                    memory_request_bytes=_resource(container, "requests", "memory"),
                    memory_limit_bytes=_resource(container, "limits", "memory"),
                )
            except ValueError as exc:
                errors.record("kube", f"pod {meta.get('namespace', '')}/{meta.get('name', '')} "
                              f"container {name} resources", exc)
                current[cid] = ContainerMeta(name=name, kind=kind)
    return current, frozenset(retired - current.keys())


def controller_ref(meta: Json) -> Json | None:
    """The ownerReference marked controller, else the first one, else None."""
    refs = meta.get("ownerReferences") or []
    for ref in refs:
        if ref.get("controller"):
            return ref
    return refs[0] if refs else None


def pod_meta(pod: Json, *, resolve_replicaset: ReplicaSetResolver, errors: ErrorSink) -> PodMeta | None:
    """PodMeta of one pod object; None (and an error counted) when it has no uid."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    uid, namespace, name = meta.get("uid"), meta.get("namespace", ""), meta.get("name", "")
    if not uid:
        errors.record("kube", f"pod {namespace}/{name} without uid")
        return None
    owner_kind = owner_name = deployment = ""
    ref = controller_ref(meta)
    if ref is not None:
        owner_kind, owner_name = ref.get("kind", ""), ref.get("name", "")
        if owner_kind not in _WORKLOAD_KINDS:
            log.debug("pod %s/%s has an unusual owner kind %s", namespace, name, owner_kind)
        if owner_kind == "ReplicaSet":
            # Unknown (None) leaves the pod labelled by its ReplicaSet until a retry succeeds.
            deployment = resolve_replicaset(namespace, owner_name, ref.get("uid", "")) or ""
            if deployment:
                owner_kind, owner_name = "Deployment", deployment
    containers = spec.get("containers") or []
    try:
        cpu_req, cpu_lim = sum_resources(containers, "cpu")
        mem_req, mem_lim = sum_resources(containers, "memory")
    except ValueError as exc:
        errors.record("kube", f"pod {namespace}/{name} resources", exc)
        cpu_req = cpu_lim = mem_req = mem_lim = None
    containers, retired = container_metas(pod, errors)
    return PodMeta(
        uid=uid, namespace=namespace, name=name, owner_kind=owner_kind, owner_name=owner_name,
        deployment=deployment, host_network=bool(spec.get("hostNetwork")),
        cpu_request_cores=cpu_req, cpu_limit_cores=cpu_lim,
        memory_request_bytes=mem_req, memory_limit_bytes=mem_lim,
        containers=containers, retired_container_ids=retired,
    )
