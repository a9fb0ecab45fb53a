"""The JSON documents' numbers, field by field (aggregator/api/views.py): unit conversions, rates, totals,
percentages, the null rules and the human forms, asserted as exact values and JSON types.

Unit tests of the view functions on hand-made store views (no store, no server): each figure is chosen
so that a swapped field, a wrong factor or a wrong rounding gives a different document.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest

from aggregator.api import views
from aggregator.model import ContainerReading
from aggregator.store.views import GroupView, NodeView, PodView, Point, Sample

TS = 1_700_000_000.0  # 2023-11-14T22:13:20Z
TS_ISO = "2023-11-14T22:13:20.000Z"
GIB = 1024**3

NONE_DISK = {f"{d}_bytes{s}": None for d in ("read", "write") for s in ("", "_per_second", "_total")}
NONE_NET = {f"{d}{s}": None for d in ("bytes_recv", "bytes_sent") for s in ("", "_per_second", "_total")}
NONE_IO_HUMAN = {"disk_read": None, "disk_write": None, "network_recv": None, "network_sent": None}


def sample(values: dict[str, float] | None = None, *, deltas: dict[str, float] | None = None,
           rates: dict[str, float] | None = None, ts: float = TS, interval: float | None = 5.0) -> Sample:
    return Sample(timestamp=ts, values=values or {}, deltas=deltas or {}, rates=rates or {},
                  interval_seconds=interval)


# Four counters with distinct figures, so a swapped pair shows.
IO_DELTAS = {"disk_read_bytes_total": 10240.0, "disk_written_bytes_total": 20480.0,
             "network_receive_bytes_total": 3072.0, "network_transmit_bytes_total": 5120.0}
IO_RATES = {"disk_read_bytes_total": 2048.0, "disk_written_bytes_total": 4096.0,
            "network_receive_bytes_total": 614.4000000000001, "network_transmit_bytes_total": 1024.0004}
IO_TOTALS = {"disk_read_bytes_total": 1e9, "disk_written_bytes_total": 2e9 + 0.5,
             "network_receive_bytes_total": 3e9, "network_transmit_bytes_total": 4e9}
DISK = {"read_bytes": 10240, "read_bytes_per_second": 2048.0, "read_bytes_total": 1000000000,
        "write_bytes": 20480, "write_bytes_per_second": 4096.0, "write_bytes_total": 2e9 + 0.5}
NET = {"bytes_recv": 3072, "bytes_recv_per_second": 614.4, "bytes_recv_total": 3000000000,
       "bytes_sent": 5120, "bytes_sent_per_second": 1024.0, "bytes_sent_total": 4000000000}
IO_HUMAN = {"disk_read": "2 KiB/s", "disk_write": "4 KiB/s", "network_recv": "614 B/s",
            "network_sent": "1 KiB/s"}


def assert_same_json(got: Any, want: Any) -> None:
    """Equal as Python values AND as JSON text: 200 and 200.0 compare equal but serve differently."""
    assert got == want
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)


# ---- the number rules ----

@pytest.mark.parametrize(("value", "want"), [
    (1950.0000000000455, 1950.0), (2.0004, 2.0), (2.0006, 2.001), (-1.23456, -1.235), (0.0, 0.0),
    (None, None), (math.nan, None), (math.inf, None), (-math.inf, None),
])
def test_num_rounds_to_three_decimals_and_drops_non_finite(value: float | None, want: float | None) -> None:
    assert_same_json(views._num(value), want)


@pytest.mark.parametrize(("value", "want"), [
    (2716020736.0, 2716020736), (0.0, 0), (1.5, 1.5), (2**53 + 0.0, 2**53), (-3.0, -3),
    (None, None), (math.nan, None), (math.inf, None), (-math.inf, None),
])
def test_count_is_an_int_when_whole(value: float | None, want: float | None) -> None:
    got = views._count(value)
    assert_same_json(got, want)
    assert type(got) is type(want)


@pytest.mark.parametrize(("millicores", "want"), [
    (1950.0000000000455, 1950), (0.0004, 0), (1234.5, 1234.5), (0.0015, 0.002), (None, None),
    (math.nan, None),
])
def test_cpu_millicores_three_decimals_int_when_whole(millicores: float | None, want: float | None) -> None:
    got = views._cpu(millicores)
    assert_same_json(got, want)
    assert type(got) is type(want)


@pytest.mark.parametrize(("cores", "want"), [
    (0.25, 250), (1.5, 1500), (0.0001234, 0.123), (0.0, 0), (None, None),
])
def test_milli_converts_cores(cores: float | None, want: float | None) -> None:
    got = views._milli(cores)
    assert_same_json(got, want)
    assert type(got) is type(want)


@pytest.mark.parametrize(("part", "whole", "want"), [
    (50, 200, 25.0), (1, 3, 33.33), (2, 3, 66.67), (0, 10, 0.0), (300, 200, 150.0), (1, 1, 100.0),
    (0.25, 0.5, 50.0),
    (5, 0, None), (5, -1, None), (None, 10, None), (5, None, None), (None, None, None),
])
def test_percent_of_a_positive_whole_two_decimals(part: float | None, whole: float | None,
                                                  want: float | None) -> None:
    assert_same_json(views._pct(part, whole), want)


@pytest.mark.parametrize(("delta", "dt", "want"), [
    (10.0, 4.0, 2.5), (10.0, 3.0, 3.333), (0.0, 5.0, 0.0), (None, 5.0, None), (10.0, None, None),
])
def test_per_second(delta: float | None, dt: float | None, want: float | None) -> None:
    assert_same_json(views._per_s(delta, dt), want)


# ---- I/O objects ----

def test_io_objects_carry_interval_bytes_rates_and_totals_per_counter() -> None:
    disk, net = views._io(sample(IO_TOTALS, deltas=IO_DELTAS, rates=IO_RATES))
    assert_same_json(disk, DISK)
    assert_same_json(net, NET)
    assert_same_json(views._io_human(disk, net), IO_HUMAN)


def test_io_objects_without_a_sample_or_counters_are_all_null() -> None:
    assert views._io(None) == (NONE_DISK, NONE_NET)
    assert views._io(sample()) == (NONE_DISK, NONE_NET)
    assert views._io_human(NONE_DISK, NONE_NET) == NONE_IO_HUMAN


# ---- nodes ----

NODE_VALUES = {
    "cpu_usage_cores": 1.5, "cpu_capacity_cores": 4.0,
    "memory_used_bytes": 3.0 * GIB, "memory_available_bytes": 5.0 * GIB, "memory_total_bytes": 8.0 * GIB,
    "filesystem_size_bytes": 100e9, "filesystem_avail_bytes": 25e9, **IO_TOTALS,
}


def node_view(s: Sample | None, **over: Any) -> NodeView:
    fields: dict[str, Any] = {"name": "n1", "status": "up", "last_error": None, "source": "scrape",
                              "last_seen": TS, "down_since": None, "sample": s, "pod_count": 7}
    fields.update(over)
    return NodeView(**fields)


def test_node_document_every_field() -> None:
    s = sample(NODE_VALUES, deltas=IO_DELTAS, rates=IO_RATES, interval=5.0)
    doc = views.node_doc(node_view(s), now=TS + 2.12345)
    assert_same_json(doc, {
        "node_name": "n1", "status": "up", "last_error": None, "source": "scrape", "down_since": None,
        "timestamp": TS_ISO, "age_seconds": 2.123, "interval_seconds": 5.0,
        "cpu_millicores": 1500, "cpu_capacity_millicores": 4000, "cpu_percent": 37.5,
        "memory_bytes": 3 * GIB, "memory_available_bytes": 5 * GIB, "memory_total_bytes": 8 * GIB,
        "memory_percent": 37.5,
        "disk_io": DISK, "network_io": NET,
        "filesystem": {"size_bytes": 100000000000, "avail_bytes": 25000000000, "used_bytes": 75000000000,
                       "percent": 75.0},
        "pod_count": 7,
        "human": {"cpu": "1.5 cores", "cpu_capacity": "4 cores", "cpu_percent": "37.5%",
                  "memory": "3 GiB", "memory_total": "8 GiB", "memory_percent": "37.5%", **IO_HUMAN},
    })


def test_node_cpu_from_the_counter_rate_and_memory_percent_of_total() -> None:
    # no gauge: the counter rate; 2 of 3 GiB is 66.67 %
    values = {"memory_used_bytes": 2.0 * GIB, "memory_total_bytes": 3.0 * GIB, "cpu_capacity_cores": 3.0}
    s = sample(values, rates={"cpu_seconds_total": 0.7500000000000001})
    doc = views.node_doc(node_view(s), now=TS)
    assert_same_json([doc[k] for k in ("cpu_millicores", "cpu_capacity_millicores", "cpu_percent",
                                       "memory_percent", "age_seconds")], [750, 3000, 25.0, 66.67, 0.0])
    assert doc["human"]["memory_percent"] == "66.7%" and doc["human"]["cpu"] == "0.75 cores"


def test_node_filesystem_without_avail_has_no_used_or_percent() -> None:
    s = sample({"filesystem_size_bytes": 100e9})
    fs = views.node_doc(node_view(s), now=TS)["filesystem"]
    assert_same_json(fs, {"size_bytes": 100000000000, "avail_bytes": None, "used_bytes": None,
                          "percent": None})
    assert views.node_doc(node_view(sample({"filesystem_avail_bytes": 1e9})), now=TS)["filesystem"] is None


def test_down_node_without_a_sample_is_all_null_but_its_identity() -> None:
    view = node_view(None, status="down", last_error="timeout", down_since=TS + 1.5, pod_count=0,
                     source="push")
    assert_same_json(views.node_doc(view, now=TS + 10), {
        "node_name": "n1", "status": "down", "last_error": "timeout", "source": "push",
        "down_since": "2023-11-14T22:13:21.500Z", "timestamp": None, "age_seconds": None,
        "interval_seconds": None, "cpu_millicores": None, "cpu_capacity_millicores": None,
        "cpu_percent": None,
        "memory_bytes": None, "memory_available_bytes": None, "memory_total_bytes": None,
        "memory_percent": None, "disk_io": NONE_DISK, "network_io": NONE_NET, "filesystem": None,
        "pod_count": 0,
        "human": {"cpu": None, "cpu_capacity": None, "cpu_percent": None, "memory": None,
                  "memory_total": None, "memory_percent": None, **NONE_IO_HUMAN},
    })


# ---- pods, containers, groups ----

POD_VALUES = {
    "cpu_usage_cores": 0.25, "cpu_request_cores": 0.5, "cpu_limit_cores": 2.0,
    "memory_working_set_bytes": 200e6, "memory_usage_bytes": 300e6,
    "memory_request_bytes": 400e6, "memory_limit_bytes": 800e6, **IO_TOTALS,
}
USAGE = {
    "timestamp": TS_ISO, "cpu_millicores": 250, "cpu_request_millicores": 500, "cpu_limit_millicores": 2000,
    "cpu_percent_of_request": 50.0, "cpu_percent_of_limit": 12.5,
    "memory_bytes": 200000000, "memory_usage_bytes": 300000000, "memory_request_bytes": 400000000,
    "memory_limit_bytes": 800000000, "memory_percent_of_request": 50.0, "memory_percent_of_limit": 25.0,
    "disk_io": DISK, "network_io": NET,
    "human": {"cpu": "0.25 cores", "cpu_request": "0.5 cores", "cpu_limit": "2 cores", "memory": "191 MiB",
              "memory_request": "381 MiB", "memory_limit": "763 MiB", **IO_HUMAN},
}


def pod_view(s: Sample, **over: Any) -> PodView:
    fields: dict[str, Any] = {"namespace": "shop", "pod": "web-1", "uid": "u-1", "node": "n1",
                              "deployment": "web", "owner_kind": "ReplicaSet", "owner_name": "web-7d9f",
                              "last_seen": TS, "sample": s}
    fields.update(over)
    return PodView(**fields)


APP = ContainerReading("app", {"cpu_usage_cores": 0.2, "cpu_request_cores": 0.4, "cpu_limit_cores": 0.8,
                               "cpu_seconds_total": 3.00049, "memory_working_set_bytes": 150e6,
                               "memory_request_bytes": 200e6, "memory_limit_bytes": 300e6})


def test_pod_document_every_field() -> None:
    s = sample({**POD_VALUES, "host_network": 0.0}, deltas=IO_DELTAS, rates=IO_RATES, interval=4.5)
    doc = views.pod_doc(pod_view(s, containers=(APP,)), now=TS + 7.4567)
    assert_same_json(doc, {
        "pod_name": "web-1", "namespace": "shop", "uid": "u-1", "node_name": "n1", "deployment": "web",
        "owner_kind": "ReplicaSet", "owner_name": "web-7d9f", "age_seconds": 7.457, "interval_seconds": 4.5,
        "host_network": False, **USAGE, "containers": [views.container_doc(APP)],
    })


@pytest.mark.parametrize(("flag", "want"), [(1.0, True), (0.0, False), (0.5, False), (None, None)])
def test_pod_host_network_flag(flag: float | None, want: bool | None) -> None:
    values = {} if flag is None else {"host_network": flag}
    assert views.pod_doc(pod_view(sample(values)), now=TS)["host_network"] is want


def test_unowned_pod_serves_null_owner_and_null_usage() -> None:
    doc = views.pod_doc(pod_view(sample(interval=None), deployment="", owner_kind="", owner_name=""), now=TS)
    assert (doc["deployment"], doc["owner_kind"], doc["owner_name"], doc["interval_seconds"]) == (None,) * 4
    for key in ("cpu_millicores", "cpu_request_millicores", "cpu_limit_millicores", "cpu_percent_of_request",
                "cpu_percent_of_limit", "memory_bytes", "memory_usage_bytes", "memory_request_bytes",
                "memory_limit_bytes", "memory_percent_of_request", "memory_percent_of_limit"):
        assert doc[key] is None, key
    assert doc["containers"] == [] and set(doc["human"].values()) == {None}


def test_container_document_every_field_and_json_types() -> None:
    """Containers follow the pods' rule: whole byte counts and millicores are JSON integers (they were
    served as 150000000.0 and 200.0 beside the pod's 200000000 and 250)."""
    assert_same_json(views.container_doc(APP), {
        "name": "app", "cpu_millicores": 200, "cpu_request_millicores": 400, "cpu_limit_millicores": 800,
        "cpu_percent_of_request": 50.0, "cpu_percent_of_limit": 25.0, "cpu_seconds_total": 3.0,
        "memory_bytes": 150000000, "memory_request_bytes": 200000000, "memory_limit_bytes": 300000000,
        "memory_percent_of_request": 75.0, "memory_percent_of_limit": 50.0,
        "human": {"cpu": "0.2 cores", "cpu_request": "0.4 cores", "cpu_limit": "0.8 cores",
                  "memory": "143 MiB", "memory_request": "191 MiB", "memory_limit": "286 MiB"},
    })


