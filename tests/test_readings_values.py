"""Samples → NodeReading, value by value: routing, node name, timestamp, pod keys, limits, counts.

Each test starts with an empty route cache (`readings._ROUTES` is module-wide), so the routing
itself runs in every test and not only in whichever test first met a metric name.
"""

from __future__ import annotations

import math

import pytest

from aggregator import readings
from aggregator.model import ContainerReading
from aggregator.parser import Sample
from aggregator.readings import ReadingError, to_reading

TS = "k8smon_exporter_sample_timestamp_seconds"


@pytest.fixture(autouse=True)
def fresh_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readings, "_ROUTES", {})


def s(name: str, value: float, **labels: str) -> Sample:
    return Sample(name, labels, value, None)


def pod_labels(**extra: str) -> dict[str, str]:
    return {"node": "n1", "namespace": "shop", "pod": "web-1", "uid": "u-1", **extra}


def test_every_kind_of_sample_lands_in_its_place() -> None:
    conversion = to_reading([
        s(TS, 1_700_000_000.0, node="n1"),
        s("k8smon_node_cpu_usage_cores", 1.5, node="n1"),
        s("k8smon_node_memory_used_bytes", 2048.0, node="n1"),
        s("k8smon_node_filesystem_size_bytes", 100.0, node="n1", mountpoint="/"),
        s("k8smon_node_filesystem_avail_bytes", 40.0, node="n1", mountpoint="/"),
        s("k8smon_pod_cpu_usage_cores", 0.25, **pod_labels()),
        s("k8smon_pod_memory_working_set_bytes", 512.0, **pod_labels()),
        s("k8smon_exporter_build_info", 1.0, version="1"),  # not a reading: counted, not kept
        s("process_cpu_seconds_total", 3.0),
    ], source="push")
    r = conversion.reading
    assert (r.node, r.timestamp, r.source) == ("n1", 1_700_000_000.0, "push")
    assert r.values == {
        "cpu_usage_cores": 1.5,
        "memory_used_bytes": 2048.0,
        "filesystem_size_bytes": 100.0,
        "filesystem_avail_bytes": 40.0,
    }
    assert len(r.pods) == 1
    p = r.pods[0]
    assert (p.namespace, p.pod, p.uid) == ("shop", "web-1", "u-1")
    assert p.values == {"cpu_usage_cores": 0.25, "memory_working_set_bytes": 512.0}
    assert (conversion.samples, conversion.dropped, conversion.rejected) == (9, 0, 0)


def test_source_defaults_to_scrape() -> None:
    assert to_reading([s(TS, 5.0, node="n1")]).reading.source == "scrape"


def test_a_node_family_named_like_a_filesystem_only_by_prefix() -> None:
    # Only `filesystem_*` keys are per-mountpoint; everything else under the node prefix is a node value.
    r = to_reading([
        s(TS, 5.0, node="n1"),
        s("k8smon_node_filesystem_size_bytes", 7.0, node="n1", mountpoint="/"),
        s("k8smon_node_network_receive_bytes_total", 9.0, node="n1", mountpoint="/"),
    ]).reading
    assert r.values == {"filesystem_size_bytes": 7.0, "network_receive_bytes_total": 9.0}


def test_pod_and_node_prefixes_are_exact() -> None:
    r = to_reading([
        s(TS, 5.0, node="n1"),
        s("k8smon_nodes_cpu_usage_cores", 1.0, node="n1"),  # not k8smon_node_
        s("k8smon_pods_cpu_usage_cores", 1.0, **pod_labels()),  # not k8smon_pod_
        s("xk8smon_node_cpu_usage_cores", 1.0, node="n1"),
        s(TS + "_extra", 99.0, node="n1"),
    ]).reading
    assert r.values == {} and r.pods == () and r.timestamp == 5.0


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf, -math.inf])
def test_a_timestamp_that_is_not_a_positive_finite_number_is_no_snapshot(bad: float) -> None:
    with pytest.raises(ReadingError, match="no k8smon_exporter_sample_timestamp_seconds sample"):
        to_reading([s(TS, bad, node="n1"), s("k8smon_node_cpu_usage_cores", 1.0, node="n1")])


