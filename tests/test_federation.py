"""Federated /metrics: the hand-written text reads back exactly as prometheus_client's own rendering
would, passes `promtool check metrics`, escapes hostile label values, and renders 30k pods fast."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from aggregator.federation import (
    CONTAINER_FAMILIES,
    CONTAINER_LABELS,
    GROUP_FAMILIES,
    NODE_FAMILIES,
    POD_FAMILIES,
    ROOT_MOUNTPOINT,
    FederationCache,
    encode,
)
from aggregator.model import ContainerReading, NodeReading, PodReading, RoundResult, TargetStatus
from aggregator.stats import AggregatorStats
from aggregator.store.store import Store
from tests.support import require_tool
from tests.test_store import Clock

POD_LABELS = ("node", "namespace", "pod", "uid", "owner_kind", "owner_name", "deployment")


class Oracle:
    """The same content built with prometheus_client's metric families (the slow, trusted path)."""

    def __init__(self, store: Store, result: RoundResult, stats: AggregatorStats, version: str) -> None:
        self.store, self.result, self.stats, self.version = store, result, stats, version

    def collect(self) -> Iterator[Metric]:
        def fam(name: str, kind: str, labels: list[str]) -> GaugeMetricFamily | CounterMetricFamily:
            if kind == "counter":
                return CounterMetricFamily(name, "h", labels=labels)
            return GaugeMetricFamily(name, "h", labels=labels)

        nodes = [n for n in self.store.nodes() if n.status == "up" and n.sample]
        for name, kind, _ in NODE_FAMILIES:
            fs = name.startswith("filesystem_")
            f = fam(f"k8smon_node_{name}", kind, ["node", "mountpoint"] if fs else ["node"])
            for n in nodes:
                assert n.sample is not None
                if name in n.sample.values:
                    f.add_metric([n.name, ROOT_MOUNTPOINT] if fs else [n.name], n.sample.values[name])
            yield f
        pods = self.store.pods()
        for name, kind, _ in POD_FAMILIES:
            f = fam(f"k8smon_pod_{name}", kind, list(POD_LABELS))
            for p in pods:
                if name in p.sample.values:
                    f.add_metric(
                        [p.node, p.namespace, p.pod, p.uid, p.owner_kind, p.owner_name, p.deployment],
                        p.sample.values[name],
                    )
            yield f
        for name, kind, _ in CONTAINER_FAMILIES:
            f = fam(f"k8smon_container_{name}", kind, list(CONTAINER_LABELS))
            for p in pods:
                for c in p.containers:
                    if name in c.values:
                        f.add_metric([p.node, p.namespace, p.pod, p.uid, c.name], c.values[name])
            yield f
        for kind_name, deps in (("namespace", False), ("deployment", True)):
            groups = self.store.groups(deployments=deps)
            labels = ["namespace", "deployment"] if deps else ["namespace"]
            for name, key, _ in GROUP_FAMILIES:
                f = fam(f"k8smon_{kind_name}_{name}", "gauge", labels)
                for g in groups:
                    f.add_metric([g.namespace, g.deployment][: len(labels)], g.sample.values[key])
                yield f
            f = fam(f"k8smon_{kind_name}_pods", "gauge", labels)
            for g in groups:
                f.add_metric([g.namespace, g.deployment][: len(labels)], g.pod_count)
            yield f
        up = fam("k8smon_target_up", "gauge", ["target", "node"])
        dur = fam("k8smon_target_scrape_duration_seconds", "gauge", ["target", "node"])
        samples = fam("k8smon_target_samples", "gauge", ["target", "node"])
        for t in self.result.targets:
            up.add_metric([t.target, t.node or ""], 1.0 if t.up else 0.0)
            if t.duration_seconds is not None:
                dur.add_metric([t.target, t.node or ""], t.duration_seconds)
            samples.add_metric([t.target, t.node or ""], t.samples)
        yield from (up, dur, samples)
        snap = self.stats.snapshot()
        yield GaugeMetricFamily(
            "k8smon_aggregator_round_duration_seconds", "h", value=self.result.duration_seconds
        )
        yield CounterMetricFamily("k8smon_aggregator_rounds", "h", value=1)
        yield CounterMetricFamily(
            "k8smon_aggregator_samples_ingested", "h", value=snap["counters"].get("samples_ingested", 0)
        )
        series = GaugeMetricFamily("k8smon_aggregator_series", "h", labels=["kind"])
        for k, v in sorted(self.store.series_counts().items()):
            series.add_metric([k], v)
        yield series
        n_up = sum(1 for t in self.result.targets if t.up)
        targets = GaugeMetricFamily("k8smon_aggregator_targets", "h", labels=["state"])
        targets.add_metric(["up"], n_up)
        targets.add_metric(["down"], len(self.result.targets) - n_up)
        yield targets
        errors = CounterMetricFamily("k8smon_aggregator_errors", "h", labels=["source"])
        for s, v in sorted(snap["errors"].items()):
            errors.add_metric([s], v)
        yield errors
        info = GaugeMetricFamily("k8smon_aggregator_build_info", "h", labels=["version"])
        info.add_metric([self.version], 1)
        yield info


