"""Pod listings as the last round left them (Store.round_pod_listing), prepared between rounds by the
API's warmer: what a listing shows, when it changes, and that its sums are the round's roll-ups."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable

import pytest

from aggregator.api import listing as listing_module
from aggregator.api.listing import PodQuery, answer_json
from aggregator.api.views import PREPARED, PodDocCache, json_dumps
from aggregator.api.warmer import ListingWarmer
from aggregator.store.listing import PodListing
from aggregator.store.store import ROUND_LISTING_DEMAND, Store
from tests.test_api import make_world
from tests.test_store import Clock, node, pod, round_result
from tests.test_views_values import counting_pod_doc


def _cpu(listing: PodListing) -> dict[str, float | None]:
    return {v.pod: v.sample.cpu_millicores for v in listing.views}


def _total(listing: PodListing) -> float:
    return sum(v.sample.cpu_millicores or 0.0 for v in listing.views)


def _store() -> tuple[Store, Clock]:
    clock = Clock()
    store = Store(clock=clock, stale_after=15.0, retention_points=8, interval=5.0)
    store.ingest(node("n1", clock.now, pod("a", "shop", cpu_usage_cores=0.1),
                      pod("b", "shop", cpu_usage_cores=0.2)))
    store.ingest(node("n2", clock.now, pod("c", "shop", cpu_usage_cores=0.3)))
    store.end_round(round_result(1, clock.now))
    return store, clock


def _next_round(store: Store, clock: Clock, round_id: int, **cpu: float) -> None:
    """Round `round_id`: n1 and n2 scraped with the pods' new CPU (cores), then its end."""
    clock.now += 5.0
    store.ingest(node("n1", clock.now, pod("a", "shop", cpu_usage_cores=cpu["a"]),
                      pod("b", "shop", cpu_usage_cores=cpu["b"])))
    store.ingest(node("n2", clock.now, pod("c", "shop", cpu_usage_cores=cpu["c"])))
    store.end_round(round_result(round_id, clock.now))


def test_a_listing_never_mixes_two_rounds_and_adds_up_to_the_roll_up() -> None:
    store, clock = _store()
    # Nobody had asked before the first round ended: the live listing, and asking starts the keeping.
    assert store.round_pod_listing() is store.pod_listing()
    _next_round(store, clock, 2, a=0.4, b=0.5, c=0.6)
    kept = store.round_pod_listing()
    assert _cpu(kept) == {"a": 400.0, "b": 500.0, "c": 600.0}
    # Round 3 is half scraped: the live listing has n1's new values, the served one none of them.
    clock.now += 5.0
    store.ingest(node("n1", clock.now, pod("a", "shop", cpu_usage_cores=0.9),
                      pod("b", "shop", cpu_usage_cores=0.9), pod("new", "shop", cpu_usage_cores=1.0)))
    assert _cpu(store.pod_listing()) == {"a": 900.0, "b": 900.0, "c": 600.0, "new": 1000.0}
    assert store.round_pod_listing() is kept
    namespace = store.group("shop")
    assert namespace is not None
    assert _total(kept) == pytest.approx(namespace.sample.cpu_millicores)
    store.ingest(node("n2", clock.now, pod("c", "shop", cpu_usage_cores=0.7)))
    store.end_round(round_result(3, clock.now))
    served = store.round_pod_listing()
    assert _cpu(served) == {"a": 900.0, "b": 900.0, "c": 700.0, "new": 1000.0}
    namespace = store.group("shop")
    assert namespace is not None and namespace.round_id == 3
    assert _total(served) == pytest.approx(namespace.sample.cpu_millicores)


def test_the_api_listings_serve_the_rounds_pods() -> None:
    world = make_world()
    store = world.store

    def names(path: str) -> list[str]:
        r = world.client.simulate_get(path)
        assert r.status_code == 200, r.text
        return [p["pod_name"] for p in r.json["pods"]]

    before = names("/api/pods")  # asks: the next end of round keeps its listing
    store.end_round(round_result(99, store.now()))
    listed = store.round_pod_listing()
    assert [v.pod for v in listed.views] == before
    reading = next(v for v in listed.views if v.namespace)
    store.ingest(node(reading.node, store.now() + 1, pod("late", reading.namespace, cpu_usage_cores=0.1)))
    assert "late" in [v.pod for v in store.pod_listing().views]
    for path in ("/api/pods", f"/api/namespaces/{reading.namespace}/pods", f"/api/nodes/{reading.node}/pods"):
        assert "late" not in names(path), path
    one = world.client.simulate_get("/api/pods/late", params={"namespace": reading.namespace})
    assert one.status_code == 200  # one pod's document is live
    store.end_round(round_result(100, store.now()))
    for path in ("/api/pods", f"/api/namespaces/{reading.namespace}/pods", f"/api/nodes/{reading.node}/pods"):
        assert "late" in names(path), path


