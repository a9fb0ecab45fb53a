"""The store's shared pod listing (store/listing.py): reused while nothing changes, replaced by every write
(scrape, push, node down/gone, end of round, restore) and by time (a pod going stale), and always equal
to the listing computed from scratch."""

from __future__ import annotations

import random

import pytest

from aggregator.store.store import Store
from aggregator.store.views import PodView
from tests.test_api import make_world
from tests.test_ingest import AUTH, pod_body
from tests.test_store import Clock, node, pod, round_result


def _reference(store: Store, *, node: str | None = None, namespace: str | None = None,
               deployment: str | None = None) -> list[tuple[str, str, str, float | None, float]]:
    """What `pods()` lists, computed from the store's state with no cache (the code before the cache)."""
    now = store.now()
    out = []
    for (ns, name), p in store._pods.items():
        if p.sample is None or p.reading is None or not now - p.last_seen <= store.stale_after:
            continue
        if p.node in store._gone or (node is not None and p.node != node):
            continue
        if namespace is not None and ns != namespace:
            continue
        if deployment is not None and p.reading.deployment != deployment:
            continue
        out.append((ns, name, p.node, p.sample.cpu_millicores, p.last_seen))
    return sorted(out)


def _listed(views: list[PodView]) -> list[tuple[str, str, str, float | None, float]]:
    return [(v.namespace, v.pod, v.node, v.sample.cpu_millicores, v.last_seen) for v in views]


def _store() -> tuple[Store, Clock]:
    clock = Clock()
    store = Store(clock=clock, stale_after=15.0, retention_points=4, interval=5.0)
    b = pod("b", "shop", dep="web", cpu_usage_cores=0.2)
    store.ingest(node("n1", 10.0, pod("a", cpu_usage_cores=0.1), b))
    store.ingest(node("n2", 10.0, pod("c", "shop", dep="web", cpu_usage_cores=0.3)))
    store.end_round(round_result(1, clock.now))
    return store, clock


def test_listing_is_built_once_and_shared_until_a_write() -> None:
    store, clock = _store()
    first = store.pod_listing()
    clock.now += 1
    assert store.pod_listing() is first  # nothing written, nobody stale: the same listing
    assert first.select(namespace="shop") is first.select(namespace="shop")  # indexes kept with it
    assert [v.pod for v in first.select(namespace="shop", deployment="web")] == ["b", "c"]
    store.ingest(node("n1", 15.0, pod("a", cpu_usage_cores=0.9)))
    second = store.pod_listing()
    assert second is not first
    assert _listed(store.pods()) == _reference(store)
    assert [v.sample.cpu_millicores for v in store.pods(node="n1")] == [900.0, 200.0]
    # An unchanged pod keeps its view object (only changed pods are rebuilt).
    assert store.pods(node="n2")[0] is first.select(node="n2")[0]


