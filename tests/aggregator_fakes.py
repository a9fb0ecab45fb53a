"""Fake exporters for the aggregator's tests and benchmark: golden-format expositions on many addresses.

`render_exposition` writes the families of docs/metrics.md through prometheus_client (like the
real exporter), with values that change with `seq`; `render_document` the same samples as the JSON
snapshot document the aggregator asks for (k8smon_common/snapshotdoc.py), which the fakes serve
when asked, like the exporter. `FakeExporters` serves any number of them from
one asyncio thread, one listening socket per address (127.x.y.z), re-rendering a node's exposition
only when its snapshot changes, like the exporter's per-snapshot cache. `FakeStatus` stands in for
the scrape service where the API is tested on its own.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from aggregator.model import RoundResult, TargetStatus
from k8smon_common import snapshotdoc

POD_LABELS = ["node", "namespace", "pod", "uid", "owner_kind", "owner_name", "deployment"]
NAMESPACES = ("shop", "payments", "search", "monitoring", "default")


def pod_identity(node: str, i: int) -> list[str]:
    """Label values of pod `i` on `node`: deployments of 3 pods spread over a few namespaces."""
    ns = NAMESPACES[i % len(NAMESPACES)]
    deployment = f"app{i // 3}" if i % 4 else ""
    owner_kind, owner_name = ("Deployment", deployment) if deployment else ("StatefulSet", f"db{i}")
    pod = f"{deployment or 'db'}-{node}-{i}"
    return [node, ns, pod, f"uid-{node}-{i}", owner_kind, owner_name, deployment]


Spec = list[tuple[type, str, list[str], list[tuple[list[str], Callable[[int], float]]]]]


CONTAINER_LABELS = ["node", "namespace", "pod", "uid", "container"]


def _spec(
    node: str, pods: int, timestamp: Callable[[int], float], containers: int = 0, variant: int = 0
) -> Spec:
    """Every family as (class, name, label names, [(label values, value of snapshot seq)]); with
    `containers`, that many containers per pod with every container family. `variant` moves pod
    i's usage off the same pod's on other nodes (CPU by variant microcores, memory by variant pages,
    I/O by 8 x variant bytes an interval, whole bytes kept whole): 0 gives the values the tests
    expect; the benchmark gives each node its own, as a cluster's pods differ, so that nothing
    keyed by a value (the API's human forms) is cheaper there than in a cluster."""
    v = variant
    n = [node]
    fs = ["node", "mountpoint"]
    g, c = GaugeMetricFamily, CounterMetricFamily
    spec: Spec = [
        (g, "k8smon_exporter_sample_timestamp_seconds", ["node"], [(n, timestamp)]),
        (g, "k8smon_node_cpu_usage_cores", ["node"], [(n, lambda s: 0.5 + (s % 7) / 10)]),
        (g, "k8smon_node_cpu_capacity_cores", ["node"], [(n, lambda s: 8.0)]),
        (c, "k8smon_node_cpu_seconds", ["node"], [(n, lambda s: 1000.0 + 2.5 * s)]),
        (g, "k8smon_node_memory_used_bytes", ["node"], [(n, lambda s: 4e9 + 1e6 * (s % 11))]),
        (g, "k8smon_node_memory_available_bytes", ["node"], [(n, lambda s: 12e9 - 1e6 * (s % 11))]),
        (g, "k8smon_node_memory_total_bytes", ["node"], [(n, lambda s: 16e9)]),
    ]
    for name in ("disk_read_bytes", "disk_written_bytes", "network_receive_bytes", "network_transmit_bytes"):
        spec.append((c, f"k8smon_node_{name}", ["node"], [(n, lambda s: 1e6 * s)]))
    spec.append((g, "k8smon_node_filesystem_size_bytes", fs, [([node, "/"], lambda s: 1e11)]))
    spec.append((g, "k8smon_node_filesystem_avail_bytes", fs, [([node, "/"], lambda s: 4e10)]))
    ids = [pod_identity(node, i) for i in range(pods)]
    per_pod: list[tuple[type, str, Callable[[int, int], float]]] = [
        (g, "k8smon_pod_cpu_usage_cores", lambda i, s: 0.01 * (i + 1) + (s % 5) / 100 + v * 1e-6),
        (c, "k8smon_pod_cpu_seconds", lambda i, s: (i + 1) * 0.05 * s + v * 1e-6 * s),
        (g, "k8smon_pod_memory_working_set_bytes", lambda i, s: 1e8 + 1e6 * i + 4096 * v),
        (g, "k8smon_pod_memory_usage_bytes", lambda i, s: 1.5e8 + 1e6 * i + 4096 * v),
        (c, "k8smon_pod_disk_read_bytes", lambda i, s: (4096.0 + 8 * v) * s),
        (c, "k8smon_pod_disk_written_bytes", lambda i, s: (8192.0 + 8 * v) * s),
        (c, "k8smon_pod_network_receive_bytes", lambda i, s: 1000.0 * s * (i + 1) + 8 * v * s),
        (c, "k8smon_pod_network_transmit_bytes", lambda i, s: 500.0 * s * (i + 1) + 8 * v * s),
        (g, "k8smon_pod_host_network", lambda i, s: 0.0),
        (g, "k8smon_pod_cpu_request_cores", lambda i, s: 0.1),
        (g, "k8smon_pod_cpu_limit_cores", lambda i, s: 0.5),
        (g, "k8smon_pod_memory_request_bytes", lambda i, s: 1.28e8),
        (g, "k8smon_pod_memory_limit_bytes", lambda i, s: 2.56e8),
    ]
    for cls, name, fn in per_pod:
        rows = [(labels, (lambda s, i=i, fn=fn: fn(i, s))) for i, labels in enumerate(ids)]
        spec.append((cls, name, POD_LABELS, rows))
    if containers:
        per_container: list[tuple[type, str, Callable[[int, int], float]]] = [
            (g, "k8smon_container_cpu_usage_cores", lambda i, s: 0.003 * (i + 1) + (s % 5) / 300),
            (c, "k8smon_container_cpu_seconds", lambda i, s: (i + 1) * 0.015 * s),
            (g, "k8smon_container_memory_working_set_bytes", lambda i, s: 3e7 + 1e5 * i),
            (g, "k8smon_container_cpu_request_cores", lambda i, s: 0.03),
            (g, "k8smon_container_cpu_limit_cores", lambda i, s: 0.15),
            (g, "k8smon_container_memory_request_bytes", lambda i, s: 4e7),
            (g, "k8smon_container_memory_limit_bytes", lambda i, s: 8e7),
        ]
        cids = [(i, [*labels[:4], f"c{k}"]) for i, labels in enumerate(ids) for k in range(containers)]
        for cls, name, fn in per_container:
            rows = [(labels, (lambda s, i=i, fn=fn: fn(i, s))) for i, labels in cids]
            spec.append((cls, name, CONTAINER_LABELS, rows))
    return spec


class _Collector:
    def __init__(self, spec: Spec, seq: int) -> None:
        self.spec, self.seq = spec, seq

    def collect(self) -> Iterator[Metric]:
        for cls, name, labelnames, rows in self.spec:
            family = cls(name, name.replace("_", " ") + ".", labels=labelnames)
            for labels, fn in rows:
                family.add_metric(labels, fn(self.seq))
            yield family


def render_exposition(node: str, *, pods: int, seq: int, timestamp: float, containers: int = 0) -> bytes:
    """One exporter's /metrics body for snapshot number `seq` (rendered by prometheus_client)."""
    registry = CollectorRegistry(auto_describe=False)
    spec = _spec(node, pods, lambda s: timestamp, containers)
    registry.register(_Collector(spec, seq))  # type: ignore[arg-type]
    return generate_latest(registry)


def _sample_rows(spec: Spec) -> list[tuple[str, dict[str, str], Callable[[int], float]]]:
    """Every sample of `spec` as (sample name, labels, value of seq), in exposition order."""
    return [
        (f"{name}_total" if cls is CounterMetricFamily else name, dict(zip(labelnames, lv, strict=True)), fn)
        for cls, name, labelnames, rows in spec
        for lv, fn in rows
    ]


def render_document(node: str, *, pods: int, seq: int, timestamp: float, containers: int = 0) -> bytes:
    """The same snapshot as `render_exposition`, as the JSON snapshot document (snapshotdoc.py)."""
    rows = _sample_rows(_spec(node, pods, lambda s: timestamp, containers))
    return snapshotdoc.encode(snapshotdoc.document((name, labels, fn(seq)) for name, labels, fn in rows))


class ExpositionTemplate:
    """prometheus_client renders a node once; later snapshots only swap the values (fast enough for 1000s)."""

    def __init__(self, node: str, *, pods: int, timestamp: Callable[[int], float], variant: int = 0) -> None:
        spec = _spec(node, pods, timestamp, variant=variant)
        self._rows = _sample_rows(spec)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(spec, 1))  # type: ignore[arg-type]
        lines = generate_latest(registry).decode().splitlines()
        self._fns = [fn for _cls, _name, _labels, rows in spec for _lv, fn in rows]
        self._lines = lines
        self._slots = [i for i, line in enumerate(lines) if not line.startswith("#")]
        self._heads = [lines[i].rsplit(" ", 1)[0] + " " for i in self._slots]
        assert len(self._slots) == len(self._fns), "template and spec disagree"

    def render(self, seq: int) -> bytes:
        lines = list(self._lines)
        for slot, head, fn in zip(self._slots, self._heads, self._fns, strict=True):
            lines[slot] = head + floatToGoString(fn(seq))
        return ("\n".join(lines) + "\n").encode()

    def render_document(self, seq: int) -> bytes:
        """Snapshot `seq` as the JSON snapshot document: the same samples as `render(seq)`."""
        samples = ((name, labels, fn(seq)) for name, labels, fn in self._rows)
        return snapshotdoc.encode(snapshotdoc.document(samples))