def test_a_nodes_pod_count_is_its_pod_listings_length_and_they_add_up() -> None:
    world = make_world()
    store = world.store

    def get(path: str) -> dict:
        r = world.client.simulate_get(path)
        assert r.status_code == 200, r.text
        return r.json

    def counts() -> dict[str, int]:
        listed = {d["node_name"]: d["pod_count"] for d in get("/api/nodes")["nodes"]}
        for name, count in listed.items():
            assert get(f"/api/nodes/{name}")["pod_count"] == count
            assert len(get(f"/api/nodes/{name}/pods")["pods"]) == count
        assert sum(listed.values()) == len(get("/api/pods")["pods"])
        return listed

    before = counts()  # asks: the next end of round keeps its listing
    store.end_round(round_result(99, store.now()))
    assert counts() == before and before["node-a"] > 0
    # A pod scraped mid-round is live in its own document but counted, like listed, from the round's end.
    store.ingest(node("node-a", store.now() + 1, pod("late", "shop", cpu_usage_cores=0.1)))
    assert world.client.simulate_get("/api/pods/late", params={"namespace": "shop"}).status_code == 200
    assert counts() == before
    store.end_round(round_result(100, store.now()))
    assert counts() == {**before, "node-a": before["node-a"] + 1}


def test_a_node_read_without_its_pod_count_counts_nothing_and_asks_for_no_listing() -> None:
    clock = Clock()
    store = Store(clock=clock, stale_after=15.0, retention_points=8, interval=5.0)
    store.ingest(node("n1", clock.now, pod("a", "shop", cpu_usage_cores=0.1)))
    view = store.node("n1", pod_count=False)
    assert view is not None and view.pod_count == 0
    assert [n.pod_count for n in store.nodes(pod_counts=False)] == [0]
    store.end_round(round_result(1, clock.now))
    assert store._round_listing is None  # nobody asked for counts: end_round kept no listing
    counted = store.node("n1")
    assert counted is not None and counted.pod_count == 1


def test_a_node_gone_takes_its_pods_out_at_once_and_a_down_one_does_not() -> None:
    store, clock = _store()
    store.round_pod_listing()
    _next_round(store, clock, 2, a=0.4, b=0.5, c=0.6)
    kept = store.round_pod_listing()
    store.mark_down("n2", reason="connection refused", when=clock.now)
    assert store.round_pod_listing() is kept
    clock.now += 1.0
    store.ingest(node("n2", clock.now, pod("c", "shop", cpu_usage_cores=0.9)))  # next round, half done
    store.mark_gone("n1", when=clock.now)
    assert _cpu(store.round_pod_listing()) == {"c": 600.0}  # still round 2's c, without n1's pods
    assert _cpu(store.pod_listing()) == {"c": 900.0}


def test_stale_pods_leave_it_and_nobody_asking_stops_the_keeping() -> None:
    store, clock = _store()
    store.round_pod_listing()
    _next_round(store, clock, 2, a=0.4, b=0.5, c=0.6)
    kept = store.round_pod_listing()
    # n2 is down from round 3 on; n1's next scrape is half a round in when n2's pods go stale.
    clock.now += 5.0
    store.ingest(node("n1", clock.now, pod("a", "shop", cpu_usage_cores=0.4),
                      pod("b", "shop", cpu_usage_cores=0.5)))
    store.mark_down("n2", reason="timeout", when=clock.now)
    store.end_round(round_result(3, clock.now))
    third = store.round_pod_listing()
    assert _cpu(third) == {"a": 400.0, "b": 500.0, "c": 600.0}  # down: listed with its last values
    clock.now += 5.0
    store.ingest(node("n1", clock.now, pod("a", "shop", cpu_usage_cores=0.9),
                      pod("b", "shop", cpu_usage_cores=0.9)))
    clock.now += store.stale_after - 10.0 + 0.5  # c, last seen in round 2, stale_after + 0.5 s ago
    served = store.round_pod_listing()
    assert _cpu(served) == {"a": 400.0, "b": 500.0}  # c left; a and b are still round 3's
    assert _cpu(store.pod_listing()) == {"a": 900.0, "b": 900.0}
    assert store.round_pod_listing() is served  # kept until the next pod goes stale
    clock.now += store.stale_after  # rounds stopped: every pod stale, as in the live listing
    assert store.round_pod_listing().views == () == store.pod_listing().views
    last = store.round_pod_listing()
    clock.now += ROUND_LISTING_DEMAND * store.interval + 1  # not asked since
    _next_round(store, clock, 5, a=0.1, b=0.1, c=0.1)
    assert store.next_round_listing(last, timeout=0) is None
    assert store.next_round_listing(kept, timeout=0) is None
    store.round_pod_listing()  # asked again: the next end of round keeps one
    _next_round(store, clock, 6, a=0.2, b=0.2, c=0.2)
    assert _cpu(store.next_round_listing(kept, timeout=0) or kept) == {"a": 200.0, "b": 200.0, "c": 200.0}