def test_a_bad_timestamp_does_not_replace_a_good_one_and_is_not_counted_as_dropped() -> None:
    conversion = to_reading([s(TS, 0.5, node="n1"), s(TS, math.nan, node="n1"), s(TS, -3.0, node="n1")])
    assert conversion.reading.timestamp == 0.5  # a tiny but positive timestamp is still one
    assert conversion.dropped == 0


def test_the_node_comes_from_the_timestamp_sample_first() -> None:
    r = to_reading([
        s("k8smon_node_cpu_usage_cores", 1.0, node="from-node-sample"),
        s(TS, 5.0, node="from-timestamp"),
        s("k8smon_node_memory_used_bytes", 1.0, node="later"),
    ]).reading
    assert r.node == "from-timestamp"


def test_a_timestamp_sample_without_a_node_keeps_the_node_seen_before() -> None:
    r = to_reading([s("k8smon_node_cpu_usage_cores", 1.0, node="n1"), s(TS, 5.0, node="")]).reading
    assert r.node == "n1"
    r = to_reading([s("k8smon_node_cpu_usage_cores", 1.0, node="n1"), s(TS, 5.0)]).reading
    assert r.node == "n1"


def test_without_a_timestamp_node_the_first_node_or_pod_sample_names_it() -> None:
    r = to_reading([
        s(TS, 5.0),
        s("k8smon_pod_cpu_usage_cores", 1.0, **pod_labels(node="from-pod")),
        s("k8smon_node_cpu_usage_cores", 1.0, node="second"),
    ]).reading
    assert r.node == "from-pod"
    r = to_reading([s(TS, 5.0), s("k8smon_node_cpu_usage_cores", 1.0, node="n7")], node_hint="hint").reading
    assert r.node == "n7"  # the exposition's own label wins over discovery's name


def test_node_hint_only_when_the_exposition_names_no_node() -> None:
    assert to_reading([s(TS, 5.0)], node_hint="hint").reading.node == "hint"
    with pytest.raises(ReadingError) as raised:
        to_reading([s(TS, 5.0)], node_hint="")
    assert str(raised.value) == "no node label in the exposition and no node name from discovery"


def test_pod_identity_defaults() -> None:
    r = to_reading([
        s(TS, 5.0, node="n1"),
        s("k8smon_pod_cpu_usage_cores", 1.0, node="n1", uid="u-9"),  # unnamed: no namespace, no pod
        s("k8smon_pod_cpu_usage_cores", 2.0, node="n1", namespace="ns", pod="p"),  # no uid
    ]).reading
    pods = {p.uid: p for p in r.pods}
    unnamed = pods["u-9"]
    assert (unnamed.namespace, unnamed.pod) == ("", "u-9")  # the UID stands for the name
    assert (unnamed.owner_kind, unnamed.owner_name, unnamed.deployment) == ("", "", "")
    named = pods[""]
    assert (named.namespace, named.pod, named.values) == ("ns", "p", {"cpu_usage_cores": 2.0})


def test_pod_owner_labels_are_carried() -> None:
    r = to_reading([
        s(TS, 5.0, node="n1"),
        s("k8smon_pod_cpu_usage_cores", 1.0,
          **pod_labels(owner_kind="ReplicaSet", owner_name="web-abc", deployment="web")),
    ]).reading
    p = r.pods[0]
    assert (p.owner_kind, p.owner_name, p.deployment) == ("ReplicaSet", "web-abc", "web")


def test_samples_of_one_pod_are_merged_and_pods_are_kept_apart_by_uid() -> None:
    r = to_reading([
        s(TS, 5.0, node="n1"),
        s("k8smon_pod_cpu_usage_cores", 1.0, **pod_labels()),
        s("k8smon_pod_cpu_usage_cores", 3.0, **pod_labels(uid="u-2")),  # same name, new pod
        s("k8smon_pod_memory_usage_bytes", 10.0, **pod_labels()),
    ]).reading
    values = {p.uid: p.values for p in r.pods}
    assert values == {
        "u-1": {"cpu_usage_cores": 1.0, "memory_usage_bytes": 10.0},
        "u-2": {"cpu_usage_cores": 3.0},
    }


