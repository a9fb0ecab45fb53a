"""Store: rates across resets and missed scrapes, staleness, down nodes, retention, concurrency, memory."""

from __future__ import annotations

import math
import threading

import pytest

from aggregator.model import NodeReading, PodReading, RoundResult
from aggregator.rates import CounterTracker, counter_delta
from aggregator.stats import AggregatorStats
from aggregator.store.series import COLUMNS, ChunkedSeries
from aggregator.store.store import Store


class Clock:
    """A settable clock so staleness and expiry are tested without sleeping."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def pod(
    name: str, ns: str = "default", *, uid: str | None = None, dep: str = "", **values: float
) -> PodReading:
    return PodReading(namespace=ns, pod=name, uid=uid or f"uid-{ns}-{name}", deployment=dep, values=values)


def node(name: str, ts: float, *pods: PodReading, **values: float) -> NodeReading:
    return NodeReading(node=name, timestamp=ts, values=values, pods=tuple(pods))


def round_result(round_id: int, started: float) -> RoundResult:
    return RoundResult(round_id=round_id, started=started, duration_seconds=0.1, targets=())


# --- rates -------------------------------------------------------------------------------------------


def test_counter_delta_normal_reset_and_no_time() -> None:
    d = counter_delta(100.0, 160.0, seconds=5.0)
    assert d is not None and d.delta == 60.0 and d.rate == 12.0
    reset = counter_delta(1000.0, 30.0, seconds=5.0)  # counter restarted: 30 counted since the reset
    assert reset is not None and reset.delta == 30.0 and reset.rate == 6.0
    assert counter_delta(1.0, 2.0, seconds=0.0) is None


def test_tracker_first_sample_has_no_rate_and_gap_spans_missing_value() -> None:
    t = CounterTracker()
    assert t.update({"disk_read_bytes_total": 100.0}, 10.0) == ({}, {}, None)  # first: no rate, not 0
    assert t.update({}, 15.0) == ({}, {}, None)  # counter missing this time
    deltas, rates, seconds = t.update({"disk_read_bytes_total": 200.0}, 20.0)
    assert (deltas, rates, seconds) == (
        {"disk_read_bytes_total": 100.0},
        {"disk_read_bytes_total": 10.0},
        10.0,
    )
    deltas, rates, seconds = t.update({"disk_read_bytes_total": 50.0}, 25.0)  # reset
    assert (deltas, rates, seconds) == ({"disk_read_bytes_total": 50.0}, {"disk_read_bytes_total": 10.0}, 5.0)


def test_store_rates_across_missed_scrapes_and_resets() -> None:
    clock = Clock()
    store = Store(clock=clock)
    store.ingest(node("n1", 100.0, disk_read_bytes_total=1000.0, cpu_seconds_total=50.0), received=100.0)
    first = store.node("n1")
    assert first is not None and first.sample is not None
    assert first.sample.rates == {} and first.sample.interval_seconds is None
    # A missed scrape: the next stored snapshot is 15 s later; the rate spans the whole gap.
    store.ingest(node("n1", 115.0, disk_read_bytes_total=4000.0, cpu_seconds_total=80.0), received=115.0)
    s = store.node("n1").sample  # type: ignore[union-attr]
    assert s.deltas["disk_read_bytes_total"] == 3000.0
    assert s.rates["disk_read_bytes_total"] == pytest.approx(200.0)
    assert s.rates["cpu_seconds_total"] == pytest.approx(2.0)
    assert s.interval_seconds == 15.0
    # The exporter restarted: counters dropped, the new value is the delta since the reset.
    store.ingest(node("n1", 120.0, disk_read_bytes_total=500.0, cpu_seconds_total=1.0), received=120.0)
    s = store.node("n1").sample  # type: ignore[union-attr]
    assert s.deltas["disk_read_bytes_total"] == 500.0 and s.rates["disk_read_bytes_total"] == 100.0
    assert s.cpu_millicores == pytest.approx(200.0)  # no gauge: counter rate (1 s / 5 s) in millicores
    points = store.node_series("n1", since=0)
    assert points is not None and [p.timestamp for p in points] == [100.0, 115.0, 120.0]
    assert points[0].row[COLUMNS.index("disk_read_bytes")] is None
    assert points[1].row[COLUMNS.index("disk_read_bytes")] == 3000.0
    assert points[1].row[COLUMNS.index("cpu_millicores")] == pytest.approx(2000.0)


def test_current_cpu_prefers_gauge_and_series_uses_counter_rate() -> None:
    store = Store(clock=Clock())
    store.ingest(node("n1", 10.0, cpu_usage_cores=1.5, cpu_seconds_total=100.0))
    store.ingest(node("n1", 15.0, cpu_usage_cores=1.5, cpu_seconds_total=107.5))
    view = store.node("n1")
    assert view is not None and view.sample is not None
    assert view.sample.cpu_millicores == 1500.0
    points = store.node_series("n1", since=0)
    assert points is not None
    assert points[0].row[0] == 1500.0  # first point: gauge (no rate yet)
    assert points[1].row[0] == pytest.approx(1500.0)  # counter rate agrees with the gauge


def test_same_snapshot_twice_stores_nothing() -> None:
    stats = AggregatorStats()
    store = Store(clock=Clock(), stats=stats)
    reading = node("n1", 10.0, pod("a", cpu_seconds_total=1.0), cpu_usage_cores=1.0)
    assert store.ingest(reading) == 2
    assert store.ingest(reading) == 0
    assert store.ingest(node("n1", 9.0, cpu_usage_cores=5.0)) == 0  # older than stored
    assert len(store.node_series("n1", since=0) or []) == 1
    assert stats.snapshot()["counters"]["samples_ingested"] == 2


def test_non_finite_values_and_bad_timestamps_are_dropped() -> None:
    stats = AggregatorStats()
    store = Store(clock=Clock(), stats=stats)
    assert store.ingest(node("n1", math.nan, cpu_usage_cores=1.0)) == 0
    assert stats.snapshot()["errors"]["ingest"] == 1
    assert store.ingest(node("n1", 10.0, cpu_usage_cores=math.inf, memory_used_bytes=5.0)) == 1
    view = store.node("n1")
    assert view is not None and view.sample is not None
    assert "cpu_usage_cores" not in view.sample.values


def test_pod_uid_change_restarts_its_counters() -> None:
    store = Store(clock=Clock())
    store.ingest(node("n1", 10.0, pod("db-0", uid="u1", cpu_seconds_total=100.0)))
    store.ingest(node("n1", 15.0, pod("db-0", uid="u2", cpu_seconds_total=500.0)))
    (view,) = store.find_pods("db-0")
    assert view.uid == "u2" and view.sample.rates == {}  # not (500-100)/5


# --- staleness, down nodes, retention -------------------------------------------------------------


def test_stale_pods_leave_listings_but_keep_history() -> None:
    clock = Clock()
    store = Store(clock=clock, stale_after=15.0)
    store.ingest(node("n1", 10.0, pod("a"), pod("b")))
    clock.now += 5
    store.ingest(node("n1", 15.0, pod("a")))  # b vanished
    assert [p.pod for p in store.pods()] == ["a", "b"]
    clock.now += 11  # b last seen 16 s ago
    assert [p.pod for p in store.pods()] == ["a"]
    assert store.find_pods("b") == []
    assert [p.pod for p in store.find_pods("b", current=False)] == ["b"]
    assert len(store.pod_series("default", "b", since=0) or []) == 1


def test_down_node_is_listed_with_reason_and_last_values() -> None:
    clock = Clock()
    store = Store(clock=clock)
    store.ingest(node("n1", 10.0, memory_used_bytes=123.0))
    store.mark_down("n1", reason="connection refused", when=clock.now)
    clock.now += 100  # long after staleness: still listed, because the scraper keeps reporting it
    store.mark_down("n1", reason="timeout", when=clock.now)
    (view,) = store.nodes()
    assert view.status == "down" and view.last_error == "timeout"
    assert view.down_since == clock.now - 100
    assert view.sample is not None and view.sample.values["memory_used_bytes"] == 123.0
    store.ingest(node("n1", 200.0, memory_used_bytes=1.0))
    (view,) = store.nodes()
    assert view.status == "up" and view.last_error is None and view.down_since is None
    store.mark_down("n2", reason="never answered", when=clock.now)  # no sample yet: listed anyway
    assert [(n.name, n.status, n.sample) for n in store.nodes()][1] == ("n2", "down", None)


def test_nodes_no_longer_reported_drop_out() -> None:
    clock = Clock()
    store = Store(clock=clock, stale_after=15.0)
    store.ingest(node("n1", 10.0))
    clock.now += 16
    assert store.nodes() == []
    assert store.node("n1") is not None  # history still there


def test_retention_bounds_points_and_expiry_drops_series() -> None:
    clock = Clock(100.0)
    store = Store(clock=clock, retention_points=5, interval=5.0, stale_after=15.0)
    for i in range(12):
        store.ingest(
            node("n1", 100.0 + 5 * i, pod(f"p{i % 2}", cpu_seconds_total=float(i)), cpu_seconds_total=i)
        )
        clock.now += 5
    points = store.node_series("n1", since=0)
    assert points is not None and [p.timestamp for p in points] == [135.0, 140.0, 145.0, 150.0, 155.0]
    # Pod churn: gone pods expire once older than retention x interval (25 s), so memory stays bounded.
    store.ingest(node("n1", 200.0, pod("other")))
    clock.now += 26
    store.end_round(round_result(1, clock.now))
    assert store.series_counts()["pod"] == 0 and store.series_counts()["node"] == 0


@pytest.mark.parametrize("chunk_points", [1, 2, 240])
def test_series_deque_semantics(chunk_points: int) -> None:
    ring = ChunkedSeries(3, width=2, chunk_points=chunk_points)
    for i in range(5):
        ring.append(float(i), (float(i), None if i == 3 else 1.0))
    assert len(ring) == 3 and ring.newest_timestamp() == 4.0
    assert ring.points() == [(2.0, (2.0, 1.0)), (3.0, (3.0, None)), (4.0, (4.0, 1.0))]
    assert ring.points(since=3.5) == [(4.0, (4.0, 1.0))]
    assert ring.points(since=3.5, previous=True) == [(3.0, (3.0, None)), (4.0, (4.0, 1.0))]
    assert ring.points(since=1.0, previous=True) == ring.points()  # nothing before the oldest kept point
    assert ring.points(since=9.0, previous=True) == [(4.0, (4.0, 1.0))]  # the window is empty
    with pytest.raises(ValueError, match="expected 2 values"):
        ring.append(5.0, (1.0,))
    with pytest.raises(ValueError, match="finite timestamp"):
        ring.append(math.nan, (1.0, 1.0))
    assert len(ring) == 3 and ring.newest_timestamp() == 4.0  # a refused point changes nothing


@pytest.mark.parametrize("chunk_points", [1, 2, 3, 240])
def test_series_values_come_back_exactly_whole_numbers_as_int(chunk_points: int) -> None:
    """float32 points turned 2716020736 into 2716021000; every value now comes back as appended, from
    the open chunk and from closed ones alike; whole numbers as int (JSON integers)."""
    ring = ChunkedSeries(4, chunk_points=chunk_points)
    rows = [
        (250.0, 2716020736.0, 0.0, 4096.0, None, 7.0),
        (253.123456789, 2716020737.0, 1.5, 4096.0, 2.0**40 + 1, 8.0),
        (None, 123.0, 0.0, None, 3.0, 9.0),
        (0.25, 2.0**53 + 2, -0.0, -4096.0, 1e300, 5e-324),
    ]
    for i, row in enumerate(rows):
        ring.append(100.0 + i, row)
    got = [r for _t, r in ring.points()]
    assert got == rows
    assert [type(v) for v in got[0]] == [int, int, int, int, type(None), int]
    assert [type(v) for v in got[1]] == [float, int, float, int, int, int]
    assert [type(v) for v in got[3]] == [float, float, float, int, float, float]
    assert math.copysign(1.0, got[3][2]) == -1.0  # -0.0 keeps its sign
    ring.append(104.0, (1.0, 1.0, 1.0, 1.0, 1.0, 1.0))  # the oldest point goes
    assert [r for _t, r in ring.points()] == [*rows[1:], (1, 1, 1, 1, 1, 1)]
    ts, columns = ring.export()
    again = ChunkedSeries.restore(4, ts, columns)
    assert again.points() == ring.points()


def test_buffer_bytes_per_typical_pod_point() -> None:
    """Once chunks close, a pod point of regular values costs a few bytes; the open chunk is plain
    float64 (56 B a point) until it closes."""
    store = Store(clock=Clock(), retention_points=100)
    for i in range(300):
        pods = [
            pod(f"p{j}", cpu_seconds_total=0.37 * i, memory_working_set_bytes=1e6 + 4096 * (i % 7),
                disk_read_bytes_total=4096.0 * i, disk_written_bytes_total=512.0 * i,
                network_receive_bytes_total=1500.0 * i, network_transmit_bytes_total=900.0 * i)
            for j in range(30)
        ]
        store.ingest(node("n1", 10.0 + i, *pods, cpu_seconds_total=float(i)), received=10.0 + i)
    nbytes, points = store.buffer_bytes()
    assert points == 31 * 100
    records = [s.export_chunks() for s in [n.series for n in store._nodes.values()] + [
        p.series for p in store._pods.values()]]
    open_points = sum(len(r.open) // 7 for r in records)
    closed_points = sum(sum(r.counts) for r in records)
    chunk_bytes = sum(sum(map(len, r.blobs)) for r in records)
    per_closed = chunk_bytes / closed_points
    print(f"\nbuffer bytes per stored point: {nbytes / points:.1f}; closed chunks {per_closed:.2f}")
    assert closed_points > 0 and per_closed < 4  # 56 B plain (how many closed depends on the stagger)
    bookkeeping = sum(2 * len(r.counts) + 8 * len(r.bounds) for r in records)
    assert nbytes == chunk_bytes + 56 * open_points + bookkeeping


def test_series_nbytes_counts_chunk_bytes_and_the_open_buffer() -> None:
    series = ChunkedSeries(10, width=1, chunk_points=4)
    assert series.nbytes() == 0
    for i in range(7):  # the first chunk closes after 1..4 points (per-series offset)
        series.append(float(i), (float(i * 4096),))
    record = series.export_chunks()
    assert record.counts and record.blobs and record.open
    chunk_bytes = sum(map(len, record.blobs)) + 2 * len(record.counts) + 8 * len(record.bounds)
    assert series.nbytes() == chunk_bytes + 8 * len(record.open)
    assert sum(record.counts) + len(record.open) // 2 == 7 and len(series) == 7


# --- concurrency ---------------------------------------------------------------------------------


def test_concurrent_ingest_and_reads_stay_consistent() -> None:
    clock = Clock()
    store = Store(clock=clock, retention_points=50)
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(n: int) -> None:
        try:
            for i in range(300):
                pods = [pod(f"p{n}-{j}", cpu_seconds_total=float(i)) for j in range(5)]
                store.ingest(node(f"n{n}", 1.0 + i, *pods, cpu_seconds_total=float(i)))
                if i % 50 == 0:
                    store.end_round(round_result(i, 1.0 + i))
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            while not stop.is_set():
                for v in store.pods():
                    assert v.sample is not None
                for n in store.nodes():
                    assert len(store.node_series(n.name, since=0) or []) <= 50
                store.groups()
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in writers + readers:
        t.start()
    try:
        for t in writers:
            t.join(timeout=60)
    finally:
        stop.set()
        for t in readers:
            t.join(timeout=10)
    assert not errors, errors
    assert not any(t.is_alive() for t in writers + readers)
    assert len(store.pods()) == 20
    assert all(len(store.pod_series(p.namespace, p.pod, since=0) or []) == 50 for p in store.pods())
