"""Roll-ups summed as pods report (RoundSums, issue 15) equal summing the round's final reports at once.

A pod's first report in a round is added to its leaf at ingest; a pod reported again in the same round
(a second push, a second exporter for its node, a move to another deployment) makes end_round sum its
leaves again. Whatever the pattern, every group's view and series row must be, to the bit, what one
pass over the round's final reports gives (`roll_up`, the definition); the oracle reads the store's
pending reports just before end_round.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.store import store as store_module
from aggregator.store.rollup import PodContribution, RoundSums, roll_up
from aggregator.store.series import ChunkedSeries
from aggregator.store.store import Store
from aggregator.store.views import Sample
from tests.test_store import Clock, node, pod, round_result

T0 = 1_750_000_000.0
PODS = [("shop", "web-1"), ("shop", "web-2"), ("shop", "batch"), ("pay", "api-1"), ("", "unnamed")]
DEPLOYMENTS = st.sampled_from(["web", "api", ""])
# Per round, a list of reports: (kind, pods of node n1 or the pushed pod, their deployments).
REPORT = st.tuples(st.sampled_from(["scrape-n1", "scrape-n2", "same-n1", "push"]),
                   st.lists(st.tuples(st.sampled_from(range(len(PODS))), DEPLOYMENTS), min_size=1,
                            max_size=4, unique_by=lambda t: t[0]))


def _final(store: Store) -> list[PodContribution]:
    return [store_module._contribution(k, e) for k, e in store._pending.items() if e.sample is not None]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rounds=st.lists(st.lists(REPORT, max_size=5), min_size=1, max_size=5),
       values=st.lists(st.floats(0, 1e6, allow_subnormal=False), min_size=8, max_size=8))
def test_groups_summed_at_ingest_are_the_one_pass_sums_of_the_final_reports(
    rounds: list[list[tuple[str, list[tuple[int, str]]]]], values: list[float],
) -> None:
    clock = Clock(T0)
    store = Store(clock=clock, retention_points=16, stale_after=1e6)
    sample_time = {"n1": T0, "n2": T0}
    counter = 0.0
    for r, reports in enumerate(rounds):
        clock.now = T0 + 5.0 * (r + 1)
        for i, (kind, members) in enumerate(reports):
            counter += 1000.0 + values[i % len(values)]
            readings = [
                pod(PODS[p][1], PODS[p][0], dep=dep, cpu_usage_cores=values[(p + i) % len(values)] / 1e3,
                    memory_working_set_bytes=float(int(values[p]) + i),
                    network_receive_bytes_total=counter + p)
                for p, dep in members
            ]
            if kind == "push":
                store.ingest_pod("n3", readings[0], timestamp=clock.now + 0.01 * i)
            else:
                name = kind[-2:]
                if kind.startswith("scrape"):
                    sample_time[name] += 1.0
                store.ingest(node(name, sample_time[name], *readings), received=clock.now)
        want = roll_up(_final(store), round_id=r, timestamp=clock.now)
        store.end_round(round_result(r, clock.now))
        for (namespace, deployment), (view, row) in want.items():
            got = store.group(namespace, deployment)
            assert got is not None, (namespace, deployment)
            assert repr((got.pod_count, got.sample)) == repr((view.pod_count, view.sample))
            points = store.group_series(namespace, deployment, since=clock.now) or []
            kept = ChunkedSeries(1)  # the row as a series keeps it (CPU in whole nanocores)
            kept.append(clock.now, row)
            assert repr(points[-1].row) == repr(kept.points()[-1][1]), (namespace, deployment)
        # No group appears that the one-pass sums lack (a leaf emptied by a move is dropped).
        assert {(g.namespace, g.deployment) for g in [*store.groups(), *store.groups(deployments=True)]
                if g.round_id == r} == set(want)


def _pod(ns: str, dep: str, cpu: float) -> PodContribution:
    sample = Sample(timestamp=1.0, values={"cpu_usage_cores": cpu}, deltas={}, rates={}, interval_seconds=5.0)
    return PodContribution(ns, dep, sample, (cpu * 1000.0, None, None, None, None, None))


def test_a_leaf_summed_again_takes_the_place_its_final_reports_give_it_and_an_emptied_one_goes() -> None:
    sums = RoundSums()
    sums.add(_pod("ns", "a", 0.1))
    sums.add(_pod("ns", "b", 0.2))
    sums.redo("ns", "a")  # its only pod moved to c
    sums.redo("ns", "c")
    sums.redo("", "x")  # unnamed pods have no leaf
    final = [_pod("ns", "c", 0.4), _pod("", "x", 9.0), _pod("ns", "b", 0.2)]
    out = sums.groups(final, round_id=1, timestamp=2.0)
    assert list(out) == [("ns", ""), ("ns", "c"), ("ns", "b")]
    assert out[("ns", "")][0].pod_count == 2
    assert out[("ns", "")][0].sample.values == {"cpu_usage_cores": (400.0 + 200.0) / 1000.0}
    assert out[("ns", "c")][0].sample.values == {"cpu_usage_cores": 0.4}


def test_without_a_second_report_the_final_reports_are_not_read() -> None:
    sums = RoundSums()
    sums.add(_pod("ns", "a", 0.1))

    def final() -> object:
        raise AssertionError("read")
        yield

    out = sums.groups(final(), round_id=1, timestamp=2.0)  # type: ignore[arg-type]
    assert set(out) == {("ns", ""), ("ns", "a")}
