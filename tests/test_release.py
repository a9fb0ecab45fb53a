"""aggregator/release.py: a round's worth of objects is let go a slice at a time, and only the
references handed over go (what others still read stays whole); and its three users: the federation's
previous round, its rendered lines, the API's previous listing and documents."""

from __future__ import annotations

import gc
import json
import weakref
from collections import Counter
from typing import Any

import pytest

from aggregator import release as release_module
from aggregator.api.listing import PodQuery, answer_json
from aggregator.api.views import PREPARED, PodDocCache, json_dumps
from aggregator.federation import FederationCache
from aggregator.release import references, release
from aggregator.stats import AggregatorStats
from tests.test_round_listing import _next_round, _store
from tests.test_store import round_result


class Item:
    """A weak-referenceable object that notes, when freed, how many references the list still held."""

    def __init__(self, deaths: list[int], holder: list[Any]) -> None:
        self._deaths, self._holder = deaths, holder

    def __del__(self) -> None:
        self._deaths.append(len(self._holder))


def test_release_frees_at_most_a_slice_per_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(release_module, "SLICE", 10)
    deaths: list[int] = []
    items: list[Any] = []
    items.extend(Item(deaths, items) for _ in range(95))
    release(items)
    assert items == [] and len(deaths) == 95
    # Each step frees the last 10 once the list has shrunk: they die with 85, 75, ... 5 left; the last 5, 0.
    assert Counter(deaths) == {**{n: 10 for n in range(5, 95, 10)}, 0: 5}


def test_release_frees_only_what_nobody_else_holds() -> None:
    kept = [object() for _ in range(3)]
    freed: list[int] = []

    class Dropped:
        def __del__(self) -> None:
            freed.append(1)

    items: list[Any] = [*kept, Dropped(), Dropped()]
    release(items)
    assert len(freed) == 2 and all(isinstance(k, object) for k in kept)


def test_references_keep_the_items_alive_until_released() -> None:
    class Leaf:
        pass

    leaves = [Leaf() for _ in range(5)]
    refs = [weakref.ref(x) for x in leaves]
    containers = ([leaves[0], leaves[1]], {"k": leaves[2], "j": leaves[3]}, (leaves[4],))
    held = references(*containers)
    assert held == leaves  # a dict gives its values
    del containers, leaves
    gc.collect()
    assert all(r() is not None for r in refs)  # the containers are gone; the flat list keeps the items
    release(held)
    assert all(r() is None for r in refs)


def test_the_federation_lets_go_of_the_previous_round_without_touching_a_state_in_use() -> None:
    store, clock = _store()
    cache = FederationCache(store=store, stats=AggregatorStats(), version="t")
    cache.round_done(round_result(1, clock.now))
    before = cache._state  # as a render that took it and is still running holds it
    assert before is not None
    readings = list(before.pods[2])
    _next_round(store, clock, 2, a=0.4, b=0.5, c=0.6)
    cache.round_done(round_result(2, clock.now))
    assert before.pods[2] == readings and all(a is b for a, b in zip(before.pods[2], readings, strict=True))
    assert cache._state is not before
    cpu = [ln for ln in cache.body().decode().splitlines() if ln.startswith("k8smon_pod_cpu_usage_cores{")]
    assert [ln.rsplit(" ", 1)[1] for ln in cpu] == ["0.4", "0.5", "0.6"]  # round 2's, rendered whole


def test_the_rendered_lines_are_let_go_and_the_text_is_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    store, clock = _store()
    cache = FederationCache(store=store, stats=AggregatorStats(), version="t")
    released: list[int] = []
    real = release_module.release

    def spy(items: list[Any]) -> None:
        released.append(len(items))
        real(items)

    monkeypatch.setattr("aggregator.federation.release", spy)
    cache.round_done(round_result(1, clock.now))  # the first round: nothing before it to let go
    body = cache.body().decode()
    assert len(released) == 1 and 0 < released[0] <= body.count("\n")  # the lines, a family header each
    assert body.endswith("\n") and 'k8smon_pod_cpu_usage_cores{node="n1",namespace="shop",pod="a"' in body


