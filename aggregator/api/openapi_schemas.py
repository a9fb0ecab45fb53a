"""The OpenAPI document's schemas and parameters (data only; openapi_build.py assembles the paths)."""

from __future__ import annotations

from typing import Any

from aggregator.api.listing import MAX_LIMIT, SORT_VALUES

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


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(props: dict[str, Schema], *, required: list[str] | None = None, extra: bool = False) -> Schema:
    return {
        "type": "object",
        "properties": props,
        "required": list(props) if required is None else required,
        "additionalProperties": extra,
    }


def human(*keys: str) -> Schema:
    return obj({k: STR for k in keys})


IO_HUMAN = ("disk_read", "disk_write", "network_recv", "network_sent")
DISK = obj({f"{d}_bytes{s}": NUM for d in ("read", "write") for s in ("", "_per_second", "_total")})
NET = obj({f"{d}{s}": NUM for d in ("bytes_recv", "bytes_sent") for s in ("", "_per_second", "_total")})
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
    "disk_io": ref("DiskIO"),
    "network_io": ref("NetworkIO"),
    "human": human("cpu", "cpu_request", "cpu_limit", "memory", "memory_request", "memory_limit", *IO_HUMAN),
}
NODE = obj(
    {
        "node_name": {"type": "string"},
        "status": {
            "type": "string",
            "enum": ["up", "down", "gone", "stale"],
            "description": "up: fresh sample; down: its exporter failed or is not ready; gone: its target "
            "left discovery; stale: nothing reported for --stale-after (only GET /api/nodes/<node> shows it)",
        },
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
        "disk_io": ref("DiskIO"),
        "network_io": ref("NetworkIO"),
        "filesystem": {
            **obj({"size_bytes": NUM, "avail_bytes": NUM, "used_bytes": NUM, "percent": NUM}),
            "nullable": True,
        },
        "pod_count": {
            "type": "integer",
            "minimum": 0,
            "description": "its pods in the pod listings (as the last round left them): "
            "the length of /api/nodes/{node}/pods",
        },
        "human": human(
            "cpu", "cpu_capacity", "cpu_percent", "memory", "memory_total", "memory_percent", *IO_HUMAN
        ),
    }
)
CONTAINER = obj(
    {
        "name": {"type": "string", "description": "from the pod status, else the runtime id (12 digits)"},
        "cpu_millicores": NUM,
        "cpu_request_millicores": NUM,
        "cpu_limit_millicores": NUM,
        "cpu_percent_of_request": NUM,
        "cpu_percent_of_limit": NUM,
        "cpu_seconds_total": {**NUM, "description": "continues across restarts under the same name"},
        "memory_bytes": {**NUM, "description": "working set"},
        "memory_request_bytes": NUM,
        "memory_limit_bytes": NUM,
        "memory_percent_of_request": NUM,
        "memory_percent_of_limit": NUM,
        "human": human("cpu", "cpu_request", "cpu_limit", "memory", "memory_request", "memory_limit"),
    }
)
POD = obj(
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
        "containers": {
            "type": "array",
            "items": ref("Container"),
            "description": "latest figures per container (the sandbox is only in the pod's); empty when the "
            "exporter runs with --container-metrics=false",
        },
    }
)
GROUP = obj(
    {
        "namespace": {"type": "string"},
        "deployment": {"type": "string"},
        "pod_count": {"type": "integer", "minimum": 0},
        "round_id": {"type": "integer"},
        **USAGE,
    },
    required=["namespace", "pod_count", "round_id", *USAGE],
)
POINT = obj(
    {
        "timestamp": TS,
        "cpu_millicores": NUM,
        "memory_bytes": NUM,
        "disk_io": obj(
            {
                "read_bytes": NUM,
                "write_bytes": NUM,
                "read_bytes_per_second": NUM,
                "write_bytes_per_second": NUM,
            }
        ),
        "network_io": obj(
            {"bytes_recv": NUM, "bytes_sent": NUM, "bytes_recv_per_second": NUM, "bytes_sent_per_second": NUM}
        ),
    }
)
TIMESERIES = obj(
    {
        "kind": {"type": "string", "enum": ["node", "pod", "namespace", "deployment"]},
        "node_name": {"type": "string"},
        "namespace": {"type": "string"},
        "pod_name": {"type": "string"},
        "deployment": {"type": "string"},
        "window_seconds": {"type": "number"},
        "points": {"type": "array", "items": ref("Point")},
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
TARGET = obj(
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
STATUS = obj(
    {
        "service": {"type": "string"},
        "version": {"type": "string"},
        "started_at": TS,
        "uptime_seconds": {"type": "number"},
        "uptime": {"type": "string"},
        "ready": {"type": "boolean"},
        "discovery_mode": {"type": "string"},
        "targets": obj(
            {
                "total": {"type": "integer"},
                "up": {"type": "integer"},
                "down": {"type": "integer"},
                "items": {"type": "array", "items": ref("Target")},
            }
        ),
        "last_round": {
            **obj({"round_id": {"type": "integer"}, "started": TS, "duration_seconds": {"type": "number"}}),
            "nullable": True,
        },
        "last_scrape": TS,
        "nodes": obj({"up": {"type": "integer"}, "down": {"type": "integer"}, "gone": {"type": "integer"}}),
        "series": {"type": "object", "additionalProperties": {"type": "integer"}},
    }
)
_POSNUM: Schema = {"type": "number", "minimum": 0, "maximum": 1e18}
_PUSH_COMMON: dict[str, Schema] = {
    "node_name": {"type": "string", "pattern": SUBDOMAIN, "maxLength": 253},
    "cpu_millicores": _POSNUM,
    "memory_bytes": _POSNUM,
    "disk_io": obj({"read_bytes": _POSNUM, "write_bytes": _POSNUM}),
    "network_io": obj({"bytes_recv": _POSNUM, "bytes_sent": _POSNUM}),
    "timestamp": {
        "type": "string",
        "format": "date-time",
        "description": "not in the future; newer each push",
    },
}
_REQUIRED = list(_PUSH_COMMON)
NODE_PUSH = obj(
    {**_PUSH_COMMON, "cpu_capacity_millicores": _POSNUM, "memory_total_bytes": _POSNUM}, required=_REQUIRED
)
POD_PUSH = obj(
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
    # Pod listings (aggregator/api/listing.py): filters, sort order, paging.
    "namespaceFilter": _param(
        "namespace", "query", {"type": "string", "pattern": "^$|" + LABEL, "maxLength": 63},
        "only pods of this namespace (empty: all)", required=False,
    ),
    "nodeFilter": _param(
        "node", "query", {"type": "string", "pattern": "^$|" + SUBDOMAIN, "maxLength": 253},
        "only pods on this node (empty: all)", required=False,
    ),
    "deploymentFilter": _param(
        "deployment", "query", {"type": "string", "pattern": "^$|" + SUBDOMAIN, "maxLength": 253},
        "only pods of deployments with this name (empty: all)", required=False,
    ),
    "q": _param(
        "q", "query", {"type": "string", "maxLength": 253},
        "only pods whose name contains this text (case-insensitive)", required=False,
    ),
    "sort": _param(
        "sort", "query", {"type": "string", "enum": list(SORT_VALUES), "default": "name"},
        "name (namespace, then pod name), cpu, memory (working set), disk or network (bytes per second, "
        "both directions); a leading - sorts descending. Pods without the figure come last; ties keep "
        "the name order",
        required=False,
    ),
    "limit": _param(
        "limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        "at most this many pods in the answer (default: all)", required=False,
    ),
    "offset": _param(
        "offset", "query", {"type": "integer", "minimum": 0, "default": 0},
        "skip this many pods of the sorted, filtered list (the previous answer's next_offset)",
        required=False,
    ),
}
POD_PAGE: dict[str, Schema] = {
    "total": {"type": "integer", "description": "pods matching the filters, over all pages"},
    "offset": {"type": "integer"},
    "limit": {"type": "integer", "nullable": True},
    "next_offset": {
        "type": "integer",
        "nullable": True,
        "description": "offset of the next page; null on the last page",
    },
}
