"""Collector: families and labels as docs/metrics.md names them; golden exposition for the aggregator."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.collector import POD_LABELS, SnapshotCollector
from exporter.sampler import CountingErrors, Sampler
from exporter.snapshot import Snapshot
from tests.exporter_fakes import (
    CID_DB,
    CID_PROXY,
    CID_UNNAMED,
    CID_WEB,
    GOLDEN_META,
    UID_BARE,
    UID_DEPLOY,
    UID_HOSTNET,
    UID_STATEFUL,
    UID_UNNAMED,
    FakeCgroups,
    FakeClock,
    FakeHost,
    FakeLookup,
    FakePodStats,
    golden_containers,
    golden_usages,
    host_sample,
)

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "fixtures" / "exporter_golden.prom"
DOCS = ROOT / "docs" / "metrics.md"


def golden_snapshot() -> Snapshot:
    """Two deterministic cycles over fake readers: every family, every kind of pod, escaped labels."""
    errors = CountingErrors()
    stats = FakePodStats(errors, golden_usages())
    host = FakeHost(host_sample(busy=1000.0, total=4000.0, cpus=4))
    wall, mono, cpu = FakeClock(1_764_100_000.0), FakeClock(500.0), FakeClock(12.0)
    containers = golden_containers()
    sampler = Sampler(node="worker-1", host_reader=host, cgroup_finder=FakeCgroups(stats), pod_reader=stats,
                      errors=errors, pods=FakeLookup(GOLDEN_META), exclude_namespaces=("kube-system",),
                      interval=5.0, now=wall, monotonic=mono, cpu_clock=cpu, container_reader=containers)
    sampler.cycle()
    host.sample = host_sample(busy=1003.0, total=4020.0, cpus=4)
    for uid, seconds in ((UID_DEPLOY, 11.25), (UID_STATEFUL, 22.5), (UID_BARE, 1.0), (UID_UNNAMED, 2.25),
                         (UID_HOSTNET, 3.5)):
        stats.set_cpu(uid, seconds)
    for uid, cid, seconds in ((UID_DEPLOY, CID_WEB, 9.0), (UID_DEPLOY, CID_PROXY, 1.75),
                              (UID_STATEFUL, CID_DB, 21.5), (UID_UNNAMED, CID_UNNAMED, 2.25)):
        containers.set_cpu(uid, cid, seconds)
    errors.record("netns", "pod process exited before its net/dev was read")
    errors.record("cgroup", "memory.stat vanished")
    errors.record("cgroup", "io.stat vanished")
    wall.advance(5.0)
    mono.advance(5.0)
    snapshot = sampler.cycle()
    return dataclasses.replace(snapshot, duration_seconds=0.0125, cpu_seconds=0.008, kube_connected=True)


def render(snapshot: Snapshot | None) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snapshot, version="0.1.0"))
    return generate_latest(registry)


def parse(text: bytes) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text.decode())}


def documented_families() -> dict[str, str]:
    """`name -> type` from the exporter tables of docs/metrics.md (the contract)."""
    doc = DOCS.read_text(encoding="utf-8").split("## Aggregator federated")[0]
    return dict(re.findall(r"^\| `(k8smon_[a-z_]+)` \| (gauge|counter) \|", doc, re.M))


def test_every_documented_family_is_exposed_with_its_type() -> None:
    families = parse(render(golden_snapshot()))
    documented = documented_families()
    assert len(documented) > 30
    exposed = {}
    for name, family in families.items():
        full = name + "_total" if family.type == "counter" else name
        exposed[full] = family.type
    assert exposed == documented


def test_pod_labels_for_named_unnamed_and_owned_pods() -> None:
    families = parse(render(golden_snapshot()))
    labels = {s.labels["uid"]: s.labels for s in families["k8smon_pod_memory_working_set_bytes"].samples}
    # the kube-system pod is excluded
    assert set(labels) == {UID_DEPLOY, UID_STATEFUL, UID_BARE, UID_UNNAMED, UID_HOSTNET}
    for value in labels.values():
        assert set(value) == set(POD_LABELS)
    assert labels[UID_DEPLOY] == {"node": "worker-1", "namespace": "shop", "pod": "web-7d9f8b6c5d-x2x7q",
                                  "uid": UID_DEPLOY, "owner_kind": "Deployment", "owner_name": "web",
                                  "deployment": "web"}
    assert labels[UID_STATEFUL]["owner_kind"] == "StatefulSet" and labels[UID_STATEFUL]["deployment"] == ""
    assert labels[UID_BARE]["owner_kind"] == "" and labels[UID_BARE]["pod"] == "debug-shell"
    assert labels[UID_UNNAMED] == {"node": "worker-1", "namespace": "", "pod": UID_UNNAMED,
                                   "uid": UID_UNNAMED, "owner_kind": "", "owner_name": "", "deployment": ""}


def test_values_rates_and_optional_families() -> None:
    families = parse(render(golden_snapshot()))

    def value(family: str, uid: str) -> float | None:
        for s in families[family].samples:
            if s.labels.get("uid") == uid:
                return s.value
        return None

    assert value("k8smon_pod_cpu_usage_cores", UID_DEPLOY) == pytest.approx(0.25)
    assert value("k8smon_pod_cpu_usage_cores", UID_STATEFUL) == pytest.approx(0.5)
    assert value("k8smon_pod_cpu_seconds", UID_STATEFUL) == 22.5
    assert value("k8smon_pod_host_network", UID_HOSTNET) == 1
    assert value("k8smon_pod_host_network", UID_DEPLOY) == 0
    assert value("k8smon_pod_network_receive_bytes", UID_HOSTNET) is None  # not double counted
    assert value("k8smon_pod_cpu_limit_cores", UID_STATEFUL) is None  # unlimited
    assert value("k8smon_pod_cpu_request_cores", UID_UNNAMED) is None  # unknown
    assert value("k8smon_pod_memory_limit_bytes", UID_DEPLOY) == 256 * 2**20
    node = {name: f.samples[0].value for name, f in families.items() if name.startswith("k8smon_node_")}
    assert node["k8smon_node_cpu_usage_cores"] == pytest.approx(3 / 20 * 4)
    assert node["k8smon_node_memory_used_bytes"] == 6 * 2**30
    errors = {s.labels["source"]: s.value for s in families["k8smon_exporter_errors"].samples}
    assert errors == {"cgroup": 2, "netns": 1}
    assert families["k8smon_exporter_pods_tracked"].samples[0].value == 5
    assert families["k8smon_exporter_sample_timestamp_seconds"].samples[0].value == 1_764_100_005.0


def test_failed_host_reads_drop_only_their_families() -> None:
    snapshot = dataclasses.replace(
        golden_snapshot(), host=dataclasses.replace(host_sample(), disk=None, filesystem=None, cpu=None),
        host_cpu_usage_cores=None,
    )
    families = parse(render(snapshot))
    assert "k8smon_node_disk_read_bytes" not in families
    assert "k8smon_node_filesystem_size_bytes" not in families
    assert "k8smon_node_cpu_usage_cores" not in families
    assert "k8smon_node_memory_total_bytes" in families
    assert "k8smon_pod_cpu_seconds" in families


def test_before_the_first_snapshot_only_build_info() -> None:
    families = parse(render(None))
    assert list(families) == ["k8smon_exporter_build_info"]
    assert families["k8smon_exporter_build_info"].samples[0].labels == {"version": "0.1.0"}


def test_golden_exposition() -> None:
    text = render(golden_snapshot())
    assert b'mountpoint="/host/root/mnt/\\"data\\" \\\\ disk"' in text  # escapes exercised
    if os.environ.get("K8SMON_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_bytes(text)
    assert GOLDEN.exists(), "golden missing: run with K8SMON_UPDATE_GOLDEN=1 to write it"
    assert text == GOLDEN.read_bytes(), (
        "exposition changed: if intended, regenerate with K8SMON_UPDATE_GOLDEN=1 and tell the aggregator side"
    )


def test_container_families_name_containers_and_skip_the_sandbox() -> None:
    families = parse(render(golden_snapshot()))
    cpu = {(s.labels["uid"], s.labels["container"]): s
           for s in families["k8smon_container_cpu_usage_cores"].samples}
    # the sandbox and the pre-restart db container are not reported; the unnamed pod's container is
    # labelled by its short id; the excluded namespace's pod has none
    assert set(cpu) == {(UID_DEPLOY, "web"), (UID_DEPLOY, "proxy"), (UID_STATEFUL, "db"),
                        (UID_UNNAMED, CID_UNNAMED[:12])}
    assert cpu[(UID_DEPLOY, "web")].labels == {"node": "worker-1", "namespace": "shop",
                                               "pod": "web-7d9f8b6c5d-x2x7q", "uid": UID_DEPLOY,
                                               "container": "web"}
    assert cpu[(UID_UNNAMED, CID_UNNAMED[:12])].labels["pod"] == UID_UNNAMED
    assert cpu[(UID_DEPLOY, "web")].value == pytest.approx(0.2)  # (9.0 - 8.0) / 5 s
    assert cpu[(UID_DEPLOY, "proxy")].value == pytest.approx(0.05)
    assert cpu[(UID_STATEFUL, "db")].value == pytest.approx(0.5)

    def values(family: str) -> dict[str, float]:
        return {s.labels["container"]: s.value for s in families[family].samples}

    assert values("k8smon_container_cpu_seconds")["db"] == 21.5
    assert values("k8smon_container_memory_working_set_bytes")["web"] == 150 * 2**20
    assert values("k8smon_container_cpu_limit_cores") == {"web": 0.4, "proxy": 0.1}  # db unlimited
    assert values("k8smon_container_memory_request_bytes") == {"web": 96 * 2**20, "proxy": 32 * 2**20,
                                                               "db": 2**30}
    assert families["k8smon_exporter_containers_tracked"].samples[0].value == 4


def test_container_metrics_off_leaves_the_families_out() -> None:
    registry = CollectorRegistry(auto_describe=False)
    snapshot = golden_snapshot()
    registry.register(SnapshotCollector(lambda: snapshot, version="0.1.0", containers=False))
    families = parse(generate_latest(registry))
    assert not [name for name in families if name.startswith("k8smon_container_")]
    assert "k8smon_pod_cpu_seconds" in families