def test_a_replaced_listing_and_its_documents_are_let_go_and_one_in_use_stays_whole() -> None:
    store, clock = _store()
    docs = PodDocCache(json_dumps)
    first = store.round_pod_listing()
    now = clock.now
    body = answer_json(docs, PodQuery(), first, now=now, dumps=json_dumps)
    parts = first.contents()
    held = {id(p) for p in parts}
    assert all(id(v) in held for v in first.views)  # the views, and the template's pieces derived from them
    assert any(isinstance(p, bytes) and b'"pod_name":"a"' in p for p in parts)
    views = first.views
    _next_round(store, clock, 2, a=0.4, b=0.5, c=0.6)
    second = store.round_pod_listing()
    answer_json(docs, PodQuery(), second, now=clock.now, dumps=json_dumps)  # replaces `first` in the cache
    # `first` is still held here (as by a request answering from it): whole, and it answers as before.
    assert first.views is views and len(views) == 3
    assert answer_json(docs, PodQuery(), first, now=now, dumps=json_dumps) == body
    assert [p["cpu_millicores"] for p in json.loads(answer_json(
        docs, PodQuery(), second, now=clock.now, dumps=json_dumps))["pods"]] == [400, 500, 600]


def test_each_user_drops_the_container_before_its_items(monkeypatch: pytest.MonkeyPatch) -> None:
    """Else the container, dropped last, frees everything in one piece after all (a name left holding it)."""
    store, clock = _store()
    cache = FederationCache(store=store, stats=AggregatorStats(), version="t")
    docs = PodDocCache(json_dumps)
    cache.round_done(round_result(1, clock.now))
    answer_json(docs, PodQuery(), store.round_pod_listing(), now=clock.now, dumps=json_dumps)
    state, listing = weakref.ref(cache._state), weakref.ref(store.round_pod_listing())
    seen: dict[str, list[bool]] = {"federation": [], "views": []}

    kinds: dict[str, set[str]] = {"federation": set(), "views": set()}
    second: list[Any] = []  # listing 2, once answered
    published: list[bool] = []

    def spy(user: str, held: weakref.ref[Any]) -> Any:
        def call(items: list[Any]) -> None:
            if items:
                seen[user].append(held() is not None)
                kinds[user].update(type(i).__name__ for i in items)
                kinds[user].update("cache entry" for i in items if _cache_entry(i))
                if user == "views":
                    published.append(second[0].built(PREPARED))
            release_module.release(items)
        return call

    monkeypatch.setattr("aggregator.federation.release", spy("federation", state))
    monkeypatch.setattr("aggregator.api.views.release", spy("views", listing))
    _next_round(store, clock, 2, a=0.4, b=0.5, c=0.6)
    cache.round_done(round_result(2, clock.now))  # lets go of round 1's state
    second.append(store.round_pod_listing())
    answer_json(docs, PodQuery(), second[0], now=clock.now, dumps=json_dumps)  # lets go of listing 1
    assert state() is None and listing() is None
    assert seen == {"federation": [False], "views": [False]}  # each gone before its items were let go
    # What only those containers held: round 1's readings; listing 1's views and its table's JSON,
    # and the cache entries of its documents; let go once listing 2's table is there for requests.
    assert kinds["federation"] == {"PodReading"}
    assert {"PodView", "bytes", "cache entry"} <= kinds["views"]
    assert published == [True]


def _cache_entry(item: object) -> bool:
    """A PodDocCache entry: (sample, node, document or None, JSON or None)."""
    return isinstance(item, tuple) and len(item) == 4 and type(item[0]).__name__ == "Sample"


def test_documents_built_outside_a_listing_let_go_of_the_ones_they_replace(
        monkeypatch: pytest.MonkeyPatch) -> None:
    store, clock = _store()
    docs = PodDocCache(json_dumps)
    released: list[list[Any]] = []

    def spy(items: list[Any]) -> None:
        released.append(list(items))
        release_module.release(items)

    monkeypatch.setattr("aggregator.api.views.release", spy)
    views = store.pod_listing().views
    docs.docs(views, now=clock.now, full=True)  # the first full set: replaces the empty cache
    first = list(docs._docs.values())
    _next_round(store, clock, 2, a=0.4, b=0.5, c=0.6)
    docs.docs(store.pod_listing().views, now=clock.now, full=True)
    assert [e for e in released[-1] if _cache_entry(e)] == first  # round 1's entries, let go here
    docs.docs(views[:1], now=clock.now, full=False)  # a part: only reads the cache
    assert len(released) == 2