def test_container_cpu_keeps_three_decimals_and_unknowns_are_null() -> None:
    c = ContainerReading("side", {"cpu_usage_cores": 0.0123456, "memory_working_set_bytes": 1536.5})
    doc = views.container_doc(c)
    assert_same_json([doc[k] for k in ("cpu_millicores", "cpu_request_millicores", "cpu_limit_millicores",
                                       "cpu_percent_of_request", "cpu_percent_of_limit", "cpu_seconds_total",
                                       "memory_bytes", "memory_request_bytes", "memory_limit_bytes",
                                       "memory_percent_of_request", "memory_percent_of_limit")],
                     [12.346, None, None, None, None, None, 1536.5, None, None, None, None])
    assert doc["human"] == {"cpu": "0.0123 cores", "cpu_request": None, "cpu_limit": None,
                            "memory": "1.5 KiB", "memory_request": None, "memory_limit": None}
    empty = views.container_doc(ContainerReading("none", {"memory_working_set_bytes": math.nan}))
    assert empty["cpu_millicores"] is None and empty["memory_bytes"] is None


def test_group_documents() -> None:
    s = sample(POD_VALUES, deltas=IO_DELTAS, rates=IO_RATES)
    deployment = views.group_doc(GroupView(namespace="shop", deployment="web", round_id=12, pod_count=3,
                                           sample=s))
    assert_same_json(deployment, {"namespace": "shop", "deployment": "web", "pod_count": 3, "round_id": 12,
                                  **USAGE})
    assert list(deployment)[:4] == ["namespace", "deployment", "pod_count", "round_id"]
    namespace = views.group_doc(GroupView(namespace="shop", deployment="", round_id=12, pod_count=5,
                                          sample=s))
    assert "deployment" not in namespace and namespace["pod_count"] == 5 and namespace["round_id"] == 12


