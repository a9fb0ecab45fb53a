"""Chunked series and their codec: every value back bit for bit, windows read from the chunks they touch.

Property tests (hypothesis) over awkward values: None, NaNs with payloads, -0.0, subnormals, 2**53 and
its neighbours, huge and negative numbers, short decimals, full-precision fractions, and timestamps
regular, jittered, out of order or far apart; plus the exact stream each transform chose.
"""

from __future__ import annotations

import math
import os
import struct
from array import array

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.store import chunks
from aggregator.store.series import ChunkedSeries, ChunkRecord

WIDTH = 3
# mutation testing (scripts/mutation.py) runs these once per mutant: fewer examples find a wrong value too
EXAMPLES = 40 if os.environ.get("K8SMON_MUTATION") else 300


def _bits(v: float | int | None) -> object:
    """A value's identity: None, or its type and float64 bits (so -0.0 != 0.0 and NaN payloads count)."""
    if v is None:
        return None
    return type(v), struct.pack("<d", float(v))


def _expected(v: float | int | None) -> float | int | None:
    """What the series must hand back for an appended value: whole numbers up to 2**53 as int."""
    if v is None:
        return None
    f = float(v)
    if f.is_integer() and abs(f) <= 2**53 and not (f == 0 and math.copysign(1.0, f) < 0):
        return int(f)
    return f


def _nan(payload: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", 0x7FF0_0000_0000_0000 | payload))[0]


AWKWARD = st.sampled_from([
    None, 0.0, -0.0, 1.0, -1.0, 2.0**53, 2.0**53 + 2, -(2.0**53), 2.0**53 - 1, 2.0**63, 2.0**64, 1e300,
    -1e300, 5e-324, -5e-324, 2.2250738585072014e-308, math.inf, -math.inf, math.nan, _nan(1), _nan(0xDEAD),
    0.1, 0.3, 1234.5, 0.000001, 4096.0, 4294967295.0, 2716020736.0, 1 / 3,
])
VALUES = st.one_of(
    AWKWARD,
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.integers(min_value=-10**9, max_value=10**9).map(lambda m: m / 1000),  # short decimals
    st.integers(min_value=0, max_value=1 << 40).map(lambda m: float(m * 4096)),  # pages
)
ROWS = st.lists(st.tuples(*[VALUES] * WIDTH), min_size=1, max_size=60)


def _timestamps(draw: st.DrawFn, n: int) -> list[float]:
    kind = draw(st.sampled_from(["regular", "jittered", "any"]))
    if kind == "any":
        return [draw(st.floats(allow_nan=False, allow_infinity=False)) for _ in range(n)]
    start = draw(st.floats(min_value=-1e12, max_value=1e12))
    jitter = 0.0 if kind == "regular" else draw(st.floats(min_value=0, max_value=1))
    return [start + 5 * k + jitter * ((k * 7919) % 13 - 6) / 6 for k in range(n)]


@st.composite
def _points(draw: st.DrawFn) -> list[tuple[float, tuple[float | int | None, ...]]]:
    rows = draw(ROWS)
    return list(zip(_timestamps(draw, len(rows)), rows, strict=True))


def _check(got: list[tuple[float, tuple]], points: list[tuple[float, tuple]]) -> None:
    assert [_bits(t) for t, _ in got] == [_bits(float(t)) for t, _ in points]
    want = [[_bits(_expected(v)) for v in row] for _, row in points]
    assert [[_bits(v) for v in row] for _, row in got] == want


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_points())
def test_a_chunk_decodes_to_exactly_what_was_encoded(points: list[tuple[float, tuple]]) -> None:
    timestamps = array("d", [t for t, _ in points])
    columns = [array("d", [chunks.NONE if row[c] is None else row[c] for _, row in points])
               for c in range(WIDTH)]
    got_ts, got_columns = chunks.decode(chunks.encode(timestamps, columns))
    _check(list(zip(got_ts, zip(*got_columns, strict=True), strict=True)), points)


@settings(max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_points(), st.integers(min_value=1, max_value=70), st.integers(min_value=1, max_value=9),
       st.floats(allow_nan=False, allow_infinity=False))
