"""The golden exposition (written by the exporter's tests) → one NodeReading with every family mapped."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.parser import FastParser, Sample
from aggregator.readings import ReadingError, to_reading
from tests.aggregator_fakes import render_exposition

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "exporter_golden.prom"


def golden() -> list[Sample]:
    return FastParser().parse(GOLDEN.read_text(encoding="utf-8"))


def test_golden_exposition_becomes_a_node_reading() -> None:
    conversion = to_reading(golden())
    r = conversion.reading
    assert r.node == "worker-1"
    assert r.timestamp == 1_764_100_005.0
    assert r.source == "scrape"
    assert r.values["cpu_usage_cores"] == 0.6
    assert r.values["cpu_capacity_cores"] == 4.0
    assert r.values["cpu_seconds_total"] == 1003.0
    assert r.values["memory_total_bytes"] == 17_179_869_184
    assert r.values["network_transmit_bytes_total"] == 2.5e6
    # One mountpoint (an unusual --rootfs path with escapes): it stands for the root filesystem.
    assert r.values["filesystem_size_bytes"] == 1.073741824e11
    assert r.values["filesystem_avail_bytes"] == 4.294967296e10
    pods = {(p.namespace, p.pod): p for p in r.pods}
    assert len(pods) == 5
    web = pods[("shop", "web-7d9f8b6c5d-x2x7q")]
    assert (web.deployment, web.owner_kind, web.owner_name) == ("web", "Deployment", "web")
    assert web.uid == "0b6e3f4c-1d2a-4e5f-8a9b-000000000001"
    assert web.values["cpu_usage_cores"] == 0.25
    assert web.values["memory_working_set_bytes"] == 2.097152e8
    assert web.values["cpu_limit_cores"] == 0.5
    db = pods[("shop", "db-0")]
    assert "cpu_limit_cores" not in db.values and db.deployment == ""
    unnamed = pods[("", "0b6e3f4c-1d2a-4e5f-8a9b-000000000004")]
    assert unnamed.uid == unnamed.pod
    host_net = pods[("monitoring", "node-agent-5xkqp")]
    assert host_net.values["host_network"] == 1.0
    assert "network_receive_bytes_total" not in host_net.values
    assert conversion.dropped == 0


def test_fake_exporter_expositions_have_the_golden_families() -> None:
    fake = FastParser().parse(render_exposition("n", pods=2, seq=1, timestamp=1.0).decode())
    golden_names = {s.name for s in golden() if s.name.startswith(("k8smon_node_", "k8smon_pod_"))}
    assert golden_names <= {s.name for s in fake}


def test_root_mountpoint_wins_and_non_finite_values_are_dropped() -> None:
    samples = [
        Sample("k8smon_exporter_sample_timestamp_seconds", {"node": "n"}, 10.0, None),
        Sample("k8smon_node_filesystem_size_bytes", {"node": "n", "mountpoint": "/data"}, 1.0, None),
        Sample("k8smon_node_filesystem_size_bytes", {"node": "n", "mountpoint": "/"}, 2.0, None),
        Sample("k8smon_node_cpu_usage_cores", {"node": "n"}, float("nan"), None),
        Sample("k8smon_pod_cpu_usage_cores", {"node": "n", "namespace": "a", "pod": "p", "uid": "u"},
               float("inf"), None),
        Sample("unrelated_metric", {}, 1.0, None),
    ]
    conversion = to_reading(samples)
    assert conversion.reading.values == {"filesystem_size_bytes": 2.0}
    assert conversion.dropped == 2
    assert conversion.samples == 6


def test_node_name_falls_back_to_discovery() -> None:
    samples = [Sample("k8smon_exporter_sample_timestamp_seconds", {}, 10.0, None)]
    assert to_reading(samples, node_hint="from-discovery").reading.node == "from-discovery"
    with pytest.raises(ReadingError, match="no node"):
        to_reading(samples)


def test_no_snapshot_yet_is_an_error() -> None:
    with pytest.raises(ReadingError, match="no k8smon_exporter_sample_timestamp_seconds"):
        to_reading([Sample("k8smon_exporter_build_info", {"version": "1"}, 1.0, None)])


def test_golden_containers_join_their_pods() -> None:
    conversion = to_reading(golden())
    pods = {(p.namespace, p.pod): p for p in conversion.reading.pods}
    web = pods[("shop", "web-7d9f8b6c5d-x2x7q")]
    assert [c.name for c in web.containers] == ["proxy", "web"]  # the sandbox is not in the exposition
    assert web.containers[1].values == {
        "cpu_usage_cores": 0.2, "cpu_seconds_total": 9.0, "memory_working_set_bytes": 1.572864e8,
        "cpu_request_cores": 0.2, "cpu_limit_cores": 0.4, "memory_request_bytes": 1.00663296e8,
        "memory_limit_bytes": 2.01326592e8,
    }
    assert [c.name for c in pods[("shop", "db-0")].containers] == ["db"]
    unnamed = pods[("", "0b6e3f4c-1d2a-4e5f-8a9b-000000000004")]
    (short,) = unnamed.containers
    assert short.name == "c1c1c1c1c1c1" and "cpu_request_cores" not in short.values
    assert pods[("monitoring", "node-agent-5xkqp")].containers == ()
    assert conversion.dropped == 0


def test_containers_of_missing_or_rejected_pods_are_dropped() -> None:
    labels = {"node": "n", "namespace": "a", "pod": "p", "uid": "u"}
    samples = [
        Sample("k8smon_exporter_sample_timestamp_seconds", {"node": "n"}, 10.0, None),
        Sample("k8smon_pod_cpu_usage_cores", labels, 0.5, None),
        Sample("k8smon_container_cpu_usage_cores", {**labels, "container": "app"}, 0.25, None),
        Sample("k8smon_container_cpu_usage_cores", {**labels, "container": "x" * 300}, 0.25, None),
        Sample("k8smon_container_cpu_usage_cores", {**labels, "container": ""}, 0.25, None),
        Sample("k8smon_container_cpu_usage_cores", {**labels, "pod": "gone", "container": "app"}, 0.1, None),
    ]
    conversion = to_reading(samples, max_label_length=128)
    (pod,) = conversion.reading.pods
    assert [(c.name, c.values) for c in pod.containers] == [("app", {"cpu_usage_cores": 0.25})]
    assert conversion.dropped == 3  # too long a name, no name, a pod with no pod samples
