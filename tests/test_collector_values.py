"""The exporter's collector, one missing figure at a time: a failed read drops its own families only,
the host-network flag from either source, the connection gauge, the build version."""

from __future__ import annotations

import dataclasses
from importlib import metadata

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter import collector
from exporter.collector import SnapshotCollector
from exporter.model import DiskCounters
from exporter.snapshot import PodMeta, PodSample, Snapshot
from tests.exporter_fakes import host_sample, pod_usage

UID = "aaaaaaaa-0000-0000-0000-000000000001"


def snapshot(**changes: object) -> Snapshot:
    base = Snapshot(node="n1", timestamp=1_700_000_000.0, duration_seconds=0.5, cpu_seconds=0.25, sequence=3,
                    host=host_sample(), host_cpu_usage_cores=1.5,
                    pods=(PodSample(usage=pod_usage(UID), cpu_usage_cores=0.5, meta=None),))
    return dataclasses.replace(base, **changes)


def values(snap: Snapshot | None, *, version: str | None = "1.0") -> dict[str, list[float]]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snap, version=version))
    return {f.name: [s.value for s in f.samples]
            for f in text_string_to_metric_families(generate_latest(registry).decode())}


def test_without_network_the_host_network_families_are_dropped_and_nothing_else() -> None:
    got = values(snapshot(host=dataclasses.replace(host_sample(), network=None)))
    assert "k8smon_node_network_receive_bytes" not in got  # a node family without a value is left out
    assert "k8smon_node_network_transmit_bytes" not in got
    assert got["k8smon_node_disk_read_bytes"] == [123_456_768.0]
    assert got["k8smon_node_memory_used_bytes"] == [6 * 2**30]


@pytest.mark.parametrize(("total", "avail"), [(None, 10 * 2**30), (16 * 2**30, None)])
def test_memory_used_needs_both_total_and_available(total: int | None, avail: int | None) -> None:
    got = values(snapshot(host=dataclasses.replace(host_sample(), memory_total_bytes=total,
                                                   memory_available_bytes=avail)))
    assert "k8smon_node_memory_used_bytes" not in got
    assert got.get("k8smon_node_memory_total_bytes") == (None if total is None else [total])
    assert got.get("k8smon_node_memory_available_bytes") == (None if avail is None else [avail])


def test_a_pod_without_disk_figures_keeps_its_other_families() -> None:
    pod = PodSample(usage=dataclasses.replace(pod_usage(UID), disk=None), cpu_usage_cores=0.5, meta=None)
    got = values(snapshot(pods=(pod,)))
    assert got["k8smon_pod_disk_read_bytes"] == [] and got["k8smon_pod_disk_written_bytes"] == []
    assert got["k8smon_pod_network_receive_bytes"] == [1000.0]
    assert got["k8smon_pod_cpu_usage_cores"] == [0.5]


def test_pod_disk_figures() -> None:
    usage = dataclasses.replace(pod_usage(UID), disk=DiskCounters(read_bytes=7, written_bytes=9))
    got = values(snapshot(pods=(PodSample(usage=usage, cpu_usage_cores=None, meta=None),)))
    assert (got["k8smon_pod_disk_read_bytes"], got["k8smon_pod_disk_written_bytes"]) == ([7.0], [9.0])
    assert got["k8smon_pod_cpu_usage_cores"] == []  # no rate yet: absent, not 0


@pytest.mark.parametrize(
    ("from_usage", "from_spec", "expected"),
    [(False, False, 0.0), (True, False, 1.0), (False, True, 1.0), (True, True, 1.0)],
)
def test_host_network_from_the_namespace_or_the_pod_spec(from_usage: bool, from_spec: bool,
                                                         expected: float) -> None:
    usage = dataclasses.replace(pod_usage(UID), host_network=from_usage)
    meta = PodMeta(uid=UID, namespace="ns", name="p", host_network=from_spec)
    got = values(snapshot(pods=(PodSample(usage=usage, cpu_usage_cores=None, meta=meta),)))
    assert got["k8smon_pod_host_network"] == [expected]


@pytest.mark.parametrize(("connected", "expected"), [(True, 1.0), (False, 0.0)])
def test_kube_connected_gauge(connected: bool, expected: float) -> None:
    assert values(snapshot(kube_connected=connected))["k8smon_exporter_kube_connected"] == [expected]


def test_build_info_carries_the_installed_version_by_default() -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: None))
    families = list(text_string_to_metric_families(generate_latest(registry).decode()))
    assert families[0].samples[0].labels == {"version": metadata.version("k8s-monitor")}
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: None, version="given"))
    families = list(text_string_to_metric_families(generate_latest(registry).decode()))
    assert families[0].samples[0].labels == {"version": "given"}


def test_package_version_without_an_installed_package(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def version(name: str) -> str:
        asked.append(name)
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(collector.metadata, "version", version)
    assert collector.package_version() == "unknown"
    assert asked == ["k8s-monitor"]