def test_the_series_shows_the_newest_capacity_points_exactly(
    points: list[tuple[float, tuple]], capacity: int, chunk_points: int, since: float
) -> None:
    series = ChunkedSeries(capacity, WIDTH, chunk_points=chunk_points)
    for t, row in points:
        series.append(t, row)
    shown = points[-capacity:]
    assert len(series) == len(shown) and series.newest_timestamp() == points[-1][0]
    _check(series.points(), shown)
    # a window: the points at or after `since`, and with `previous` the newest one before it first
    window = [p for p in shown if p[0] >= since]
    older = [p for p in shown if p[0] < since]
    _check(series.points(since), window)
    _check(series.points(since, previous=True), older[-1:] + window)
    # held: at least the capacity, at most one chunk more (whole chunks go)
    record = series.export_chunks()
    held = sum(record.counts) + len(record.open) // (WIDTH + 1)
    assert held - record.hidden == len(shown)
    assert record.hidden < (record.counts[0] if record.counts else 1)
    # restored from its chunks, with the same, a smaller or a larger capacity
    for cap in (capacity, max(1, capacity // 2), capacity * 2):
        again = ChunkedSeries.restore_chunks(cap, WIDTH, record)
        _check(again.points(), shown[-cap:])
        assert again.newest_timestamp() == points[-1][0]


def test_none_stays_none_and_nans_keep_their_payload() -> None:
    series = ChunkedSeries(10, 2, chunk_points=2)
    rows = [(None, math.nan), (_nan(0xBEEF), None), (None, None), (1.0, -0.0)]
    for i, row in enumerate(rows):
        series.append(float(i), row)
    got = [row for _, row in series.points()]
    assert [[_bits(v) for v in row] for row in got] == [[_bits(_expected(v)) for v in row] for row in rows]
    assert got[0][0] is None and got[2] == (None, None) and math.isnan(got[0][1])


# --- what each stream costs: the transforms chosen ---------------------------------------------------


def _plain(blob: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompress(blob)


def test_regular_timestamps_and_steady_whole_values_cost_almost_nothing() -> None:
    n = 240
    timestamps = array("d", [1_764_000_000.0 + 5 * k for k in range(n)])
    flat = array("d", [4096.0 * 1000] * n)
    zeros = array("d", [0.0] * n)
    raw = _plain(chunks.encode(timestamps, [flat, zeros]))
    # header 3 B; timestamps: mode, first bits, integer head (deltas: mode, first delta, gcd) and one
    # plane mask byte with no planes (every delta-of-delta 0); the flat column: kind, integer head,
    # mask; the zeros: kind and a bitmap of the non-zero values (none)
    ts_bytes = 1 + 8 + chunks._INT_HEAD.size + 1
    assert len(raw) == 3 + ts_bytes + (1 + chunks._INT_HEAD.size + 1) + (1 + n // 8)
    assert raw[-1 - n // 8] == chunks._ZEROS_FLAG | chunks._EMPTY_KIND and raw[-n // 8:] == bytes(n // 8)


def test_mostly_zero_columns_store_a_bitmap_and_the_rest() -> None:
    values = [0.0, 4096.0, 0.0, 0.0, -0.0, 8192.0, 0.0, 0.0]  # -0.0 is not a zero here: its sign is kept
    coded = chunks._column(array("d", values))
    assert coded[0] == chunks._ZEROS_FLAG | chunks._XOR_KIND  # 4096, -0.0, 8192 have no decimal form
    assert coded[1] == 0b0011_0010  # bits 1, 4, 5: the non-zero values
    few = [1.0, 2.0, 3.0, 0.0, 5.0]  # under one in four: no bitmap
    assert chunks._column(array("d", few))[0] == 0
    with_none = [chunks.NONE, 0.0, 0.0, 7.0]
    coded = chunks._column(array("d", with_none))
    assert coded[0] == chunks._MISSING_FLAG | chunks._ZEROS_FLAG | 0 and coded[1:3] == bytes((0b1110, 0b100))
    assert chunks._read_column(coded, 0, 4) == ([None, 0, 0, 7], len(coded))


def test_pages_are_divided_by_their_common_step() -> None:
    values = [1e9 + 4096 * ((k * 37) % 100) for k in range(100)]  # deltas twice the spread once zigzagged
    coded = chunks._column(array("d", values))
    assert coded[0] == 0  # decimal places 0: whole numbers
    mode, base, step = chunks._INT_HEAD.unpack_from(coded, 1)
    assert step == 4096 * 1 and mode == chunks._OFFSET and base == min(int(v) for v in values)
    assert len(coded) < 1 + chunks._INT_HEAD.size + 8 + 1 + 2 * 99  # offsets / 4096 fit in two bytes


def test_decimals_take_the_fewest_places_and_others_fall_back_to_xor() -> None:
    mixed = [1.5, 2.25, 3.0]
    assert chunks._decimal(mixed, chunks._bits(array("d", mixed))) == (2, [150, 225, 300])
    assert chunks._decimal([1.0, 2.0], chunks._bits(array("d", [1.0, 2.0]))) == (0, [1, 2])
    for odd in ([1 / 3, 1.0], [-0.0, 1.0], [math.nan], [math.inf], [2.0**60], [0.1 + 0.2]):
        assert chunks._decimal(odd, chunks._bits(array("d", odd))) is None, odd
    assert chunks._decimal([0.1 + 0.2], chunks._bits(array("d", [0.3]))) is None  # 0.30000000000000004
    assert chunks._decimal([123.456789], chunks._bits(array("d", [123.456789]))) == (6, [123456789])
    assert chunks._decimal([0.5, 1.5], chunks._bits(array("d", [0.5, 1.5]))) == (1, [5, 15])
    edges = [2.0**53, -(2.0**53)]  # the largest whole numbers kept as integers
    assert chunks._decimal(edges, chunks._bits(array("d", edges))) == (0, [2**53, -(2**53)])
    assert chunks._decimal([2.0**53 + 2], chunks._bits(array("d", [2.0**53 + 2]))) is None
    fifteen = [0.123456789012345, 0.5]  # the most places tried
    assert chunks._decimal(fifteen, chunks._bits(array("d", fifteen))) == (15, [123456789012345, 5 * 10**14])
    coded = chunks._column(array("d", fifteen))
    assert coded[0] == 15 and chunks._read_column(coded, 0, 2) == (fifteen, len(coded))
    sixteen = [0.0123456789012345]
    assert chunks._decimal(sixteen, chunks._bits(array("d", sixteen))) is None
    assert chunks._decimal([0.25, 1 / 3], chunks._bits(array("d", [0.25, 1 / 3]))) is None
    fraction = chunks._column(array("d", [1 / 3, 2 / 3]))
    assert fraction[0] == chunks._XOR_KIND


def test_whole_numbers_up_to_2_53_come_back_as_int() -> None:
    assert chunks.output(2.0**53) == 2**53 and type(chunks.output(2.0**53)) is int
    assert type(chunks.output(-(2.0**53))) is int
    assert type(chunks.output(2.0**53 + 2)) is float
    assert type(chunks.output(-0.0)) is float and type(chunks.output(0.0)) is int
    assert chunks.output(chunks.NONE) is None and math.isnan(chunks.output(math.nan))  # type: ignore[arg-type]
    assert chunks._from_decimal([150, 225, 300, -100], 2) == [1.5, 2.25, 3, -1]


def test_integer_streams_pick_the_narrower_of_deltas_and_offsets() -> None:
    rising = list(range(10**12, 10**12 + 1000, 10))  # deltas all 10: zero planes after the GCD
    coded = chunks._ints(rising)
    assert coded is not None and chunks._INT_HEAD.unpack_from(coded, 0) == (chunks._DELTA, 10**12, 10)
    # every delta over the GCD is 1, zigzagged 2: one plane of 2s
    assert coded[chunks._INT_HEAD.size:] == bytes((1,)) + bytes((2,)) * (len(rising) - 1)
    noisy = [5, 900, 3, 870, 12, 880]  # jumps both ways: offsets from 3 are narrower than the deltas
    coded = chunks._ints(noisy)
    assert coded is not None and chunks._INT_HEAD.unpack_from(coded, 0)[0] == chunks._OFFSET
    assert chunks._unints(coded, 0, len(noisy))[0] == noisy
    assert chunks._ints([-(2**63), 2**63 - 1]) is None  # a delta would overflow int64
    assert chunks._zigzag([0, -1, 1, -2, 2**62, -(2**63)]) == [0, 1, 2, 3, 2**63, 2**64 - 1]
    assert chunks._unzigzag([0, 1, 2, 3, 2**63, 2**64 - 1]) == [0, -1, 1, -2, 2**62, -(2**63)]


def test_byte_planes_keep_only_non_zero_planes() -> None:
    values = [0x0100, 0x0200, 0x0300]
    packed = chunks._planes(values)
    assert packed == bytes((0b10,)) + bytes((1, 2, 3))
    assert chunks._unplanes(packed, 0, 3) == (values, 4)
    assert chunks._planes([0, 0]) == b"\x00"
    assert chunks._unplanes(b"\xff" + bytes(range(16)), 0, 2)[0] == [
        int.from_bytes(bytes(range(0, 16, 2)), "little"), int.from_bytes(bytes(range(1, 16, 2)), "little")]


def test_corrupt_chunks_raise_a_chunk_error() -> None:
    blob = chunks.encode(array("d", [1.0, 2.0]), [array("d", [3.0, 4.0])])
    with pytest.raises(chunks.ChunkError, match=r"^corrupt chunk: error determining content size"):
        chunks.decode(b"not zstd")
    raw = _plain(blob)
    broken = {
        "corrupt chunk: bytes after its last column": raw + b"\0",
        "corrupt chunk: unpack_from requires a buffer": raw[:8],
        "a byte plane shorter than its count": raw[:-1],
        "unknown timestamp mode 7": raw[:3] + b"\x07" + raw[4:],
        "unknown column mode 61": raw[:-28] + b"\x3d" + raw[-27:],  # the column: kind, 17 + 8 + 2
        "unknown integer mode 9": raw[:-27] + b"\x09" + raw[-26:],
    }
    for message, data in broken.items():
        with pytest.raises(chunks.ChunkError, match=f"^{message}"):
            chunks.decode(zstandard.ZstdCompressor().compress(data))
    for n in (0, 65536):
        with pytest.raises(ValueError, match=rf"1\.\.65535 points and columns of equal length, got {n}$"):
            chunks.encode(array("d", [0.0] * n), [])
    with pytest.raises(ValueError, match=r"columns of equal length, got 2$"):
        chunks.encode(array("d", [0.0, 1.0]), [array("d", [0.0])])
    blob = chunks.encode(array("d", [1.0] * 65535), [])  # the most a chunk holds
    assert len(chunks.decode(blob)[0]) == 65535
    params = zstandard.get_frame_parameters(blob)
    assert params.content_size == len(_plain(blob)) and not params.has_checksum
    with pytest.raises(chunks.ChunkError, match=r"^a bitmap shorter than its count$"):
        chunks._unbitmap(b"\xff", 0, 9)
    with pytest.raises(chunks.ChunkError, match=r"^a byte plane shorter than its count$"):
        chunks._unplanes(b"\x01\x05", 0, 2)


@pytest.mark.parametrize("n", [8, 16, 240])
def test_realistic_chunks_round_trip_bit_for_bit(n: int) -> None:
    """The bench's realistic values (jittered round clock, nanocore CPU, pages, bursty I/O, some
    missing) at chunk sizes whose bitmaps end on a byte boundary."""
    import random

    rng = random.Random(n)  # as bench/history_bench.py makes them (scratch copies under mutation lack bench/)
    points: list[tuple[float, tuple]] = []
    memory = 123_456 * 4096
    for k in range(n):
        cpu = (rng.randrange(10**9) / 1e6) / (5 + rng.uniform(-0.005, 0.005)) * 1000.0
        memory += 4096 * rng.randrange(-64, 64)
        io = [float(rng.randrange(4096, 1 << 20, 4096)) if rng.random() < 0.2 else 0.0 for _ in range(4)]
        row = (None if k == 1 else round(cpu * 1e6) / 1e6, float(memory), *io)
        points.append((1_764_000_000.0 + 5 * k + rng.uniform(0, 0.005), row))
    timestamps = array("d", [t for t, _ in points])
    columns = [array("d", [chunks.NONE if r[c] is None else r[c] for _, r in points]) for c in range(6)]
    got_ts, got_columns = chunks.decode(chunks.encode(timestamps, columns))
    _check(list(zip(got_ts, zip(*got_columns, strict=True), strict=True)), points)
    coded = [chunks._column(c) for c in columns]
    assert coded[0][0] == chunks._MISSING_FLAG | 6  # nanocores: 6 decimal places of millicores
    assert all(c[0] & chunks._ZEROS_FLAG for c in coded[2:])  # I/O: mostly 0


def test_negative_and_far_apart_timestamps_round_trip() -> None:
    for stamps in ([-5.0, -3.0, 2.0], [-1e300, 1e300, 0.0], [5e-324, -5e-324, 1.0]):
        ts = array("d", stamps)
        got, _ = chunks.decode(chunks.encode(ts, [array("d", [0.0] * len(ts))]))
        assert [struct.pack("<d", t) for t in got] == [struct.pack("<d", t) for t in ts]


# --- reading and dropping whole chunks ---------------------------------------------------------------


def test_a_window_decodes_only_the_chunks_it_touches(monkeypatch: pytest.MonkeyPatch) -> None:
    series = ChunkedSeries(1000, 1, chunk_points=100)
    for k in range(1000):
        series.append(5.0 * k, (float(k),))
    decoded: list[bytes] = []
    real = chunks.decode
    monkeypatch.setattr(chunks, "decode", lambda blob: decoded.append(blob) or real(blob))
    newest = series.newest_timestamp()
    assert newest == 4995.0
    window = series.points(since=newest - 300)
    assert [v for _, (v,) in window] == list(range(939, 1000))
    assert len(decoded) <= 1  # the open chunk is plain; at most the last closed one
    decoded.clear()
    series.points(since=newest - 300, previous=True)
    assert len(decoded) <= 1
    decoded.clear()
    assert len(series.points()) == 1000 and len(decoded) == series.chunk_count()


def test_whole_chunks_go_once_the_newer_points_fill_the_capacity() -> None:
    series = ChunkedSeries(10, 1, chunk_points=4)
    for k in range(40):
        series.append(float(k), (k,))
        record = series.export_chunks()
        held = sum(record.counts) + len(record.open) // 2
        assert len(series) == min(k + 1, 10)
        assert held - record.hidden == len(series)
        assert held < 10 + 4 + 4  # never more than a chunk (and the first, shorter one) past capacity
        assert not record.counts or record.hidden < record.counts[0]
    assert [v for _, (v,) in series.points()] == list(range(30, 40))


def test_restore_chunks_refuses_records_that_do_not_add_up() -> None:
    series = ChunkedSeries(10, 1, chunk_points=2)
    for k in range(5):
        series.append(float(k), (k,))
    good = series.export_chunks()
    bad = [
        ChunkRecord(good.hidden, array("H", [*good.counts, 2]), good.bounds, good.blobs, good.open),
        ChunkRecord(good.hidden, good.counts, good.bounds[:-1], good.blobs, good.open),
        ChunkRecord(good.hidden, good.counts, good.bounds, good.blobs, good.open[:-1]),
        ChunkRecord(99, good.counts, good.bounds, good.blobs, good.open),
    ]
    for record in bad:
        with pytest.raises(ValueError, match="chunk record"):
            ChunkedSeries.restore_chunks(10, 1, record)
    assert ChunkedSeries.restore_chunks(10, 1, good).points() == series.points()


def _record(counts: list[int], open_points: list[float], *, hidden: int = 0, width: int = 1) -> ChunkRecord:
    """A chunk record with real chunks of `counts` points (values 0, 1, ...) and the given open points."""
    blobs, bounds, k = [], array("d"), 0
    for n in counts:
        if n == 0:  # not a chunk encode makes
            blobs.append(b"")
            bounds.extend((0.0, 0.0))
            continue
        ts = array("d", [float(t) for t in range(k, k + n)])
        blobs.append(chunks.encode(ts, [array("d", ts)] * width))
        bounds.extend((ts[0], ts[-1]))
        k += n
    return ChunkRecord(hidden, array("H", counts), bounds, tuple(blobs), array("d", open_points))


def test_restore_chunks_checks_what_is_hidden() -> None:
    with pytest.raises(ValueError, match="hiding 3 of 4 points"):  # more than the closed chunks hold
        ChunkedSeries.restore_chunks(10, 1, _record([2], [2.0, 2.0, 3.0, 3.0], hidden=3))
    with pytest.raises(ValueError, match="hiding 2 of 2 points"):  # every point hidden
        ChunkedSeries.restore_chunks(10, 1, _record([2], [], hidden=2))
    with pytest.raises(ValueError, match="hiding 1 of 1 points"):
        ChunkedSeries.restore_chunks(10, 1, _record([1], [], hidden=1))
    mismatch = r"^a chunk record whose counts, bounds, chunks and open points do not match$"
    with pytest.raises(ValueError, match=mismatch):
        ChunkedSeries.restore_chunks(10, 1, _record([0], []))
    series = ChunkedSeries.restore_chunks(10, 1, _record([2], [2.0, 2.0, 3.0, 3.0], hidden=2))
    assert series.points() == [(2.0, (2,)), (3.0, (3,))] and series.newest_timestamp() == 3.0
    one_hidden = ChunkedSeries.restore_chunks(10, 1, _record([2], [2.0, 2.0, 3.0, 3.0], hidden=1))
    assert one_hidden.points(since=1.0, previous=True) == [(1.0, (1,)), (2.0, (2,)), (3.0, (3,))]  # not 0
    assert one_hidden.points(since=1.5, previous=True) == [(1.0, (1,)), (2.0, (2,)), (3.0, (3,))]
    assert one_hidden.points(since=-1.0) == one_hidden.points() == [(1.0, (1,)), (2.0, (2,)), (3.0, (3,))]
    closed_only = ChunkedSeries.restore_chunks(10, 1, _record([2, 3], []))
    assert closed_only.newest_timestamp() == 4.0 and len(closed_only) == 5


def test_restore_chunks_keeps_chunk_sizes_and_the_open_chunk() -> None:
    three_open = [10.0, 10.0, 11.0, 11.0, 12.0, 12.0]
    series = ChunkedSeries.restore_chunks(10, 1, _record([2], three_open), chunk_points=4)
    assert series.chunk_count() == 1
    series.append(13.0, (13,))  # the open chunk reaches 4 points: it closes at the next append
    assert series.chunk_count() == 1
    series.append(14.0, (14,))
    assert series.chunk_count() == 2 and [t for t, _ in series.points()] == [0, 1, 10, 11, 12, 13, 14]
    full = ChunkedSeries.restore_chunks(10, 1, _record([], three_open[:4] * 2), chunk_points=4)
    assert full.chunk_count() == 1  # an open chunk as large as a chunk is closed at once
    small = ChunkedSeries.restore_chunks(10, 1, _record([], three_open[:2]), chunk_points=4)
    assert small.chunk_count() == 0
    wide = ChunkedSeries.restore_chunks(10, 1, _record([], [1.0, 1.0]), chunk_points=40000)
    wide.append(2.0, (2,))
    assert wide.chunk_count() == 0  # chunk_points reached the series: no close before 40000 points
    long_chunk = ChunkRecord(0, array("H", [40000]), array("d", [0.0, 1.0]), (b"-",), array("d", [2.0, 5.0]))
    assert len(ChunkedSeries.restore_chunks(10, 1, long_chunk)) == 10  # counts up to 65535


def test_restore_from_version_2_arrays() -> None:
    """uint32 columns mark a missing value 0xFFFFFFFF, float64 ones NaN; points past the capacity go."""
    ts = array("d", [1.0, 2.0, 3.0])
    whole = array("I", [7, 0xFFFFFFFF, 9])
    wide = array("d", [0.5, math.nan, 2.0])
    series = ChunkedSeries.restore(2, ts, (whole, wide))
    assert series.points() == [(2.0, (None, None)), (3.0, (9, 2))]
    assert ChunkedSeries.restore(5, ts, (whole, wide)).points()[0] == (1.0, (7, 0.5))
    with pytest.raises(ValueError, match=r"^timestamps must be float64$"):
        ChunkedSeries.restore(2, array("f", [1.0]), (array("d", [1.0]),))
    with pytest.raises(ValueError, match="3 points need columns of 3 I/d values"):
        ChunkedSeries.restore(2, ts, (array("d", [1.0]),))
    with pytest.raises(ValueError, match="3 points need columns of 3 I/d values"):
        ChunkedSeries.restore(2, ts, (array("q", [1, 2, 3]),))
    with pytest.raises(ValueError, match="capacity and width must be positive"):
        ChunkedSeries.restore(2, ts, ())
    again = ChunkedSeries.restore(5, *series.export())
    assert again.points() == series.points()
    small_chunks = ChunkedSeries.restore(5, ts, (whole, wide), chunk_points=1)
    assert small_chunks.chunk_count() == 2
    assert small_chunks.points() == ChunkedSeries.restore(5, ts, (whole, wide)).points()


def test_chunks_of_more_than_32767_points_are_counted() -> None:
    series = ChunkedSeries(50000, 1, chunk_points=40000)
    for k in range(40001):  # the 40001st closes the first chunk... once it is full: close_at is staggered
        series.append(float(k), (0,))
    record = series.export_chunks()
    assert sum(record.counts) + len(record.open) // 2 == 40001 and record.counts.typecode == "H"


def test_integer_streams_at_their_edges() -> None:
    for fits in ([-(2**63), -(2**63) + 1], [2**63 - 1, 2**63 - 2], [0, 2**63 - 1]):
        coded = chunks._ints(fits)
        assert coded is not None and chunks._unints(coded, 0, 2)[0] == fits
    assert chunks._ints([-1, 2**63 - 1]) is None and chunks._ints([2**63]) is None
    assert chunks._INT_HEAD.unpack_from(chunks._ints([0, 4, 8]) or b"", 0)[0] == chunks._DELTA  # 2 x 4 = 8
    assert chunks._INT_HEAD.unpack_from(chunks._ints([5, 5, 5]) or b"", 0) == (chunks._DELTA, 5, 1)
    for even in ([0, 2, 4, 8], [10, 4, 2, 0]):  # a common step of exactly 2, both modes
        coded = chunks._ints(even)
        assert coded is not None and chunks._INT_HEAD.unpack_from(coded, 0)[2] == 2
        assert chunks._unints(coded, 0, 4)[0] == even
    assert chunks._planes([1 << 63]) == bytes((0x80,)) + bytes((0x80,))


def test_a_zero_bitmap_from_one_value_in_four() -> None:
    assert chunks._column(array("d", [0.0, 1.5, 2.5, 3.5]))[0] == chunks._ZEROS_FLAG | 1
    assert chunks._column(array("d", [0.0, 1.5, 2.5, 3.5, 4.5]))[0] == 1


def test_series_arguments_and_the_empty_series() -> None:
    for bad in ({"capacity": 0}, {"capacity": 5, "width": 0}):
        with pytest.raises(ValueError, match=r"^capacity and width must be positive$"):
            ChunkedSeries(**bad)
    for points in (0, 65536):
        with pytest.raises(ValueError, match=r"^chunk_points must be 1\.\.65535$"):
            ChunkedSeries(5, chunk_points=points)
    assert ChunkedSeries(5, chunk_points=65535).capacity == 5
    empty = ChunkedSeries(3)
    assert empty.newest_timestamp() is None and empty.points() == [] and len(empty) == 0


def test_a_restored_series_grows_to_a_larger_capacity_without_showing_hidden_points() -> None:
    series = ChunkedSeries.restore_chunks(4, 1, _record([2], [2.0, 2.0, 3.0, 3.0], hidden=1))
    assert len(series) == 3
    series.append(4.0, (4,))  # 4 shown now: the hidden point stays the only one hidden
    assert len(series) == 4 and [t for t, _ in series.points()] == [1.0, 2.0, 3.0, 4.0]
