"""The federated /metrics text, byte for byte, for a small store that has one of everything.

tests/test_federation.py proves the text parses back like prometheus_client's own rendering (values,
types, labels); this pins the rest a Prometheus user sees: HELP text, family order, what a down node,
a target without a node, an empty or hostile label value and the optional state-file families look
like. The expected text is tests/fixtures/federation_golden.prom; after an intended change, rewrite it
with `K8SMON_UPDATE_GOLDEN=1 pytest tests/test_federation_values.py` and review the diff.
"""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path

import pytest

from aggregator import federation
from aggregator.federation import FederationCache
from aggregator.model import NodeReading, PodReading, RoundResult, TargetStatus
from aggregator.stats import AggregatorStats
from aggregator.store.store import Store
from tests.test_store import Clock

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "federation_golden.prom"
NODE_VALUES = {
    "cpu_usage_cores": 1.25,
    "cpu_capacity_cores": 8.0,
    "cpu_seconds_total": 12345.5,
    "memory_used_bytes": 3e9,
    "memory_available_bytes": 5e9,
    "memory_total_bytes": 8e9,
    "disk_read_bytes_total": 1e9,
    "disk_written_bytes_total": 2e9,
    "network_receive_bytes_total": 7e9,
    "network_transmit_bytes_total": 6e9,
    "filesystem_size_bytes": 1e11,
    "filesystem_avail_bytes": 5e10,
}


def world(*, with_snapshots: bool = True) -> tuple[Store, RoundResult, AggregatorStats]:
    clock = Clock(1_700_000_000.0)
    stats = AggregatorStats()
    store = Store(clock=clock, stats=stats)
    web = PodReading("shop", "web-1", "uid-web-1", "ReplicaSet", "web-5d4", "web", {
        "cpu_usage_cores": 0.25, "cpu_seconds_total": 30.0, "memory_working_set_bytes": 2e8,
        "memory_usage_bytes": 3e8, "disk_read_bytes_total": 4096.0, "disk_written_bytes_total": 8192.0,
        "network_receive_bytes_total": 1000.0, "network_transmit_bytes_total": 2000.0, "host_network": 0.0,
        "cpu_request_cores": 0.1, "cpu_limit_cores": 0.5, "memory_request_bytes": 1.5e8,
        "memory_limit_bytes": 2.5e8,
    })
    # One special character each: the escaping must catch every one of them on its own.
    odd = [
        PodReading("odd", "back\\slash", "uid-b", "", "", "", {"cpu_usage_cores": 0.5}),
        PodReading("odd", 'quo"te', "uid-q", "", "", "", {"cpu_usage_cores": 0.75}),
        PodReading("odd", "new\nline", "uid-n", "", "", "", {"memory_working_set_bytes": 1.0}),
    ]
    db = PodReading("shop", "db-0", "uid-db", "StatefulSet", "db", "", {
        "cpu_usage_cores": 1.0, "memory_working_set_bytes": 1e9, "host_network": 1.0,
    })
    store.ingest(NodeReading("n1", clock.now, NODE_VALUES, (web, db, *odd)))
    # n2 was up, then went down: its last values are kept for the API but never federated.
    store.ingest(NodeReading("n2", clock.now, {"cpu_usage_cores": 9.0}, ()))
    store.mark_down("n2", reason="connection refused", when=clock.now)
    stats.error("scrape", 2)
    stats.error('par"se', 1)
    stats.incr("samples_ingested", 42)
    if with_snapshots:
        stats.set("snapshot_duration_seconds", 0.25)  # the other two gauges not set yet: 0
        stats.incr("snapshots", 3)
    result = RoundResult(7, clock.now, 0.5, (
        TargetStatus("127.0.0.2:9100", "n1", True, duration_seconds=0.125, samples=120),
        TargetStatus("127.0.0.3:9100", None, False, "connection refused"),
    ))
    store.end_round(result)
    return store, result, stats


