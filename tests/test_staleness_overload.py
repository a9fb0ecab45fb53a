"""Staleness when rounds overrun the interval (issue 15): an overloaded aggregator keeps its pods.

Rounds of 6-20 s at 1000 x 30 under 4 clients fetching every listing every 5 s left pods older than
--stale-after between two scrapes of their node, and they dropped out of every listing because the
aggregator was slow. The store now stretches --stale-after by as much as the scrape loop runs behind
its interval, measured on the loop's own monotonic time (the time between the last two rounds'
beginnings, or since the last one began once that is longer), at most MAX_STALE_STRETCH times: rounds
that keep time leave it as it was, a pusher that stops still goes stale, and a loop that hangs lets
everything go stale after the longest stretch.
"""

from __future__ import annotations

import logging

import pytest

from aggregator.store.store import MAX_STALE_STRETCH, Store
from tests.handmade_exporter import DrivenService, HandmadeExporter
from tests.test_store import Clock, node, pod, round_result

T0 = 1_760_000_000.0


def _store() -> tuple[Store, Clock, Clock]:
    """A store with its clock and the scrape loop's monotonic time, both settable."""
    clock, loop = Clock(T0), Clock(0.0)
    return Store(clock=clock, stale_after=15.0, interval=5.0, retention_points=8, monotonic=loop), clock, loop


def _advance(clock: Clock, loop: Clock, seconds: float) -> None:
    clock.now += seconds
    loop.now += seconds


def _scraped(store: Store, clock: Clock, loop: Clock, round_id: int, *, after: float) -> None:
    """A round beginning `after` seconds after the previous one (both clocks move alike), scraping n1
    (pods a, b of shop/web) and n2 (pod c)."""
    _advance(clock, loop, after)
    store.begin_round()
    store.ingest(node("n1", clock.now, pod("a", "shop", dep="web", cpu_usage_cores=0.1),
                      pod("b", "shop", dep="web", cpu_usage_cores=0.2)), received=clock.now)
    store.ingest(node("n2", clock.now, pod("c", "shop", cpu_usage_cores=0.3)), received=clock.now)
    store.end_round(round_result(round_id, clock.now))


def _listed(store: Store) -> dict[str, object]:
    return {
        "pods": sorted(v.pod for v in store.pods()),
        "round": sorted(v.pod for v in store.round_pod_listing().views),
        "federated": sorted(k[1] for k in store.pod_label_values()[0]),
        "nodes": sorted((n.name, n.status) for n in store.nodes()),
        "namespaces": [g.namespace for g in store.groups()],
        "deployments": [g.deployment for g in store.groups(deployments=True)],
        "n1": store.node("n1").status,  # type: ignore[union-attr]
    }


EVERYTHING = {"pods": ["a", "b", "c"], "round": ["a", "b", "c"], "federated": ["a", "b", "c"],
              "nodes": [("n1", "up"), ("n2", "up")], "namespaces": ["shop"], "deployments": ["web"],
              "n1": "up"}
NOTHING = {"pods": [], "round": [], "federated": [], "nodes": [], "namespaces": [], "deployments": [],
           "n1": "stale"}


def test_rounds_that_keep_time_judge_by_stale_after_itself() -> None:
    store, clock, loop = _store()
    store.round_pod_listing()  # listings are asked for: end_round keeps the round's listing
    _scraped(store, clock, loop, 1, after=0.0)
    _scraped(store, clock, loop, 2, after=5.0)  # on time
    _advance(clock, loop, 4.9)  # the loop waits for its next tick
    clock.now += 10.1  # the store's clock alone moves on (as in tests): no stretch
    assert _listed(store) == EVERYTHING
    clock.now += 0.5
    assert _listed(store) == NOTHING
    assert store.node("n1").last_error == "nothing reported for 16s (--stale-after 15s)"  # type: ignore[union-attr]