def test_next_round_listing_wakes_a_waiter_when_a_round_ends() -> None:
    store, clock = _store()
    store.round_pod_listing()
    previous: PodListing | None = None

    def wait(after: PodListing | None, into: list[PodListing | None]) -> None:
        into.append(store.next_round_listing(after, timeout=8))

    for round_id in (2, 3):  # the first wait has no listing yet, the second the round before's
        got: list[PodListing | None] = []
        waiter = threading.Thread(target=wait, args=(previous, got))
        waiter.start()
        time.sleep(0.1)
        assert got == []  # still waiting: nothing new yet
        started = time.monotonic()
        _next_round(store, clock, round_id, a=0.4, b=0.5, c=0.6)
        waiter.join(timeout=10)
        assert time.monotonic() - started < 4  # woken by the round's end, not by the timeout
        assert got and got[0] is store.round_pod_listing() and got[0] is not previous
        previous = got[0]
    assert store.next_round_listing(previous, timeout=0.01) is None  # nothing newer


def test_the_demand_and_staleness_boundaries_are_the_stores() -> None:
    store, clock = _store()
    store.round_pod_listing()
    clock.now += ROUND_LISTING_DEMAND * store.interval  # exactly as long as asking keeps the listings
    store.end_round(round_result(2, clock.now))
    assert store.next_round_listing(None, timeout=0) is not None
    clock.now += 5.0
    store.ingest(node("n2", clock.now, pod("c", "shop", cpu_usage_cores=0.6)))
    clock.now += 5.0
    store.ingest(node("n1", clock.now, pod("a", "shop", cpu_usage_cores=0.4),
                      pod("b", "shop", cpu_usage_cores=0.5)))
    store.round_pod_listing()
    store.end_round(round_result(3, clock.now))
    clock.now += store.stale_after  # c is stale; a and b were seen exactly stale_after ago: listed
    assert _cpu(store.round_pod_listing()) == {"a": 400.0, "b": 500.0} == _cpu(store.pod_listing())


def test_a_clock_gone_back_gets_the_live_listing() -> None:
    store, clock = _store()
    store.round_pod_listing()
    _next_round(store, clock, 2, a=0.4, b=0.5, c=0.6)
    kept = store.round_pod_listing()
    clock.now -= 60.0
    assert store.round_pod_listing() is store.pod_listing() is not kept
    clock.now += 61.0  # forward again: the kept one is gone, the live listing stays
    assert store.round_pod_listing() is store.pod_listing()


def test_a_memo_is_built_once_while_others_wait_for_it() -> None:
    store, _clock = _store()
    listing = store.pod_listing()
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def build() -> str:
        calls.append(1)
        started.set()
        release.wait(10)
        return "built"

    results: list[str] = []
    first = threading.Thread(target=lambda: results.append(listing.memo("k", build)))
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=lambda: results.append(listing.memo("k", build)))
    second.start()
    time.sleep(0.05)
    assert not listing.built("k") and results == []  # the second waits for the first's build
    release.set()
    first.join(10)
    second.join(10)
    assert results == ["built", "built"] and calls == [1] and listing.built("k")


def test_a_failed_memo_build_is_tried_again_by_the_next_reader() -> None:
    listing = _store()[0].pod_listing()

    def broken() -> str:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        listing.memo("k", broken)
    assert not listing.built("k") and listing.memo("k", lambda: "ok") == "ok"


