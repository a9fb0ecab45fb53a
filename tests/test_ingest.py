"""Push ingest: bearer auth, strict validation (nothing stored on bad input), limits, same listings."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from aggregator.ingest import IngestError, parse_node_body, parse_pod_body
from tests.test_api import TOKEN, World, get, make_world

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def node_body(world: World, node: str = "pushed-1", *, dt: float = 0.0, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "node_name": node,
        "cpu_millicores": 250,
        "memory_bytes": 1073741824,
        "disk_io": {"read_bytes": 4096, "write_bytes": 8192},
        "network_io": {"bytes_recv": 1000, "bytes_sent": 500},
        "timestamp": iso(world.clock.now + dt),
    }
    body.update(over)
    return body


def pod_body(world: World, *, dt: float = 0.0, **over: Any) -> dict[str, Any]:
    body = node_body(world, "node-a", dt=dt, deployment="api", uid="uid-p1", cpu_limit_millicores=1000)
    body.update(over)
    return body


def post(world: World, path: str, body: Any, *, headers: dict[str, str] | None = None, status: int) -> dict:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = world.client.simulate_post(
        path, body=raw, headers={"Content-Type": "application/json", **(AUTH if headers is None else headers)}
    )
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json


@pytest.fixture
def world() -> World:
    return make_world(rounds=1)


def test_node_push_appears_in_listings_and_series(world: World) -> None:
    assert post(world, "/api/nodes/pushed-1/metrics", node_body(world), status=201)["samples"] > 0
    world.clock.now += 5
    post(world, "/api/nodes/pushed-1/metrics", node_body(world), status=201)
    doc = get(world, "/api/nodes/pushed-1")
    assert doc["source"] == "push" and doc["status"] == "up" and doc["cpu_millicores"] == 250
    assert doc["memory_bytes"] == 1073741824
    # The seed's meaning is kept: disk_io.read_bytes is what moved during the pusher's interval.
    assert doc["disk_io"]["read_bytes"] == 4096 and doc["disk_io"]["read_bytes_per_second"] == 4096 / 5
    assert doc["disk_io"]["read_bytes_total"] == 8192
    assert "pushed-1" in [n["node_name"] for n in get(world, "/api/nodes")["nodes"]]
    assert len(get(world, "/api/nodes/pushed-1/timeseries")["points"]) == 2


def test_pod_push_appears_in_pods_and_roll_ups(world: World) -> None:
    post(world, "/api/namespaces/team/pods/api-1/metrics", pod_body(world), status=201)
    doc = get(world, "/api/pods/api-1")
    assert (doc["namespace"], doc["node_name"], doc["deployment"], doc["uid"]) == (
        "team",
        "node-a",
        "api",
        "uid-p1",
    )
    assert doc["cpu_percent_of_limit"] == 25.0 and doc["memory_bytes"] == 1073741824
    world.store.end_round(world.status.last)  # type: ignore[arg-type]
    assert get(world, "/api/namespaces/team")["pod_count"] == 1
    assert get(world, "/api/namespaces/team/deployments/api")["cpu_millicores"] == 250
    assert "api-1" in [p["pod_name"] for p in get(world, "/api/nodes/node-a/pods")["pods"]]


def test_auth_403_when_disabled_401_when_wrong() -> None:
    off = make_world(rounds=1, token="")
    assert post(off, "/api/nodes/x/metrics", node_body(off, "x"), status=403)["error"] == "forbidden"
    w = make_world(rounds=1)
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    ):
        doc = post(w, "/api/nodes/x/metrics", node_body(w, "x"), headers=headers, status=401)
        assert doc["error"] == "unauthorized"
    assert w.store.node("x") is None
    assert w.stats.snapshot()["errors"]["ingest_auth"] == 4


BAD_NODE_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("missing field", {"cpu_millicores": None}, "cpu_millicores"),
    ("string number", {"cpu_millicores": "250"}, "cpu_millicores"),
    ("bool number", {"memory_bytes": True}, "memory_bytes"),
    ("negative", {"memory_bytes": -1}, "memory_bytes"),
    ("unknown field", {"gpu": 1}, "gpu"),
    ("nested unknown", {"disk_io": {"read_bytes": 1, "write_bytes": 2, "x": 3}}, "disk_io"),
    ("nested missing", {"network_io": {"bytes_recv": 1}}, "network_io.bytes_sent"),
    ("nested type", {"disk_io": [1, 2]}, "disk_io"),
    ("name mismatch", {"node_name": "other"}, "node_name"),
    ("bad name", {"node_name": "Bad_Name"}, "node_name"),
    ("no timezone", {"timestamp": "2024-01-01T00:00:00"}, "timestamp"),
    ("not a date", {"timestamp": "yesterday"}, "timestamp"),
    ("numeric timestamp", {"timestamp": 1700000000}, "timestamp"),
    ("future", {"timestamp": "2999-01-01T00:00:00Z"}, "timestamp"),
]


@pytest.mark.parametrize(("case", "change", "field"), BAD_NODE_BODIES, ids=[c[0] for c in BAD_NODE_BODIES])
def test_bad_node_bodies_are_400_and_store_nothing(
    world: World, case: str, change: dict[str, Any], field: str
) -> None:
    body = node_body(world, "bad-1")
    for k, v in change.items():
        if v is None:
            del body[k]
        else:
            body[k] = v
    doc = post(world, "/api/nodes/bad-1/metrics", body, status=400)
    assert doc["error"] == "invalid_body" and doc["field"] == field, doc
    assert world.store.node("bad-1") is None
    assert world.stats.snapshot()["errors"]["ingest"] >= 1


def test_malformed_json_wrong_type_too_large(world: World) -> None:
    assert post(world, "/api/nodes/n/metrics", b"{not json", status=400)["error"] == "invalid_body"
    assert post(world, "/api/nodes/n/metrics", b"[1, 2]", status=400)["description"].startswith("the body")
    r = world.client.simulate_post(
        "/api/nodes/n/metrics", body=b"x", headers={**AUTH, "Content-Type": "text/plain"}
    )
    assert r.status_code == 415 and r.json["error"] == "unsupported_media_type"
    big = json.dumps({"pad": "x" * 70_000}).encode()
    assert post(world, "/api/nodes/n/metrics", big, status=413)["error"] == "too_large"
    assert world.store.node("n") is None


def test_stale_timestamp_is_409_and_totals_do_not_drift(world: World) -> None:
    post(world, "/api/nodes/p/metrics", node_body(world, "p"), status=201)
    assert (
        post(world, "/api/nodes/p/metrics", node_body(world, "p"), status=409)["error"] == "stale_timestamp"
    )
    post(world, "/api/nodes/p/metrics", node_body(world, "p", dt=5), status=201)
    doc = get(world, "/api/nodes/p")
    assert doc["disk_io"]["read_bytes_total"] == 8192  # the rejected push did not count
    pb = pod_body(world)
    post(world, "/api/namespaces/team/pods/api-1/metrics", pb, status=201)
    assert post(world, "/api/namespaces/team/pods/api-1/metrics", pb, status=409)["field"] == "timestamp"


def test_pod_body_path_mismatch_and_bad_path(world: World) -> None:
    doc = post(world, "/api/namespaces/team/pods/api-1/metrics", pod_body(world, namespace="x"), status=400)
    assert doc["field"] == "namespace"
    doc = post(world, "/api/namespaces/team/pods/api-1/metrics", pod_body(world, pod_name="y"), status=400)
    assert doc["field"] == "pod_name"
    assert post(world, "/api/namespaces/Bad_NS/pods/a/metrics", pod_body(world), status=400)["parameter"] == (
        "namespace"
    )
    assert world.store.find_pods("api-1") == []


def test_parsers_directly() -> None:
    now = 1_700_000_000.0
    body = {
        "node_name": "n1",
        "cpu_millicores": 1500,
        "memory_bytes": 10,
        "memory_total_bytes": 40,
        "disk_io": {"read_bytes": 1, "write_bytes": 2},
        "network_io": {"bytes_recv": 3, "bytes_sent": 4},
        "timestamp": "2023-11-14T22:13:20Z",
    }
    pushed = parse_node_body(body, node="n1", now=now)
    assert pushed.timestamp == now and pushed.gauges["cpu_usage_cores"] == 1.5
    assert pushed.gauges["memory_available_bytes"] == 30
    assert pushed.interval_bytes["network_transmit_bytes_total"] == 4
    with pytest.raises(IngestError, match="cpu_limit_millicores"):
        parse_node_body({**body, "cpu_limit_millicores": 1}, node="n1", now=now)
    pod_fields = {k: v for k, v in body.items() if k != "memory_total_bytes"}
    pod = parse_pod_body({**pod_fields, "cpu_limit_millicores": 500}, namespace="ns", pod="p", now=now)
    assert pod.gauges["cpu_limit_cores"] == 0.5 and pod.gauges["memory_working_set_bytes"] == 10
