"""Builds aggregator/openapi.json (`python -m aggregator.api.openapi_build`); the app serves the file.

The document is kept in the repository and regenerated from here when the API changes; a test
checks the file matches this builder, that it validates, and that it covers every route.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

Schema = dict[str, Any]
NUM: Schema = {"type": "number", "nullable": True}
STR: Schema = {"type": "string", "nullable": True}
TS: Schema = {
    "type": "string",
    "format": "date-time",
    "nullable": True,
    "description": "ISO-8601 UTC, ends in Z",
}
SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Schema], *, required: list[str] | None = None, extra: bool = False) -> Schema:
    return {
        "type": "object",
        "properties": props,
        "required": list(props) if required is None else required,
        "additionalProperties": extra,
    }


def _human(*keys: str) -> Schema:
    return _obj({k: STR for k in keys})


IO_HUMAN = ("disk_read", "disk_write", "network_recv", "network_sent")
DISK = _obj({f"{d}_bytes{s}": NUM for d in ("read", "write") for s in ("", "_per_second", "_total")})
NET = _obj({f"{d}{s}": NUM for d in ("bytes_recv", "bytes_sent") for s in ("", "_per_second", "_total")})
USAGE: dict[str, Schema] = {
    "timestamp": TS,
    "cpu_millicores": NUM,
    "cpu_request_millicores": NUM,
    "cpu_limit_millicores": NUM,
    "cpu_percent_of_request": NUM,
    "cpu_percent_of_limit": NUM,
    "memory_bytes": {**NUM, "description": "working set"},
    "memory_usage_bytes": NUM,
    "memory_request_bytes": NUM,
    "memory_limit_bytes": NUM,
    "memory_percent_of_request": NUM,
    "memory_percent_of_limit": NUM,
    "disk_io": _ref("DiskIO"),
    "network_io": _ref("NetworkIO"),
    "human": _human("cpu", "cpu_request", "cpu_limit", "memory", "memory_request", "memory_limit", *IO_HUMAN),
}
NODE = _obj(
    {
        "node_name": {"type": "string"},
        "status": {"type": "string", "enum": ["up", "down"]},
        "last_error": STR,
        "source": {"type": "string", "enum": ["scrape", "push"]},
        "down_since": TS,
        "timestamp": TS,
        "age_seconds": NUM,
        "interval_seconds": NUM,
        "cpu_millicores": NUM,
        "cpu_capacity_millicores": NUM,
        "cpu_percent": NUM,
        "memory_bytes": {**NUM, "description": "used (MemTotal - MemAvailable)"},
        "memory_available_bytes": NUM,
        "memory_total_bytes": NUM,
        "memory_percent": NUM,
        "disk_io": _ref("DiskIO"),
        "network_io": _ref("NetworkIO"),
        "filesystem": {
            **_obj({"size_bytes": NUM, "avail_bytes": NUM, "used_bytes": NUM, "percent": NUM}),
            "nullable": True,
        },
        "pod_count": {"type": "integer", "minimum": 0},
        "human": _human(
            "cpu", "cpu_capacity", "cpu_percent", "memory", "memory_total", "memory_percent", *IO_HUMAN
        ),
    }
)
POD = _obj(
    {
        "pod_name": {"type": "string"},
        "namespace": {"type": "string", "description": "empty when the exporter could not name the pod"},
        "uid": {"type": "string"},
        "node_name": {"type": "string"},
        "deployment": STR,
        "owner_kind": STR,
        "owner_name": STR,
        "age_seconds": NUM,
        "interval_seconds": NUM,
        "host_network": {"type": "boolean", "nullable": True},
        **USAGE,
    }
)
GROUP = _obj(
    {
        "namespace": {"type": "string"},
        "deployment": {"type": "string"},
        "pod_count": {"type": "integer", "minimum": 0},
        "round_id": {"type": "integer"},
        **USAGE,
    },
    required=["namespace", "pod_count", "round_id", *USAGE],
)
POINT = _obj(
    {
        "timestamp": TS,
        "cpu_millicores": NUM,
        "memory_bytes": NUM,
        "disk_io": _obj(
            {
                "read_bytes": NUM,
                "write_bytes": NUM,
                "read_bytes_per_second": NUM,
                "write_bytes_per_second": NUM,
            }
        ),
        "network_io": _obj(
            {"bytes_recv": NUM, "bytes_sent": NUM, "bytes_recv_per_second": NUM, "bytes_sent_per_second": NUM}
        ),
    }
)
TIMESERIES = _obj(
    {
        "kind": {"type": "string", "enum": ["node", "pod", "namespace", "deployment"]},
        "node_name": {"type": "string"},
        "namespace": {"type": "string"},
        "pod_name": {"type": "string"},
        "deployment": {"type": "string"},
        "window_seconds": {"type": "number"},
        "points": {"type": "array", "items": _ref("Point")},
    },
    required=["kind", "window_seconds", "points"],
)
ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "machine-readable code, e.g. not_found"},
        "description": {"type": "string", "nullable": True},
        "parameter": {"type": "string"},
        "field": {"type": "string", "nullable": True},
        "kind": {"type": "string"},
        "name": {"type": "string"},
        "namespace": {"type": "string", "nullable": True},
        "candidates": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["error", "description"],
    "additionalProperties": True,
}
TARGET = _obj(
    {
        "target": {"type": "string"},
        "node_name": STR,
        "up": {"type": "boolean"},
        "last_error": STR,
        "last_scrape": TS,
        "duration_seconds": NUM,
        "samples": {"type": "integer"},
    }
)
STATUS = _obj(
    {
        "service": {"type": "string"},
        "version": {"type": "string"},
        "started_at": TS,
        "uptime_seconds": {"type": "number"},
        "uptime": {"type": "string"},
        "ready": {"type": "boolean"},
        "discovery_mode": {"type": "string"},
        "targets": _obj(
            {
                "total": {"type": "integer"},
                "up": {"type": "integer"},
                "down": {"type": "integer"},
                "items": {"type": "array", "items": _ref("Target")},
            }
        ),
        "last_round": {
            **_obj({"round_id": {"type": "integer"}, "started": TS, "duration_seconds": {"type": "number"}}),
            "nullable": True,
        },
        "last_scrape": TS,
        "series": {"type": "object", "additionalProperties": {"type": "integer"}},
    }
)
_POSNUM: Schema = {"type": "number", "minimum": 0, "maximum": 1e18}
_PUSH_COMMON: dict[str, Schema] = {
    "node_name": {"type": "string", "pattern": SUBDOMAIN, "maxLength": 253},
    "cpu_millicores": _POSNUM,
    "memory_bytes": _POSNUM,
    "disk_io": _obj({"read_bytes": _POSNUM, "write_bytes": _POSNUM}),
    "network_io": _obj({"bytes_recv": _POSNUM, "bytes_sent": _POSNUM}),
    "timestamp": {
        "type": "string",
        "format": "date-time",
        "description": "not in the future; newer each push",
    },
}
_REQUIRED = list(_PUSH_COMMON)
NODE_PUSH = _obj(
    {**_PUSH_COMMON, "cpu_capacity_millicores": _POSNUM, "memory_total_bytes": _POSNUM}, required=_REQUIRED
)
POD_PUSH = _obj(
    {
        **_PUSH_COMMON,
        "namespace": {"type": "string", "pattern": LABEL, "maxLength": 63},
        "pod_name": {"type": "string", "pattern": SUBDOMAIN, "maxLength": 253},
        "uid": {"type": "string", "minLength": 1, "maxLength": 128},
        "deployment": {"type": "string", "pattern": SUBDOMAIN, "maxLength": 253},
        "cpu_request_millicores": _POSNUM,
        "cpu_limit_millicores": _POSNUM,
        "memory_request_bytes": _POSNUM,
        "memory_limit_bytes": _POSNUM,
    },
    required=_REQUIRED,
)


def _param(name: str, where: str, schema: Schema, description: str, *, required: bool = True) -> Schema:
    return {"name": name, "in": where, "required": required, "schema": schema, "description": description}


PARAMS: dict[str, Schema] = {
    "node": _param("node", "path", {"type": "string", "pattern": SUBDOMAIN, "maxLength": 253}, "node name"),
    "pod": _param("pod", "path", {"type": "string", "pattern": SUBDOMAIN, "maxLength": 253}, "pod name"),
    "namespace": _param(
        "namespace", "path", {"type": "string", "pattern": LABEL, "maxLength": 63}, "namespace"
    ),
    "deployment": _param(
        "deployment", "path", {"type": "string", "pattern": SUBDOMAIN, "maxLength": 253}, "deployment name"
    ),
    "namespaceQuery": _param(
        "namespace",
        "query",
        {"type": "string", "pattern": LABEL, "maxLength": 63},
        "narrows a name found in several namespaces",
        required=False,
    ),
    "window": _param(
        "window",
        "query",
        {"type": "number", "exclusiveMinimum": True, "minimum": 0, "maximum": 5000},
        "seconds of history (default 300; at most the retention span: retention points x interval)",
        required=False,
    ),
}


def _resp(description: str, schema: Schema | None = None, media: str = "application/json") -> Schema:
    out: Schema = {"description": description}
    if schema is not None:
        out["content"] = {media: {"schema": schema}}
    return out


def _errors(*codes: int) -> dict[str, Schema]:
    return {str(c): {"$ref": f"#/components/responses/E{c}"} for c in codes}


def _get(summary: str, schema: Schema, params: list[str], errors: tuple[int, ...], op: str) -> Schema:
    return {
        "get": {
            "operationId": op,
            "summary": summary,
            "parameters": [{"$ref": f"#/components/parameters/{p}"} for p in params],
            "responses": {"200": _resp("OK", schema), **_errors(*errors)},
        }
    }


def _list(key: str, item: str, **extra: Schema) -> Schema:
    return _obj({key: {"type": "array", "items": _ref(item)}, "count": {"type": "integer"}, **extra})


def _push(summary: str, body: str, params: list[str], op: str) -> Schema:
    return {
        "post": {
            "operationId": op,
            "summary": summary,
            "security": [{"bearer": []}],
            "parameters": [{"$ref": f"#/components/parameters/{p}"} for p in params],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(body)}}},
            "responses": {
                "201": _resp("stored", _obj({"status": {"type": "string"}, "samples": {"type": "integer"}})),
                **_errors(400, 401, 403, 409, 413, 415),
            },
        }
    }


def build() -> Schema:
    """The OpenAPI 3.0 document."""
    ts = _ref("Timeseries")
    paths: dict[str, Schema] = {
        "/": _get("Status: version, uptime, targets up/down, last round", _ref("Status"), [], (), "status"),
        "/healthz": _get("Liveness", _obj({"status": {"type": "string"}}), [], (), "healthz"),
        "/readyz": _get("Readiness", _obj({"status": {"type": "string"}}), [], (503,), "readyz"),
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Federated Prometheus exposition (text format 0.0.4), rebuilt once per round",
                "responses": {"200": _resp("exposition", {"type": "string"}, "text/plain")},
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {"200": _resp("OpenAPI document", {"type": "object"})},
            }
        },
        "/api/nodes": _get("All nodes with current usage", _list("nodes", "Node"), [], (), "listNodes"),
        "/api/nodes/{node}": _get("One node", _ref("Node"), ["node"], (400, 404), "getNode"),
        "/api/nodes/{node}/pods": _get(
            "Pods on a node",
            _list("pods", "Pod", node_name={"type": "string"}),
            ["node"],
            (400, 404),
            "listNodePods",
        ),
        "/api/nodes/{node}/timeseries": _get(
            "Node series", ts, ["node", "window"], (400, 404), "nodeTimeseries"
        ),
        "/api/nodes/{node}/metrics": _push("Push node metrics", "NodePush", ["node"], "pushNode"),
        "/api/pods": _get("All current pods", _list("pods", "Pod"), [], (), "listPods"),
        "/api/pods/{pod}": _get(
            "One pod, searched across namespaces",
            _ref("Pod"),
            ["pod", "namespaceQuery"],
            (400, 404, 409),
            "getPod",
        ),
        "/api/pods/{pod}/timeseries": _get(
            "Pod series", ts, ["pod", "namespaceQuery", "window"], (400, 404, 409), "podTimeseries"
        ),
        "/api/namespaces": _get(
            "Namespaces with usage summed over their pods",
            _list("namespaces", "Group"),
            [],
            (),
            "listNamespaces",
        ),
        "/api/namespaces/{namespace}": _get(
            "One namespace", _ref("Group"), ["namespace"], (400, 404), "getNamespace"
        ),
        "/api/namespaces/{namespace}/pods": _get(
            "Pods of a namespace",
            _list("pods", "Pod", namespace={"type": "string"}),
            ["namespace"],
            (400, 404),
            "listNamespacePods",
        ),
        "/api/namespaces/{namespace}/timeseries": _get(
            "Namespace series (sums per round)",
            ts,
            ["namespace", "window"],
            (400, 404),
            "namespaceTimeseries",
        ),
        "/api/namespaces/{namespace}/pods/{pod}/metrics": _push(
            "Push pod metrics", "PodPush", ["namespace", "pod"], "pushPod"
        ),
        "/api/namespaces/{namespace}/deployments": _get(
            "Deployments of a namespace",
            _list("deployments", "Group", namespace={"type": "string"}),
            ["namespace"],
            (400, 404),
            "listDeployments",
        ),
        "/api/namespaces/{namespace}/deployments/{deployment}": _get(
            "One deployment", _ref("Group"), ["namespace", "deployment"], (400, 404), "getDeployment"
        ),
        "/api/namespaces/{namespace}/deployments/{deployment}/pods": _get(
            "Pods of a deployment",
            _list("pods", "Pod", namespace={"type": "string"}, deployment={"type": "string"}),
            ["namespace", "deployment"],
            (400, 404),
            "listDeploymentPods",
        ),
        "/api/deployments/{deployment}/timeseries": _get(
            "Deployment series (sums per round)",
            ts,
            ["deployment", "namespaceQuery", "window"],
            (400, 404, 409),
            "deploymentTimeseries",
        ),
    }
    err = _ref("Error")
    descriptions = {
        400: "Invalid path or query parameter, or invalid body (the field or parameter is named)",
        401: "Missing or wrong bearer token",
        403: "Push ingest disabled (no token configured)",
        404: "Unknown entity",
        409: "Ambiguous name (candidates listed) or a pushed timestamp that is not newer",
        413: "Body too large",
        415: "Body is not application/json",
        503: "Not ready",
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "k8s-monitor aggregator API",
            "version": "0.1.0",
            "description": "Cluster resource usage from the k8s-monitor exporters. Every answer is JSON "
            "(errors: {error, description, ...}). I/O fields are bytes moved during the last sampling "
            "interval; *_per_second and *_total sit beside them. Unknown values are null.",
        },
        "paths": paths,
        "components": {
            "parameters": PARAMS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {f"E{c}": _resp(d, err) for c, d in descriptions.items()},
            "schemas": {
                "Error": ERROR,
                "DiskIO": DISK,
                "NetworkIO": NET,
                "Node": NODE,
                "Pod": POD,
                "Group": GROUP,
                "Point": POINT,
                "Timeseries": TIMESERIES,
                "Target": TARGET,
                "Status": STATUS,
                "NodePush": NODE_PUSH,
                "PodPush": POD_PUSH,
            },
        },
    }


def render() -> str:
    return json.dumps(build(), indent=1, sort_keys=False) + "\n"


def main() -> int:
    target = Path(__file__).resolve().parent.parent / "openapi.json"
    target.write_text(render(), encoding="utf-8")
    print(f"wrote {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