def test_the_warmer_prepares_each_round_while_whole_listings_are_asked_for() -> None:
    store, clock = _store()
    docs = PodDocCache()
    warmer = ListingWarmer(store, docs, poll=0.02)
    warmer.start()
    try:
        store.round_pod_listing()
        _next_round(store, clock, 2, a=0.4, b=0.5, c=0.6)
        time.sleep(0.2)
        assert warmer.prepared == 0 and not store.round_pod_listing().built(PREPARED)  # nobody asked
        assert not docs.preparing() and docs.demand == warmer.demand == 15.0
        docs.prepare(store.round_pod_listing())  # a whole listing was asked for
        asked = docs.last_asked
        assert docs.preparing()  # requests may share the rounds' preparation now
        _next_round(store, clock, 3, a=0.7, b=0.8, c=0.9)
        listing = store.round_pod_listing()
        deadline = time.monotonic() + 10
        while not listing.built(PREPARED) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert listing.built(PREPARED) and warmer.prepared == 1
        assert docs.last_asked == asked  # the warmer's own work is not asking: it stops when requests do
        table = docs.prepare(listing)
        assert sorted(table) == [("shop", "a"), ("shop", "b"), ("shop", "c")]
        assert b'"cpu_millicores":900' in table[("shop", "c")]
        docs.last_asked = -math.inf  # nobody has asked for longer than the demand
        assert not docs.preparing()
        _next_round(store, clock, 4, a=0.1, b=0.1, c=0.1)
        time.sleep(0.2)
        assert warmer.prepared == 1 and not store.round_pod_listing().built(PREPARED)
    finally:
        warmer.stop()


def _round_2_prepared_round_3_not() -> tuple[Store, Clock, PodDocCache, PodListing]:
    """Round 2's listing prepared, round 3's (returned) not yet."""
    store, clock = _store()
    docs = PodDocCache()
    store.round_pod_listing()
    _next_round(store, clock, 2, a=0.4, b=0.5, c=0.6)
    docs.prepare(store.round_pod_listing())
    _next_round(store, clock, 3, a=0.7, b=0.8, c=0.9)
    return store, clock, docs, store.round_pod_listing()


def _answered_cpu(docs: PodDocCache, query: PodQuery, listing: PodListing, now: float) -> dict[str, float]:
    body = json.loads(answer_json(docs, query, listing, now=now, dumps=json_dumps))
    return {p["pod_name"]: p["cpu_millicores"] for p in body["pods"]}


def test_while_the_warmer_prepares_a_round_whole_listings_get_the_previous_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _store, clock, docs, new = _round_2_prepared_round_3_not()
    started, release = threading.Event(), threading.Event()
    entries = docs._entries

    def slow(*args: object, **kwargs: object) -> object:
        if threading.current_thread() is warming:  # the warmer's build takes a while
            started.set()
            release.wait(10)
        return entries(*args, **kwargs)  # type: ignore[arg-type]

    warming = threading.Thread(target=lambda: docs.prepare(new, asked=False))
    monkeypatch.setattr(docs, "_entries", slow)
    warming.start()
    assert started.wait(10)

    def cpu(query: PodQuery) -> dict[str, float]:
        return _answered_cpu(docs, query, new, clock.now)

    assert cpu(PodQuery()) == {"a": 400, "b": 500, "c": 600}  # round 2's, at once
    assert cpu(PodQuery(sort="cpu", descending=True)) == {"c": 600, "b": 500, "a": 400}
    # parts too: every answer given at this moment is round 2's, and none builds a document
    assert cpu(PodQuery(limit=2)) == {"a": 400, "b": 500}
    assert cpu(PodQuery(namespace="shop", sort="cpu")) == {"a": 400, "b": 500, "c": 600}
    assert cpu(PodQuery(node="n2")) == {"c": 600}
    assert cpu(PodQuery(text="b")) == {"b": 500}
    release.set()
    warming.join(10)
    assert cpu(PodQuery()) == {"a": 700, "b": 800, "c": 900}
    assert cpu(PodQuery(limit=2)) == {"a": 700, "b": 800}
    assert cpu(PodQuery(node="n2")) == {"c": 900}
    assert docs.ready_instead_of(new, now=clock.now) is new  # prepared: served as it is


