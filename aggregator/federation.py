"""The federated `/metrics`: rendered on the first scrape after a round, served from a cache.

`generate_latest` over a registry of 30k pods (~400k samples) takes seconds, and a Prometheus
scrape must not pay that, so the text is written here directly: one pass per family over
pre-escaped label strings. tests/test_federation.py proves prometheus_client's parser reads it back
exactly and that `promtool check metrics` accepts it. Names and labels are in docs/metrics.md.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from aggregator.model import ContainerReading, PodReading, RoundResult
from aggregator.release import release
from aggregator.stats import AggregatorStats
from aggregator.store.live import PodIdentity, PodKey
from aggregator.store.store import Store
from aggregator.store.views import GroupView, NodeView

# (family name without prefix, type, help); counters keep their `_total` in the exposition name.
NODE_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("cpu_usage_cores", "gauge", "CPU in use over the last sampling interval."),
    ("cpu_capacity_cores", "gauge", "Logical CPUs online."),
    ("cpu_seconds_total", "counter", "Cumulative busy CPU time over all CPUs."),
    ("memory_used_bytes", "gauge", "MemTotal - MemAvailable."),
    ("memory_available_bytes", "gauge", "MemAvailable."),
    ("memory_total_bytes", "gauge", "MemTotal."),
    ("disk_read_bytes_total", "counter", "Bytes read from whole block devices."),
    ("disk_written_bytes_total", "counter", "Bytes written to whole block devices."),
    ("network_receive_bytes_total", "counter", "Bytes received on physical interfaces."),
    ("network_transmit_bytes_total", "counter", "Bytes transmitted on physical interfaces."),
    ("filesystem_size_bytes", "gauge", "Size of the root filesystem."),
    ("filesystem_avail_bytes", "gauge", "Bytes available to unprivileged users on the root filesystem."),
)
POD_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("cpu_usage_cores", "gauge", "CPU used over the last sampling interval."),
    ("cpu_seconds_total", "counter", "Cumulative CPU time of the pod cgroup."),
    ("memory_working_set_bytes", "gauge", "Memory usage minus inactive file (kubelet's working set)."),
    ("memory_usage_bytes", "gauge", "Raw cgroup memory usage including page cache."),
    ("disk_read_bytes_total", "counter", "Block I/O bytes read by the pod cgroup."),
    ("disk_written_bytes_total", "counter", "Block I/O bytes written by the pod cgroup."),
    ("network_receive_bytes_total", "counter", "Bytes received in the pod's network namespace."),
    ("network_transmit_bytes_total", "counter", "Bytes transmitted in the pod's network namespace."),
    ("host_network", "gauge", "1 when the pod shares the host network namespace."),
    ("cpu_request_cores", "gauge", "Sum of container CPU requests."),
    ("cpu_limit_cores", "gauge", "Sum of container CPU limits."),
    ("memory_request_bytes", "gauge", "Sum of container memory requests."),
    ("memory_limit_bytes", "gauge", "Sum of container memory limits."),
)
CONTAINER_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("cpu_usage_cores", "gauge", "CPU the container used over the last sampling interval."),
    ("cpu_seconds_total", "counter", "Cumulative CPU time of the container; continues across restarts."),
    ("memory_working_set_bytes", "gauge", "Container memory usage minus inactive file."),
    ("cpu_request_cores", "gauge", "The container's CPU request."),
    ("cpu_limit_cores", "gauge", "The container's CPU limit."),
    ("memory_request_bytes", "gauge", "The container's memory request."),
    ("memory_limit_bytes", "gauge", "The container's memory limit."),
)
CONTAINER_LABELS: tuple[str, ...] = ("node", "namespace", "pod", "uid", "container")
GROUP_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("cpu_usage_cores", "cpu_usage_cores", "CPU summed over the {kind}'s pods in the latest round."),
    ("memory_working_set_bytes", "memory_working_set_bytes", "Working set summed over the {kind}'s pods."),
)
# The exporter reports only its root filesystem; its mount point is not carried through the reading.
ROOT_MOUNTPOINT = "/"


def escape(value: str) -> str:
    """A label value escaped for the text format."""
    if "\\" in value or '"' in value or "\n" in value:  # rare: skip three replace() calls otherwise
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return ",".join(f'{k}="{escape(v)}"' for k, v in pairs)


def _header(out: list[str], name: str, kind: str, help_text: str) -> None:
    out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")


def _family(out: list[str], name: str, kind: str, help_text: str, rows: Iterable[tuple[str, float]]) -> None:
    lines = [
        f"{name}{{{labels}}} {float(value)!r}\n" if labels else f"{name} {float(value)!r}\n"
        for labels, value in rows
    ]
    if lines:
        _header(out, name, kind, help_text)
        out.extend(lines)


POD_LABELS: tuple[str, ...] = ("node", "namespace", "pod", "uid", "owner_kind", "owner_name", "deployment")
# A pod's node, uid, container names and their label strings (each with the "} " after it).
_CachedContainers = tuple[str, str, tuple[str, ...], tuple[str, ...]]
# A pod's (node, uid, owner_kind, owner_name, deployment) and its label string with the "} " after it.
_CachedLabels = tuple[str, str, str, str, str, str]


def pod_labels(identity: PodIdentity) -> str:
    """A pod's escaped label string from its label values in `POD_LABELS` order."""
    return _labels(zip(POD_LABELS, identity, strict=True))