@dataclass
class FakeNode:
    """One fake exporter: its address, node name and behaviour."""

    host: str
    node: str
    pods: int = 30
    mode: str = "ok"  # ok | garbage | 500
    port: int = 0
    variant: int = 0  # its pods' values differ from other nodes' by this (see _spec; tests: 0)
    # seq -> (plain, gzipped): the current snapshot's bodies and, rendered ahead, the next one's
    _cache: dict[int, tuple[bytes, bytes]] = field(default_factory=dict, repr=False)
    _doc_cache: dict[int, tuple[bytes, bytes]] = field(default_factory=dict, repr=False)
    _template: ExpositionTemplate | None = field(default=None, repr=False)

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"


class FakeExporters:
    """Serves many FakeNodes from one thread; a new snapshot every `interval` seconds of wall time."""

    def __init__(
        self, nodes: list[FakeNode], *, interval: float = 5.0, gzip_level: int = 1, prerender: bool = False,
        t0: float | None = None,
    ) -> None:
        self.nodes = nodes
        self.interval = interval
        self.gzip_level = gzip_level
        self.prerender = prerender  # render every node's next snapshot in a thread, not on request
        self.requests = 0
        self.connections = 0  # accepted connections: with keep-alive, one per target for many requests
        self._writers: set[asyncio.StreamWriter] = set()
        self.documents_asked = False  # a scraper asked for the JSON document: render it ahead too
        self.document = True  # serve the JSON snapshot document to whoever asks for it (else text only)
        self._t0 = time.time()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-exporters", daemon=True)
        self._servers: list[asyncio.base_events.Server] = []
        self._stopping = threading.Event()
        self._renderer: threading.Thread | None = None
        if t0 is not None:
            # Processes serving slices of one cluster share it: every snapshot changes at the same instants.
            self._t0 = t0

    def __enter__(self) -> FakeExporters:
        if self.prerender:
            for node in self.nodes:
                self.body(node)  # templates and first snapshot before anyone scrapes
            self._renderer = threading.Thread(target=self._render_ahead, name="fake-render", daemon=True)
            self._renderer.start()
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(120)
        return self

    def _seq(self) -> int:
        return int((time.time() - self._t0) / self.interval) + 1

    def _render_ahead(self) -> None:
        """Every node's current bodies, then the next snapshot's, so that when a snapshot changes
        its bodies are ready and requests are answered by copying bytes, as a real exporter serves
        its last sample's render: rendered on request, 1000 nodes' bodies cost ~3 s of CPU right
        at each change, which on a pinned benchmark's shared core delayed the scrapes they answered."""
        while not self._stopping.is_set():
            seq = self._seq()
            for ahead in (seq, seq + 1):
                for node in self.nodes:
                    if self._stopping.is_set():
                        return
                    self.body(node, seq=ahead)
                    if self.documents_asked:
                        self.body(node, document=True, seq=ahead)
            next_boundary = self._t0 + self._seq() * self.interval
            self._stopping.wait(max(0.0, next_boundary - time.time()) + 0.001)

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        if self._renderer is not None:
            self._renderer.join(30)
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        for node in self.nodes:
            server = await asyncio.start_server(
                lambda r, w, n=node: self._serve(n, r, w), node.host, node.port, backlog=128)
            node.port = server.sockets[0].getsockname()[1]
            self._servers.append(server)

    async def _stop(self) -> None:
        for server in self._servers:
            server.close()
        for writer in list(self._writers):  # idle keep-alive connections
            writer.close()
        for server in self._servers:
            await server.wait_closed()

    def body(self, node: FakeNode, *, document: bool = False, seq: int | None = None) -> tuple[bytes, bytes]:
        """(plain, gzipped) body of the node's current snapshot (or snapshot `seq`, rendered ahead):
        text, or the JSON snapshot document. Called from the serving and the rendering threads."""
        current = self._seq()
        seq = current if seq is None else seq
        cache = node._doc_cache if document else node._cache
        bodies = cache.get(seq)
        if bodies is None:
            if node._template is None:
                node._template = ExpositionTemplate(node.node, pods=node.pods, variant=node.variant,
                                                    timestamp=lambda s: self._t0 + s * self.interval)
            plain = node._template.render_document(seq) if document else node._template.render(seq)
            bodies = cache[seq] = (plain, gzip.compress(plain, compresslevel=self.gzip_level))
            for old in [k for k in list(cache) if k < current]:  # list(): the other thread may add one
                cache.pop(old, None)
        return bodies

    async def _serve(
        self, node: FakeNode, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Answers requests on one connection until the client closes it (HTTP/1.1 keep-alive, as the
        exporter's waitress does), or asks for `Connection: close`."""
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                try:
                    request = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return  # the client closed the connection between requests
                self.requests += 1
                close = (_header(request, b"connection") or "").lower() == "close"
                writer.write(self._answer(node, request, close))
                await writer.drain()
                if close:
                    return
        except (ConnectionError, asyncio.LimitOverrunError):
            pass  # the client went away; nothing to answer
        finally:
            self._writers.discard(writer)
            writer.close()

    def _answer(self, node: FakeNode, request: bytes, close: bool) -> bytes:
        last = b"Connection: close\r\n" if close else b""
        if node.mode == "500":
            return b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n%s\r\noops" % last
        if node.mode == "garbage":
            body = b"<html>this is not an exposition</html>\n" * 10
            return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), last, body)
        document = self.document and snapshotdoc.accepts(_header(request, b"accept"))
        self.documents_asked = self.documents_asked or document
        plain, packed = self.body(node, document=document)
        use_gzip = b"gzip" in request.lower()
        body = packed if use_gzip else plain
        content_type = snapshotdoc.CONTENT_TYPE if document else "text/plain; version=0.0.4"
        headers = b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\n" % content_type.encode()
        if use_gzip:
            headers += b"Content-Encoding: gzip\r\n"
        return headers + b"Content-Length: %d\r\n%s\r\n" % (len(body), last) + body


def _header(request: bytes, name: bytes) -> str | None:
    """The value of header `name` (lower case) in a raw request head, if any."""
    for line in request.split(b"\r\n")[1:]:
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == name:
            return value.strip().decode("latin-1")
    return None


@dataclass
class FakeStatus:
    """A StatusProvider the tests control."""

    targets_: list[TargetStatus] = field(default_factory=list)
    ready_: bool = True
    mode: str = "static"
    last: RoundResult | None = None
    progress: float | None = None

    def targets(self) -> Sequence[TargetStatus]:
        return self.targets_

    def progress_age(self) -> float | None:
        return self.progress

    def ready(self) -> bool:
        return self.ready_

    def discovery_mode(self) -> str:
        return self.mode

    def last_round(self) -> RoundResult | None:
        return self.last