def test_the_whole_listing_template_answers_what_encoded_does() -> None:
    store, clock = _store()
    docs = PodDocCache()
    listing = store.pod_listing()
    for now in (clock.now, clock.now + 2.5, clock.now + 2.5):
        whole = b"".join(docs.whole(listing, now=now))
        assert whole == b"".join(docs.encoded(listing.views, now=now, full=True))
    clock.now += 1.25
    store.ingest_pod("n3", pod("pushed", "shop", cpu_usage_cores=0.1), timestamp=clock.now)
    mixed = store.pod_listing()
    now = clock.now + 0.5
    whole = b"".join(docs.whole(mixed, now=now))
    assert whole == b"".join(docs.encoded(mixed.views, now=now, full=True))
    assert {p["pod_name"]: p["age_seconds"] for p in json.loads(whole)} == {
        "a": 1.75, "b": 1.75, "c": 1.75, "pushed": 0.5}
    empty = Store(clock=clock).pod_listing()
    assert docs.whole(empty, now=now) == [b"[]"]


def test_with_a_warmer_whole_listings_never_wait_for_a_round_nobody_prepared_yet() -> None:
    store, clock, docs, new = _round_2_prepared_round_3_not()

    def cpu() -> dict[str, float]:
        return _answered_cpu(docs, PodQuery(), new, clock.now)

    docs.warmed = True  # the warmer has not woken up yet: round 2's, and nothing built here
    assert cpu() == {"a": 400, "b": 500, "c": 600} and not new.built(PREPARED)
    docs.warmed = False  # no warmer: the request prepares the round itself
    assert cpu() == {"a": 700, "b": 800, "c": 900} and new.built(PREPARED)
    clock.now += store.stale_after + 1  # a prepared listing that is no longer current is not served
    docs.warmed = True
    assert docs.ready_instead_of(store.round_pod_listing(), now=clock.now) is store.round_pod_listing()


def test_documents_are_built_once_per_sample_across_listings_and_forms(
        monkeypatch: pytest.MonkeyPatch) -> None:
    built = counting_pod_doc(monkeypatch)
    store, clock = _store()
    docs = PodDocCache()
    first = store.pod_listing()
    as_dicts = docs.docs(first.views, now=clock.now, full=True)  # the dict form first
    docs.prepare(first)  # then the JSON form of the same samples: from the kept documents
    assert sorted(built) == ["a", "b", "c"]
    assert json.loads(b"".join(docs.whole(first, now=clock.now))) == as_dicts
    clock.now += 5.0
    store.ingest(node("n2", clock.now, pod("c", "shop", cpu_usage_cores=0.9)))  # only c changed
    docs.prepare(store.pod_listing())  # a new listing: a and b come from the previous one's
    assert sorted(built) == ["a", "b", "c", "c"]
    built.clear()
    fresh = PodDocCache()  # the JSON form alone: a prepared listing leaves its documents for the next
    clock.now += 5.0
    store.ingest(node("n1", clock.now, pod("a", "shop", cpu_usage_cores=0.2),
                      pod("b", "shop", cpu_usage_cores=0.2)))
    fresh.prepare(store.pod_listing())
    clock.now += 5.0
    store.ingest(node("n2", clock.now, pod("c", "shop", cpu_usage_cores=0.3)))
    fresh.prepare(store.pod_listing())
    assert sorted(built) == ["a", "b", "c", "c"]


def test_the_newest_prepared_listing_is_the_one_served_meanwhile() -> None:
    store, clock = _store()
    docs = PodDocCache()
    docs.warmed = True
    older = store.pod_listing()
    docs.prepare(older)
    store.ingest(node("n2", clock.now, pod("c", "shop", cpu_usage_cores=0.9)))  # same instant, new data
    newer = store.pod_listing()
    assert newer.built_at == older.built_at and newer is not older
    docs.prepare(newer)
    store.ingest(node("n2", clock.now, pod("c", "shop", cpu_usage_cores=0.7)))
    unprepared = store.pod_listing()
    assert docs.ready_instead_of(unprepared, now=clock.now) is newer  # of two at one instant, the later
    assert docs.ready_instead_of(older, now=clock.now) is older  # a prepared listing is served as it is