def rendered(*, with_snapshots: bool = True, rounds: int = 1) -> str:
    store, result, stats = world(with_snapshots=with_snapshots)
    cache = FederationCache(store=store, stats=stats, version='1.2.3-"rc"')
    for _ in range(rounds):
        cache.round_done(result)
    return cache.body().decode("utf-8")


def test_exposition_matches_the_golden_text() -> None:
    text = rendered()
    if os.environ.get("K8SMON_UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")


def test_state_file_families_only_with_a_state_file() -> None:
    without = rendered(with_snapshots=False)
    assert "k8smon_aggregator_snapshot" not in without
    assert without.count("\n") == rendered().count("\n") - 4 * 3  # four families, three lines each


def test_rounds_count_rounds_not_renders() -> None:
    assert "\nk8smon_aggregator_rounds_total 3.0\n" in rendered(rounds=3)
    store, result, stats = world()
    cache = FederationCache(store=store, stats=stats, version="v")
    assert "\nk8smon_aggregator_rounds_total 0.0\n" in cache.body().decode()  # a render before any round
    cache.round_done(result)
    assert "\nk8smon_aggregator_rounds_total 1.0\n" in cache.body().decode()
    assert "\nk8smon_aggregator_rounds_total 1.0\n" in cache.body().decode()  # a second scrape is no round


def test_gzip_body_is_the_body_compressed_once_per_round() -> None:
    store, result, stats = world()
    cache = FederationCache(store=store, stats=stats, version="v")
    packed = cache.body_gzip()  # before any round: rendered on demand
    assert gzip.decompress(packed) == cache.body()
    assert cache.body_gzip() is cache.body_gzip()  # compressed once, then served from the cache
    cache.round_done(result)
    assert gzip.decompress(cache.body_gzip()) == cache.body()
    assert b"k8smon_aggregator_rounds_total 1.0" in gzip.decompress(cache.body_gzip())


def test_escape() -> None:
    assert federation.escape("plain") == "plain"
    assert federation.escape("a\\b") == "a\\\\b"
    assert federation.escape('a"b') == 'a\\"b'
    assert federation.escape("a\nb") == "a\\nb"
    assert federation.escape('\\"\n') == '\\\\\\"\\n'


def test_pod_labels_need_every_label() -> None:
    identity = ("n1", "ns", "p", "u", "ReplicaSet", "web-5d4", "web")
    assert federation.pod_labels(identity) == (
        'node="n1",namespace="ns",pod="p",uid="u",owner_kind="ReplicaSet",owner_name="web-5d4",'
        'deployment="web"'
    )
    with pytest.raises(ValueError, match="zip"):  # one missing would shift every label after it
        federation.pod_labels(identity[:-1])


def test_pod_lines_need_one_values_row_per_pod() -> None:
    with pytest.raises(ValueError, match="zip"):
        federation._pod_lines([], ['node="n1"} ', 'node="n2"} '], [{"cpu_usage_cores": 1.0}])


WEB = PodReading("shop", "web-1", "uid-web-1", "ReplicaSet", "web-5d4", "web", {"cpu_usage_cores": 0.25})