def parsed(text: str) -> dict[str, tuple[str, set[tuple[str, tuple[tuple[str, str], ...], float]]]]:
    """Families by name → (type, set of samples), ignoring HELP text and order; empty families dropped."""
    out = {}
    for f in text_string_to_metric_families(text):
        samples = {(s.name, tuple(sorted(s.labels.items())), s.value) for s in f.samples}
        if samples:
            out[f.name] = (f.type, samples)
    return out


HOSTILE = 'we"ird\\node\nname-ü'


def containers(p: int, *, hostile: bool) -> tuple[ContainerReading, ...]:
    """Two containers for every third pod (one without limits), none for the others."""
    if p % 3:
        return ()
    return (
        ContainerReading("app", {"cpu_usage_cores": 0.001 * p, "cpu_seconds_total": 5.0 * p,
                                 "memory_working_set_bytes": 5e5 * p, "cpu_request_cores": 0.05,
                                 "cpu_limit_cores": 0.1, "memory_request_bytes": 2.0**20,
                                 "memory_limit_bytes": 2.0**29}),
        ContainerReading(HOSTILE if hostile else "sidecar", {"cpu_usage_cores": 0.0, "cpu_seconds_total": 1.5,
                                                             "memory_working_set_bytes": 4096.0}),
    )


def build(
    nodes: int, pods_per_node: int, *, hostile: bool = False
) -> tuple[Store, RoundResult, AggregatorStats]:
    clock = Clock()
    stats = AggregatorStats()
    store = Store(clock=clock, stats=stats)
    targets = []
    for n in range(nodes):
        name = HOSTILE if hostile and n == 0 else f"node-{n}"
        pods = tuple(
            PodReading(
                f"ns-{p % 7}",
                f"pod-{n}-{p}",
                f"uid-{n}-{p}",
                "Deployment" if p % 2 else "",
                f"dep-{p % 3}" if p % 2 else "",
                f"dep-{p % 3}" if p % 2 else "",
                {
                    "cpu_usage_cores": 0.001 * p,
                    "cpu_seconds_total": 10.0 * p + n,
                    "memory_working_set_bytes": 1e6 * p,
                    "memory_usage_bytes": 2e6 * p,
                    "disk_read_bytes_total": 4096.0 * p,
                    "disk_written_bytes_total": 1.5,
                    "network_receive_bytes_total": 1e12 + p,
                    "network_transmit_bytes_total": 3.0,
                    "host_network": 0.0,
                    "cpu_request_cores": 0.1,
                    "memory_limit_bytes": 2.0**30,
                },
                containers(p, hostile=hostile and n == 0),
            )
            for p in range(pods_per_node)
        )
        store.ingest(
            NodeReading(
                name,
                clock.now,
                {
                    "cpu_usage_cores": 1.25,
                    "cpu_capacity_cores": 8.0,
                    "cpu_seconds_total": 12345.678,
                    "memory_used_bytes": 3e9,
                    "memory_available_bytes": 5e9,
                    "memory_total_bytes": 8e9,
                    "disk_read_bytes_total": 1e9,
                    "disk_written_bytes_total": 2e9,
                    "network_receive_bytes_total": 7e9,
                    "network_transmit_bytes_total": 6e9,
                    "filesystem_size_bytes": 1e11,
                    "filesystem_avail_bytes": 5e10,
                },
                pods,
            )
        )
        targets.append(
            TargetStatus(
                f"127.0.{n // 250}.{n % 250 + 2}:9100",
                name,
                n % 5 != 4,
                duration_seconds=0.01 if n % 5 != 4 else None,
                samples=13 * pods_per_node,
            )
        )
    stats.error("scrape", 2)
    result = RoundResult(1, clock.now, 0.5, tuple(targets))
    store.end_round(result)
    return store, result, stats


