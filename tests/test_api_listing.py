"""Pod listings: filters, sort order, paging; a query parameter a route does not take is a 400."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_api import TOKEN, World, make_world


@pytest.fixture(scope="module")
def world() -> World:
    return make_world()


def _get(world: World, path: str, query: str = "") -> dict[str, Any]:
    r = world.client.simulate_get(path, query_string=query)
    assert r.status_code == 200, r.json
    return r.json


def _names(doc: dict[str, Any]) -> list[str]:
    return [f"{p['namespace']}/{p['pod_name']}" for p in doc["pods"]]


ALL = ["/5f0c-uid", "other/db-0", "shop/db-0", "shop/web-7d9f-abc12", "shop/web-7d9f-def34"]


def test_unfiltered_listing_is_every_pod_by_namespace_and_name(world: World) -> None:
    doc = _get(world, "/api/pods")
    assert _names(doc) == ALL
    paging = (doc["count"], doc["total"], doc["offset"], doc["limit"], doc["next_offset"])
    assert paging == (5, 5, 0, None, None)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("namespace=shop", ["shop/db-0", "shop/web-7d9f-abc12", "shop/web-7d9f-def34"]),
        ("namespace=other", ["other/db-0"]),
        ("namespace=nowhere", []),
        ("node=node-a", ALL),
        ("node=node-b", []),
        ("deployment=web", ["shop/web-7d9f-abc12", "shop/web-7d9f-def34"]),
        ("q=db", ["other/db-0", "shop/db-0"]),
        ("q=DEF3", ["shop/web-7d9f-def34"]),
        ("namespace=shop&q=db", ["shop/db-0"]),
        ("namespace=&node=", ALL),  # empty means "no filter", as for ?namespace= elsewhere
    ],
)
def test_filters(world: World, query: str, expected: list[str]) -> None:
    doc = _get(world, "/api/pods", query)
    assert _names(doc) == expected
    assert doc["total"] == doc["count"] == len(expected)


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("name", ALL),
        ("-name", ALL[::-1]),
        # cpu: 1000m, 750m, 250m, 100m, 50m
        ("-cpu", ["shop/db-0", "shop/web-7d9f-def34", "shop/web-7d9f-abc12", "other/db-0", "/5f0c-uid"]),
        ("cpu", ["/5f0c-uid", "other/db-0", "shop/web-7d9f-abc12", "shop/web-7d9f-def34", "shop/db-0"]),
        # memory known for the two web pods only; the others follow in name order, either direction
        ("memory", ["shop/web-7d9f-def34", "shop/web-7d9f-abc12", "/5f0c-uid", "other/db-0", "shop/db-0"]),
        ("-memory", ["shop/web-7d9f-abc12", "shop/web-7d9f-def34", "/5f0c-uid", "other/db-0", "shop/db-0"]),
        # disk: only abc12 has disk counters; network: both web pods move the same bytes (a tie)
        ("-disk", ["shop/web-7d9f-abc12", "/5f0c-uid", "other/db-0", "shop/db-0", "shop/web-7d9f-def34"]),
        ("-network", ["shop/web-7d9f-abc12", "shop/web-7d9f-def34", "/5f0c-uid", "other/db-0", "shop/db-0"]),
    ],
)
def test_sort(world: World, sort: str, expected: list[str]) -> None:
    assert _names(_get(world, "/api/pods", f"sort={sort}")) == expected


def test_sort_values_are_what_the_documents_say(world: World) -> None:
    pods = _get(world, "/api/pods", "sort=-cpu")["pods"]
    cpus = [p["cpu_millicores"] for p in pods]
    assert cpus == sorted(cpus, reverse=True)


def test_paging_walks_the_sorted_list_once(world: World) -> None:
    whole = _names(_get(world, "/api/pods", "sort=-cpu"))
    seen: list[str] = []
    offset: int | None = 0
    pages = 0
    while offset is not None:
        doc = _get(world, "/api/pods", f"sort=-cpu&limit=2&offset={offset}")
        assert doc["total"] == 5 and doc["limit"] == 2 and doc["offset"] == offset
        assert doc["count"] == len(doc["pods"]) <= 2
        seen += _names(doc)
        offset = doc["next_offset"]
        pages += 1
    assert seen == whole
    assert pages == 3


def test_offset_past_the_end_is_an_empty_page(world: World) -> None:
    doc = _get(world, "/api/pods", "offset=50&limit=10")
    assert (doc["pods"], doc["count"], doc["total"], doc["next_offset"]) == ([], 0, 5, None)


def test_nested_pod_listings_take_the_paging_parameters(world: World) -> None:
    doc = _get(world, "/api/namespaces/shop/pods", "sort=-cpu&limit=1")
    assert _names(doc) == ["shop/db-0"]
    assert (doc["total"], doc["next_offset"], doc["namespace"]) == (3, 1, "shop")
    doc = _get(world, "/api/namespaces/shop/deployments/web/pods", "q=abc")
    assert _names(doc) == ["shop/web-7d9f-abc12"]
    doc = _get(world, "/api/nodes/node-a/pods", "sort=-memory&limit=2")
    assert _names(doc) == ["shop/web-7d9f-abc12", "shop/web-7d9f-def34"]
    assert doc["next_offset"] == 2


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("sort=size", "sort"),
        ("sort=--cpu", "sort"),
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("namespace=Not_A_Namespace", "namespace"),
        ("node=bad..name", "node"),
        ("deployment=UPPER", "deployment"),
        ("q=" + "x" * 254, "q"),
        ("namespaces=shop", "namespaces"),  # a typo is refused, not ignored
    ],
)
def test_bad_listing_parameters_are_400_naming_them(world: World, query: str, parameter: str) -> None:
    r = world.client.simulate_get("/api/pods", query_string=query)
    assert r.status_code == 400
    assert r.json["error"] == "invalid_parameter"
    assert r.json["parameter"] == parameter


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/api/nodes"),
        ("GET", "/api/nodes/node-a"),
        ("GET", "/api/nodes/node-a/pods?node=node-a"),  # the path already says which node
        ("GET", "/api/nodes/node-a/timeseries?namespace=shop"),
        ("GET", "/api/pods/web-7d9f-abc12?window=60"),
        ("GET", "/api/namespaces"),
        ("GET", "/api/namespaces/shop?window=60"),
        ("GET", "/api/namespaces/shop/pods?namespace=other"),
        ("GET", "/api/namespaces/shop/deployments"),
        ("GET", "/api/namespaces/shop/deployments/web"),
        ("POST", "/api/nodes/node-a/metrics"),
        ("POST", "/api/namespaces/shop/pods/web-7d9f-abc12/metrics"),
    ],
)
def test_every_route_refuses_a_query_parameter_it_does_not_take(world: World, method: str, path: str) -> None:
    path, _, query = path.partition("?")
    query = query or "verbose=1"
    r = world.client.simulate_request(
        method, path, query_string=query, headers={"Authorization": f"Bearer {TOKEN}"}, json={}
    )
    assert r.status_code == 400, r.text
    assert r.json["error"] == "invalid_parameter"
    assert r.json["parameter"] == query.split("=")[0]
    assert path in r.json["description"]


def test_routes_still_take_their_own_parameters(world: World) -> None:
    assert world.client.simulate_get("/api/pods/db-0", query_string="namespace=shop").status_code == 200
    r = world.client.simulate_get("/api/nodes/node-a/timeseries", query_string="window=60")
    assert r.status_code == 200
    r = world.client.simulate_get("/api/deployments/web/timeseries", query_string="namespace=shop&window=30")
    assert r.status_code == 200
    r = world.client.simulate_options("/api/pods", query_string="x=1", headers={"Origin": "http://a.example"})
    assert r.status_code == 200  # CORS preflight is not refused