def _pod_lines(out: list[str], tails: Sequence[str], values: Sequence[Mapping[str, float]]) -> None:
    """The pod families: all of one pod's lines at once, filed per family (`tails[i]`: pod i's
    label string and the `} ` that ends it).

    Pod by pod, not family by family: 13 passes over 30k values dicts miss the cache on every
    lookup (at 30k pods measured 0.46-0.53 s, against 0.28-0.35 s this way). Most of the render.
    """
    lines: list[list[str]] = [[] for _ in POD_FAMILIES]
    columns = [
        (fam, f"k8smon_pod_{fam}{{", family.append)
        for (fam, _kind, _help), family in zip(POD_FAMILIES, lines, strict=True)
    ]
    for tail, pod_values in zip(tails, values, strict=True):
        for fam, head, append in columns:
            v = pod_values.get(fam)
            if v is not None:
                append(f"{head}{tail}{v!r}\n")
    for (fam, kind, help_text), family in zip(POD_FAMILIES, lines, strict=True):
        if family:
            _header(out, f"k8smon_pod_{fam}", kind, help_text)
            out.extend(family)


def container_lines(
    keys: Sequence[PodKey],
    nodes: Sequence[str],
    readings: Sequence[PodReading],
    cache: Mapping[PodKey, _CachedContainers] | None = None,
) -> tuple[list[str], dict[PodKey, _CachedContainers]]:
    """The container families' text (pods in the given order, containers by name), and the label-string
    cache for next round: per pod, its node, uid, container names and their label strings with the
    `} ` after them, reused while all of those stay the same (most pods, most rounds).

    Container by container like _pod_lines; no object is kept per container beyond the cached strings.
    """
    old = cache or {}
    new: dict[PodKey, _CachedContainers] = {}
    lines: list[list[str]] = [[] for _ in CONTAINER_FAMILIES]
    columns = [
        (fam, f"k8smon_container_{fam}{{", family.append)
        for (fam, _kind, _help), family in zip(CONTAINER_FAMILIES, lines, strict=True)
    ]
    for key, node, r in zip(keys, nodes, readings, strict=True):
        containers = r.containers
        if not containers:
            continue
        hit = old.get(key)
        if hit is None or hit[0] != node or hit[1] != r.uid or not _same_names(hit[2], containers):
            prefix = _labels(zip(CONTAINER_LABELS[:4], (node, key[0], key[1], r.uid), strict=True))
            hit = (node, r.uid, tuple(c.name for c in containers),
                   tuple(f'{prefix},container="{escape(c.name)}"}} ' for c in containers))
        new[key] = hit
        for tail, c in zip(hit[3], containers, strict=True):
            values = c.values
            for fam, head, append in columns:
                v = values.get(fam)
                if v is not None:
                    append(f"{head}{tail}{v!r}\n")
    out: list[str] = []
    for (fam, kind, help_text), family in zip(CONTAINER_FAMILIES, lines, strict=True):
        if family:
            _header(out, f"k8smon_container_{fam}", kind, help_text)
            out.extend(family)
    return out, new


