"""Roll-ups: namespace/deployment points are sums over the pods of one round, never a mix of rounds."""

from __future__ import annotations

import pytest

from aggregator.store.series import COLUMNS
from aggregator.store.store import Store
from tests.test_store import Clock, node, pod, round_result

CPU = COLUMNS.index("cpu_millicores")
MEM = COLUMNS.index("memory_bytes")
READ = COLUMNS.index("disk_read_bytes")


def test_namespace_and_deployment_sums_per_round() -> None:
    clock = Clock()
    store = Store(clock=clock)
    for r, ts in enumerate((100.0, 105.0)):
        store.ingest(
            node(
                "n1",
                ts,
                pod(
                    "web-1",
                    "shop",
                    dep="web",
                    cpu_usage_cores=0.25,
                    memory_working_set_bytes=100.0,
                    disk_read_bytes_total=1000.0 * (r + 1),
                    cpu_request_cores=0.5,
                ),
                pod(
                    "db-0",
                    "shop",
                    cpu_usage_cores=0.5,
                    memory_working_set_bytes=300.0,
                    disk_read_bytes_total=10.0 * (r + 1),
                ),
            ),
            round_id=r,
        )
        store.ingest(
            node(
                "n2",
                ts + 1,
                pod(
                    "web-2",
                    "shop",
                    dep="web",
                    cpu_usage_cores=0.25,
                    memory_working_set_bytes=50.0,
                    disk_read_bytes_total=500.0 * (r + 1),
                    cpu_request_cores=0.5,
                ),
                pod("x", "other", cpu_usage_cores=1.0),
            ),
            round_id=r,
        )
        store.end_round(round_result(r, ts))
        clock.now += 5
    (other, shop) = store.groups()
    assert (shop.namespace, shop.pod_count, other.pod_count) == ("shop", 3, 1)
    assert shop.sample.cpu_millicores == pytest.approx(1000.0)
    assert shop.sample.values["memory_working_set_bytes"] == 450.0
    assert shop.sample.values["cpu_request_cores"] == 1.0  # summed over pods that declare it
    assert shop.sample.deltas["disk_read_bytes_total"] == 1510.0
    (web,) = store.groups(namespace="shop", deployments=True)
    assert (web.deployment, web.pod_count, web.sample.values["memory_working_set_bytes"]) == ("web", 2, 150.0)
    points = store.group_series("shop", since=0)
    assert points is not None and [p.timestamp for p in points] == [100.0, 105.0]
    assert points[0].row[READ] is None  # first round: no pod had a rate yet
    assert points[1].row[READ] == 1510.0 and points[1].row[MEM] == 450.0
    assert points[1].row[CPU] == pytest.approx(1000.0)


def test_pods_missing_from_a_round_are_not_mixed_in() -> None:
    clock = Clock()
    store = Store(clock=clock)
    store.ingest(node("n1", 100.0, pod("a", "ns", memory_working_set_bytes=1.0)))
    store.ingest(node("n2", 100.0, pod("b", "ns", memory_working_set_bytes=2.0)))
    store.end_round(round_result(1, 100.0))
    # Round 2: n2 is down, so only a is summed (b's old value is not carried into the new point).
    store.ingest(node("n1", 105.0, pod("a", "ns", memory_working_set_bytes=10.0)))
    store.mark_down("n2", reason="timeout", when=105.0)
    store.end_round(round_result(2, 105.0))
    points = store.group_series("ns", since=0)
    assert points is not None and [p.row[MEM] for p in points] == [3.0, 10.0]
    (ns,) = store.groups()
    assert ns.pod_count == 1 and ns.round_id == 2


def test_same_snapshot_scraped_again_still_counts_in_the_round() -> None:
    store = Store(clock=Clock())
    reading = node("n1", 100.0, pod("a", "ns", memory_working_set_bytes=7.0))
    store.ingest(reading)
    store.end_round(round_result(1, 100.0))
    assert store.ingest(reading) == 0  # exporter has not sampled again yet
    store.end_round(round_result(2, 105.0))
    points = store.group_series("ns", since=0)
    assert points is not None and [p.row[MEM] for p in points] == [7.0, 7.0]


def test_unnamed_pods_are_listed_but_not_rolled_up() -> None:
    store = Store(clock=Clock())
    store.ingest(node("n1", 100.0, pod("0f3c-uid", "", uid="0f3c-uid", memory_working_set_bytes=5.0)))
    store.end_round(round_result(1, 100.0))
    assert [p.pod for p in store.pods()] == ["0f3c-uid"]
    assert store.groups() == [] and store.group("") is None
