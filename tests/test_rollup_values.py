"""Roll-up values, exactly: what each group's Sample holds after one round (issue 17).

Complements tests/test_rollup.py (through the Store) with direct checks of `roll_up`: CPU summed from
each pod's current CPU whichever way the pod reports it (gauge, else counter rate), the group's own
time stamp and rates, unnamed pods kept out without ending the round, and `group_counts`.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.store.rollup import PodContribution, group_counts, roll_up
from aggregator.store.series import COLUMNS
from aggregator.store.views import Sample, sum_rows

W = len(COLUMNS)


def row(i: int, v: float) -> tuple[float | None, ...]:
    return tuple(v if j == i else None for j in range(W))


def pod(ns: str, dep: str, *, values: dict[str, float], rates: dict[str, float] | None = None,
        deltas: dict[str, float] | None = None, r: tuple[float | None, ...] | None = None) -> PodContribution:
    sample = Sample(timestamp=1.0, values=values, deltas=deltas or {}, rates=rates or {},
                    interval_seconds=5.0)
    return PodContribution(ns, dep, sample, r if r is not None else (None,) * W)


def test_group_samples_sum_their_pods_and_cpu_whichever_way_each_pod_reports_it() -> None:
    pods = [
        pod("", "", values={"cpu_usage_cores": 4.0, "memory": 1e9}),  # unnamed: kept out, the round goes on
        pod("shop", "web", values={"cpu_usage_cores": 0.25, "memory": 100.0},
            rates={"cpu_seconds_total": 0.5}, deltas={"cpu_seconds_total": 2.5}, r=row(0, 1.0)),
        pod("shop", "web", values={"memory": 50.0}, rates={"cpu_seconds_total": 0.5}, r=row(0, 2.0)),
        pod("shop", "", values={"cpu_usage_cores": 0.125}, r=row(1, 8.0)),
        pod("idle", "", values={"memory": 8.0}),
        pod("shop2", "", values={"memory": 1.0}),
    ]
    out = roll_up(pods, round_id=7, timestamp=1000.0)
    assert set(out) == {("shop", "web"), ("shop", ""), ("idle", ""), ("shop2", "")}

    web, web_row = out[("shop", "web")]
    assert (web.namespace, web.deployment, web.round_id, web.pod_count) == ("shop", "web", 7, 2)
    # 250 m from the first pod's gauge + 500 m from the second pod's counter rate
    assert web.sample == Sample(timestamp=1000.0, values={"cpu_usage_cores": 0.75, "memory": 150.0},
                                deltas={"cpu_seconds_total": 2.5}, rates={"cpu_seconds_total": 1.0},
                                interval_seconds=None)
    assert web_row == row(0, 3.0)

    shop, shop_row = out[("shop", "")]
    assert (shop.namespace, shop.deployment, shop.round_id, shop.pod_count) == ("shop", "", 7, 3)
    assert shop.sample == Sample(timestamp=1000.0, values={"cpu_usage_cores": 0.875, "memory": 150.0},
                                 deltas={"cpu_seconds_total": 2.5}, rates={"cpu_seconds_total": 1.0},
                                 interval_seconds=None)
    assert shop_row == tuple(3.0 if j == 0 else 8.0 if j == 1 else None for j in range(W))

    idle, idle_row = out[("idle", "")]
    assert idle.sample.values == {"memory": 8.0}  # no pod reported CPU: no CPU figure, not 0
    assert idle.pod_count == 1 and idle_row == (None,) * W


def test_namespace_cpu_starts_from_a_deployment_without_cpu() -> None:
    pods = [pod("ns", "a", values={"memory": 1.0}), pod("ns", "b", values={"cpu_usage_cores": 0.5}),
            pod("ns", "c", values={"cpu_usage_cores": 0.25})]
    out = roll_up(pods, round_id=1, timestamp=2.0)
    assert out[("ns", "")][0].sample.values == {"memory": 1.0, "cpu_usage_cores": 0.75}
    assert "cpu_usage_cores" not in out[("ns", "a")][0].sample.values


def test_group_counts() -> None:
    assert group_counts({("a", ""): 0, ("a", "x"): 0, ("a", "y"): 0}) == (1, 2)
    assert group_counts({("a", ""): 0, ("b", ""): 0, ("b", "x"): 0}) == (2, 1)
    assert group_counts({}) == (0, 0)


def _sum_rows_row_by_row(rows: list[tuple[float | None, ...]], width: int) -> tuple[float | None, ...]:
    """The definition: each row added in turn, missing values (None, NaN) skipped."""
    out: list[float | None] = [None] * width
    for r in rows:
        for i, v in enumerate(r):
            if v is not None and not math.isnan(v):
                acc = out[i]
                out[i] = v if acc is None else acc + v
    return tuple(out)


VALUES = st.one_of(st.none(), st.just(math.nan), st.floats(allow_nan=False, allow_infinity=False),
                   st.sampled_from([0.0, -0.0, 0.1, 1e16, -1e16, 5e-324]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(*[VALUES] * W), max_size=30))
def test_sum_rows_adds_each_column_in_row_order_skipping_missing_values(
    rows: list[tuple[float | None, ...]],
) -> None:
    # repr: the same floats to the bit (0.0 vs -0.0, the order of additions of 1e16 and 0.1)
    assert repr(sum_rows(rows, W)) == repr(_sum_rows_row_by_row(rows, W))
