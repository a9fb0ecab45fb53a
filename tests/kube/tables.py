"""Server-side printing: the meta.k8s.io/v1 Table that `kubectl get` asks for with `as=Table`."""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable

from tests.kube.resources import Resource

Column = tuple[str, str, int, Callable[[dict], object]]  # name, type, priority, cell


def _age(obj: dict) -> str:
    """kubectl's short duration since creation: 12s, 5m, 3h, 2d."""
    stamp = obj["metadata"].get("creationTimestamp")
    if not stamp:
        return "<unknown>"
    seconds = max(0, int(time.time() - calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _pod_ready(pod: dict) -> str:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _pod_restarts(pod: dict) -> int:
    return sum(s.get("restartCount", 0) for s in (pod.get("status") or {}).get("containerStatuses") or [])


def _node_status(node: dict) -> str:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return "Ready" if cond.get("status") == "True" else "NotReady"
    return "Unknown"


def _node_roles(node: dict) -> str:
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix):] for k in node["metadata"].get("labels") or {} if k.startswith(prefix))
    return ",".join(roles) or "<none>"


def _endpoints(ep: dict) -> str:
    pairs = []
    for subset in ep.get("subsets") or []:
        ports = [p.get("port") for p in subset.get("ports") or []] or [None]
        for addr in subset.get("addresses") or []:
            pairs.extend(f"{addr['ip']}:{port}" if port else addr["ip"] for port in ports)
    return ",".join(pairs) or "<none>"


def _replicas(obj: dict) -> tuple[int, dict]:
    return (obj.get("spec") or {}).get("replicas", 1), obj.get("status") or {}


_NAME: Column = ("Name", "string", 0, lambda o: o["metadata"]["name"])
_AGE: Column = ("Age", "string", 0, _age)

COLUMNS: dict[str, list[Column]] = {
    "pods": [
        _NAME,
        ("Ready", "string", 0, _pod_ready),
        ("Status", "string", 0, lambda o: (o.get("status") or {}).get("phase", "Pending")),
        ("Restarts", "string", 0, _pod_restarts),
        _AGE,
        ("IP", "string", 1, lambda o: (o.get("status") or {}).get("podIP") or "<none>"),
        ("Node", "string", 1, lambda o: (o.get("spec") or {}).get("nodeName") or "<none>"),
    ],
    "nodes": [
        _NAME,
        ("Status", "string", 0, _node_status),
        ("Roles", "string", 0, _node_roles),
        _AGE,
        ("Version", "string", 0,
         lambda o: ((o.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "")),
    ],
    "endpoints": [_NAME, ("Endpoints", "string", 0, _endpoints), _AGE],
    "deployments": [
        _NAME,
        ("Ready", "string", 0, lambda o: f"{_replicas(o)[1].get('readyReplicas', 0)}/{_replicas(o)[0]}"),
        ("Up-to-date", "integer", 0, lambda o: _replicas(o)[1].get("updatedReplicas", 0)),
        ("Available", "integer", 0, lambda o: _replicas(o)[1].get("availableReplicas", 0)),
        _AGE,
    ],
    "replicasets": [
        _NAME,
        ("Desired", "integer", 0, lambda o: _replicas(o)[0]),
        ("Current", "integer", 0, lambda o: _replicas(o)[1].get("replicas", 0)),
        ("Ready", "integer", 0, lambda o: _replicas(o)[1].get("readyReplicas", 0)),
        _AGE,
    ],
    "namespaces": [_NAME, ("Status", "string", 0,
                           lambda o: (o.get("status") or {}).get("phase", "Active")), _AGE],
}


def wants_table(accept: str | None) -> bool:
    """True when the Accept header asks for a meta.k8s.io Table (kubectl get does)."""
    return bool(accept) and "as=Table" in accept


def table(resource: Resource, items: list[dict], *, resource_version: int, include_object: str) -> dict:
    """A Table of the items; rows carry PartialObjectMetadata (or the object, as includeObject asks)."""
    columns = COLUMNS.get(resource.plural, [_NAME, _AGE])
    rows = []
    for obj in items:
        row: dict = {"cells": [cell(obj) for _, _, _, cell in columns]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj["metadata"]}
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": str(resource_version)},
        "columnDefinitions": [
            {"name": name, "type": kind, "format": "name" if name == "Name" else "",
             "description": f"{name} of the {resource.singular}", "priority": priority}
            for name, kind, priority, _ in columns
        ],
        "rows": rows,
    }
