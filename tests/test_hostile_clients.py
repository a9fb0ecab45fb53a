"""Hostile clients against the aggregator's app (falcon.testing over a populated store).

Hypothesis drives every route template with random path segments, methods and query parameters:
never a 5xx, always a JSON body (the Prometheus text of /metrics excepted), no unhandled error
counted. Then 1,000 bad push bodies with a valid token: each one a 4xx, and every listing, series
and the federation byte-identical before and after. Schemathesis against the OpenAPI document runs
in tests/test_openapi.py.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.api.app import routes
from aggregator.api.context import ApiContext
from aggregator.api.push import PushAuth
from aggregator.ingest import MAX_BODY_BYTES, PushIngest
from tests.test_api import TOKEN, World, make_world
from tests.test_ingest import iso

AUTH = {"Authorization": f"Bearer {TOKEN}"}
KNOWN = ["node-a", "node-b", "web-7d9f-abc12", "db-0", "shop", "other", "web", "5f0c-uid", "x"]
HOSTILE_TEXT = ["", " ", "..", ".", "%", "%00", "\x00", "a" * 300, "ünï", "🚀", "<script>", "'; DROP",
                "NaN", "-1", "1e309", "0x10", "9" * 400, "a/b", "a\\b", "\n", "Shop", "-shop", "shop-"]


def _templates() -> list[str]:
    """Every URI template the app routes (the list the OpenAPI test compares with the document)."""
    w = make_world(rounds=1)
    ctx = ApiContext(store=w.store, status=w.status, federation=w.federation, stats=w.stats,
                     default_window=300.0, started_at=0.0, version="t")
    return [t for t, _r in routes(ctx, ingest=PushIngest(store=w.store, stats=w.stats),
                                  auth=PushAuth(TOKEN, w.stats))]


ALL_TEMPLATES = _templates()
segments = st.one_of(st.sampled_from(KNOWN), st.sampled_from(HOSTILE_TEXT), st.text(max_size=80))
query_values = st.one_of(
    st.sampled_from(["60", "300", "0", "-5", "nan", "inf", "-inf", "1e309", "1e-320", "99999999", "",
                     "0x1f", "1_000", " 60 ", "60s", "shop", "SHOP", "a" * 70, "true"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers().map(str),
    st.text(max_size=40),
)
queries = st.dictionaries(
    st.one_of(st.sampled_from(["window", "namespace", "limit", "node", ""]), st.text(max_size=10)),
    query_values, max_size=4)


@pytest.fixture(scope="module")
def world() -> World:
    return make_world(rounds=3)


def _fill(template: str, values: list[str]) -> str:
    it: Iterator[str] = iter(values)
    return re.sub(r"\{[a-z]+\}", lambda _m: quote(next(it), safe=""), template)


def _check(world: World, method: str, path: str, query: dict[str, str], **kw: Any) -> Any:
    r = world.client.simulate_request(method, path, query_string=urlencode(query), **kw)
    assert r.status_code < 500, (method, path, query, r.status_code, r.text[:300])
    assert world.stats.snapshot()["errors"].get("api", 0) == 0, "an unhandled error was logged"
    if method == "HEAD" or (method == "OPTIONS" and not r.content):
        return r
    # Falcon collapses repeated slashes, so "//metrics" is the exposition route too.
    if re.sub("/+", "/", path).rstrip("/") == "/metrics" and r.status_code == 200:
        assert r.headers["content-type"].startswith("text/plain")
        return r
    assert r.headers.get("content-type", "").startswith("application/json"), (method, path, r.headers)
    doc = json.loads(r.content)  # strict: no NaN/Infinity tokens, no HTML
    assert isinstance(doc, dict)
    if r.status_code >= 400:
        assert isinstance(doc.get("error"), str) and "Traceback" not in r.text
    return r


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(template=st.sampled_from(ALL_TEMPLATES), data=st.data(), query=queries,
       method=st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]))
def test_every_route_with_random_segments_methods_and_queries(
    world: World, template: str, data: st.DataObject, query: dict[str, str], method: str
) -> None:
    values = [data.draw(segments) for _ in re.findall(r"\{[a-z]+\}", template)]
    # POST with a valid token and an empty object: the push routes must check the path and the body
    extra: dict[str, Any] = {}
    if method == "POST":
        extra = {"headers": {**AUTH, "Content-Type": "application/json"}, "body": b"{}"}
    _check(world, method, _fill(template, values), query, **extra)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.lists(st.one_of(segments, st.sampled_from(["api", "nodes", "pods", "namespaces",
                                                             "deployments", "timeseries", "metrics"])),
                     max_size=7).map(lambda parts: "/" + "/".join(quote(p, safe="") for p in parts)),
       query=queries)
def test_random_paths_are_json_4xx_or_known_routes(world: World, path: str, query: dict[str, str]) -> None:
    _check(world, "GET", path, query)


# --- 1,000 bad push bodies -----------------------------------------------------------------------------

NODE_PATH = "/api/nodes/node-a/metrics"
POD_PATH = "/api/namespaces/shop/pods/web-7d9f-abc12/metrics"


def _valid_node(world: World) -> dict[str, Any]:
    return {"node_name": "node-a", "cpu_millicores": 250, "memory_bytes": 1 << 30,
            "disk_io": {"read_bytes": 4096, "write_bytes": 8192},
            "network_io": {"bytes_recv": 1000, "bytes_sent": 500},
            "timestamp": iso(world.clock.now + 1)}


def _valid_pod(world: World) -> dict[str, Any]:
    return {**_valid_node(world), "namespace": "shop", "pod_name": "web-7d9f-abc12", "uid": "u-web1",
            "deployment": "web"}


_KEYS = ["node_name", "cpu_millicores", "memory_bytes", "disk_io", "network_io", "timestamp", "read_bytes",
         "x", "", "__proto__"]
_SCALARS: list[Callable[[random.Random], Any]] = [
    lambda rng: None,
    lambda rng: rng.choice([True, False]),
    lambda rng: rng.choice([0, -1, 1, 2**63, 10**30, -(10**30), 10**400, 1e308, -1e308, 5e-324]),
    lambda rng: rng.choice([float("nan"), float("inf"), float("-inf"), 1.5, -0.0]),
    lambda rng: rng.choice(["", "x", "2024-01-01", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59",
                            "2024-13-45T99:99:99Z", "🚀" * 10, "\x00", "a" * 1000, "1e3", "NaN"]),
    lambda rng: rng.random() * 10 ** rng.randint(-5, 25),
]


def _garbage(rng: random.Random, depth: int = 0) -> Any:
    """Random JSON: scalars of every awkward kind, lists and objects nested up to 4 deep."""
    kind = rng.randrange(len(_SCALARS) + (3 if depth < 4 else 0))
    if kind < len(_SCALARS):
        return _SCALARS[kind](rng)
    if kind == len(_SCALARS):
        return [_garbage(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(_KEYS): _garbage(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def _mutations(world: World, valid: dict[str, Any]) -> list[Callable[[random.Random], Any]]:
    """Each turns the valid body into an invalid one (one field wrong, missing or extra)."""

    def wrong_field(rng: random.Random) -> Any:
        body = json.loads(json.dumps(valid))
        key = rng.choice(["cpu_millicores", "memory_bytes", "timestamp", "node_name", "disk_io",
                          "network_io"])
        bad = {"cpu_millicores": ["250", None, True, -1, 1e19, 10**400, [], {}],
               "memory_bytes": ["1", False, -5, 1e30, 10**40, [1], {"a": 1}],
               "timestamp": [0, 1700000000, "yesterday", "2024-01-01T00:00:00", "2999-01-01T00:00:00Z",
                             "0001-01-01T00:00:00+01:00", "1969-12-31T23:59:59Z", None, ""],
               "node_name": ["Node_A", "", 7, None, "a" * 300, "node-a\n", "-node"],
               "disk_io": [None, [], "x", {"read_bytes": 1}, {"read_bytes": 1, "write_bytes": 1, "x": 2},
                           {"read_bytes": -1, "write_bytes": 0}],
               "network_io": [0, {"bytes_recv": "1", "bytes_sent": 1}, {"bytes_recv": 1e400}]}[key]
        body[key] = rng.choice(bad)
        return body

    def missing(rng: random.Random) -> Any:
        body = dict(valid)
        del body[rng.choice(["node_name", "cpu_millicores", "memory_bytes", "disk_io", "network_io",
                             "timestamp"])]
        return body

    def extra(rng: random.Random) -> Any:
        return {**valid, rng.choice(["extra", "cpu", "Memory_bytes", ""]): _garbage(rng)}

    def not_an_object(rng: random.Random) -> Any:
        return rng.choice([[valid], "body", 1, None, True, []])

    def random_json(rng: random.Random) -> Any:
        return _garbage(rng)

    return [wrong_field, missing, extra, not_an_object, random_json]


def _raw_bodies(rng: random.Random) -> Iterator[tuple[bytes, str]]:
    """Bodies that are not JSON, not UTF-8, too deep or too large, with their content types."""
    yield b"{not json", "application/json"
    yield b"", "application/json"
    yield b"\xff\xfe{}", "application/json"
    yield b'{"cpu_millicores": NaN}', "application/json"
    yield b'{"cpu_millicores": Infinity}', "application/json"
    yield b"[" * 30_000 + b"]" * 30_000, "application/json"  # deeper than the recursion limit
    yield b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "application/json"
    yield b"1" * 5000, "application/json"  # an integer past Python's digit limit
    yield json.dumps({"pad": "x" * MAX_BODY_BYTES}).encode(), "application/json"
    yield b"x" * (MAX_BODY_BYTES * 4), "application/json"
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "", "application/jsonp",
                  "multipart/form-data; boundary=x", "application/xml"):
        yield b'{"node_name": "node-a"}', ctype
    while True:
        yield bytes(rng.randrange(256) for _ in range(rng.randint(1, 200))), rng.choice(
            ["application/json", "application/json; charset=utf-8", "text/json"])


def _encode(body: Any) -> bytes:
    # allow_nan: the point is to send NaN/Infinity tokens; 10**400 is written out as digits
    return json.dumps(body, allow_nan=True).encode()


def _snapshot(world: World) -> dict[str, bytes]:
    """Every listing and series the store serves, as raw bytes."""
    paths = ["/api/nodes", "/api/pods", "/api/namespaces", "/api/nodes/node-a", "/api/nodes/node-b",
             "/api/nodes/node-a/pods", "/api/nodes/node-a/timeseries?window=900",
             "/api/pods/web-7d9f-abc12?namespace=shop", "/api/pods/web-7d9f-abc12/timeseries?namespace=shop",
             "/api/namespaces/shop", "/api/namespaces/shop/pods", "/api/namespaces/shop/timeseries",
             "/api/namespaces/shop/deployments", "/api/namespaces/shop/deployments/web",
             "/api/deployments/web/timeseries?namespace=shop", "/metrics"]
    out = {}
    for p in paths:
        path, _, query = p.partition("?")
        r = world.client.simulate_get(path, query_string=query)
        assert r.status_code == 200, (p, r.text)
        out[p] = r.content
    out["counts"] = json.dumps(world.store.series_counts()).encode()
    return out


BAD_BODIES = 1000


def test_a_thousand_bad_push_bodies_are_4xx_and_change_nothing() -> None:
    world = make_world(rounds=3)
    rng = random.Random(1000)
    before = _snapshot(world)
    statuses: dict[int, int] = {}
    raw = _raw_bodies(rng)
    node_mutations = _mutations(world, _valid_node(world))
    pod_mutations = _mutations(world, _valid_pod(world))
    for i in range(BAD_BODIES):
        pod = i % 2 == 1
        path = POD_PATH if pod else NODE_PATH
        if i % 5 == 0:
            body, ctype = next(raw)
        else:
            mutate = rng.choice(pod_mutations if pod else node_mutations)
            body, ctype = _encode(mutate(rng)), "application/json"
        headers = {**AUTH, "Content-Type": ctype} if ctype else dict(AUTH)
        r = world.client.simulate_post(path, body=body, headers=headers)
        assert 400 <= r.status_code < 500, (i, body[:200], r.status_code, r.text[:300])
        assert r.headers["content-type"].startswith("application/json")
        assert isinstance(json.loads(r.content)["error"], str)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
    after = _snapshot(world)
    assert after == before, [k for k in before if before[k] != after[k]]
    errors = world.stats.snapshot()["errors"]
    assert errors.get("ingest", 0) == BAD_BODIES and errors.get("api", 0) == 0, errors
    # the same valid body is still accepted afterwards: the rejections left no state behind
    r = world.client.simulate_post(NODE_PATH, body=_encode(_valid_node(world)),
                                   headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    print(f"\n{BAD_BODIES} bad bodies: {dict(sorted(statuses.items()))}")


def test_numbers_too_large_for_a_float_and_nesting_too_deep_are_400_not_500() -> None:
    """Found by the bodies above: both were unhandled exceptions (500) before the fixes in ingest/push."""
    world = make_world(rounds=1)
    json_headers = {**AUTH, "Content-Type": "application/json"}
    for value in (10**400, -(10**400)):
        body = {**_valid_node(world), "cpu_millicores": value}
        r = world.client.simulate_post(NODE_PATH, body=_encode(body), headers=json_headers)
        assert r.status_code == 400 and r.json["field"] == "cpu_millicores", r.text
    r = world.client.simulate_post(NODE_PATH, body=b"[" * 30_000 + b"]" * 30_000, headers=json_headers)
    assert r.status_code == 400 and "nested too deeply" in r.json["description"], r.text
    assert world.stats.snapshot()["errors"].get("api", 0) == 0
