"""The shared pod listing's own rules, exactly (aggregator/store/listing.py): when a listing is still
current, what each exact filter selects and in what order, the indexes, node counts, and the memo that
builds each derived value once per listing. Unit tests on hand-made views (no store)."""

from __future__ import annotations

from collections import Counter

import pytest

from aggregator.store.listing import PodListing
from aggregator.store.views import PodView, Sample

S = Sample(timestamp=0.0, values={}, deltas={}, rates={}, interval_seconds=None)


def view(namespace: str, pod: str, node: str, deployment: str = "") -> PodView:
    return PodView(namespace=namespace, pod=pod, uid=f"u-{pod}", node=node, deployment=deployment,
                   owner_kind="", owner_name="", last_seen=0.0, sample=S)


# namespace/name order, as the store builds it
VIEWS = [
    view("a", "api-1", "n2", "api"), view("a", "api-2", "n1", "api"), view("a", "db-0", "n1"),
    view("b", "api-1", "n1", "api"), view("b", "web-1", "n2", "web"), view("b", "web-2", "n2", "web"),
    view("c", "x", "n3"),
]


def listing(views: list[PodView] = VIEWS, *, built_at: float = 100.0, oldest_seen: float = 90.0,
            stale_after: float = 15.0) -> PodListing:
    return PodListing(views, built_at=built_at, oldest_seen=oldest_seen, window=lambda: stale_after)


def names(views: object) -> list[str]:
    return [f"{v.namespace}/{v.pod}" for v in views]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("now", "current"), [
    (100.0, True), (104.0, True), (105.0, True),  # the oldest pod is stale only past stale_after
    (105.001, False), (99.999, False),  # the clock went back before the build: rebuild
])
def test_current_until_the_oldest_pod_goes_stale(now: float, current: bool) -> None:
    assert listing().current(now) is current


@pytest.mark.parametrize(("filters", "want"), [
    ({}, ["a/api-1", "a/api-2", "a/db-0", "b/api-1", "b/web-1", "b/web-2", "c/x"]),
    ({"namespace": "a"}, ["a/api-1", "a/api-2", "a/db-0"]),
    ({"node": "n1"}, ["a/api-2", "a/db-0", "b/api-1"]),
    ({"deployment": "api"}, ["a/api-1", "a/api-2", "b/api-1"]),
    ({"deployment": ""}, ["a/db-0", "c/x"]),
    ({"namespace": "a", "node": "n1"}, ["a/api-2", "a/db-0"]),
    ({"namespace": "b", "deployment": "web"}, ["b/web-1", "b/web-2"]),
    ({"node": "n2", "deployment": "api"}, ["a/api-1"]),
    ({"namespace": "a", "node": "n1", "deployment": "api"}, ["a/api-2"]),
    ({"namespace": "b", "node": "n1", "deployment": "web"}, []),
    ({"namespace": "zzz"}, []),
    ({"namespace": "zzz", "node": "n1"}, []),
])
def test_select_matches_every_given_field_in_listing_order(filters: dict[str, str], want: list[str]) -> None:
    assert names(listing().select(**filters)) == want


def test_unfiltered_select_is_the_listing_itself() -> None:
    pods = listing()
    assert pods.select() is pods.views and pods.views == tuple(VIEWS)


def test_indexes_and_node_counts() -> None:
    pods = listing()
    by_node = pods.index("node")
    assert {k: names(v) for k, v in by_node.items()} == {
        "n1": ["a/api-2", "a/db-0", "b/api-1"], "n2": ["a/api-1", "b/web-1", "b/web-2"], "n3": ["c/x"]}
    assert all(type(v) is tuple for v in by_node.values())
    assert {k: names(v) for k, v in pods.index("deployment").items()} == {
        "api": ["a/api-1", "a/api-2", "b/api-1"], "": ["a/db-0", "c/x"], "web": ["b/web-1", "b/web-2"]}
    assert {k: len(v) for k, v in pods.index("namespace").items()} == {"a": 3, "b": 3, "c": 1}
    assert pods.node_counts() == Counter({"n1": 3, "n2": 3, "n3": 1})
    assert pods.index("node") is by_node  # built once per listing
    with pytest.raises(ValueError, match=r"^no index on 'uid'$"):
        pods.index("uid")


def test_memo_builds_each_key_once() -> None:
    pods = listing()
    calls: list[str] = []

    def build(tag: str) -> list[str]:
        calls.append(tag)
        return [tag]

    first = pods.memo(("sort", "cpu"), lambda: build("cpu"))
    assert pods.memo(("sort", "cpu"), lambda: build("again")) is first and first == ["cpu"]
    assert pods.memo(("sort", "memory"), lambda: build("memory")) == ["memory"]
    counts = pods.node_counts()
    assert pods.node_counts() is counts
    assert calls == ["cpu", "memory"]
    assert listing().memo(("sort", "cpu"), lambda: build("new listing")) == ["new listing"]