WRITES = {
    "scrape round": lambda s, c: s.ingest(node("n2", 20.0, pod("c", "shop", dep="web", cpu_usage_cores=0.7))),
    "same snapshot scraped again": lambda s, c: s.ingest(node("n1", 10.0)),
    "push of a new pod": lambda s, c: s.ingest_pod("n3", pod("d", "shop", cpu_usage_cores=0.4), timestamp=3),
    "push of a known pod": lambda s, c: s.ingest_pod("n1", pod("a", cpu_usage_cores=0.5), timestamp=30.0),
    "node down": lambda s, c: s.mark_down("n1", reason="timeout", when=c.now),
    "node gone": lambda s, c: s.mark_gone("n1", when=c.now),
    "end of round": lambda s, c: s.end_round(round_result(2, c.now)),
    "restore": lambda s, c: s.import_state([r for batch in Store(clock=c).export_state() for r in batch]),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_every_write_is_listed_at_once(write: str) -> None:
    store, clock = _store()
    clock.now += 2
    before = _listed(store.pods())
    store.pods(namespace="shop"), store.pods(node="n1"), store.nodes()  # warm the listing and its indexes
    WRITES[write](store, clock)
    assert _listed(store.pods()) == _reference(store)
    for kw in ({"namespace": "shop"}, {"node": "n1"}, {"namespace": "shop", "deployment": "web"}):
        assert _listed(store.pods(**kw)) == _reference(store, **kw)  # type: ignore[arg-type]
    counts = {n.name: n.pod_count for n in store.nodes()}
    assert counts == {n: sum(1 for r in _reference(store) if r[2] == n) for n in counts}
    changed = _listed(store.pods()) != before
    assert changed == (write not in ("node down", "end of round")), write
    if write == "node gone":
        assert [v.pod for v in store.pods()] == ["c"] and store.node("n1").pod_count == 0  # type: ignore[union-attr]


def test_a_pod_going_stale_leaves_the_cached_listing_with_no_write() -> None:
    store, clock = _store()
    clock.now += 5
    store.ingest(node("n2", 15.0, pod("c", "shop", dep="web")))  # n1's pods were last seen 5 s earlier
    listing = store.pod_listing()
    clock.now += 10  # n1's pods: 15 s, still current (<= --stale-after)
    assert store.pod_listing() is listing and len(store.pods()) == 3
    clock.now += 0.5  # 15.5 s: gone from the listing without anything written
    assert [v.pod for v in store.pods()] == ["c"] == [r[1] for r in _reference(store)]
    assert (store.node("n1").pod_count, store.node("n2").pod_count) == (0, 1)  # type: ignore[union-attr]
    clock.now -= 10  # a clock that steps back: n1's pods are current again, as computed from scratch
    assert _listed(store.pods()) == _reference(store) and len(store.pods()) == 3


def test_random_writes_and_clock_always_match_the_listing_from_scratch() -> None:
    rng = random.Random(15)
    clock = Clock()
    store = Store(clock=clock, stale_after=15.0, retention_points=4, interval=5.0)
    names = [(ns, f"p{i}") for ns in ("a", "b") for i in range(6)]
    for step in range(300):
        clock.now += rng.choice((0.0, 0.5, 3.0, 9.0))
        action = rng.random()
        n = f"n{rng.randrange(3)}"
        if action < 0.45:
            chosen = rng.sample(names, rng.randrange(len(names)))
            store.ingest(node(n, float(step + 1), *(pod(p, ns, dep=rng.choice(("", "web")),
                                                      cpu_usage_cores=rng.random()) for ns, p in chosen)))
        elif action < 0.65:
            ns, p = rng.choice(names)
            store.ingest_pod(n, pod(p, ns, cpu_usage_cores=rng.random()), timestamp=float(step + 1))
        elif action < 0.72:
            store.mark_gone(n, when=clock.now)
        elif action < 0.8:
            store.mark_down(n, reason="timeout", when=clock.now)
        elif action < 0.9:
            store.end_round(round_result(step, clock.now))
        # A node's pod count: its pods in the pod listings (the round's, or the live one before any round
        # was kept), whatever was written since.
        view = store.node(n)
        counted = None if view is None else view.pod_count
        assert counted == (None if view is None else len(store.round_pod_listing().select(node=n))), step
        assert _listed(store.pods()) == _reference(store), step
        assert (None if view is None else store.node(n).pod_count) == counted, step  # type: ignore[union-attr]
        kw = rng.choice(({"namespace": "a"}, {"node": n}, {"namespace": "b", "deployment": "web"}))
        assert _listed(store.pods(**kw)) == _reference(store, **kw), (step, kw)  # type: ignore[arg-type]


def test_a_push_over_http_is_in_the_next_page_at_once() -> None:
    world = make_world()
    path = "/api/namespaces/shop/pods/pushed-p1/metrics"

    def page() -> dict:
        r = world.client.simulate_get("/api/pods", query_string="sort=-cpu&limit=50")
        assert r.status_code == 200, r.text
        return r.json

    before = page()
    assert "pushed-p1" not in [p["pod_name"] for p in before["pods"]]
    page()  # served from the shared listing and its cached CPU order
    r = world.client.simulate_post(path, json=pod_body(world, cpu_millicores=5000), headers=AUTH)
    assert r.status_code == 201, r.text
    after = page()
    assert after["total"] == before["total"] + 1
    assert (after["pods"][0]["pod_name"], after["pods"][0]["cpu_millicores"]) == ("pushed-p1", 5000)
    r = world.client.simulate_post(path, json=pod_body(world, dt=1.0, cpu_millicores=1), headers=AUTH)
    assert r.status_code == 201, r.text
    again = page()
    assert again["pods"][0]["pod_name"] != "pushed-p1"
    assert {p["pod_name"]: p["cpu_millicores"] for p in again["pods"]}["pushed-p1"] == 1