def test_reads_back_exactly_like_prometheus_client_rendering() -> None:
    store, result, stats = build(5, 12, hostile=True)
    cache = FederationCache(store=store, stats=stats, version='1.0-"rc"')
    cache.round_done(result)
    mine = parsed(cache.body().decode())
    oracle_registry = CollectorRegistry(auto_describe=False)
    oracle_registry.register(Oracle(store, result, stats, '1.0-"rc"'))  # type: ignore[arg-type]
    theirs = parsed(generate_latest(oracle_registry).decode())
    assert mine.keys() == theirs.keys()
    for name in theirs:
        assert mine[name] == theirs[name], name
    assert any(HOSTILE in dict(s[1]).get("node", "") for s in mine["k8smon_node_cpu_usage_cores"][1])
    assert len(mine["k8smon_pod_cpu_usage_cores"][1]) == 60
    assert len(mine["k8smon_container_cpu_usage_cores"][1]) == 5 * 4 * 2  # pods 0, 3, 6, 9 of each node
    assert any(dict(s[1])["container"] == HOSTILE for s in mine["k8smon_container_cpu_seconds"][1])


def test_promtool_check_metrics_passes(tmp_path: object) -> None:
    promtool = require_tool("promtool")
    store, result, stats = build(3, 10, hostile=True)
    cache = FederationCache(store=store, stats=stats, version="0.1.0")
    cache.round_done(result)
    proc = subprocess.run(
        [promtool, "check", "metrics"], check=False, input=cache.body(), capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_body_before_first_round_and_after_a_round() -> None:
    store = Store(clock=Clock())
    cache = FederationCache(store=store, stats=AggregatorStats(), version="0.1.0")
    assert b'k8smon_aggregator_build_info{version="0.1.0"} 1.0' in cache.body()
    assert b"k8smon_aggregator_rounds_total 0.0" in cache.body()
    store.ingest(NodeReading("n1", 10.0, {"cpu_usage_cores": 2.0}))
    store.mark_down("n2", reason="x", when=10.0)
    cache.round_done(RoundResult(1, 10.0, 0.1, (TargetStatus("h:1", "n2", False, "x"),)))
    body = cache.body().decode()
    assert 'k8smon_node_cpu_usage_cores{node="n1"} 2.0' in body
    assert 'node="n2"}' not in body.split("k8smon_target_up")[0]  # a down node's stale values are not served
    assert 'k8smon_target_up{target="h:1",node="n2"} 0.0' in body
    assert "k8smon_aggregator_rounds_total 1.0" in body


@pytest.mark.parametrize("per", [1, 2, 3, 4096])
@pytest.mark.parametrize("count", [0, 1, 2, 3, 7, 4097])
def test_encode_by_slices_equals_joining_then_encoding(per: int, count: int) -> None:
    lines = [f'k8smon_pod_x{{pod="p-{i}-é☃"}} {i}.5\n' if i % 3 else "# HELP x y\n" for i in range(count)]
    assert encode(lines, per) == "".join(lines).encode("utf-8")


def test_render_30k_pods_timing() -> None:
    """Measures the per-round render for 1000 nodes x 30 pods (figure reported; not a timed assertion)."""
    store, result, stats = build(1000, 30)
    cache = FederationCache(store=store, stats=stats, version="0.1.0")
    t0 = time.perf_counter()
    cache.round_done(result)
    t1 = time.perf_counter()
    body = cache.body()
    mine = time.perf_counter() - t1
    lines = body.count(b"\n")
    print(
        f"\nfederation: end of round {t1 - t0:.3f} s; render on the first scrape: {lines} lines, "
        f"{len(body) / 2**20:.1f} MiB in {mine:.2f} s "
        "(prometheus_client's generate_latest on the same families measured 7.9 s)"
    )
    assert lines > 30000 * 11
