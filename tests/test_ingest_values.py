"""Push ingest's values and verdicts, exactly (aggregator/ingest.py): the bounds of every check, the
message and field each rejection names (they are the 400 body), the gauges and running totals a push
stores, and which pod identity it is stored under.

Unit tests on the parsers and on `PushIngest` over a real Store with a settable clock (no server).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from aggregator.ingest import IngestError, PushIngest, StaleTimestamp, parse_node_body, parse_pod_body
from aggregator.stats import AggregatorStats
from aggregator.store.store import Store
from tests.test_store import Clock

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
NOW_ISO = "2023-11-14T22:13:20Z"


def body(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "node_name": "n1", "cpu_millicores": 1500, "memory_bytes": 10,
        "disk_io": {"read_bytes": 1, "write_bytes": 2}, "network_io": {"bytes_recv": 3, "bytes_sent": 4},
        "timestamp": NOW_ISO,
    }
    doc.update(over)
    return {k: v for k, v in doc.items() if v is not None}


def rejected(doc: Any, *, pod: bool = False, now: float = NOW,
             max_skew: float = 60.0) -> tuple[str, str | None]:
    with pytest.raises(IngestError) as e:
        if pod:
            parse_pod_body(doc, namespace="ns", pod="p", now=now, max_skew=max_skew)
        else:
            parse_node_body(doc, node="n1", now=now, max_skew=max_skew)
    return str(e.value), e.value.field


# ---- what a valid push holds ----

def test_node_body_values() -> None:
    pushed = parse_node_body(body(cpu_capacity_millicores=4000, memory_total_bytes=40), node="n1", now=NOW)
    assert pushed.node == "n1" and pushed.timestamp == NOW and pushed.extra == {}
    assert pushed.gauges == {"cpu_usage_cores": 1.5, "cpu_capacity_cores": 4.0, "memory_total_bytes": 40.0,
                             "memory_used_bytes": 10.0, "memory_available_bytes": 30.0}
    assert pushed.interval_bytes == {"disk_read_bytes_total": 1.0, "disk_written_bytes_total": 2.0,
                                     "network_receive_bytes_total": 3.0, "network_transmit_bytes_total": 4.0}
    bare = parse_node_body(body(), node="n1", now=NOW)
    assert bare.gauges == {"cpu_usage_cores": 1.5, "memory_used_bytes": 10.0}  # no total: no available


def test_node_memory_available_is_never_negative() -> None:
    pushed = parse_node_body(body(memory_bytes=50, memory_total_bytes=40), node="n1", now=NOW)
    assert pushed.gauges["memory_available_bytes"] == 0.0


def test_pod_body_values_and_names() -> None:
    doc = body(namespace="ns", pod_name="p", uid="Push UID/1", deployment="api", cpu_request_millicores=250,
               cpu_limit_millicores=500, memory_request_bytes=64, memory_limit_bytes=128)
    pushed = parse_pod_body(doc, namespace="ns", pod="p", now=NOW)
    assert pushed.extra == {"namespace": "ns", "pod_name": "p", "uid": "Push UID/1", "deployment": "api"}
    assert pushed.gauges == {"cpu_usage_cores": 1.5, "cpu_request_cores": 0.25, "cpu_limit_cores": 0.5,
                             "memory_request_bytes": 64.0, "memory_limit_bytes": 128.0,
                             "memory_working_set_bytes": 10.0}


@pytest.mark.parametrize("value", [0, 0.0, 1e18, 10**18, 0.5])
def test_number_bounds_accepted(value: float) -> None:
    assert parse_node_body(body(memory_bytes=value), node="n1", now=NOW).gauges["memory_used_bytes"] == value


@pytest.mark.parametrize(("value", "shown"), [
    (-1, "-1"), (-0.001, "-0.001"), (1e18 + 2**10, "1.000000000000001e+18"),
    (10**18 + 1, "1000000000000000001"),
    (math.nan, "nan"), (math.inf, "inf"), (10**400, "1" + "0" * 400),
])
def test_number_bounds_rejected(value: float, shown: str) -> None:
    assert rejected(body(memory_bytes=value)) == (
        f"memory_bytes must be a finite number between 0 and 1e18, got {shown}", "memory_bytes")


@pytest.mark.parametrize(("value", "kind"),
                         [("250", "str"), (True, "bool"), (None, "NoneType"), ([1], "list")])
def test_number_types_rejected(value: Any, kind: str) -> None:
    doc = body()
    doc["cpu_millicores"] = value
    assert rejected(doc) == (f"cpu_millicores must be a number, got {kind}", "cpu_millicores")


def test_nested_and_optional_numbers_name_their_path() -> None:
    assert rejected(body(disk_io={"read_bytes": -1, "write_bytes": 0})) == (
        "disk_io.read_bytes must be a finite number between 0 and 1e18, got -1", "disk_io.read_bytes")
    assert rejected(body(cpu_capacity_millicores="8")) == (
        "cpu_capacity_millicores must be a number, got str", "cpu_capacity_millicores")
    assert rejected(body(memory_bytes="1"), pod=True) == (
        "memory_bytes must be a number, got str", "memory_bytes")


def test_structure_rejections() -> None:
    assert rejected([1, 2]) == ("the body must be a JSON object", None)
    assert rejected(body(gpu=1, zram=2)) == ("unknown field(s): gpu, zram", "gpu")
    assert rejected({"node_name": "n1", "timestamp": NOW_ISO}) == (
        "missing field(s): cpu_millicores, memory_bytes, disk_io, network_io", "cpu_millicores")
    assert rejected(body(disk_io=[1, 2])) == ("disk_io must be an object", "disk_io")
    assert rejected(body(network_io={"bytes_recv": 1, "bytes_sent": 2, "b": 3, "a": 4})) == (
        "unknown field(s) in network_io: a, b", "network_io")
    assert rejected(body(network_io={"bytes_recv": 1})) == ("missing field network_io.bytes_sent",
                                                            "network_io.bytes_sent")
    # a node body takes no pod fields, and the reverse
    assert rejected(body(namespace="ns")) == ("unknown field(s): namespace", "namespace")
    assert rejected(body(cpu_capacity_millicores=1), pod=True) == (
        "unknown field(s): cpu_capacity_millicores", "cpu_capacity_millicores")


def test_names() -> None:
    longest = "a" * 253
    assert parse_node_body(body(node_name=longest), node=longest, now=NOW).node == longest
    too_long = "a" * 254
    assert rejected(body(node_name=too_long)) == (
        f"node_name must be a Kubernetes object name, got '{too_long}'", "node_name")
    assert rejected(body(node_name=7)) == ("node_name must be a Kubernetes object name, got 7", "node_name")
    assert rejected(body(node_name="Bad_Name")) == (
        "node_name must be a Kubernetes object name, got 'Bad_Name'", "node_name")
    assert rejected(body(node_name="n2")) == (
        "node_name 'n2' does not match the path's node 'n1'", "node_name")
    assert rejected(body(deployment="API"), pod=True) == (
        "deployment must be a Kubernetes object name, got 'API'", "deployment")
    assert rejected(body(namespace="other"), pod=True) == ("namespace 'other' does not match the path's 'ns'",
                                                           "namespace")
    assert rejected(body(pod_name="q"), pod=True) == (
        "pod_name 'q' does not match the path's 'p'", "pod_name")


@pytest.mark.parametrize("uid", ["u", "U" * 128, "5f0c-uid", "Not A Name/UID"])
def test_uid_accepted(uid: str) -> None:
    assert parse_pod_body(body(uid=uid), namespace="ns", pod="p", now=NOW).extra == {"uid": uid}


@pytest.mark.parametrize("uid", ["", "u" * 129, 12, ["u"]])
def test_uid_rejected(uid: Any) -> None:
    assert rejected(body(uid=uid), pod=True) == ("uid must be a non-empty string", "uid")


def test_timestamps() -> None:
    def ts(value: Any, *, now: float = NOW, max_skew: float = 60.0) -> float:
        return parse_node_body(body(timestamp=value), node="n1", now=now, max_skew=max_skew).timestamp

    # exactly the allowed skew either way is accepted
    assert ts("2023-11-14T22:14:20Z") == NOW + 60 and ts("2023-11-14T22:12:20Z") == NOW - 60
    assert ts("2023-11-14T23:13:20.5+01:00") == NOW + 0.5
    assert ts("1970-01-01T00:00:01Z", now=0.0, max_skew=1e10) == 1.0
    assert rejected(body(timestamp="2023-11-14T22:14:20.001Z")) == (
        "timestamp '2023-11-14T22:14:20.001Z' is 60s ahead of the aggregator's clock (--max-push-skew 60s)",
        "timestamp")
    assert rejected(body(timestamp="2023-11-14T22:13:20.8Z"), max_skew=0.5) == (
        "timestamp '2023-11-14T22:13:20.8Z' is 1s ahead of the aggregator's clock (--max-push-skew 0.5s)",
        "timestamp")
    assert rejected(body(timestamp="2023-11-14T22:12:19Z"), max_skew=0.5) == (
        "timestamp '2023-11-14T22:12:19Z' is 61s behind the aggregator's clock (--max-push-skew 0.5s)",
        "timestamp")
    assert rejected(body(timestamp="1970-01-01T00:00:00Z"), now=0.0, max_skew=1e10) == (
        "timestamp '1970-01-01T00:00:00Z' is before 1970", "timestamp")
    assert rejected(body(timestamp="1969-12-31T23:59:59Z"), now=0.0, max_skew=1e10) == (
        "timestamp '1969-12-31T23:59:59Z' is before 1970", "timestamp")
    assert rejected(body(timestamp=1700000000)) == (
        "timestamp must be an ISO-8601 string such as 2024-01-01T00:00:00Z", "timestamp")
    assert rejected(body(timestamp="yesterday")) == ("timestamp is not ISO-8601: 'yesterday'", "timestamp")
    assert rejected(body(timestamp="2023-11-14T22:13:20")) == (
        "timestamp needs a time zone (end it with Z for UTC)", "timestamp")


# ---- PushIngest: running totals, identity, staleness ----

def ingest(max_skew: float = 60.0) -> tuple[PushIngest, Store, AggregatorStats, Clock]:
    clock = Clock(NOW)
    stats = AggregatorStats()
    store = Store(clock=clock, stats=stats)
    return PushIngest(store=store, stats=stats, max_skew=max_skew), store, stats, clock


def iso(ts: float) -> str:
    from datetime import UTC, datetime
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def test_each_node_keeps_its_own_running_totals() -> None:
    push, store, _, clock = ingest()
    push.push_node("a", body(node_name="a", disk_io={"read_bytes": 100, "write_bytes": 0}))
    push.push_node("b", body(node_name="b", disk_io={"read_bytes": 7, "write_bytes": 0}))
    clock.now += 5
    push.push_node("a", body(node_name="a", timestamp=iso(clock.now),
                             disk_io={"read_bytes": 50, "write_bytes": 1}))
    a, b = store.node("a"), store.node("b")
    assert a is not None and b is not None and a.sample is not None and b.sample is not None
    assert a.sample.values["disk_read_bytes_total"] == 150
    assert a.sample.values["disk_written_bytes_total"] == 1
    assert a.sample.deltas["disk_read_bytes_total"] == 50
    assert b.sample.values["disk_read_bytes_total"] == 7
    assert a.source == "push" and a.sample.values["cpu_usage_cores"] == 1.5


def test_each_pod_keeps_its_own_running_totals_and_identity() -> None:
    push, store, _, clock = ingest()
    push.push_pod("ns", "p1", body(network_io={"bytes_recv": 1000, "bytes_sent": 1}, deployment="api",
                                   namespace="ns", pod_name="p1"))
    push.push_pod("ns", "p2", body(network_io={"bytes_recv": 9, "bytes_sent": 1}))
    clock.now += 5
    push.push_pod("ns", "p1", body(network_io={"bytes_recv": 24, "bytes_sent": 1}, timestamp=iso(clock.now),
                                   deployment="api"))
    (p1,) = store.find_pods("p1", namespace="ns")
    (p2,) = store.find_pods("p2", namespace="ns")
    assert p1.sample.values["network_receive_bytes_total"] == 1024
    assert p2.sample.values["network_receive_bytes_total"] == 9
    assert (p1.uid, p1.deployment, p1.owner_kind, p1.owner_name, p1.node) == (
        "push:ns/p1", "api", "Deployment", "api", "n1")
    assert (p2.uid, p2.deployment, p2.owner_kind, p2.owner_name) == ("push:ns/p2", "", "", "")


def test_pushed_uid_is_kept() -> None:
    push, store, _, _ = ingest()
    push.push_pod("ns", "p", body(uid="5f0c-uid"))
    (p,) = store.find_pods("p", namespace="ns")
    assert p.uid == "5f0c-uid"


def test_push_uses_the_ingest_max_skew() -> None:
    push, store, _, _ = ingest(max_skew=600.0)
    push.push_node("a", body(node_name="a", timestamp=iso(NOW + 300)))
    push.push_pod("ns", "p", body(timestamp=iso(NOW - 300)))
    assert store.node("a") is not None and len(store.find_pods("p", namespace="ns")) == 1
    strict, _, stats, _ = ingest(max_skew=10.0)
    with pytest.raises(IngestError, match="11s ahead"):
        strict.push_node("a", body(node_name="a", timestamp=iso(NOW + 11)))
    assert stats.snapshot()["errors"] == {"ingest": 1}


def test_stale_pushes_are_rejected_and_counted() -> None:
    push, _, stats, _ = ingest()
    push.push_node("a", body(node_name="a"))
    with pytest.raises(StaleTimestamp) as node_err:
        push.push_node("a", body(node_name="a"))
    assert (str(node_err.value), node_err.value.field) == (
        "timestamp is not newer than the one stored for a", "timestamp")
    push.push_pod("ns", "p", body())
    with pytest.raises(StaleTimestamp) as pod_err:
        push.push_pod("ns", "p", body())
    assert str(pod_err.value) == "timestamp is not newer than the one stored for ns/p"
    with pytest.raises(IngestError):
        push.push_pod("ns", "p", body(namespace="other"))
    assert stats.snapshot()["errors"] == {"ingest": 3}