def _same_names(names: tuple[str, ...], containers: Sequence[ContainerReading]) -> bool:
    return len(names) == len(containers) and all(n == c.name for n, c in zip(names, containers, strict=True))


ENCODE_LINES = 4096  # lines joined and encoded at a time (~0.5 MB of text)


def encode(lines: Sequence[str], per: int = ENCODE_LINES) -> bytes:
    """`"".join(lines).encode()`, `per` lines at a time. At 1000 x 30 the text is 69 MB: joining and
    encoding it whole are two C calls that held the GIL for 70-96 ms, stalling every request and the
    scrape loop (bench/profiles/2026-12-02-gil-holds.txt); by slices each call holds it ~1 ms, and only
    the final join of the bytes (a plain copy, ~13 ms) covers the whole body."""
    return b"".join(["".join(lines[i : i + per]).encode("utf-8") for i in range(0, len(lines), per)])


def render_lines(
    *,
    nodes: Sequence[NodeView],
    pod_tails: Sequence[str],
    pod_values: Sequence[Mapping[str, float]],
    container_text: Sequence[str] = (),
    namespaces: Sequence[GroupView],
    deployments: Sequence[GroupView],
    result: RoundResult | None,
    stats: dict[str, dict[str, float]],
    series: dict[str, int],
    rounds: int,
    version: str,
) -> list[str]:
    """The exposition (Prometheus text format 0.0.4) as its lines and family headers, in order."""
    out: list[str] = []
    up_nodes = [(n, f'node="{escape(n.name)}"') for n in nodes if n.status == "up" and n.sample is not None]
    for fam, kind, help_text in NODE_FAMILIES:
        labels_suffix = f',mountpoint="{ROOT_MOUNTPOINT}"' if fam.startswith("filesystem_") else ""
        rows = [
            (lbl + labels_suffix, v)
            for n, lbl in up_nodes
            if n.sample is not None and (v := n.sample.values.get(fam)) is not None
        ]
        _family(out, f"k8smon_node_{fam}", kind, help_text, rows)
    _pod_lines(out, pod_tails, pod_values)
    out.extend(container_text)
    for kind_name, groups in (("namespace", namespaces), ("deployment", deployments)):
        glabels = [
            (
                g,
                _labels(
                    (("namespace", g.namespace), ("deployment", g.deployment))
                    if g.deployment
                    else (("namespace", g.namespace),)
                ),
            )
            for g in groups
        ]
        for fam, key, help_text in GROUP_FAMILIES:
            rows = [(lbl, v) for g, lbl in glabels if (v := g.sample.values.get(key)) is not None]
            _family(out, f"k8smon_{kind_name}_{fam}", "gauge", help_text.format(kind=kind_name), rows)
        _family(
            out,
            f"k8smon_{kind_name}_pods",
            "gauge",
            f"Pods counted in the {kind_name} sums.",
            [(lbl, g.pod_count) for g, lbl in glabels],
        )
    targets = result.targets if result else ()
    tlabels = [(t, _labels((("target", t.target), ("node", t.node or "")))) for t in targets]
    _family(
        out,
        "k8smon_target_up",
        "gauge",
        "1 if the last scrape of the exporter succeeded.",
        [(lbl, 1.0 if t.up else 0.0) for t, lbl in tlabels],
    )
    _family(
        out,
        "k8smon_target_scrape_duration_seconds",
        "gauge",
        "Duration of the last scrape.",
        [(lbl, t.duration_seconds) for t, lbl in tlabels if t.duration_seconds is not None],
    )
    _family(
        out,
        "k8smon_target_samples",
        "gauge",
        "Samples parsed from the last scrape.",
        [(lbl, t.samples) for t, lbl in tlabels],
    )
    if result is not None:
        _family(
            out,
            "k8smon_aggregator_round_duration_seconds",
            "gauge",
            "Wall time of the last scrape round.",
            [("", result.duration_seconds)],
        )
    _family(out, "k8smon_aggregator_rounds_total", "counter", "Scrape rounds completed.", [("", rounds)])
    _family(
        out,
        "k8smon_aggregator_samples_ingested_total",
        "counter",
        "Samples stored.",
        [("", stats["counters"].get("samples_ingested", 0.0))],
    )
    gauges, counters = stats["gauges"], stats["counters"]
    if "snapshot_duration_seconds" in gauges:  # only with --state-file (persistence.Snapshotter)
        for name, help_text in (
            ("snapshot_duration_seconds", "Wall time of the last state-file snapshot."),
            ("snapshot_bytes", "Size of the last state-file snapshot."),
            ("snapshot_timestamp_seconds", "Unix time the last state-file snapshot was written."),
        ):
            _family(out, f"k8smon_aggregator_{name}", "gauge", help_text, [("", gauges.get(name, 0.0))])
        _family(out, "k8smon_aggregator_snapshots_total", "counter", "State-file snapshots written.",
                [("", counters.get("snapshots", 0.0))])
    _family(
        out,
        "k8smon_aggregator_series",
        "gauge",
        "Series held in memory.",
        [(f'kind="{k}"', v) for k, v in sorted(series.items())],
    )
    up = sum(1 for t in targets if t.up)
    _family(
        out,
        "k8smon_aggregator_targets",
        "gauge",
        "Discovered targets by state.",
        [('state="up"', up), ('state="down"', len(targets) - up)],
    )
    _family(
        out,
        "k8smon_aggregator_errors_total",
        "counter",
        "Errors by source.",
        [(f'source="{escape(s)}"', n) for s, n in sorted(stats["errors"].items())],
    )
    _family(
        out,
        "k8smon_aggregator_build_info",
        "gauge",
        "Always 1; the version is a label.",
        [(f'version="{escape(version)}"', 1.0)],
    )
    return out