# Each change alone, and each to a value another label held before: a cache that compared the wrong
# field, or needed two fields to change, would serve the old labels.
@pytest.mark.parametrize(
    ("node", "changed"),
    [
        ("uid-web-1", WEB),  # moved to a node named like its old uid
        ("n1", PodReading("shop", "web-1", "ReplicaSet", "ReplicaSet", "web-5d4", "web", WEB.values)),
        ("n1", PodReading("shop", "web-1", "uid-web-1", "web-5d4", "web-5d4", "web", WEB.values)),
        ("n1", PodReading("shop", "web-1", "uid-web-1", "ReplicaSet", "web", "web", WEB.values)),
        ("n1", PodReading("shop", "web-1", "uid-web-1", "ReplicaSet", "web-5d4", "web-2", WEB.values)),
    ],
    ids=["node", "uid", "owner_kind", "owner_name", "deployment"],
)
def test_label_cache_serves_a_changed_pod_with_its_new_labels(node: str, changed: PodReading) -> None:
    clock = Clock(1_700_000_000.0)
    stats = AggregatorStats()
    store = Store(clock=clock, stats=stats)
    store.ingest(NodeReading("n1", clock.now, {"cpu_usage_cores": 1.0}, (WEB,)))
    cache = FederationCache(store=store, stats=stats, version="v")
    cache.round_done(RoundResult(1, clock.now, 0.1, ()))
    assert 'pod="web-1",uid="uid-web-1",owner_kind="ReplicaSet",owner_name="web-5d4",deployment="web"}' in (
        cache.body().decode())
    clock.now += 5.0
    store.ingest(NodeReading(node, clock.now, {"cpu_usage_cores": 1.0}, (changed,)))
    if node != "n1":
        store.ingest(NodeReading("n1", clock.now, {"cpu_usage_cores": 1.0}, ()))
    result = RoundResult(2, clock.now, 0.1, ())
    cache.round_done(result)
    fresh = FederationCache(store=store, stats=stats, version="v")  # no labels remembered
    fresh.round_done(result)
    want = (f'k8smon_pod_cpu_usage_cores{{node="{node}",namespace="shop",pod="web-1",uid="{changed.uid}",'
            f'owner_kind="{changed.owner_kind}",owner_name="{changed.owner_name}",'
            f'deployment="{changed.deployment}"}} 0.25\n')
    assert want in fresh.body().decode()
    pod_lines = [ln for ln in cache.body().decode().splitlines() if ln.startswith("k8smon_pod_")]
    assert pod_lines == [ln for ln in fresh.body().decode().splitlines() if ln.startswith("k8smon_pod_")]


def test_self_metrics_of_an_empty_aggregator_are_zero_not_absent() -> None:
    stats = AggregatorStats()
    stats.set("snapshot_duration_seconds", 0.5)  # a state file, but no snapshot counted yet
    cache = FederationCache(store=Store(clock=Clock()), stats=stats, version="v")
    body = cache.body().decode()
    for line in ("k8smon_aggregator_samples_ingested_total 0.0", "k8smon_aggregator_snapshots_total 0.0",
                 "k8smon_aggregator_snapshot_bytes 0.0", "k8smon_aggregator_rounds_total 0.0",
                 'k8smon_aggregator_targets{state="up"} 0.0', 'k8smon_aggregator_targets{state="down"} 0.0'):
        assert f"\n{line}\n" in body, line


def test_a_round_is_rendered_on_its_first_scrape_with_the_values_of_its_end() -> None:
    store, result, stats = world()
    cache = FederationCache(store=store, stats=stats, version='1.2.3-"rc"')
    cache.round_done(result)
    assert "federation_seconds" not in stats.snapshot()["gauges"]  # nobody scraped: nothing rendered
    # Written after the round ended: the text stays the round's (its roll-ups are that round's sums).
    store.ingest(NodeReading("n1", 1_700_000_001.0, {**NODE_VALUES, "cpu_usage_cores": 7.0}, ()))
    store.ingest(NodeReading("n3", 1_700_000_001.0, NODE_VALUES, ()))
    t0 = time.perf_counter()
    text = cache.body().decode("utf-8")
    took = time.perf_counter() - t0
    assert 0 < stats.snapshot()["gauges"]["federation_seconds"] <= took  # the render's own time
    assert text == GOLDEN.read_text(encoding="utf-8")
    assert cache.body() is cache.body()  # rendered once per round
    cache.round_done(RoundResult(8, 1_700_000_001.0, 0.5, ()))
    text = cache.body().decode("utf-8")
    assert 'k8smon_node_cpu_usage_cores{node="n1"} 7.0\n' in text
    assert 'k8smon_node_cpu_usage_cores{node="n3"} 1.25\n' in text
