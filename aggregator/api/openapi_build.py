"""Builds aggregator/openapi.json (`python -m aggregator.api.openapi_build`); the app serves the file.

The document is kept in the repository and regenerated from here when the API changes; a test
checks the file matches this builder, that it validates, and that it covers every route.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aggregator.api.openapi_schemas import (
    CONTAINER,
    DISK,
    ERROR,
    GROUP,
    NET,
    NODE,
    NODE_PUSH,
    PARAMS,
    POD,
    POD_PAGE,
    POD_PUSH,
    POINT,
    STATUS,
    TARGET,
    TIMESERIES,
    Schema,
    obj,
    ref,
)

PAGE = ["q", "sort", "limit", "offset"]  # the query parameters every pod listing takes


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
            # Every route answers 400 to a query parameter it does not take.
            "responses": {"200": _resp("OK", schema), **_errors(*sorted({400, *errors}))},
        }
    }


def _list(key: str, item: str, **extra: Schema) -> Schema:
    return obj({key: {"type": "array", "items": ref(item)}, "count": {"type": "integer"}, **extra})


def _push(summary: str, body: str, params: list[str], op: str) -> Schema:
    return {
        "post": {
            "operationId": op,
            "summary": summary,
            "security": [{"bearer": []}],
            "parameters": [{"$ref": f"#/components/parameters/{p}"} for p in params],
            "requestBody": {"required": True, "content": {"application/json": {"schema": ref(body)}}},
            "responses": {
                "201": _resp("stored", obj({"status": {"type": "string"}, "samples": {"type": "integer"}})),
                **_errors(400, 401, 403, 409, 413, 415),
            },
        }
    }


def build() -> Schema:
    """The OpenAPI 3.0 document."""
    ts = ref("Timeseries")
    paths: dict[str, Schema] = {
        "/": _get("Status: version, uptime, targets up/down, last round", ref("Status"), [], (), "status"),
        "/healthz": _get(
            "Liveness: 503 once no scrape round has completed for --liveness-timeout seconds",
            obj({
                "status": {"type": "string"},
                "last_progress_seconds": {"type": "number", "nullable": True},
            }),
            [], (503,), "healthz",
        ),
        "/readyz": _get("Readiness", obj({"status": {"type": "string"}}), [], (503,), "readyz"),
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Federated Prometheus exposition (text format 0.0.4), rebuilt once per round",
                "responses": {
                    "200": _resp("exposition", {"type": "string"}, "text/plain"),
                    **_errors(400),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {"200": _resp("OpenAPI document", {"type": "object"}), **_errors(400)},
            }
        },
        "/api/nodes": _get("All nodes with current usage", _list("nodes", "Node"), [], (), "listNodes"),
        "/api/nodes/{node}": _get("One node", ref("Node"), ["node"], (400, 404), "getNode"),
        "/api/nodes/{node}/pods": _get(
            "Pods on a node",
            _list("pods", "Pod", node_name={"type": "string"}, **POD_PAGE),
            ["node", *PAGE],
            (400, 404),
            "listNodePods",
        ),
        "/api/nodes/{node}/timeseries": _get(
            "Node series", ts, ["node", "window"], (400, 404), "nodeTimeseries"
        ),
        "/api/nodes/{node}/metrics": _push("Push node metrics", "NodePush", ["node"], "pushNode"),
        "/api/pods": _get(
            "Current pods: filtered, sorted and paged",
            _list("pods", "Pod", **POD_PAGE),
            ["namespaceFilter", "nodeFilter", "deploymentFilter", *PAGE],
            (400,),
            "listPods",
        ),
        "/api/pods/{pod}": _get(
            "One pod, searched across namespaces",
            ref("Pod"),
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
            "One namespace", ref("Group"), ["namespace"], (400, 404), "getNamespace"
        ),
        "/api/namespaces/{namespace}/pods": _get(
            "Pods of a namespace",
            _list("pods", "Pod", namespace={"type": "string"}, **POD_PAGE),
            ["namespace", *PAGE],
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
            "One deployment", ref("Group"), ["namespace", "deployment"], (400, 404), "getDeployment"
        ),
        "/api/namespaces/{namespace}/deployments/{deployment}/pods": _get(
            "Pods of a deployment",
            _list("pods", "Pod", namespace={"type": "string"}, deployment={"type": "string"}, **POD_PAGE),
            ["namespace", "deployment", *PAGE],
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
    err = ref("Error")
    descriptions = {
        400: "Invalid path or query parameter, a query parameter the route does not take, or invalid "
        "body (the field or parameter is named)",
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
            "interval; *_per_second and *_total sit beside them. Unknown values are null. HEAD is "
            "answered on every GET route, as GET without the body. A query parameter a route does not "
            "take is a 400.",
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
                "Container": CONTAINER,
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