# ---- series points ----

def test_points_rates_use_the_time_since_the_previous_stored_point() -> None:
    points = [
        Point(100.0, (100.0, 1e6, 1000.0, 2000.0, 3000.0, 4000.0)),
        Point(104.0, (1950.0000000000455, 2e6 + 0.5, 1000.0, 2000.0, 3000.0, 4000.0)),
        Point(104.0, (None, None, 10.0, None, None, None)),  # same time: no interval, no rate
        Point(107.0, (0.0, 0.0, 10.0, 0.0, 1.0, None)),
    ]
    out = views.points_doc(points, since=104.0)
    assert_same_json(out, [
        {"timestamp": "1970-01-01T00:01:44.000Z", "cpu_millicores": 1950, "memory_bytes": 2000000.5,
         "disk_io": {"read_bytes": 1000, "write_bytes": 2000, "read_bytes_per_second": 250.0,
                     "write_bytes_per_second": 500.0},
         "network_io": {"bytes_recv": 3000, "bytes_sent": 4000, "bytes_recv_per_second": 750.0,
                        "bytes_sent_per_second": 1000.0}},
        {"timestamp": "1970-01-01T00:01:44.000Z", "cpu_millicores": None, "memory_bytes": None,
         "disk_io": {"read_bytes": 10, "write_bytes": None, "read_bytes_per_second": None,
                     "write_bytes_per_second": None},
         "network_io": {"bytes_recv": None, "bytes_sent": None, "bytes_recv_per_second": None,
                        "bytes_sent_per_second": None}},
        {"timestamp": "1970-01-01T00:01:47.000Z", "cpu_millicores": 0, "memory_bytes": 0,
         "disk_io": {"read_bytes": 10, "write_bytes": 0, "read_bytes_per_second": 3.333,
                     "write_bytes_per_second": 0.0},
         "network_io": {"bytes_recv": 1, "bytes_sent": None, "bytes_recv_per_second": 0.333,
                        "bytes_sent_per_second": None}},
    ])
    first = views.points_doc(points[:1], since=0.0)[0]
    assert first["disk_io"]["read_bytes_per_second"] is None and first["disk_io"]["read_bytes"] == 1000