@pytest.mark.parametrize(
    ("mountpoints", "expected"),
    [
        ({"/": 1.0, "/data": 2.0}, 1.0),  # the root wins
        ({"/data": 2.0, "/": 1.0}, 1.0),
        ({"/host/root": 3.0}, 3.0),  # the only one stands for the root
        ({"": 4.0}, 4.0),  # no mountpoint label: the only one still stands for the root
        ({"/a": 1.0, "/b": 2.0}, None),  # several and none is the root: none is reported
    ],
)
def test_root_filesystem_choice(mountpoints: dict[str, float], expected: float | None) -> None:
    samples = [s(TS, 5.0, node="n1")]
    for mp, v in mountpoints.items():
        labels = {"node": "n1"} if mp == "" else {"node": "n1", "mountpoint": mp}
        samples.append(Sample("k8smon_node_filesystem_size_bytes", labels, v, None))
    assert to_reading(samples).reading.values.get("filesystem_size_bytes") == expected


def test_filesystem_values_of_one_mountpoint_stay_together() -> None:
    r = to_reading([
        s(TS, 5.0, node="n1"),
        s("k8smon_node_filesystem_size_bytes", 10.0, node="n1", mountpoint="/data"),
        s("k8smon_node_filesystem_avail_bytes", 4.0, node="n1", mountpoint="/data"),
    ]).reading
    assert r.values == {"filesystem_size_bytes": 10.0, "filesystem_avail_bytes": 4.0}


def test_non_finite_values_are_dropped_and_counted() -> None:
    conversion = to_reading([
        s(TS, 5.0, node="n1"),
        s("k8smon_node_cpu_usage_cores", math.nan, node="n1"),
        s("k8smon_node_filesystem_size_bytes", math.inf, node="n1", mountpoint="/"),
        s("k8smon_pod_cpu_usage_cores", -math.inf, **pod_labels()),
        s("k8smon_pod_memory_usage_bytes", 1.0, **pod_labels()),
        s("unrelated", math.nan),  # not a reading: not counted as dropped
    ])
    r = conversion.reading
    assert r.values == {}
    assert [p.values for p in r.pods] == [{"memory_usage_bytes": 1.0}]
    assert (conversion.samples, conversion.dropped) == (6, 3)


def test_pods_over_the_label_count_limit_are_rejected_once() -> None:
    three = pod_labels()  # node, namespace, pod, uid: 4 labels
    five = pod_labels(uid="u-2", pod="web-2", deployment="web")
    samples = [
        s(TS, 5.0, node="n1"),
        Sample("k8smon_pod_cpu_usage_cores", three, 1.0, None),
        Sample("k8smon_pod_cpu_usage_cores", five, 2.0, None),
        Sample("k8smon_pod_memory_usage_bytes", five, 3.0, None),  # the same rejected pod again
    ]
    at_limit = to_reading(samples, max_labels=4)
    assert [p.uid for p in at_limit.reading.pods] == ["u-1"]  # 4 labels at a limit of 4 is fine
    assert at_limit.rejected == 1
    assert to_reading(samples, max_labels=5).rejected == 0
    assert len(to_reading(samples, max_labels=3).reading.pods) == 0
    assert to_reading(samples, max_labels=3).rejected == 2


def test_pods_over_the_label_length_limit_are_rejected() -> None:
    samples = [
        s(TS, 5.0, node="n1"),
        s("k8smon_pod_cpu_usage_cores", 1.0, node="n1", namespace="ns", pod="abcde", uid="u1"),
        s("k8smon_pod_cpu_usage_cores", 2.0, node="n1", namespace="ns", pod="abcdef", uid="u2"),
    ]
    conversion = to_reading(samples, max_label_length=5)
    assert [p.pod for p in conversion.reading.pods] == ["abcde"]  # 5 characters at a limit of 5: kept
    assert conversion.rejected == 1
    both = to_reading(samples, max_label_length=6)
    assert (len(both.reading.pods), both.rejected) == (2, 0)
    assert to_reading(samples).rejected == 0  # no limits: nothing rejected