def test_without_a_prepared_round_a_part_builds_its_pods_until_the_warmer_prepares_every_round(
        monkeypatch: pytest.MonkeyPatch) -> None:
    built = counting_pod_doc(monkeypatch)
    store, clock = _store()
    docs = PodDocCache()
    docs.warmed, docs.demand = True, 15.0  # a warmer runs, but has prepared no round yet
    store.round_pod_listing()
    _next_round(store, clock, 2, a=0.7, b=0.8, c=0.9)
    stale = store.round_pod_listing()
    assert docs.ready_instead_of(stale, now=clock.now) is stale and not stale.built(PREPARED)
    monkeypatch.setattr(listing_module, "PREPARE_AT", 1)
    assert _answered_cpu(docs, PodQuery(node="n2"), stale, clock.now) == {"c": 900}
    assert built == ["c"] and docs.last_asked == -math.inf  # 1 pod: its own document, not asking
    assert not docs.preparing()
    # Asked for cold, a part over PREPARE_AT (2 pods here) costs its own pods only, and asks.
    assert _answered_cpu(docs, PodQuery(node="n1"), stale, clock.now) == {"a": 700, "b": 800}
    assert sorted(built) == ["a", "b", "c"] and not stale.built(PREPARED)
    assert docs.preparing()  # asked within the warmer's demand: it prepares every round now
    # From now on such a part shares the round's preparation (c's document again: a part's own are
    # not kept), and every request after it, big or small, is answered from that table: built per
    # request, parts made 58 % of the documents under 4 polling clients once rounds outlasted
    # --stale-after and no prepared round was current.
    assert _answered_cpu(docs, PodQuery(node="n1"), stale, clock.now) == {"a": 700, "b": 800}
    assert stale.built(PREPARED) and sorted(built) == ["a", "a", "b", "b", "c", "c"]
    assert _answered_cpu(docs, PodQuery(node="n1"), stale, clock.now) == {"a": 700, "b": 800}
    assert _answered_cpu(docs, PodQuery(node="n2"), stale, clock.now) == {"c": 900}
    assert len(built) == 6
    docs.last_asked -= 16.0  # nobody asked for longer than the demand: the warmer stops, and so does sharing
    assert not docs.preparing()


def test_a_prepared_part_asks_only_when_big(monkeypatch: pytest.MonkeyPatch) -> None:
    _store, clock, docs, new = _round_2_prepared_round_3_not()
    docs.prepare(new)
    docs.last_asked = -math.inf
    monkeypatch.setattr(listing_module, "PREPARE_AT", 2)
    assert _answered_cpu(docs, PodQuery(node="n2"), new, clock.now) == {"c": 900}
    assert docs.last_asked == -math.inf
    assert _answered_cpu(docs, PodQuery(namespace="shop", limit=3), new, clock.now) == {
        "a": 700, "b": 800, "c": 900}
    assert docs.last_asked > -math.inf


# ---- how long end_round keeps the store lock (requests for one node or pod wait for it) ----

