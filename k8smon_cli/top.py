"""`k8smon top <kind>`: fetch the aggregator's documents, select, sort, and lay them out as rows."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from k8smon_cli import fmt
from k8smon_cli.client import Client, CliError, NotFound, UsageError

KINDS = ("nodes", "pods", "namespaces", "deployments")
ALIASES = {"node": "nodes", "no": "nodes", "pod": "pods", "po": "pods", "namespace": "namespaces",
           "ns": "namespaces", "deployment": "deployments", "deploy": "deployments"}
SORTS = ("cpu", "memory", "name", "disk", "network")
MAX_HISTORY = 200  # rows whose sparkline is fetched (one timeseries request each)
Doc = dict[str, Any]


@dataclass(frozen=True)
class Query:
    kind: str
    name: str | None = None
    namespace: str = "default"
    all_namespaces: bool = False
    selector: str | None = None
    sort_by: str | None = None
    containers: bool = False
    history: bool = False  # a sparkline column (wide and --watch)
    window: float = 300.0


@dataclass
class Item:
    doc: Doc
    history: list[float | None] | None = field(default=None)


def _io_rate(doc: Doc, group: str, a: str, b: str) -> float | None:
    io = doc.get(group) or {}
    x, y = io.get(a), io.get(b)
    return None if x is None and y is None else (x or 0) + (y or 0)


def _usable(doc: Doc) -> bool:
    """A node that is not up has no current figures: kubectl shows such nodes as <unknown>."""
    return doc.get("status", "up") == "up"


def _num(doc: Doc, key: str) -> float | None:
    return doc.get(key) if _usable(doc) else None


SORT_KEYS: dict[str, Callable[[Doc], float | None]] = {
    "cpu": lambda d: _num(d, "cpu_millicores"),
    "memory": lambda d: _num(d, "memory_bytes"),
    "disk": lambda d: _io_rate(d, "disk_io", "read_bytes_per_second", "write_bytes_per_second")
    if _usable(d) else None,
    "network": lambda d: _io_rate(d, "network_io", "bytes_recv_per_second", "bytes_sent_per_second")
    if _usable(d) else None,
}


def _name(doc: Doc) -> str:
    return str(doc.get("pod_name") or doc.get("deployment") or doc.get("node_name") or doc.get("namespace"))


def sort_docs(docs: list[Doc], sort_by: str | None) -> list[Doc]:
    """By namespace and name; `--sort-by cpu|memory|disk|network` descending (as kubectl sorts cpu and
    memory), entries without the figure last; `name` ascending."""
    by_name = sorted(docs, key=lambda d: (str(d.get("namespace") or ""), _name(d)))
    if sort_by is None or sort_by == "name":
        return sorted(by_name, key=lambda d: not _usable(d)) if sort_by is None else by_name
    key = SORT_KEYS[sort_by]
    known = [d for d in by_name if key(d) is not None]
    unknown = [d for d in by_name if key(d) is None]
    return sorted(known, key=lambda d: key(d) or 0.0, reverse=True) + unknown


def parse_selector(text: str) -> list[tuple[str, str, str | None]]:
    """`k=v,k==v,k!=v,k,!k` (kubectl's equality-based selectors) as (op, key, value) triples."""
    out: list[tuple[str, str, str | None]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if "!=" in part:
            k, v = part.split("!=", 1)
            out.append(("!=", k.strip(), v.strip()))
        elif "=" in part:
            k, v = part.replace("==", "=", 1).split("=", 1)
            out.append(("=", k.strip(), v.strip()))
        elif part.startswith("!"):
            out.append(("!", part[1:].strip(), None))
        else:
            out.append(("exists", part, None))
    if not out or any(not k for _, k, _ in out):
        raise UsageError(f"invalid label selector {text!r}: use key=value, key!=value, key or !key")
    return out


def select(docs: list[Doc], selector: str) -> list[Doc]:
    """The documents whose `labels` match; the aggregator must serve labels for -l to apply."""
    terms = parse_selector(selector)
    if docs and any("labels" not in d for d in docs):
        raise UsageError("-l needs object labels, and this aggregator's documents carry none")
    out = []
    for d in docs:
        labels: dict[str, str] = d.get("labels") or {}
        ok = True
        for op, k, v in terms:
            if op == "=":
                ok = ok and labels.get(k) == v
            elif op == "!=":
                ok = ok and labels.get(k) != v
            elif op == "exists":
                ok = ok and k in labels
            else:
                ok = ok and k not in labels
        if ok:
            out.append(d)
    return out


def fetch(client: Client, q: Query) -> list[Doc]:
    """The documents `q` asks for, sorted; NotFound (exit 5) for an unknown name."""
    docs = _fetch(client, q)
    if q.selector:
        docs = select(docs, q.selector)
    return sort_docs(docs, q.sort_by)


def _one(client: Client, path: str, query: dict[str, Any] | None, what: str) -> Doc:
    try:
        return client.get(path, query)
    except NotFound:
        raise NotFound(what) from None


def _where(q: Query) -> str:
    return "" if q.all_namespaces else f' in namespace "{q.namespace}"'


def _nodes(client: Client, q: Query) -> list[Doc]:
    if q.name:
        return [_one(client, f"/api/nodes/{q.name}", None, f'node "{q.name}" not found')]
    return list(client.get("/api/nodes")["nodes"])


def _pods(client: Client, q: Query) -> list[Doc]:
    ns = None if q.all_namespaces else q.namespace
    if q.name:
        what = f'pod "{q.name}" not found{_where(q)}'
        return [_one(client, f"/api/pods/{q.name}", {"namespace": ns}, what)]
    return list(client.get("/api/pods", {"namespace": ns})["pods"])


def _namespaces(client: Client, q: Query) -> list[Doc]:
    if q.name:  # namespaces are cluster-scoped: -n and -A do not apply
        return [_one(client, f"/api/namespaces/{q.name}", None, f'namespace "{q.name}" not found')]
    return list(client.get("/api/namespaces")["namespaces"])


def _deployments(client: Client, q: Query) -> list[Doc]:
    if q.name and not q.all_namespaces:
        path = f"/api/namespaces/{q.namespace}/deployments/{q.name}"
        return [_one(client, path, None, f'deployment "{q.name}" not found{_where(q)}')]
    if q.all_namespaces:
        namespaces = [g["namespace"] for g in client.get("/api/namespaces")["namespaces"]]
    else:
        namespaces = [q.namespace]
    docs: list[Doc] = []
    for n in namespaces:
        try:
            docs += client.get(f"/api/namespaces/{n}/deployments")["deployments"]
        except NotFound:
            continue  # a namespace nobody reports (or one gone since the listing): no deployments
    if q.name:
        docs = [d for d in docs if d.get("deployment") == q.name]
        if not docs:
            raise NotFound(f'deployment "{q.name}" not found')
    return docs


FETCHERS: dict[str, Callable[[Client, Query], list[Doc]]] = {
    "nodes": _nodes, "pods": _pods, "namespaces": _namespaces, "deployments": _deployments,
}


def _fetch(client: Client, q: Query) -> list[Doc]:
    return FETCHERS[q.kind](client, q)


def _series_path(kind: str, doc: Doc) -> tuple[str, dict[str, Any]]:
    if kind == "nodes":
        return f"/api/nodes/{doc['node_name']}/timeseries", {}
    if kind == "pods":
        return f"/api/pods/{doc['pod_name']}/timeseries", {"namespace": doc.get("namespace") or None}
    if kind == "namespaces":
        return f"/api/namespaces/{doc['namespace']}/timeseries", {}
    return f"/api/deployments/{doc['deployment']}/timeseries", {"namespace": doc["namespace"]}


Series = list[float | None]


def histories(client: Client, kind: str, docs: Sequence[Doc], window: float) -> list[Series | None]:
    """CPU millicores over the window for the first MAX_HISTORY entries (None where unavailable)."""

    def one(doc: Doc) -> Series | None:
        path, query = _series_path(kind, doc)
        try:
            points = client.get(path, {**query, "window": f"{window:g}"})["points"]
        except (CliError, KeyError, TypeError):
            return None
        return [p.get("cpu_millicores") for p in points]

    head = list(docs[:MAX_HISTORY])
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = list(pool.map(one, head))
    return found + [None] * (len(docs) - len(head))


def window_label(window: float) -> str:
    if window % 3600 == 0:
        return f"CPU({window / 3600:g}h)"
    if window % 60 == 0:
        return f"CPU({window / 60:g}m)"
    return f"CPU({window:g}s)"


def _rw(doc: Doc, group: str, a: str, b: str) -> str:
    io = doc.get(group) or {}
    if not _usable(doc) or (io.get(a) is None and io.get(b) is None):
        return fmt.UNKNOWN
    return f"{fmt.rate(io.get(a) or 0)}/{fmt.rate(io.get(b) or 0)}"


def _pct_of(doc: Doc, used: str, whole: str) -> str:
    """`37%` of capacity, request or limit; `-` where there is none to compare with."""
    if not doc.get(whole):
        return "-"
    u = _num(doc, used)
    # CPU: whole millicores rounded up first, as kubectl's MilliValue() gives them
    return fmt.percent(None if u is None else math.ceil(u) if used.startswith("cpu") else u, doc.get(whole))


def header(q: Query, *, wide: bool) -> list[str]:
    """kubectl top's columns (NAMESPACE first with -A), then the wide ones, then the sparkline."""
    cols = ["NAMESPACE"] if _namespaced(q) else []
    if q.kind == "nodes":
        cols += ["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"]
    elif q.kind == "pods" and q.containers:
        cols += ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    else:
        cols += ["NAME", "CPU(cores)", "MEMORY(bytes)", *(["PODS"] if q.kind != "pods" else [])]
    if wide:
        if q.kind != "nodes":
            cols += ["%CPU/R", "%CPU/L", "%MEM/R", "%MEM/L"]  # of requests and limits, as k9s shows
        cols += ["DISK(R/W)", "NET(RX/TX)", *{"nodes": ["PODS", "STATUS"], "pods": ["NODE"]}.get(q.kind, [])]
    if q.history:
        cols.append(window_label(q.window))
    return cols


def _namespaced(q: Query) -> bool:
    return q.kind in ("pods", "deployments") and q.all_namespaces


def _wide_cells(q: Query, d: Doc, style: fmt.Style) -> list[str]:
    cells = []
    if q.kind != "nodes":
        cells += [style.level(_pct_of(d, "cpu_millicores", "cpu_request_millicores")),
                  style.level(_pct_of(d, "cpu_millicores", "cpu_limit_millicores")),
                  style.level(_pct_of(d, "memory_bytes", "memory_request_bytes")),
                  style.level(_pct_of(d, "memory_bytes", "memory_limit_bytes"))]
    cells += [_rw(d, "disk_io", "read_bytes_per_second", "write_bytes_per_second"),
              _rw(d, "network_io", "bytes_recv_per_second", "bytes_sent_per_second")]
    if q.kind == "nodes":
        status = str(d.get("status", ""))
        cells += [str(d.get("pod_count", "")), status if status == "up" else style.red(status)]
    elif q.kind == "pods":
        cells.append(str(d.get("node_name") or ""))
    return cells


def _cells(q: Query, d: Doc, style: fmt.Style, *, wide: bool) -> list[list[str]]:
    lead = [str(d.get("namespace") or "")] if _namespaced(q) else []
    if q.kind == "pods" and q.containers:
        containers = d.get("containers") or []
        if not containers:  # e.g. a pushed pod: no per-container figures, shown as kubectl shows none
            return [[*lead, d["pod_name"], "-", fmt.UNKNOWN, fmt.UNKNOWN]]
        return [[*lead, d["pod_name"], str(c.get("name")), fmt.cpu(c.get("cpu_millicores")),
                 fmt.memory(c.get("memory_bytes"))] for c in containers]
    cells = [*lead, _name(d), fmt.cpu(_num(d, "cpu_millicores"))]
    if q.kind == "nodes":
        cells += [style.level(_pct_of(d, "cpu_millicores", "cpu_capacity_millicores")),
                  fmt.memory(_num(d, "memory_bytes")),
                  style.level(_pct_of(d, "memory_bytes", "memory_total_bytes"))]
    else:
        cells.append(fmt.memory(_num(d, "memory_bytes")))
        if q.kind != "pods":
            cells.append(str(d.get("pod_count", "")))
    return [cells + (_wide_cells(q, d, style) if wide else [])]


def rows(q: Query, docs: Sequence[Doc], hist: Sequence[Series | None] | None, *, wide: bool,
         style: fmt.Style) -> tuple[list[str], list[list[str]]]:
    """Header and rows for `docs` in kubectl top's columns, plus the wide ones and the sparkline."""
    out: list[list[str]] = []
    for i, d in enumerate(docs):
        spark: list[str] = []
        if q.history:
            series = hist[i] if hist is not None else None
            spark = [style.cyan(fmt.sparkline(series)) if series else "-"]
        out += [cells + spark for cells in _cells(q, d, style, wide=wide)]
    return header(q, wide=wide), out


def has_containers(docs: Sequence[Doc]) -> bool:
    """Whether any pod document carries per-container figures (pushed pods carry an empty list)."""
    return any(d.get("containers") for d in docs)
