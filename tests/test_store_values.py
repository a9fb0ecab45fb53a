"""The Store's served numbers, value by value (issue 17: mutation testing of store.py).

Each test drives the Store with a settable clock and asserts exact values: the points a series
holds and when, the sample behind a view, the status and reason of a node, which pods a listing or
a roll-up holds, and the boundaries (staleness, retention) to the second. Unit level: no servers.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace

import pytest

from aggregator.model import ContainerReading, NodeReading, PodReading
from aggregator.stats import AggregatorStats
from aggregator.store.snapshot import StateError
from aggregator.store.store import Store
from aggregator.store.views import NodeView, PodView, Point, Sample
from tests.test_store import Clock, node, pod, round_result

NONE6 = (None, None, None, None, None, None)


def _rows(points: list[Point] | None) -> list[tuple[float, tuple[float | None, ...]]]:
    assert points is not None
    return [(p.timestamp, p.row) for p in points]


# --- settings ----------------------------------------------------------------------------------


def test_defaults_and_the_retention_span() -> None:
    store = Store()
    assert (store.retention_points, store.stale_after, store.interval) == (1000, 15.0, 5.0)
    assert store.retention_span == 5000.0
    assert abs(store.now() - time.time()) < 60  # the default clock is the wall clock
    small = Store(retention_points=1, stale_after=0.5, interval=0.5, clock=Clock())
    assert small.retention_span == 0.5 and small.stale_after == 0.5
    assert Store(retention_points=3, interval=2.0, clock=Clock()).retention_span == 6.0


@pytest.mark.parametrize(
    "bad",
    [
        {"retention_points": 0},
        {"stale_after": 0.0},
        {"interval": 0.0},
        {"retention_points": -1},
        {"stale_after": -1.0},
        {"interval": -5.0},
    ],
)
def test_settings_must_be_positive(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"^retention_points, stale_after and interval must be positive$"):
        Store(clock=Clock(), **bad)  # type: ignore[arg-type]


# --- ingest --------------------------------------------------------------------------------------


def test_bad_timestamps_are_dropped_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    stats = AggregatorStats()
    store = Store(clock=Clock(), stats=stats)
    bad: list[object] = [0.0, -1.0, math.inf, math.nan, "10"]
    with caplog.at_level(logging.WARNING, logger="aggregator.store.store"):
        for ts in bad:
            assert store.ingest(NodeReading(node="n1", timestamp=ts, values={"memory_used_bytes": 1.0})) == 0  # type: ignore[arg-type]
    assert stats.snapshot()["errors"] == {"ingest": 5}
    assert stats.snapshot()["counters"] == {}
    assert caplog.messages == [f"ingest: node 'n1': bad timestamp {ts!r}, reading dropped" for ts in bad]
    assert store.node("n1") is None and store.nodes() == []
    # The smallest positive timestamps are fine.
    assert store.ingest(node("n1", 0.5, memory_used_bytes=1.0)) == 1
    assert store.ingest(node("n2", 1, memory_used_bytes=1.0)) == 1


def test_ingest_returns_and_counts_every_stored_sample() -> None:
    stats = AggregatorStats()
    clock = Clock(1000.0)
    store = Store(clock=clock, stats=stats)
    reading = node(
        "n1",
        10.0,
        pod("a", cpu_seconds_total=1.0, memory_working_set_bytes=2.0),
        pod("b", cpu_seconds_total=3.0),
        memory_used_bytes=7.0,
        cpu_seconds_total=4.0,
        disk_read_bytes_total=9.0,
    )
    assert store.ingest(reading) == 6  # 3 node values + 2 + 1 pod values
    assert stats.snapshot()["counters"] == {"samples_ingested": 6}
    assert store.ingest(reading) == 0  # the same snapshot again
    assert (
        store.ingest_pod("n1", pod("c", cpu_seconds_total=1.0, disk_read_bytes_total=1.0), timestamp=3.0) == 2
    )
    assert store.ingest_pod("n1", pod("c", cpu_seconds_total=1.0), timestamp=3.0) == 0  # not newer
    assert stats.snapshot()["counters"] == {"samples_ingested": 8}
    assert stats.snapshot()["errors"] == {}


def test_node_points_are_stamped_when_received_and_keep_the_exporters_time() -> None:
    clock = Clock(1000.0)
    store = Store(clock=clock)
    first = {
        "memory_used_bytes": 100.0,
        "cpu_seconds_total": 10.0,
        "disk_read_bytes_total": 1000.0,
        "network_transmit_bytes_total": 50.0,
    }
    store.ingest(node("n1", 50.0, **first), received=990.0)
    clock.now = 1005.0
    second = {
        "memory_used_bytes": 300.0,
        "cpu_seconds_total": 12.5,
        "disk_read_bytes_total": 1600.0,
        "network_transmit_bytes_total": 40.0,
    }  # the transmit counter was reset
    store.ingest(NodeReading(node="n1", timestamp=55.0, values=second, source="push"))  # received: now
    assert store.node("n1") == NodeView(
        name="n1",
        status="up",
        last_error=None,
        source="push",
        last_seen=1005.0,
        down_since=None,
        sample=Sample(
            timestamp=1005.0,
            values=second,
            deltas={
                "cpu_seconds_total": 2.5,
                "disk_read_bytes_total": 600.0,
                "network_transmit_bytes_total": 40.0,
            },
            rates={
                "cpu_seconds_total": 0.5,
                "disk_read_bytes_total": 120.0,
                "network_transmit_bytes_total": 8.0,
            },
            interval_seconds=5.0,
        ),
        pod_count=0,
        sample_time=55.0,
    )
    assert _rows(store.node_series("n1", since=0)) == [
        (990.0, (None, 100.0, None, None, None, None)),
        (1005.0, (500.0, 300.0, 600.0, None, None, 40.0)),
    ]
    assert _rows(store.node_series("n1", since=1000.0)) == [(1005.0, (500.0, 300.0, 600.0, None, None, 40.0))]
    assert _rows(store.node_series("n1", since=1000.0, previous=True)) == _rows(
        store.node_series("n1", since=0)
    )
    assert store.node_series("n9", since=0) is None
    # An older snapshot changes nothing but the report time.
    clock.now = 1007.0
    assert store.ingest(node("n1", 54.0, memory_used_bytes=1.0)) == 0
    view = store.node("n1")
    assert view is not None and view.sample_time == 55.0 and view.last_seen == 1007.0
    assert view.sample is not None and view.sample.values == second


def test_pod_views_and_series_carry_every_field_exactly() -> None:
    clock = Clock(2000.0)
    store = Store(clock=clock)
    box = ContainerReading("app", {"cpu_usage_cores": 0.125})
    first = PodReading(
        namespace="shop",
        pod="web-1",
        uid="u1",
        owner_kind="ReplicaSet",
        owner_name="web-5d",
        deployment="web",
        containers=(box,),
        values={
            "cpu_usage_cores": 0.25,
            "cpu_seconds_total": 100.0,
            "memory_working_set_bytes": 4096.0,
            "memory_usage_bytes": 9999.0,
            "disk_read_bytes_total": 10.0,
            "disk_written_bytes_total": 20.0,
            "network_receive_bytes_total": 30.0,
            "network_transmit_bytes_total": 40.0,
        },
    )
    store.ingest(node("n1", 100.0, first), received=1990.0)
    clock.now = 2005.0
    second_values = {
        **first.values,
        "cpu_seconds_total": 101.5,
        "memory_working_set_bytes": 8192.0,
        "disk_read_bytes_total": 15.0,
        "disk_written_bytes_total": 28.0,
        "network_receive_bytes_total": 60.0,
        "network_transmit_bytes_total": 41.0,
    }
    store.ingest(node("n1", 105.0, replace(first, values=second_values)), received=2000.0)
    deltas = {
        "cpu_seconds_total": 1.5,
        "disk_read_bytes_total": 5.0,
        "disk_written_bytes_total": 8.0,
        "network_receive_bytes_total": 30.0,
        "network_transmit_bytes_total": 1.0,
    }
    rates = {
        "cpu_seconds_total": 0.3,
        "disk_read_bytes_total": 1.0,
        "disk_written_bytes_total": 1.6,
        "network_receive_bytes_total": 6.0,
        "network_transmit_bytes_total": 0.2,
    }
    want = PodView(
        namespace="shop",
        pod="web-1",
        uid="u1",
        node="n1",
        deployment="web",
        owner_kind="ReplicaSet",
        owner_name="web-5d",
        last_seen=2005.0,
        sample=Sample(
            timestamp=2000.0, values=second_values, deltas=deltas, rates=rates, interval_seconds=5.0
        ),
        containers=(box,),
    )
    (view,) = store.pods()
    assert view.sample.rates == pytest.approx(rates)
    assert replace(view, sample=replace(view.sample, rates=rates)) == want
    rows = _rows(store.pod_series("shop", "web-1", since=0))
    assert rows[0] == (1990.0, (250.0, 4096.0, None, None, None, None))  # first point: the gauge
    assert rows[1][0] == 2000.0 and rows[1][1][0] == pytest.approx(300.0)  # then the counter rate
    assert rows[1][1][1:] == (8192.0, 5.0, 8.0, 30.0, 1.0)
    assert _rows(store.pod_series("shop", "web-1", since=1995.0)) == rows[1:]
    assert _rows(store.pod_series("shop", "web-1", since=1995.0, previous=True)) == rows
    assert store.pod_series("shop", "web-2", since=0) is None
    assert store.find_pods("web-1") == [view] and store.find_pods("web-1", namespace="shop") == [view]
    assert store.find_pods("web-1", namespace="pay") == []


def test_a_pushed_pod_sample_must_be_newer_than_the_stored_one() -> None:
    clock = Clock(5000.0)
    store = Store(clock=clock)
    assert store.ingest_pod("n1", pod("p", network_receive_bytes_total=100.0), timestamp=10.0) == 1
    clock.now = 5005.0
    assert store.ingest_pod("n1", pod("p", network_receive_bytes_total=300.0), timestamp=10.0) == 0
    assert store.ingest_pod("n1", pod("p", network_receive_bytes_total=300.0), timestamp=9.0) == 0
    (view,) = store.pods()
    assert view.last_seen == 5000.0 and view.sample.values == {"network_receive_bytes_total": 100.0}
    assert store.ingest_pod("n1", pod("p", network_receive_bytes_total=350.0), timestamp=12.0) == 1
    (view,) = store.pods()
    assert view.sample == Sample(
        timestamp=5005.0,
        values={"network_receive_bytes_total": 350.0},
        deltas={"network_receive_bytes_total": 250.0},
        rates={"network_receive_bytes_total": 125.0},
        interval_seconds=2.0,
    )
    assert (view.node, view.last_seen) == ("n1", 5005.0)
    assert _rows(store.pod_series("default", "p", since=0)) == [
        (5000.0, NONE6),
        (5005.0, (None, None, None, None, 250.0, None)),
    ]


def test_a_new_pod_uid_restarts_its_counters_and_the_same_uid_keeps_them() -> None:
    clock = Clock(5000.0)
    store = Store(clock=clock)
    store.ingest(node("n1", 10.0, pod("db-0", uid="u1", disk_read_bytes_total=100.0)))
    store.ingest(node("n1", 15.0, pod("db-0", uid="u1", disk_read_bytes_total=160.0)))
    (view,) = store.pods()
    assert view.sample.deltas == {"disk_read_bytes_total": 60.0} and view.sample.rates == {
        "disk_read_bytes_total": 12.0
    }
    store.ingest(node("n1", 20.0, pod("db-0", uid="u2", disk_read_bytes_total=500.0)))
    (view,) = store.pods()
    assert view.uid == "u2" and view.sample.deltas == {} and view.sample.interval_seconds is None
    store.ingest(node("n1", 25.0, pod("db-0", uid="u2", disk_read_bytes_total=520.0)))
    (view,) = store.pods()
    assert view.sample.deltas == {"disk_read_bytes_total": 20.0}


# --- roll-ups -------------------------------------------------------------------------------------


def test_a_rescraped_snapshot_refreshes_its_pods_and_rolls_up_their_gauges_without_io() -> None:
    clock = Clock(3000.0)
    store = Store(clock=clock, stale_after=15.0)

    def reading(ts: float, total: float) -> NodeReading:
        return node(
            "n1",
            ts,
            pod(
                "a",
                "ns",
                dep="d",
                cpu_usage_cores=0.5,
                memory_working_set_bytes=10.0,
                disk_read_bytes_total=total,
            ),
        )

    store.ingest(reading(100.0, 1000.0), received=3000.0)
    store.end_round(round_result(1, 3000.0))
    clock.now = 3005.0
    store.ingest(reading(105.0, 1400.0), received=3005.0)
    store.end_round(round_result(2, 3005.0))
    clock.now = 3010.0
    assert store.ingest(reading(105.0, 1400.0), received=3010.0) == 0
    (view,) = store.pods()
    assert view.last_seen == 3010.0  # refreshed: still there
    assert _rows(store.pod_series("ns", "a", since=0)) == [  # but no new point
        (3000.0, (500.0, 10.0, None, None, None, None)),
        (3005.0, (500.0, 10.0, 400.0, None, None, None)),
    ]
    store.end_round(round_result(3, 3010.0))
    want = [
        (3000.0, (500.0, 10.0, None, None, None, None)),
        (3005.0, (500.0, 10.0, 400.0, None, None, None)),
        (3010.0, (500.0, 10.0, 0.0, None, None, None)),
    ]  # counted once: 0 bytes on the re-scrape
    assert _rows(store.group_series("ns", since=0)) == want
    assert _rows(store.group_series("ns", "d", since=0)) == want
    assert _rows(store.group_series("ns", "d", since=3008.0, previous=True)) == want[1:]
    assert store.group_series("ns", "x", since=0) is None
    group = store.group("ns")
    assert group is not None and (group.round_id, group.pod_count) == (3, 1)
    assert group.sample == Sample(
        timestamp=3010.0,
        values={"cpu_usage_cores": 0.5, "memory_working_set_bytes": 10.0, "disk_read_bytes_total": 1400.0},
        deltas={},
        rates={"disk_read_bytes_total": 80.0},
        interval_seconds=None,
    )
    # The round after: a new snapshot brings its own bytes again.
    clock.now = 3015.0
    store.ingest(reading(110.0, 1500.0), received=3015.0)
    store.end_round(round_result(4, 3015.0))
    assert _rows(store.group_series("ns", since=3015.0)) == [(3015.0, (500.0, 10.0, 100.0, None, None, None))]
    group = store.group("ns")
    assert group is not None and group.sample.deltas == {"disk_read_bytes_total": 100.0}


def test_rescraping_a_node_leaves_alone_a_pod_that_moved_to_another_node() -> None:
    clock = Clock(4000.0)
    store = Store(clock=clock)
    store.ingest(node("n1", 100.0, pod("a", cpu_usage_cores=0.1)))
    clock.now = 4005.0
    store.ingest(node("n2", 100.0, pod("a", cpu_usage_cores=0.2)))  # a moved to n2
    store.end_round(round_result(1, 4005.0))
    clock.now = 4010.0
    assert store.ingest(node("n1", 100.0, pod("a", cpu_usage_cores=0.1))) == 0  # n1's old snapshot again
    (view,) = store.pods()
    assert (view.node, view.last_seen, view.sample.values) == ("n2", 4005.0, {"cpu_usage_cores": 0.2})
    store.end_round(round_result(2, 4010.0))
    group = store.group("default")
    assert group is not None and group.round_id == 1  # a did not report in round 2
    assert [(n.name, n.pod_count, n.last_seen) for n in store.nodes()] == [
        ("n1", 0, 4010.0),
        ("n2", 1, 4005.0),
    ]


def test_pushes_between_rounds_sum_every_counter_in_the_roll_up() -> None:
    clock = Clock(6000.0)
    store = Store(clock=clock)

    def push(ts: float, **values: float) -> None:
        clock.now = 6000.0 + ts
        store.ingest_pod("n1", pod("p", "ns", **values), timestamp=ts)

    push(1.0, disk_read_bytes_total=100.0, network_receive_bytes_total=1000.0)
    store.end_round(round_result(0, clock.now))
    push(2.0, disk_read_bytes_total=150.0, network_receive_bytes_total=1000.0)
    push(3.0, disk_read_bytes_total=160.0, network_receive_bytes_total=1300.0, disk_written_bytes_total=7.0)
    push(4.0, disk_read_bytes_total=160.0, network_receive_bytes_total=1300.0, disk_written_bytes_total=10.0)
    store.end_round(round_result(1, clock.now))
    group = store.group("ns")
    assert group is not None and group.pod_count == 1
    assert group.sample.deltas == {
        "disk_read_bytes_total": 60.0,
        "network_receive_bytes_total": 300.0,
        "disk_written_bytes_total": 3.0,
    }
    assert _rows(store.group_series("ns", since=0)) == [
        (6001.0, NONE6),
        (6004.0, (None, None, 60.0, 3.0, 300.0, None)),
    ]
    # The pod's own points hold the same bytes.
    pod_rows = _rows(store.pod_series("ns", "p", since=6001.5))
    assert [r[1][2:] for r in pod_rows] == [
        (50.0, None, 0.0, None),
        (10.0, None, 300.0, None),
        (0.0, 3.0, 0.0, None),
    ]


def test_end_round_stamps_groups_with_the_round_and_sets_the_series_gauges() -> None:
    stats = AggregatorStats()
    clock = Clock(7000.0)
    store = Store(clock=clock, stats=stats)
    store.ingest(
        node(
            "n1",
            10.0,
            pod("a", "shop", dep="web", cpu_usage_cores=0.1),
            pod("b", "shop", cpu_usage_cores=0.2),
            pod("c", "pay", dep="api", cpu_usage_cores=0.4),
            pod("u", "", cpu_usage_cores=0.8),
        )
    )
    store.mark_down("n2", reason="refused", when=7000.0)
    clock.now = 7002.0
    store.end_round(round_result(42, 6999.0))
    assert stats.snapshot()["gauges"] == {
        "series_node": 2,
        "series_pod": 4,
        "series_namespace": 2,
        "series_deployment": 2,
    }
    assert store.series_counts() == {"node": 2, "pod": 4, "namespace": 2, "deployment": 2}
    views = store.groups()
    assert [(g.namespace, g.deployment, g.round_id, g.pod_count, g.sample.timestamp) for g in views] == [
        ("pay", "", 42, 1, 6999.0),
        ("shop", "", 42, 2, 6999.0),
    ]
    assert [(p.timestamp) for p in store.group_series("shop", since=0) or []] == [6999.0]
    # Groups go stale with the clock of end_round (7002), not the round's start.
    clock.now = 7017.0
    assert [g.namespace for g in store.groups()] == ["pay", "shop"]
    clock.now = 7017.5
    assert store.groups() == [] and store.groups(deployments=True) == []
    assert store.group("shop") is not None  # history stays


# --- node status ----------------------------------------------------------------------------------


def test_down_and_gone_statuses_reasons_and_since() -> None:
    clock = Clock(6000.0)
    store = Store(clock=clock)
    store.mark_gone("ghost", when=6000.0)  # never seen: nothing to list
    assert store.node("ghost") is None and store.nodes() == [] and store.series_counts()["node"] == 0
    store.ingest(node("n1", 10.0, pod("a", cpu_usage_cores=0.1), memory_used_bytes=1.0))
    store.ingest(node("n2", 10.0, pod("b", cpu_usage_cores=0.2)))
    clock.now = 6003.0
    store.mark_gone("n1", when=6002.0)
    gone = store.node("n1")
    assert gone is not None
    assert (
        gone.status,
        gone.last_error,
        gone.down_since,
        gone.last_seen,
        gone.pod_count,
        gone.sample_time,
    ) == ("gone", "target left discovery", 6002.0, 6000.0, 0, 10.0)
    assert [p.pod for p in store.pods()] == ["b"]
    assert [(n.name, n.status, n.pod_count) for n in store.nodes()] == [("n1", "gone", 0), ("n2", "up", 1)]
    assert store.pod_label_values()[0] == [("default", "b")]
    assert store.find_pods("a") == [] and [p.pod for p in store.find_pods("a", current=False)] == ["a"]
    clock.now = 6004.0
    store.mark_down("n1", reason="connection refused", when=6004.0)
    down = store.node("n1")
    assert down is not None
    assert (down.status, down.last_error, down.down_since, down.pod_count) == (
        "down",
        "connection refused",
        6002.0,
        1,
    )  # away since it left discovery; its pods listed again
    assert [p.pod for p in store.pods()] == ["a", "b"]
    store.mark_down("n2", reason="timeout", when=6004.5)  # up -> down: down since now
    n2 = store.node("n2")
    assert n2 is not None and (n2.status, n2.last_error, n2.down_since, n2.pod_count) == (
        "down",
        "timeout",
        6004.5,
        1,
    )
    store.mark_down("new", reason="never answered", when=6004.0)
    new = store.node("new")
    assert new == NodeView(
        name="new",
        status="down",
        last_error="never answered",
        source="scrape",
        last_seen=0.0,
        down_since=6004.0,
        sample=None,
        pod_count=0,
        sample_time=None,
    )
    store.mark_gone("n2", when=6005.0, reason="deleted")
    n2 = store.node("n2")
    assert n2 is not None and (n2.status, n2.last_error, n2.down_since) == ("gone", "deleted", 6004.5)
    # The same snapshot scraped again brings a gone node back: up, its pods listed.
    clock.now = 6006.0
    assert store.ingest(node("n2", 10.0, pod("b", cpu_usage_cores=0.2))) == 0
    n2 = store.node("n2")
    assert n2 is not None and (n2.status, n2.last_error, n2.down_since, n2.pod_count) == ("up", None, None, 1)
    assert [p.pod for p in store.pods(node="n2")] == ["b"]


def test_a_silent_node_goes_stale_only_when_up_and_only_after_stale_after() -> None:
    clock = Clock(7000.0)
    store = Store(clock=clock, stale_after=15.0)
    store.ingest(node("n1", 10.0, pod("a", "ns", dep="d", cpu_usage_cores=0.1)))
    store.end_round(round_result(1, 7000.0))
    store.mark_down("n2", reason="refused", when=7000.0)
    clock.now = 7015.0  # exactly --stale-after: still current
    n1 = store.node("n1")
    assert n1 is not None and (n1.status, n1.last_error, n1.pod_count) == ("up", None, 1)
    assert [(n.name, n.status, n.pod_count) for n in store.nodes()] == [("n1", "up", 1), ("n2", "down", 0)]
    assert [p.pod for p in store.pods()] == ["a"] and [p.pod for p in store.find_pods("a")] == ["a"]
    assert [(g.namespace, g.deployment) for g in store.groups()] == [("ns", "")]
    assert store.pod_label_values()[0] == [("ns", "a")]
    clock.now = 7020.0
    n1 = store.node("n1")
    assert n1 is not None
    assert (n1.status, n1.last_error, n1.pod_count) == (
        "stale",
        "nothing reported for 20s (--stale-after 15s)",
        0,
    )
    n2 = store.node("n2")
    assert n2 is not None and (n2.status, n2.last_error) == ("down", "refused")  # down stays down
    assert store.nodes() == [] and store.pods() == [] and store.find_pods("a") == [] and store.groups() == []
    assert store.pod_label_values() == ([], [], [], [])


# --- retention --------------------------------------------------------------------------------------


def test_expiry_drops_series_only_when_strictly_older_than_the_retention_span() -> None:
    clock = Clock(8000.0)
    store = Store(clock=clock, retention_points=4, interval=5.0, stale_after=15.0)  # 20 s of history
    store.ingest(node("n1", 10.0, pod("a", "ns", dep="d", cpu_usage_cores=0.1)))
    store.end_round(round_result(1, 8000.0))
    store.mark_down("n2", reason="refused", when=8000.0)
    clock.now = 8010.0
    store.mark_down("n1", reason="refused", when=8010.0)  # last seen 8000, last reported 8010
    clock.now = 8020.0
    store.end_round(round_result(2, 8020.0))  # horizon 8000: nothing is older
    assert store.series_counts() == {"node": 2, "pod": 1, "namespace": 1, "deployment": 1}
    clock.now = 8020.5
    store.end_round(round_result(3, 8020.5))  # horizon 8000.5
    assert store.series_counts() == {"node": 1, "pod": 0, "namespace": 0, "deployment": 0}
    assert store.node("n1") is not None and store.node("n2") is None
    assert store.pod_series("ns", "a", since=0) is None and store.group("ns") is None


def test_an_expired_gone_node_no_longer_hides_pods_pushed_under_its_name() -> None:
    clock = Clock(9000.0)
    store = Store(clock=clock, retention_points=2, interval=5.0)  # 10 s of history
    store.ingest(node("n1", 10.0))
    store.mark_gone("n1", when=9000.0)
    clock.now = 9011.0
    store.end_round(round_result(1, 9011.0))
    assert store.node("n1") is None
    store.ingest_pod("n1", pod("p", cpu_usage_cores=0.1), timestamp=20.0)
    assert [(p.pod, p.node) for p in store.pods()] == [("p", "n1")]
    assert store.pod_label_values()[0] == [("default", "p")]


# --- readers ----------------------------------------------------------------------------------------


def test_the_listing_follows_new_pods_and_the_first_pod_to_go_stale() -> None:
    clock = Clock(10000.0)
    store = Store(clock=clock, stale_after=15.0)
    assert store.pods() == [] and store.pods() == []  # an empty listing, built and reused
    store.ingest(node("n1", 10.0, pod("b")))
    assert [p.pod for p in store.pods()] == ["b"]
    clock.now = 10005.0
    store.ingest(node("n2", 10.0, pod("a")))  # a new pod: the name order is rebuilt
    assert [p.pod for p in store.pods()] == ["a", "b"]
    assert [(n.name, n.pod_count) for n in store.nodes()] == [("n1", 1), ("n2", 1)]
    clock.now = 10016.0  # b (seen at 10000) is stale, a (10005) is not; nothing was written
    assert [p.pod for p in store.pods()] == ["a"]
    assert [(n.name, n.pod_count) for n in store.nodes()] == [("n2", 1)]
    n1 = store.node("n1")
    assert n1 is not None and n1.pod_count == 0


def _world() -> tuple[Store, Clock]:
    clock = Clock(11000.0)
    store = Store(clock=clock)
    store.ingest(
        node(
            "n1",
            10.0,
            pod("web-1", "shop", dep="web", cpu_usage_cores=0.1),
            pod("db-0", "shop", cpu_usage_cores=0.2),
            pod("api-1", "pay", dep="api", cpu_usage_cores=0.4),
        )
    )
    store.ingest(
        node(
            "n2",
            10.0,
            pod("web-9", "pay", dep="web", cpu_usage_cores=0.8),
            pod("web-2", "shop", dep="web", cpu_usage_cores=1.6),
            pod("db-0", "pay", cpu_usage_cores=3.2),
        )
    )
    store.end_round(round_result(1, 11000.0))
    return store, clock


def test_pod_filters_find_pods_and_label_values() -> None:
    store, clock = _world()

    def names(views: list[PodView]) -> list[tuple[str, str]]:
        return [(v.namespace, v.pod) for v in views]

    assert names(store.pods()) == [
        ("pay", "api-1"),
        ("pay", "db-0"),
        ("pay", "web-9"),
        ("shop", "db-0"),
        ("shop", "web-1"),
        ("shop", "web-2"),
    ]
    assert names(store.pods(node="n2")) == [("pay", "db-0"), ("pay", "web-9"), ("shop", "web-2")]
    assert names(store.pods(namespace="shop")) == [("shop", "db-0"), ("shop", "web-1"), ("shop", "web-2")]
    assert names(store.pods(deployment="web")) == [("pay", "web-9"), ("shop", "web-1"), ("shop", "web-2")]
    assert names(store.find_pods("db-0")) == [("pay", "db-0"), ("shop", "db-0")]
    assert names(store.find_pods("db-0", namespace="shop")) == [("shop", "db-0")]
    assert store.find_pods("db-1") == [] and store.find_pods("db-0", namespace="x") == []
    keys, nodes, readings, values = store.pod_label_values()
    assert keys == [
        ("pay", "api-1"),
        ("pay", "db-0"),
        ("pay", "web-9"),
        ("shop", "db-0"),
        ("shop", "web-1"),
        ("shop", "web-2"),
    ]
    assert nodes == ["n1", "n2", "n2", "n1", "n1", "n2"]
    assert [(r.namespace, r.pod, r.deployment) for r in readings] == [
        (k[0], k[1], d) for k, d in zip(keys, ["api", "", "web", "", "web", "web"], strict=True)
    ]
    assert values == [{"cpu_usage_cores": v} for v in (0.4, 3.2, 0.8, 0.2, 0.1, 1.6)]
    assert [(n.name, n.pod_count) for n in store.nodes()] == [("n1", 3), ("n2", 3)]
    assert [(n.name, n.pod_count) for n in store.nodes(pod_counts=False)] == [("n1", 0), ("n2", 0)]
    # One pod goes stale by itself (its node reports without it); its node's count follows.
    clock.now = 11010.0
    store.ingest(node("n2", 20.0, pod("web-9", "pay", dep="web", cpu_usage_cores=0.8)))
    n2 = store.node("n2")  # counted without a listing: the write dropped it
    assert n2 is not None and n2.pod_count == 3
    clock.now = 11016.0
    n2 = store.node("n2")
    n1 = store.node("n1")
    assert n2 is not None and n2.pod_count == 1 and n1 is not None and n1.pod_count == 0
    assert names(store.pods()) == [("pay", "web-9")]
    assert [(n.name, n.pod_count) for n in store.nodes()] == [("n2", 1)]
    assert names(store.find_pods("db-0", current=False)) == [("pay", "db-0"), ("shop", "db-0")]
    assert names(store.find_pods("db-0", namespace="pay", current=False)) == [("pay", "db-0")]
    assert store.pod_label_values()[0] == [("pay", "web-9")]


def test_group_readers() -> None:
    store, _clock = _world()

    def keys(views: list) -> list[tuple[str, str]]:
        return [(v.namespace, v.deployment) for v in views]

    assert keys(store.groups()) == [("pay", ""), ("shop", "")]
    assert keys(store.groups(deployments=True)) == [("pay", "api"), ("pay", "web"), ("shop", "web")]
    assert keys(store.groups(namespace="shop", deployments=True)) == [("shop", "web")]
    assert keys(store.groups(namespace="pay")) == [("pay", "")]
    shop, web = store.group("shop"), store.group("shop", "web")
    assert shop is not None and (shop.pod_count, shop.round_id) == (3, 1)
    assert shop.sample.values == pytest.approx({"cpu_usage_cores": 1.9})
    assert (
        web is not None
        and web.pod_count == 2
        and web.sample.values == pytest.approx({"cpu_usage_cores": 1.7})
    )
    assert store.group("shop", "db") is None and store.group("x") is None
    assert store.deployment_namespaces("web") == ["pay", "shop"]
    assert store.deployment_namespaces("api") == ["pay"] and store.deployment_namespaces("db") == []
    assert store.namespace_known("shop") and store.namespace_known("pay")
    store.ingest(node("n3", 10.0, pod("x", "late", cpu_usage_cores=0.1)))  # a pod, no roll-up yet
    assert store.group("late") is None and store.namespace_known("late")
    assert not store.namespace_known("none") and not store.namespace_known("")


def test_buffer_bytes_count_every_series_and_point() -> None:
    store = Store(clock=Clock(12000.0), retention_points=8)
    assert store.buffer_bytes() == (0, 0)
    store.ingest(node("n1", 10.0, pod("a", "ns", memory_working_set_bytes=1.0), memory_used_bytes=1.0))
    store.ingest(node("n1", 15.0, pod("a", "ns", memory_working_set_bytes=2.0), memory_used_bytes=2.0))
    node_only = store.buffer_bytes()
    store.end_round(round_result(1, 12000.0))
    nbytes, points = store.buffer_bytes()
    series = [store._nodes["n1"].series, store._pods[("ns", "a")].series, store._groups[("ns", "")].series]
    assert [len(s) for s in series] == [2, 2, 1]
    assert points == 5 and nbytes == sum(s.nbytes() for s in series)
    assert node_only == (series[0].nbytes() + series[1].nbytes(), 4)
    assert series[2].nbytes() > 0


# --- snapshots --------------------------------------------------------------------------------------


def test_export_state_comes_in_batches_and_skips_entities_gone_meanwhile() -> None:
    store, clock = _world()
    kinds = [[r.kind for r in b] for b in store.export_state(batch=4)]
    assert kinds == [["node"] * 2, ["pod"] * 4, ["pod"] * 2, ["group"] * 4, ["group"]]
    assert [[r.kind for r in b] for b in store.export_state()] == [["node"] * 2, ["pod"] * 6, ["group"] * 5]
    keys = [(r.meta.get("namespace"), r.meta.get("pod")) for b in store.export_state(batch=1) for r in b]
    assert keys[2:8] == [
        ("shop", "web-1"),
        ("shop", "db-0"),
        ("pay", "api-1"),
        ("pay", "web-9"),
        ("shop", "web-2"),
        ("pay", "db-0"),
    ]
    batches = store.export_state(batch=3)
    assert len(next(batches)) == 2
    clock.now += store.retention_span + 1
    store.end_round(round_result(2, clock.now))  # everything expired meanwhile
    assert list(batches) == [[], [], [], []]


def test_export_state_batches_64_entities_by_default() -> None:
    store = Store(clock=Clock(11000.0))
    store.ingest(node("n1", 10.0, *(pod(f"p{i:02}", cpu_usage_cores=0.1) for i in range(65))))
    assert [len(b) for b in store.export_state()] == [1, 64, 1]


def _restored(records: list, now: float, **settings: float) -> tuple[Store, dict[str, int]]:
    store = Store(clock=Clock(now), **settings)  # type: ignore[arg-type]
    return store, store.import_state(records)


def test_import_state_replaces_everything_and_keeps_what_retention_keeps() -> None:
    clock = Clock(1000.0)
    source = Store(clock=clock, retention_points=4, interval=5.0)  # 20 s of history
    source.ingest(node("n1", 10.0, pod("a", "ns", dep="d", disk_read_bytes_total=100.0)))
    source.ingest(node("n2", 10.0, pod("b", "ns", disk_read_bytes_total=7.0)))
    source.end_round(round_result(1, 1000.0))
    clock.now = 1010.0
    source.mark_down("n1", reason="refused", when=1010.0)  # last seen 1000, last reported 1010
    source.mark_gone("n2", when=1010.0)
    records = [r for b in source.export_state() for r in b]
    # A store with its own contents, a cached listing and a pod waiting for the next roll-up.
    store = Store(clock=Clock(1020.0), retention_points=4, interval=5.0, stale_after=30.0)
    store.ingest(node("n9", 10.0, pod("z", "other", cpu_usage_cores=0.1)))
    assert [p.pod for p in store.pods()] == ["z"]
    counts = store.import_state(records)  # horizon 1000: a point at 1000 is kept
    assert counts == {"node": 2, "pod": 2, "namespace": 1, "deployment": 1}
    assert [(n.name, n.status, n.last_error, n.down_since, n.pod_count) for n in store.nodes()] == [
        ("n1", "down", "refused", 1010.0, 1),
        ("n2", "gone", "target left discovery", 1010.0, 0),
    ]
    assert [(p.namespace, p.pod, p.node) for p in store.pods()] == [("ns", "a", "n1")]  # b's node is gone
    assert store.pod_label_values()[0] == [("ns", "a")]
    assert store.node("n9") is None and store.find_pods("z", current=False) == []
    store.end_round(round_result(2, 1020.0))  # the pending pod z went with the old contents
    assert store.series_counts() == {"node": 2, "pod": 2, "namespace": 1, "deployment": 1}
    assert store.group("other") is None
    group = store.group("ns")
    assert group is not None and group.round_id == 1
    # The counters carry on: the next sample's delta is against the exported one.
    store.ingest(node("n1", 15.0, pod("a", "ns", dep="d", disk_read_bytes_total=160.0)))
    (view,) = store.find_pods("a")
    assert view.sample.deltas == {"disk_read_bytes_total": 60.0}
    # Restored later: what the horizon has passed is left out (a node counts by its last report).
    later, counts = _restored(records, 1030.0, retention_points=4, interval=5.0)  # horizon 1010
    assert counts == {"node": 2, "pod": 0, "namespace": 0, "deployment": 0}
    later, counts = _restored(records, 1030.5, retention_points=4, interval=5.0)  # horizon 1010.5
    assert counts == {"node": 0, "pod": 0, "namespace": 0, "deployment": 0}
    _store, counts = _restored(records, 1020.5, retention_points=4, interval=5.0)  # horizon 1000.5
    assert counts == {"node": 2, "pod": 0, "namespace": 0, "deployment": 0}
    assert later.nodes() == []


def test_import_state_rejects_an_unknown_record_and_keeps_the_contents() -> None:
    store, _clock = _world()
    records = [r for b in store.export_state() for r in b]
    bad = replace(records[0], kind="gauge")
    with pytest.raises(StateError, match=r"^unknown record kind 'gauge'$"):
        store.import_state([*records[:3], bad])
    assert store.series_counts() == {"node": 2, "pod": 6, "namespace": 2, "deployment": 3}



@pytest.mark.parametrize("field, value", [("reading", None), ("row", [])])
def test_import_state_rejects_a_pod_sample_without_its_reading_or_row(field: str, value: object) -> None:
    """A hand-edited file with `"reading": null` made every pod listing fail after restore; one with
    `"row": []` dropped the pod's CPU and memory from its namespace's next point. Both are refused."""
    store, _clock = _world()
    records = [r for b in store.export_state() for r in b]
    i = next(i for i, r in enumerate(records) if r.kind == "pod" and r.meta.get("sample") is not None)
    bad = replace(records[i], meta={**records[i].meta, field: value})
    fresh, _ = _world()
    before = fresh.series_counts()
    with pytest.raises(StateError, match=r"^pod sample without its reading and row$"):
        fresh.import_state([*records[:i], bad, *records[i + 1:]])
    assert fresh.series_counts() == before and len(fresh.pods()) == 6

class StepClock:
    """A clock that moves on by itself: each call returns the next of `times` (then stays at the last)."""

    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0) if len(self.times) > 1 else self.times[0]


def test_node_counts_follow_the_clock_even_between_building_the_listing_and_counting() -> None:
    clock = StepClock(7000.0, 7005.0, 7010.0, 7015.5)
    store = Store(clock=clock, stale_after=15.0)
    store.ingest(node("n1", 10.0, pod("a", cpu_usage_cores=0.1)))  # at 7000
    store.ingest(node("n2", 10.0, pod("b", cpu_usage_cores=0.1)))  # at 7005
    # nodes(): the listing is built at 7010 (a and b current), the counts are taken at 7015.5, when a
    # (seen at 7000) has gone stale: they come from the pods themselves, not from the older listing.
    assert [(n.name, n.pod_count) for n in store.nodes()] == [("n2", 1)]


def test_node_reads_its_count_from_a_current_listing() -> None:
    store, _clock = _world()
    assert len(store.pods()) == 6  # a listing current now
    counts = [(name, view.pod_count) for name in ("n1", "n2") if (view := store.node(name)) is not None]
    assert counts == [("n1", 3), ("n2", 3)]


def test_a_namespace_is_known_by_its_roll_up_after_its_pods_expired() -> None:
    clock = Clock(1000.0)
    store = Store(clock=clock, retention_points=2, interval=5.0)  # 10 s of history
    store.ingest(node("n1", 10.0, pod("a", "ns", cpu_usage_cores=0.1)))
    clock.now = 1005.0
    store.end_round(round_result(1, 1000.0))  # the roll-up is seen at 1005, the pod at 1000
    clock.now = 1010.5
    store.end_round(round_result(2, 1010.5))
    assert store.series_counts() == {"node": 0, "pod": 0, "namespace": 1, "deployment": 0}
    assert store.namespace_known("ns") and not store.namespace_known("other")


def test_a_restored_pod_without_a_sample_is_listed_nowhere() -> None:
    source, _clock = _world()
    records = [r for b in source.export_state() for r in b]
    records = [
        replace(r, meta={**r.meta, "sample": None}) if r.meta.get("pod") == "db-0" else r for r in records
    ]
    store, counts = _restored(records, 11001.0)
    assert counts["pod"] == 6
    assert [(p.namespace, p.pod) for p in store.pods()] == [
        ("pay", "api-1"),
        ("pay", "web-9"),
        ("shop", "web-1"),
        ("shop", "web-2"),
    ]
    assert store.pod_label_values()[0] == [
        ("pay", "api-1"),
        ("pay", "web-9"),
        ("shop", "web-1"),
        ("shop", "web-2"),
    ]
    assert store.find_pods("db-0") == [] and store.find_pods("db-0", current=False) == []
    assert [(n.name, n.pod_count) for n in store.nodes()] == [("n1", 2), ("n2", 2)]
    n1 = store.node("n1")
    assert n1 is not None and n1.pod_count == 2


def test_pods_that_stay_are_listed_after_others_expired() -> None:
    clock = Clock(1000.0)
    store = Store(clock=clock, retention_points=2, interval=5.0, stale_after=15.0)  # 10 s of history
    store.ingest(node("n1", 10.0, pod("a", cpu_usage_cores=0.1), pod("c", cpu_usage_cores=0.1)))
    clock.now = 1008.0
    store.ingest(node("n1", 18.0, pod("b", cpu_usage_cores=0.2)))
    assert [p.pod for p in store.pods()] == ["a", "b", "c"]
    clock.now = 1010.5
    store.end_round(round_result(1, 1010.5))  # a and c (seen at 1000) expire
    assert store.series_counts()["pod"] == 1
    assert [p.pod for p in store.pods()] == ["b"]
