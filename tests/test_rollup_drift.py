"""Roll-ups under schedule drift: a re-scraped snapshot adds no interval I/O again (issue 10, item 1).

The exporter samples on its own 5-s schedule and the aggregator scrapes on its own: a round can
find a new snapshot, the same one again (drift, or a hung sampler), several samples' worth of
counter movement at once, or a failed scrape. Whatever the pattern, a namespace/deployment series
equals the sum of its pods' series point by point: gauges (CPU, memory) as each pod's latest point,
I/O as the bytes of the pod points stored in that round (a re-scraped pod stores none).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.store.series import COLUMNS
from aggregator.store.store import Store
from aggregator.store.views import Point
from tests.handmade_exporter import DrivenService, HandmadeExporter
from tests.test_store import Clock, node, pod, round_result

CPU, MEM = COLUMNS.index("cpu_millicores"), COLUMNS.index("memory_bytes")
IO = [COLUMNS.index(c) for c in ("disk_read_bytes", "disk_write_bytes", "net_recv_bytes", "net_sent_bytes")]
COUNTERS = ("disk_read_bytes_total", "disk_written_bytes_total", "network_receive_bytes_total",
            "network_transmit_bytes_total")
T0 = 1_750_000_000.0
# Per node and round: the exporter took a new sample, several, none (the same snapshot is scraped
# again), or the scrape failed.
ACTIONS = st.sampled_from(["new", "burst", "same", "same", "fail"])
GROUPS = [("shop", "web"), ("shop", ""), ("pay", "api"), ("pay", "web")]


def _at(points: list[Point], t: float) -> Point | None:
    """The pod's newest point at or before `t` (a step function, as an instant query reads it)."""
    before = [p for p in points if p.timestamp <= t]
    return before[-1] if before else None


def _expected_row(store: Store, pods: list[tuple[str, str]], t: float) -> tuple[float | None, ...]:
    out: list[float | None] = [None] * len(COLUMNS)

    def add(i: int, v: float | None) -> None:
        if v is not None:
            out[i] = v if out[i] is None else out[i] + v  # type: ignore[operator]

    for ns, name in pods:
        series = store.pod_series(ns, name, since=0) or []
        latest = _at(series, t)
        assert latest is not None, f"{ns}/{name} reported in the round but has no point"
        add(CPU, latest.row[CPU])
        add(MEM, latest.row[MEM])
        fresh = latest.timestamp == t
        for i in IO:
            v = latest.row[i]
            add(i, v if fresh else (0 if v is not None else None))
    return tuple(out)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_roll_up_equals_sum_of_pod_series_over_any_drift(data: st.DataObject) -> None:
    nodes = data.draw(st.integers(1, 3), label="nodes")
    layout = {
        f"n{n}": data.draw(st.lists(st.sampled_from(GROUPS), min_size=1, max_size=3), label=f"pods of n{n}")
        for n in range(nodes)
    }
    rounds = data.draw(st.integers(2, 12), label="rounds")
    clock = Clock(T0)
    store = Store(clock=clock, retention_points=64, stale_after=1e6)
    sample_time = {n: T0 + data.draw(st.floats(-400, 400), label=f"clock skew of {n}") for n in layout}
    counters = {(n, i): dict.fromkeys(COUNTERS, 0) | {"cpu_seconds_total": 0.0}
                for n, pods in layout.items() for i in range(len(pods))}
    memory = dict.fromkeys(counters, 0)
    seen: dict[int, list[tuple[str, str]]] = {}  # round -> pods reported in it
    started = T0
    for r in range(rounds):
        started += data.draw(st.floats(0.5, 10), label="round spacing")
        clock.now = started
        seen[r] = []
        for n, pods in layout.items():
            action = data.draw(ACTIONS, label=f"round {r} {n}")
            if action == "fail":
                store.mark_down(n, reason="timeout", when=started)
                continue
            if action in ("new", "burst"):
                for _ in range(3 if action == "burst" else 1):
                    sample_time[n] += data.draw(st.floats(0.1, 9), label="sampling spacing")
                    for key in [k for k in counters if k[0] == n]:
                        for c in COUNTERS:
                            counters[key][c] += data.draw(st.integers(0, 10**10), label="bytes")
                        counters[key]["cpu_seconds_total"] += data.draw(st.floats(0, 4), label="cpu")
                        memory[key] = data.draw(st.integers(0, 2**34), label="memory")
            readings = [
                pod(f"{n}-p{i}", ns, dep=dep, memory_working_set_bytes=float(memory[(n, i)]),
                    **{k: float(v) for k, v in counters[(n, i)].items()})
                for i, (ns, dep) in enumerate(pods)
            ]
            store.ingest(node(n, sample_time[n], *readings), received=started)
            seen[r] += [(ns, f"{n}-p{i}") for i, (ns, _dep) in enumerate(pods)]
        store.end_round(round_result(r, started))

    groups = {key for pods in layout.values() for ns, dep in pods for key in ((ns, dep), (ns, ""))}
    for ns, dep in groups:
        members = {
            (ns, f"{n}-p{i}")
            for n, pods in layout.items()
            for i, (ns2, d2) in enumerate(pods)
            if ns2 == ns and (not dep or d2 == dep)
        }
        points = store.group_series(ns, dep, since=0) or []
        rounds_in = [r for r, pods in seen.items() if members & set(pods)]
        assert len(points) == len(rounds_in)
        for p, r in zip(points, rounds_in, strict=True):
            want = _expected_row(store, [m for m in seen[r] if m in members], p.timestamp)
            got = p.row
            if want[CPU] is None:
                assert got[CPU] is None
            else:
                assert got[CPU] == pytest.approx(want[CPU])  # float sums in another order
            assert got[1:] == want[1:], (ns, dep, r)
        # I/O is conserved: what the group served over the run is what its pods moved.
        for i in IO:
            pods_total = sum((q.row[i] or 0) for m in members for q in (store.pod_series(*m, since=0) or []))
            assert sum((p.row[i] or 0) for p in points) == pods_total