def test_a_node_name_over_the_length_limit_makes_the_exposition_unusable() -> None:
    samples = [s(TS, 5.0, node="node-1")]
    assert to_reading(samples, max_label_length=6).reading.node == "node-1"
    with pytest.raises(ReadingError, match="node label longer than 5 characters"):
        to_reading(samples, max_label_length=5)


def test_the_route_cache_is_bounded_and_holds_what_it_routed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readings, "_ROUTES_LIMIT", 3)
    names = [TS, "k8smon_node_cpu_usage_cores", "k8smon_node_filesystem_size_bytes",
             "k8smon_pod_cpu_usage_cores", "other_metric"]
    r = to_reading([s(n, 5.0, node="n1", mountpoint="/", uid="u") for n in names]).reading
    assert readings._ROUTES == {
        TS: (readings._TIMESTAMP, ""),
        "k8smon_node_cpu_usage_cores": (readings._NODE, "cpu_usage_cores"),
        "k8smon_node_filesystem_size_bytes": (readings._FILESYSTEM, "filesystem_size_bytes"),
    }
    # Names past the limit are still routed right, just not remembered.
    assert r.values == {"cpu_usage_cores": 5.0, "filesystem_size_bytes": 5.0}
    assert [p.values for p in r.pods] == [{"cpu_usage_cores": 5.0}]
    assert readings._route("other_metric") == (readings._OTHER, "")


def test_containers_join_their_pods_by_the_pods_own_key_rules() -> None:
    # Labels a pod sample may lack (namespace, uid; pod, which then is the uid) are missing from its
    # containers' samples alike: each container still joins its pod. Routes start empty (fixture above).
    conversion = to_reading([
        s(TS, 10.0, node="n1"),
        s("k8smon_pod_cpu_usage_cores", 0.5, node="n1", pod="p"),
        s("k8smon_container_cpu_usage_cores", 0.25, node="n1", pod="p", container="app"),
        s("k8smon_pod_cpu_usage_cores", 0.75, node="n1", namespace="a", uid="u-9"),
        s("k8smon_container_memory_working_set_bytes", 64.0, node="n1", namespace="a", uid="u-9",
          container="db"),
        s("k8smon_container_cpu_usage_cores", 0.1, node="n1", namespace="a", uid="u-9"),  # no container name
    ])
    pods = {(p.namespace, p.pod, p.uid): p for p in conversion.reading.pods}
    assert set(pods) == {("", "p", ""), ("a", "u-9", "u-9")}
    assert pods[("", "p", "")].containers == (ContainerReading("app", {"cpu_usage_cores": 0.25}),)
    db = ContainerReading("db", {"memory_working_set_bytes": 64.0})
    assert pods[("a", "u-9", "u-9")].containers == (db,)
    assert (conversion.samples, conversion.dropped, conversion.rejected) == (6, 1, 0)


def test_every_container_sample_of_a_rejected_pod_counts_as_dropped() -> None:
    # The pod breaks --max-label-length with its deployment label; its container's samples do not carry
    # it, and are left out with the pod, each one counted (a repeated series too: a broken exposition).
    labels = pod_labels()
    conversion = to_reading([
        s(TS, 10.0, node="n1"),
        s("k8smon_pod_cpu_usage_cores", 0.5, **labels, deployment="d" * 200),
        s("k8smon_container_cpu_usage_cores", 0.25, **labels, container="app"),
        s("k8smon_container_cpu_usage_cores", 0.25, **labels, container="app"),
    ], max_label_length=128)
    assert conversion.reading.pods == ()
    assert (conversion.samples, conversion.dropped, conversion.rejected) == (4, 2, 1)
