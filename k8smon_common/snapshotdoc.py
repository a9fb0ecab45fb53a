"""The exporter's snapshot as one compact JSON document: the families of its /metrics, grouped by entity.

Parsing text costs the aggregator most of its CPU per sample (a line split, a dict lookup, a float
per sample, and a cache of every line it has seen); Prometheus itself asks exporters for protobuf.
So the aggregator asks with `Accept: MEDIA_TYPE` and an exporter that knows it answers this
document (`json.loads` does the per-value work in C); anyone else, and any other exporter, gets or
sends the text format, which stays the contract (docs/metrics.md) and the aggregator's fallback.

The document holds exactly the samples of the k8smon_node_/pod_/container_ families and the sample
timestamp, with their names less the prefix (counters keep `_total`), as floats:

    {"version": 1, "node": "n1", "timestamp": 1700000000.5,
     "node_values": {"cpu_usage_cores": 0.5, ...},
     "filesystems": {"/": {"filesystem_size_bytes": 1e11, ...}},
     "pods": [{"namespace": "shop", "pod": "web-1", "uid": "...", "owner_kind": "ReplicaSet",
               "owner_name": "web-5d4", "deployment": "web", "values": {...},
               "containers": {"app": {...}}}]}

Non-finite values are written as JSON's NaN/Infinity extensions (Python's json reads them) so the
aggregator drops and counts them exactly as it does with the text. `document()` builds it from the
same samples a registry renders as text, so the two forms cannot disagree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

MEDIA_TYPE = "application/vnd.k8smon.snapshot+json"
VERSION = 1
CONTENT_TYPE = f"{MEDIA_TYPE}; version={VERSION}"
# What the aggregator sends: this document first, the text format (what Prometheus asks for) after it.
ACCEPT = f"{MEDIA_TYPE};version={VERSION},text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

NODE_PREFIX = "k8smon_node_"
POD_PREFIX = "k8smon_pod_"
CONTAINER_PREFIX = "k8smon_container_"
TIMESTAMP_METRIC = "k8smon_exporter_sample_timestamp_seconds"
POD_FIELDS = ("namespace", "pod", "uid", "owner_kind", "owner_name", "deployment")


def accepts(header: str | None) -> bool:
    """True when an Accept header asks for this document (version 1, q > 0)."""
    for part in (header or "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if media.lower() != MEDIA_TYPE:
            continue
        options = dict(p.partition("=")[::2] for p in params)
        try:
            q = float(options.get("q", "1"))
        except ValueError:
            return False
        return options.get("version", str(VERSION)) == str(VERSION) and q > 0
    return False


def document(samples: Iterable[tuple[str, Mapping[str, str], float]]) -> dict[str, Any]:
    """The document of one exposition's samples (name, labels, value), in the samples' order."""
    node = ""
    timestamp: float | None = None
    node_values: dict[str, float] = {}
    filesystems: dict[str, dict[str, float]] = {}
    pods: dict[tuple[str, str, str], dict[str, Any]] = {}
    for name, labels, value in samples:
        if name == TIMESTAMP_METRIC:
            timestamp = value
            node = labels.get("node", node)
        elif name.startswith(POD_PREFIX) or name.startswith(CONTAINER_PREFIX):
            container = name.startswith(CONTAINER_PREFIX)
            uid = labels.get("uid", "")
            key = (labels.get("namespace", ""), labels.get("pod", uid), uid)
            pod = pods.get(key)
            if pod is None:
                pod = pods[key] = {f: labels.get(f, "") for f in POD_FIELDS}
                pod["pod"] = key[1]
                pod["values"], pod["containers"] = {}, {}
            if container:
                values = pod["containers"].setdefault(labels.get("container", ""), {})
                values[name[len(CONTAINER_PREFIX):]] = value
            else:
                pod["values"][name[len(POD_PREFIX):]] = value
            node = node or labels.get("node", "")
        elif name.startswith(NODE_PREFIX):
            key_name = name[len(NODE_PREFIX):]
            if key_name.startswith("filesystem_"):
                filesystems.setdefault(labels.get("mountpoint", ""), {})[key_name] = value
            else:
                node_values[key_name] = value
            node = node or labels.get("node", "")
    doc: dict[str, Any] = {"version": VERSION, "node": node, "timestamp": timestamp,
                           "node_values": node_values, "filesystems": filesystems,
                           "pods": list(pods.values())}
    return doc


def encode(doc: Mapping[str, Any]) -> bytes:
    """The document's bytes (compact; NaN/Infinity as Python's json writes them)."""
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")