def test_end_round_sums_outside_the_lock_and_a_push_meanwhile_joins_the_next_round(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from aggregator.store import store as store_module

    store, clock = _store()
    store.round_pod_listing()
    clock.now += 5.0
    store.ingest(node("n1", clock.now, pod("a", "shop", cpu_usage_cores=0.4),
                      pod("b", "shop", cpu_usage_cores=0.5)))
    store.ingest(node("n2", clock.now, pod("c", "shop", cpu_usage_cores=0.6)))
    real = store_module._contribution
    locked: list[bool] = []

    def contribution(*args: object) -> object:
        locked.append(store._lock.locked())
        if locked == [False]:  # a push lands while the round is being summed (not under the lock:
            # with it held, this push would wait forever)
            store.ingest_pod("n2", pod("c", "shop", cpu_usage_cores=0.9), timestamp=clock.now + 1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(store_module, "_contribution", contribution)
    store.end_round(round_result(2, clock.now))
    assert locked == [False, False, False]  # summed without the lock: the push above could take it
    shop = store.group("shop")
    assert shop is not None and shop.sample.cpu_millicores == pytest.approx(1500.0)  # round 2's c: 600
    clock.now += 5.0
    store.end_round(round_result(3, clock.now))  # nothing scraped: the pushed c alone
    shop = store.group("shop")
    assert shop is not None and shop.sample.cpu_millicores == pytest.approx(900.0)


class _SliceLock:
    """The store's lock, counting holds; `between(n)` runs before the n-th acquisition (lock free)."""

    def __init__(self, lock: threading.Lock, between: dict[int, Callable[[], None]]) -> None:
        self._lock, self._between, self.holds, self._inside = lock, between, 0, False

    def __enter__(self) -> None:
        if not self._inside:
            self._inside = True
            try:
                self._between.get(self.holds + 1, lambda: None)()
            finally:
                self._inside = False
            self.holds += 1
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def test_the_federation_hand_over_takes_the_lock_a_slice_of_pods_at_a_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from aggregator.store import store as store_module

    clock = Clock()
    store = Store(clock=clock, stale_after=15.0, retention_points=8, interval=5.0)
    store.ingest(node("n1", clock.now, *(pod(name, "shop", cpu_usage_cores=0.1) for name in "abcde")))
    monkeypatch.setattr(store_module, "LABEL_BATCH", 2)

    def meanwhile() -> None:  # between the first slice (a, b) and the second (c, d)
        store.ingest_pod("n1", pod("e", "shop", cpu_usage_cores=0.7), timestamp=clock.now + 1)
        with store._lock:
            del store._pods["shop", "c"]  # as _expire would drop it

    lock = _SliceLock(store._lock, {3: meanwhile})
    store._lock = lock  # type: ignore[assignment]
    keys, nodes, readings, values = store.pod_label_values()
    # The order once, then 3 slices of at most 2 pods: no hold covers the whole pass.
    assert lock.holds == 4
    assert [k[1] for k in keys] == ["a", "b", "d", "e"] and nodes == ["n1"] * 4
    assert [v["cpu_usage_cores"] for v in values] == [0.1, 0.1, 0.1, 0.7]  # e as pushed meanwhile
    assert [r.pod for r in readings] == ["a", "b", "d", "e"]


def test_end_round_builds_the_rounds_listing_a_batch_of_pods_at_a_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from aggregator.store import store as store_module

    clock = Clock()
    store = Store(clock=clock, stale_after=15.0, retention_points=8, interval=5.0)
    store.round_pod_listing()  # someone asks: end_round keeps the round's listing
    store.ingest(node("n1", clock.now, *(pod(name, "shop", cpu_usage_cores=0.1) for name in "abcde")))
    monkeypatch.setattr(store_module, "LISTING_BATCH", 2)
    lock = _SliceLock(store._lock, {})
    store._lock = lock  # type: ignore[assignment]
    store.end_round(round_result(1, clock.now))
    # the pending pods, the roll-ups, 3 batches of at most 2 pods, the publishing: no hold lists them all
    assert lock.holds == 6
    served = store.round_pod_listing()
    assert store.pod_listing() is served  # nothing stored meanwhile: it is the live listing too

    clock.now += 5.0
    store.ingest(node("n1", clock.now, *(pod(name, "shop", cpu_usage_cores=0.2) for name in "abcde")))

    def meanwhile() -> None:  # between the first batch (a, b) and the second (c, d)
        store.ingest_pod("n1", pod("e", "shop", cpu_usage_cores=0.7), timestamp=clock.now + 1)

    store._lock = lock = _SliceLock(lock._lock, {4: meanwhile})  # type: ignore[assignment]
    store.end_round(round_result(2, clock.now))
    assert lock.holds == 6
    served = store.round_pod_listing()
    assert _cpu(served) == {"a": 200.0, "b": 200.0, "c": 200.0, "d": 200.0, "e": 700.0}  # e as pushed
    assert store.pod_listing() is not served  # the push came during the build: the live one is built anew
    assert _cpu(store.pod_listing()) == _cpu(served)


def test_end_round_counts_the_pods_of_each_node_before_any_request_reads_them() -> None:
    store, clock = _store()
    store.round_pod_listing()  # someone asks: end_round keeps the round's listing
    _next_round(store, clock, 2, a=0.4, b=0.5, c=0.6)
    served = store.round_pod_listing()
    # made by end_round (by the scrape loop), so the round's first node document does not count
    # every pod in its request
    assert served.built("node_counts")
    counts = [(name, view.pod_count) for name in ("n1", "n2") if (view := store.node(name))]
    assert counts == [("n1", 2), ("n2", 1)]
    assert store.round_pod_listing() is served


def test_nodes_are_listed_a_batch_of_nodes_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from aggregator.store import store as store_module

    clock = Clock()
    store = Store(clock=clock, stale_after=15.0, retention_points=8, interval=5.0)
    for name in ("n1", "n2", "n3", "n4", "n5"):
        store.ingest(node(name, clock.now))
    monkeypatch.setattr(store_module, "NODE_BATCH", 2)

    def meanwhile() -> None:  # between the first batch (n1, n2) and the second (n3, n4)
        store.mark_down("n4", reason="timeout", when=clock.now)
        with store._lock:
            del store._nodes["n3"]  # as _expire would drop it

    lock = _SliceLock(store._lock, {3: meanwhile})
    store._lock = lock  # type: ignore[assignment]
    listed = store.nodes(pod_counts=False)
    assert lock.holds == 4  # the names, then 3 batches of at most 2 nodes
    assert [(n.name, n.status) for n in listed] == [("n1", "up"), ("n2", "up"), ("n4", "down"), ("n5", "up")]


def _counting_pod_views(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the pods whose views the store makes from now on, in order."""
    made: list[str] = []
    real = Store._pod_view

    def counting(key: tuple[str, str], p: object) -> object:
        made.append(key[1])
        return real(key, p)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "_pod_view", staticmethod(counting))
    return made


def test_while_listings_are_asked_for_views_are_made_at_ingest_not_under_end_rounds_lock(
        monkeypatch: pytest.MonkeyPatch) -> None:
    store, clock = _store()
    made = _counting_pod_views(monkeypatch)
    _next_round(store, clock, 2, a=0.1, b=0.2, c=0.3)  # nobody asks: views are made when read
    store.ingest(node("n2", clock.now, pod("c", "shop", cpu_usage_cores=0.3)))  # the same snapshot again
    assert made == []
    store.round_pod_listing()  # someone asks
    assert sorted(made) == ["a", "b", "c"]
    made.clear()
    clock.now += 5.0
    store.ingest(node("n1", clock.now, pod("a", "shop", cpu_usage_cores=0.4),
                      pod("b", "shop", cpu_usage_cores=0.5)))
    store.ingest(node("n2", clock.now, pod("c", "shop", cpu_usage_cores=0.6)))
    store.ingest(node("n2", clock.now, pod("c", "shop", cpu_usage_cores=0.6)))  # the same snapshot again
    assert made == ["a", "b", "c", "c"]  # a view holds last_seen: the re-scraped pod gets a new one
    store.end_round(round_result(3, clock.now))
    assert made == ["a", "b", "c", "c"]  # the round's listing only collected them
    served = store.round_pod_listing()
    assert _cpu(served) == {"a": 400.0, "b": 500.0, "c": 600.0}
    assert served.views == store.pod_listing().views and served.views[2].last_seen == clock.now


def test_views_are_made_at_ingest_until_the_instant_the_asking_runs_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    store, clock = _store()
    made = _counting_pod_views(monkeypatch)
    store.round_pod_listing()  # asked at clock.now: listings are wanted for ROUND_LISTING_DEMAND intervals
    made.clear()
    clock.now += ROUND_LISTING_DEMAND * store.interval  # the last instant (end_round's own test: <=)
    store.ingest(node("n1", clock.now, pod("a", "shop", cpu_usage_cores=0.4),
                      pod("b", "shop", cpu_usage_cores=0.5)))
    store.ingest(node("n1", clock.now, pod("a", "shop", cpu_usage_cores=0.4),
                      pod("b", "shop", cpu_usage_cores=0.5)))  # the same snapshot again
    assert made == ["a", "b", "a", "b"]
    clock.now += 0.001
    store.ingest(node("n2", clock.now, pod("c", "shop", cpu_usage_cores=0.6)))
    store.ingest(node("n2", clock.now, pod("c", "shop", cpu_usage_cores=0.6)))
    assert made == ["a", "b", "a", "b"]  # past it: made when a listing reads them


def test_requests_share_the_rounds_preparation_only_while_a_warmer_prepares_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from aggregator.api import views as views_module

    docs = PodDocCache()
    now = [1000.0]
    monkeypatch.setattr(views_module.time, "monotonic", lambda: now[0])
    docs.ask()
    docs.warmed = True
    assert not docs.preparing()  # no warmer has said for how long it prepares after an ask
    docs.demand, docs.warmed = 15.0, False
    assert not docs.preparing()  # asked, but no warmer runs: nobody prepares the rounds
    docs.warmed = True
    assert docs.preparing()
    now[0] += 15.0
    assert docs.preparing()  # the demand's last instant still counts, as the warmer's own test does
    now[0] += 0.001
    assert not docs.preparing()