def test_handmade_exporter_scraped_three_times_per_snapshot_counts_each_byte_once() -> None:
    """The issue's case: a snapshot that changes every 3 s, scraped every second, 18 s long. The pod
    moved 1000 bytes per snapshot; its namespace used to be credited 1000 per scrape (3x)."""
    clock = Clock(T0)
    with HandmadeExporter("drift-node", pods=1) as exporter:
        svc = DrivenService([exporter.target], clock=clock)
        for second in range(19):
            if second % 3 == 0:
                exporter.snapshot(seq=second // 3, timestamp=T0 + second)
            clock.now = T0 + second
            svc.round()
    (pod_view,) = svc.store.pods()
    ns, name = pod_view.namespace, pod_view.pod
    recv = COLUMNS.index("net_recv_bytes")
    pod_points = svc.store.pod_series(ns, name, since=0) or []
    ns_points = svc.store.group_series(ns, since=0) or []
    pod_bytes = sum(p.row[recv] or 0 for p in pod_points)
    ns_bytes = sum(p.row[recv] or 0 for p in ns_points)
    assert len(pod_points) == 7 and len(ns_points) == 19  # a point per snapshot; a roll-up per round
    assert pod_bytes == 6000  # 6 intervals x 1000 bytes (tests.aggregator_fakes: 1000 per seq)
    assert ns_bytes == pod_bytes  # was 18000
    # The re-scraped rounds keep the pod's memory in the namespace, with no I/O.
    mem = COLUMNS.index("memory_bytes")
    assert all(p.row[mem] == pod_points[0].row[mem] for p in ns_points)
    assert [p.row[recv] for p in ns_points[4:7]] == [0, 0, 1000]
    assert svc.stats.snapshot()["errors"] == {}


def test_two_pushes_between_rounds_both_count_in_the_roll_up() -> None:
    """Pushes are not scrapes: two pushed samples between two rounds bring both their bytes."""
    clock = Clock(T0)
    store = Store(clock=clock)
    for i, total in enumerate((1000.0, 1500.0, 4000.0)):
        clock.now = T0 + i
        store.ingest_pod("n1", pod("p", "ns", network_receive_bytes_total=total), timestamp=T0 + i)
        if i == 0:
            store.end_round(round_result(0, clock.now))
    store.end_round(round_result(1, clock.now))
    recv = COLUMNS.index("net_recv_bytes")
    assert [p.row[recv] for p in store.group_series("ns", since=0) or []] == [None, 3000]
    assert sum(p.row[recv] or 0 for p in store.pod_series("ns", "p", since=0) or []) == 3000