@dataclass(frozen=True)
class _RoundState:
    """What one render reads, taken from the store when a round ends (so the text is that round's,
    whenever it is rendered): references to existing objects, no per-pod work but the name sort."""

    result: RoundResult | None
    rounds: int
    nodes: list[NodeView]
    pods: tuple[list[PodKey], list[str], list[PodReading], list[Mapping[str, float]]]
    namespaces: list[GroupView]
    deployments: list[GroupView]
    stats: dict[str, dict[str, float]]
    series: dict[str, int]


class FederationCache:
    """The federated exposition: `round_done` takes the round's state when a round ends (cheap), the
    first `body` after it renders the text (most installs never scrape /metrics: measured at 1000 x 30,
    rendering every round cost 0.8-1.1 s of the scrape loop's CPU per 5-s round)."""

    def __init__(self, *, store: Store, stats: AggregatorStats, version: str) -> None:
        self._store = store
        self._stats = stats
        self._version = version
        self._lock = threading.Lock()  # guards the fields below
        self._render_lock = threading.Lock()  # one render at a time: concurrent scrapers wait for it
        self._rounds = 0
        self._state: _RoundState | None = None  # the latest round's, not rendered yet
        self._body: bytes | None = None
        self._gzip: bytes | None = None
        self._labels: dict[PodKey, _CachedLabels] = {}  # last render's label strings
        self._container_labels: dict[PodKey, _CachedContainers] = {}  # and the containers'

    def _take(self, result: RoundResult | None, rounds: int) -> _RoundState:
        store = self._store
        return _RoundState(
            result=result,
            rounds=rounds,
            nodes=store.nodes(pod_counts=False),
            pods=store.pod_label_values(),
            namespaces=store.groups(),
            deployments=store.groups(deployments=True),
            stats=self._stats.snapshot(),
            series=store.series_counts(),
        )

    def round_done(self, result: RoundResult) -> None:
        """A round ended: keep its state for the next render and drop the text of the previous one."""
        with self._lock:
            self._rounds += 1
            rounds = self._rounds
        state = self._take(result, rounds)
        with self._lock:
            old, self._state, self._body, self._gzip = self._state, state, None, None
        if old is not None:
            # The previous round's readings: the store holds this round's, so most are kept only here.
            readings = list(old.pods[2])
            del old  # the state and its lists (a render still using them keeps them)
            release(readings)

    def _pod_labels(
        self, pods: tuple[list[PodKey], list[str], list[PodReading], list[Mapping[str, float]]]
    ) -> tuple[
        list[str],
        list[Mapping[str, float]],
        dict[PodKey, _CachedLabels],
        list[str],
        dict[PodKey, _CachedContainers],
    ]:
        """Current pods' label strings (with the `} ` after them) and values, by namespace/name,
        reusing the last render's strings; the new string cache to keep; the pods' container rows."""
        keys, nodes, readings, values = pods
        old = self._labels
        new: dict[PodKey, _CachedLabels] = {}
        tails: list[str] = []
        for key, node, r in zip(keys, nodes, readings, strict=True):
            c = old.get(key)
            # Field by field against the cache, so a pod whose labels did not change costs no tuple.
            if (
                c is None
                or c[0] != node
                or c[1] != r.uid
                or c[2] != r.owner_kind
                or c[3] != r.owner_name
                or c[4] != r.deployment
            ):
                identity = (node, key[0], key[1], r.uid, r.owner_kind, r.owner_name, r.deployment)
                c = (node, r.uid, r.owner_kind, r.owner_name, r.deployment, pod_labels(identity) + "} ")
            new[key] = c
            tails.append(c[5])
        text, container_labels = container_lines(keys, nodes, readings, self._container_labels)
        return tails, values, new, text, container_labels

    def _render(self, state: _RoundState) -> bytes:
        t0 = time.perf_counter()
        pod_tails, pod_values, labels, containers, container_labels = self._pod_labels(state.pods)
        lines = render_lines(
            nodes=state.nodes,
            pod_tails=pod_tails,
            pod_values=pod_values,
            container_text=containers,
            namespaces=state.namespaces,
            deployments=state.deployments,
            result=state.result,
            stats=state.stats,
            series=state.series,
            rounds=state.rounds,
            version=self._version,
        )
        self._labels, self._container_labels = labels, container_labels
        body = encode(lines)
        release(lines)  # 600k strings at 1000 x 30
        self._stats.set("federation_seconds", time.perf_counter() - t0)
        return body

    def body(self) -> bytes:
        """The exposition of the latest round, rendered on its first request (before the first round:
        of the store as it was at the first request)."""
        body = self._body
        if body is not None:
            return body
        with self._render_lock:
            with self._lock:
                body, state = self._body, self._state
            if body is not None:
                return body  # rendered by the request we waited for
            if state is None:  # no round yet: the store as it is now, kept until the first round
                state = self._take(None, 0)
                with self._lock:
                    if self._state is None:
                        self._state = state
            body = self._render(state)
            with self._lock:
                if self._state is state:  # else a newer round came meanwhile: render that one next time
                    self._body = body
        return body

    def body_gzip(self) -> bytes:
        """The exposition gzip-compressed, once per round on first request."""
        with self._lock:
            cached = self._gzip
        if cached is not None:
            return cached
        body = self.body()
        packed = gzip.compress(body, compresslevel=1)  # speed over ratio: text compresses ~10x anyway
        with self._lock:
            if self._body is body:
                self._gzip = packed
        return packed