def test_rounds_that_overrun_stretch_it_by_as_much() -> None:
    store, clock, loop = _store()
    store.round_pod_listing()
    _scraped(store, clock, loop, 1, after=0.0)
    _scraped(store, clock, loop, 2, after=20.0)  # 3 ticks skipped: 4 intervals, 15 s counts as 60 s
    _advance(clock, loop, 0.5)  # within the period: the stretch is the period's
    clock.now += 59.0  # the pods were scraped 59.5 s ago
    assert _listed(store) == EVERYTHING
    clock.now += 0.6
    assert _listed(store) == NOTHING
    n1 = store.node("n1")
    assert n1 is not None
    assert n1.last_error == ("nothing reported for 60s "
                             "(--stale-after 15s, stretched to 60s: rounds overran the interval)")


def test_a_round_running_long_stretches_it_as_it_runs_and_a_hung_loop_at_most_so_far() -> None:
    store, clock, loop = _store()
    _scraped(store, clock, loop, 1, after=0.0)
    _scraped(store, clock, loop, 2, after=5.0)
    store.begin_round()  # the next round begins at once and runs long: the first long round
    _advance(clock, loop, 25.0)  # 25 s into it (5 intervals: 75 s), the pods scraped 25 s ago stay
    assert [v.pod for v in store.pods()] == ["a", "b", "c"]
    assert [n.status for n in store.nodes()] == ["up", "up"]
    # It never ends: the stretch stops at MAX_STALE_STRETCH (150 s after the pods were scraped).
    _advance(clock, loop, 15.0 * MAX_STALE_STRETCH - 25.0)
    assert [v.pod for v in store.pods()] == ["a", "b", "c"]
    _advance(clock, loop, 0.5)
    assert store.pods() == [] and store.nodes() == []
    n1 = store.node("n1")
    assert n1 is not None and n1.status == "stale" and "stretched to 150s" in (n1.last_error or "")


def test_the_stretch_is_logged_when_it_begins_and_ends_and_a_pusher_that_stops_goes_stale_again(
        caplog: pytest.LogCaptureFixture) -> None:
    store, clock, loop = _store()
    caplog.set_level(logging.INFO, logger="aggregator.store.store")
    store.ingest_pod("pusher", pod("p", "jobs", cpu_usage_cores=0.5), timestamp=T0)
    _scraped(store, clock, loop, 1, after=0.0)
    _scraped(store, clock, loop, 2, after=5.0)  # on time: nothing logged
    _scraped(store, clock, loop, 3, after=10.0)  # 2 intervals apart: 30 s
    _scraped(store, clock, loop, 4, after=15.0)  # 3 intervals apart: 45 s (logged once, when it began)
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert caplog.records[0].getMessage() == ("rounds are 10.0s apart, over the 5s interval: --stale-after "
                                              "15s is stretched as much (30s) until they keep time")
    assert "p" in [v.pod for v in store.pods()]  # pushed 30 s ago, kept while rounds overrun
    _scraped(store, clock, loop, 5, after=5.0)  # on time again: 15 s
    assert caplog.records[-1].getMessage() == "rounds keep time again: staleness back to --stale-after 15s"
    assert [v.pod for v in store.pods()] == ["a", "b", "c"]  # p: 35 s without a push


def test_a_first_round_alone_stretches_nothing() -> None:
    clock, loop = Clock(T0), Clock(0.0)
    store = Store(clock=clock, stale_after=15.0, interval=0.5, retention_points=8, monotonic=loop)
    _scraped(store, clock, loop, 1, after=0.0)  # no round before it: no period yet
    _advance(clock, loop, 0.25)
    clock.now += 15.0
    assert store.pods() == []


def test_the_scrape_service_begins_each_round_in_the_store() -> None:
    clock = Clock(T0)
    with HandmadeExporter("n1", pods=1) as exporter:
        exporter.snapshot(seq=0, timestamp=T0)
        svc = DrivenService([exporter.target], clock=clock)
        began: list[float] = []
        real = svc.store.begin_round

        def begin_round() -> None:
            began.append(clock.now)
            real()

        svc.store.begin_round = begin_round  # type: ignore[method-assign]
        svc.round()
        clock.now += 1.0
        svc.round()
    assert began == [T0, T0 + 1.0]