def test_points_with_time_going_back_have_no_rate() -> None:
    points = [Point(110.0, (1.0, 1.0, 8.0, 0.0, 0.0, 0.0)), Point(105.0, (1.0, 1.0, 8.0, 0.0, 0.0, 0.0)),
              Point(109.0, (1.0, 1.0, 8.0, 0.0, 0.0, 0.0))]
    rates = [p["disk_io"]["read_bytes_per_second"] for p in views.points_doc(points, since=0.0)]
    assert rates == [None, None, 2.0]  # 109 follows 105: 4 s


# ---- the pod document cache ----

def _counting(monkeypatch: pytest.MonkeyPatch, builder: str, name: Callable[[Any], str]) -> list[str]:
    """The names of the entities whose documents views.<builder> builds from now on, in order."""
    built: list[str] = []
    real = getattr(views, builder)

    def counting(entity: Any, *, now: float) -> dict[str, Any]:
        built.append(name(entity))
        return real(entity, now=now)  # type: ignore[no-any-return]

    monkeypatch.setattr(views, builder, counting)
    return built


def counting_pod_doc(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the pods whose documents views.pod_doc builds from now on, in order."""
    return _counting(monkeypatch, "pod_doc", lambda pod: pod.pod)


def test_pod_doc_cache_reuses_a_doc_only_for_the_same_sample_and_node(
        monkeypatch: pytest.MonkeyPatch) -> None:
    built = counting_pod_doc(monkeypatch)
    cache = views.PodDocCache()
    s1 = sample(POD_VALUES)
    a, b = pod_view(s1, pod="a"), pod_view(sample(POD_VALUES), pod="b")
    first = cache.docs([a, b], now=TS + 1, full=True)
    assert built == ["a", "b"] and [d["age_seconds"] for d in first] == [1.0, 1.0]
    again = cache.docs([a, b], now=TS + 2.12345, full=True)
    assert built == ["a", "b"]  # both reused, only the age is new (3 decimals)
    assert [d["age_seconds"] for d in again] == [2.123, 2.123] and first[0]["age_seconds"] == 1.0
    assert again[0] == {**first[0], "age_seconds": 2.123}
    # a new sample, or the same sample on another node, is built again
    a2 = pod_view(sample({**POD_VALUES, "cpu_usage_cores": 0.5}), pod="a")
    moved = pod_view(s1, pod="a", node="n2")
    assert cache.docs([a2], now=TS, full=False)[0]["cpu_millicores"] == 500
    assert cache.docs([moved], now=TS, full=False)[0]["node_name"] == "n2"
    assert built == ["a", "b", "a", "a"]
    cache.docs([a, b], now=TS, full=False)  # partial listings only read the cache: a and b are still there
    assert built == ["a", "b", "a", "a"]
    cache.docs([b], now=TS, full=True)  # the full listing replaces it: a is dropped
    assert built == ["a", "b", "a", "a"]
    cache.docs([a, b], now=TS, full=False)
    assert built == ["a", "b", "a", "a", "a"]


# ---- the encoded listing (PodDocCache.encoded) and its encoder ----

def test_json_dumps_is_compact_and_refuses_nan() -> None:
    assert views.json_dumps({"a": 1, "b": [1.5, None], "c": "é"}) == b'{"a":1,"b":[1.5,null],"c":"\\u00e9"}'
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="JSON compliant"):
            views.json_dumps({"x": bad})


def test_encoded_listing_ages_and_encodes_each_pod_once() -> None:
    encodings: list[object] = []

    def counting(value: object) -> bytes:
        encodings.append(value)
        return views.json_dumps(value)

    cache = views.PodDocCache(dumps=counting)
    a, b = pod_view(sample(POD_VALUES), pod="a"), pod_view(sample(POD_VALUES, ts=TS - 1), pod="b")
    assert cache.docs([a, b], now=TS, full=True)[1]["age_seconds"] == 1.0
    assert encodings == []  # documents alone are never encoded
    raw = b"".join(cache.encoded([a, b], now=TS + 2.12345, full=True))
    listed = json.loads(raw)
    assert [d["age_seconds"] for d in listed] == [2.123, 3.123] and listed[0]["pod_name"] == "a"
    assert listed == cache.docs([a, b], now=TS + 2.12345, full=False)
    assert len(encodings) == 2
    b"".join(cache.encoded([a, b], now=TS + 3, full=True))  # the full listing kept both encodings
    assert len(encodings) == 2
    assert cache.encoded([], now=TS, full=False) == [b"[]"]


# ---- the node document cache ----

def test_node_doc_cache_answers_what_node_doc_does_and_rebuilds_only_a_changed_view(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = views.node_doc
    built = _counting(monkeypatch, "node_doc", lambda node: node.name)
    s1 = sample(NODE_VALUES, deltas=IO_DELTAS, rates=IO_RATES)
    s2 = sample(NODE_VALUES, ts=TS - 3.0)
    nodes = [node_view(s1), node_view(s2, name="n2"), node_view(None, name="n3", status="down",
                                                                  last_error="connection refused")]
    cache = views.NodeDocCache()
    for now in (TS + 2.12345, TS + 7.5):  # the second answer: every document reused, ages of now
        got = cache.docs(nodes, now=now)
        assert_same_json(got, [real(n, now=now) for n in nodes])
        assert list(got[0]) == list(real(nodes[0], now=now))  # age_seconds keeps its place
    assert built == ["n1", "n2", "n3"]
    changed = [
        node_view(sample(NODE_VALUES, deltas=IO_DELTAS, rates=IO_RATES)),  # a new sample, equal values
        node_view(s2, name="n2", pod_count=8),
        node_view(None, name="n3", status="down", last_error="connection refused"),  # the same
    ]
    built.clear()
    assert_same_json(cache.docs(changed, now=TS + 9), [real(n, now=TS + 9) for n in changed])
    assert built == ["n1", "n2"]
    for field, value in (("status", "stale"), ("last_error", "x"), ("source", "push"),
                         ("down_since", TS)):
        built.clear()
        view = node_view(s2, name="n2", pod_count=8, **{field: value})
        assert_same_json(cache.docs([view], now=TS + 9), [real(view, now=TS + 9)])
        assert built == ["n2"], field
    built.clear()
    cache.docs([node_view(s1)], now=TS + 9)  # n1's sample was replaced and n2, n3 left the last listing
    cache.docs([node_view(s1), nodes[2]], now=TS + 9)
    assert built == ["n1", "n3"]
