"""The state file: round trip through a real Store, atomic writes, and every way a file can be unusable."""

from __future__ import annotations

import json
import logging
import math
import os
import struct
import threading
import time
import zlib
from pathlib import Path

import pytest

from aggregator.model import NodeReading, PodReading, RoundResult
from aggregator.stats import AggregatorStats
from aggregator.store import statefile as persistence
from aggregator.store.statefile import SnapshotError, Snapshotter, read_snapshot, restore, write_snapshot
from aggregator.store.store import Store
from tests.support import wait_until

T0 = 1_764_000_000.0


class Clock:
    """A settable wall clock shared by the stores of one test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _fill(store: Store, clock: Clock, *, rounds: int, pods: int = 3, start: int = 0) -> None:
    """`rounds` scrape rounds of two nodes with `pods` pods each, 5 s apart, counters moving."""
    for r in range(start, start + rounds):
        clock.now = T0 + 5 * r
        for n in ("node-a", "node-b"):
            readings = tuple(
                PodReading(
                    namespace="shop" if i % 2 else "db",
                    pod=f"{n}-p{i}",
                    uid=f"uid-{n}-{i}",
                    owner_kind="Deployment" if i % 2 else "StatefulSet",
                    owner_name="web" if i % 2 else f"pg{i}",
                    deployment="web" if i % 2 else "",
                    values={"cpu_seconds_total": 0.1 * r * (i + 1), "memory_working_set_bytes": 1e6 * (i + 1),
                            "network_receive_bytes_total": 1000.0 * r, "cpu_usage_cores": 0.02 * (i + 1)},
                )
                for i in range(pods)
            )
            store.ingest(NodeReading(
                node=n, timestamp=clock.now - 0.5,
                values={"cpu_seconds_total": 10.0 * r, "memory_used_bytes": 4e9 + r, "cpu_usage_cores": 1.5,
                        "disk_read_bytes_total": 4096.0 * r},
                pods=readings,
            ))
        store.end_round(RoundResult(round_id=r, started=clock.now, duration_seconds=0.01, targets=()))


def _everything(store: Store) -> dict[str, object]:
    """What the API can read from a store: listings, views and every series."""
    out: dict[str, object] = {
        "nodes": store.nodes(),
        "pods": store.pods(),
        "namespaces": store.groups(),
        "deployments": store.groups(deployments=True),
        "counts": store.series_counts(),
    }
    for n in ("node-a", "node-b"):
        out[f"series:{n}"] = store.node_series(n, since=0)
    for p in store.pods():
        out[f"series:{p.namespace}/{p.pod}"] = store.pod_series(p.namespace, p.pod, since=0)
    for g in store.groups() + store.groups(deployments=True):
        out[f"series:{g.namespace}/{g.deployment}"] = store.group_series(g.namespace, g.deployment, since=0)
    return out


def _store(clock: Clock, *, points: int = 20) -> Store:
    return Store(retention_points=points, stale_after=15, clock=clock, interval=5)


@pytest.mark.parametrize("compress", [True, False])
def test_round_trip_restores_listings_series_and_rate_state(tmp_path: Path, compress: bool) -> None:
    clock = Clock(T0)
    store = _store(clock)
    _fill(store, clock, rounds=25)  # more rounds than points: the rings have wrapped
    path = tmp_path / "state.bin"
    size = write_snapshot(path, store.export_state(batch=2), compress=compress)
    assert size == path.stat().st_size > 0
    assert not [p for p in tmp_path.iterdir() if p != path], "temp file left behind"

    restored = _store(clock)
    result = restore(restored, path, stats=AggregatorStats())
    assert result.outcome == "restored"
    assert result.counts == {"node": 2, "pod": 6, "namespace": 2, "deployment": 1}
    assert _everything(restored) == _everything(store)
    assert len(restored.node_series("node-a", since=0) or []) == 20

    # The next round after a restart: rates resume from the saved counter readings, exactly as in
    # the store that never stopped.
    _fill(store, clock, rounds=2, start=26)
    _fill(restored, clock, rounds=2, start=26)
    assert _everything(restored) == _everything(store)
    (node,) = [n for n in restored.nodes() if n.name == "node-a"]
    assert node.sample is not None and node.sample.rates["cpu_seconds_total"] == pytest.approx(2.0)


@pytest.mark.parametrize("chunk", [1, 7, 4096])
@pytest.mark.parametrize("compress", [True, False])
def test_reads_in_any_chunk_size(tmp_path: Path, compress: bool, chunk: int) -> None:
    """The reader's buffering and the compressed stream's tail are right whatever the read size."""
    path = _good_file(tmp_path, compress=compress)
    def plain(chunk_size: int) -> list[tuple[object, ...]]:  # bytes: NaN points never compare equal
        return [(r.kind, r.meta, r.chunks.hidden, r.chunks.counts.tobytes(), r.chunks.bounds.tobytes(),
                 r.chunks.blobs, r.chunks.open.tobytes()) for r in read_snapshot(path, chunk=chunk_size)
                if r.chunks is not None]

    records = list(read_snapshot(path, chunk=chunk))
    assert plain(chunk) == plain(1 << 20)
    assert {r.kind for r in records} == {"node", "pod", "group"}
    assert all(r.chunks is not None for r in records)  # version 3: every series as its chunks


def test_restore_drops_what_retention_would_have_expired_and_keeps_the_newest_points(tmp_path: Path) -> None:
    clock = Clock(T0)
    store = _store(clock)
    _fill(store, clock, rounds=10)
    path = tmp_path / "state.bin"
    write_snapshot(path, store.export_state())

    # Restarted with a smaller retention: the newest 4 points of each series survive.
    small = Store(retention_points=4, stale_after=15, clock=clock, interval=5)
    assert restore(small, path, stats=AggregatorStats()).outcome == "restored"
    full = store.node_series("node-a", since=0)
    assert full is not None and small.node_series("node-a", since=0) == full[-4:]

    # Restarted after longer than the retention span (20 points x 5 s): nothing is current any more.
    clock.now += 20 * 5 + 1
    late = _store(clock)
    result = restore(late, path, stats=AggregatorStats())
    assert result.outcome == "restored" and sum(result.counts.values()) == 0
    assert late.series_counts() == {"node": 0, "pod": 0, "namespace": 0, "deployment": 0}


def test_down_node_state_survives(tmp_path: Path) -> None:
    clock = Clock(T0)
    store = _store(clock)
    _fill(store, clock, rounds=3)
    store.mark_down("node-b", reason="connection refused", when=clock.now)
    path = tmp_path / "state.bin"
    write_snapshot(path, store.export_state())
    restored = _store(clock)
    restore(restored, path, stats=AggregatorStats())
    down = restored.node("node-b")
    assert down is not None and down.status == "down" and down.last_error == "connection refused"
    assert down.down_since == clock.now and down.sample == store.node("node-b").sample  # type: ignore[union-attr]


def test_missing_file_starts_empty(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = _store(Clock(T0))
    with caplog.at_level(logging.INFO, logger="aggregator.store.statefile"):
        result = restore(store, tmp_path / "nope.bin", stats=AggregatorStats())
    assert result.outcome == "missing" and store.series_counts()["node"] == 0
    assert "does not exist yet" in caplog.text


def test_missing_directory_is_an_error_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    stats = AggregatorStats()
    with caplog.at_level(logging.ERROR, logger="aggregator.store.statefile"):
        result = restore(_store(Clock(T0)), tmp_path / "no-such-dir" / "state.bin", stats=stats)
    assert result.outcome == "missing" and "does not exist" in caplog.text
    assert stats.snapshot()["errors"] == {"snapshot_load": 1}


def _good_file(tmp_path: Path, *, compress: bool = True) -> Path:
    clock = Clock(T0)
    store = _store(clock)
    _fill(store, clock, rounds=5)
    path = tmp_path / "state.bin"
    write_snapshot(path, store.export_state(), compress=compress)
    return path


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x40]) + data[offset + 1 :]


def _rewrite_body(path: Path, edit: object) -> bytes:
    """An uncompressed file whose body chunks were changed by `edit`, with a valid length and CRC."""
    data = path.read_bytes()
    header, body = data[:16], data[16:-20]
    body = edit(body)  # type: ignore[operator]
    return header + body + struct.pack("<QI8s", len(body), zlib.crc32(body), persistence.END)


def _corruptions(path: Path) -> dict[str, bytes]:
    data = path.read_bytes()
    first_meta_len = struct.unpack_from("<I", data, 16)[0]
    meta = data[24 : 24 + first_meta_len]
    wrong_columns = json.dumps({"columns": ["cpu", "memory"], "created": T0, "byteorder": "little"}).encode()
    other_columns = struct.pack("<II", len(wrong_columns), 0) + wrong_columns
    return {
        "empty": b"",
        "truncated-header": data[:10],
        "truncated-half": data[: len(data) // 2],
        "truncated-one-byte": data[:-1],
        "wrong-magic": b"PK\x03\x04" + data[4:],
        "unknown-version": data[:8] + struct.pack("<H", 99) + data[10:],
        "bit-flip-body": _flip(data, len(data) // 2),
        "bit-flip-crc": _flip(data, len(data) - 9),
        "appended-garbage": data[:-20] + b"junk" + data[-20:],
        "schema-mismatch": _rewrite_body(path, lambda b: other_columns + b[8 + first_meta_len :]),
        "bad-record": _rewrite_body(
            path, lambda b: b.replace(b'"status":"up"', b'"status":"on"', 1)
        ),
        "not-json-meta": _rewrite_body(path, lambda b: b[:8] + b"[" + b[9:]),
        "random": os.urandom(4096),
        "meta-was": meta,  # just the first chunk's JSON: no header at all
    }


def test_every_corruption_is_detected_moved_aside_and_starts_empty(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "zlib").mkdir()
    good = _good_file(tmp_path / "plain", compress=False)
    compressed = _good_file(tmp_path / "zlib", compress=True)
    cases = {**_corruptions(good), **{f"z-{k}": v for k, v in _corruptions(compressed).items()
                                      if k.startswith(("truncated", "bit-flip", "appended"))}}
    clock = Clock(T0 + 100)
    for name, blob in cases.items():
        directory = tmp_path / name
        directory.mkdir()
        path = directory / "state.bin"
        path.write_bytes(blob)
        stats = AggregatorStats()
        store = _store(clock)
        if name != "bad-record":  # a well-formed file whose record the Store refuses (StateError)
            with pytest.raises(SnapshotError):
                list(read_snapshot(path))
        result = restore(store, path, stats=stats, clock=clock)
        assert result.outcome == "corrupt", name
        assert not path.exists(), name
        assert result.moved_to == directory / f"state.bin.corrupt-{int(clock.now)}", name
        assert result.moved_to.read_bytes() == blob, name
        assert store.series_counts() == {"node": 0, "pod": 0, "namespace": 0, "deployment": 0}, name
        assert stats.snapshot()["errors"] == {"snapshot_load": 1}, name


def test_the_reader_really_accepts_the_rewritten_layout(tmp_path: Path) -> None:
    """Guards the corruption cases above: an unchanged body rewritten the same way still loads."""
    good = _good_file(tmp_path, compress=False)
    good.write_bytes(_rewrite_body(good, lambda b: b))
    assert restore(_store(Clock(T0)), good, stats=AggregatorStats()).outcome == "restored"


def test_a_failed_write_keeps_the_previous_snapshot_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = _good_file(tmp_path)
    before = path.read_bytes()

    def exploding() -> object:
        yield []
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_snapshot(path, exploding())  # type: ignore[arg-type]
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.bin"]


def test_snapshotter_writes_periodically_counts_and_reports_errors(tmp_path: Path) -> None:
    clock = Clock(T0)
    store = _store(clock)
    _fill(store, clock, rounds=3)
    stats = AggregatorStats()
    path = tmp_path / "state.bin"
    snap = Snapshotter(store=store, path=path, interval=0.05, stats=stats).start()
    try:
        wait_until(lambda: stats.snapshot()["counters"].get("snapshots", 0) >= 3, timeout=20,
                   message="three periodic snapshots")
    finally:
        assert snap.stop()  # the final snapshot
    gauges = stats.snapshot()["gauges"]
    assert gauges["snapshot_bytes"] == path.stat().st_size
    assert 0 < gauges["snapshot_duration_seconds"] < 20
    restored = _store(clock)
    assert restore(restored, path, stats=AggregatorStats()).outcome == "restored"
    assert _everything(restored) == _everything(store)

    # A directory that cannot be written: logged and counted, never raised.
    bad = Snapshotter(store=store, path=tmp_path / "missing-dir" / "state.bin", interval=60, stats=stats)
    assert bad.snapshot() is False
    assert stats.snapshot()["errors"]["snapshot"] == 1


def test_export_does_not_hold_the_lock_for_the_whole_copy(tmp_path: Path) -> None:
    """Ingest proceeds between batches: a reading stored mid-export does not wait for the file."""
    clock = Clock(T0)
    store = _store(clock)
    _fill(store, clock, rounds=3, pods=40)
    batches = store.export_state(batch=8)
    next(batches)  # one batch copied; the export is paused between batches
    done = threading.Event()

    def ingest() -> None:
        store.ingest(NodeReading(node="node-c", timestamp=time.time(), values={"cpu_usage_cores": 1.0}))
        done.set()

    worker = threading.Thread(target=ingest)
    worker.start()
    assert done.wait(5), "ingest blocked while an export was in progress"
    worker.join(5)
    assert sum(len(b) for b in batches) > 0


def _write_version_1(path: Path, store: Store) -> None:
    """A state file as the previous build wrote it: format version 1, float32 values row by row."""
    from array import array

    from aggregator.store.series import COLUMNS

    body = bytearray()

    def chunk(meta: dict, arrays: bytes) -> None:
        raw = json.dumps(meta).encode()
        body.extend(struct.pack("<II", len(raw), len(arrays)) + raw + arrays)

    chunk({"columns": list(COLUMNS), "created": T0, "byteorder": "little"}, b"")
    for batch in store.export_state():
        arrays = bytearray()
        records = []
        for r in batch:
            meta = {k: v for k, v in r.meta.items() if k != "sample_time"}  # not kept before
            def value(column: array, i: int) -> float:
                v = column[i]
                return math.nan if column.typecode == "I" and v == 0xFFFFFFFF else v  # sentinel: missing

            timestamps, columns = r.point_arrays()
            rows = array("f", (value(c, i) for i in range(len(timestamps)) for c in columns))
            arrays += timestamps.tobytes() + rows.tobytes()
            records.append({"kind": r.kind, "meta": meta, "n": len(timestamps)})
        chunk({"records": records}, bytes(arrays))
    body.extend(struct.pack("<II", 0, 0))
    path.write_bytes(struct.pack("<8sHHI", b"K8SMSTAT", 1, 0, 0) + bytes(body)
                     + struct.pack("<QI8s", len(body), zlib.crc32(body), b"K8SMEND\n"))


def test_a_version_1_file_from_the_previous_build_is_restored(tmp_path: Path) -> None:
    """The float32 layout's files still load (values widened to float64 columns): no history lost on
    upgrade. Values exact in float32 come back identical, others as float32 had them."""
    clock = Clock(T0)
    store = _store(clock)
    _fill(store, clock, rounds=6)
    path = tmp_path / "v1.bin"
    _write_version_1(path, store)
    restored = _store(clock)
    result = restore(restored, path, stats=AggregatorStats(), clock=clock)
    assert result.outcome == "restored", result.reason
    for n in ("node-a", "node-b"):
        before, after = store.node_series(n, since=0), restored.node_series(n, since=0)
        assert before is not None and after is not None and len(after) == 6
        assert [p.timestamp for p in after] == [p.timestamp for p in before]
        assert [p.row[2] for p in after] == [p.row[2] for p in before]  # disk read: exact in float32
        assert [p.row[1] for p in after] == pytest.approx([p.row[1] for p in before], rel=1e-7)
        assert restored.node(n).status == "up"  # type: ignore[union-attr]


FIXTURES = Path(__file__).parent / "fixtures"


def _all_series(store: Store) -> dict[str, list[list[object]]]:
    series = {f"node/{n}": store.node_series(n, since=0) for n in ("node-a", "node-b")}
    for p in store.pods():
        series[f"pod/{p.namespace}/{p.pod}"] = store.pod_series(p.namespace, p.pod, since=0)
    for g in store.groups() + store.groups(deployments=True):
        series[f"group/{g.namespace}/{g.deployment}"] = store.group_series(g.namespace, g.deployment, since=0)
    return {k: [[p.timestamp, list(p.row)] for p in v or []] for k, v in series.items()}


def test_a_version_2_file_written_by_the_previous_build_is_restored_exactly(tmp_path: Path) -> None:
    """tests/fixtures/state_v2.bin was written by the version-2 build (commit f2767a4: float64 times,
    uint32/float64 columns) from `_fill(rounds=25)`; state_v2_series.json holds the series that build
    served. Every point comes back equal (whole numbers as int, fractions the same floats), and the
    next snapshot, version 3, holds the same."""
    path = tmp_path / "state.bin"
    path.write_bytes((FIXTURES / "state_v2.bin").read_bytes())
    assert struct.unpack_from("<8sH", path.read_bytes()) == (b"K8SMSTAT", 2)
    doc = json.loads((FIXTURES / "state_v2_series.json").read_text())
    clock = Clock(doc["now"])
    restored = _store(clock)
    result = restore(restored, path, stats=AggregatorStats(), clock=clock)
    assert result.outcome == "restored", result.reason
    got = _all_series(restored)
    assert got == doc["series"] and sum(map(len, got.values())) == 11 * 20
    for key, points in doc["series"].items():
        for (_t, old), (_t2, new) in zip(points, got[key], strict=True):
            for a, b in zip(old, new, strict=True):
                assert b is None if a is None else (type(b) is int if type(a) is int else b == a), (key, a, b)
    write_snapshot(path, restored.export_state())
    assert struct.unpack_from("<8sH", path.read_bytes()) == (b"K8SMSTAT", 3)
    again = _store(clock)
    assert restore(again, path, stats=AggregatorStats(), clock=clock).outcome == "restored"
    assert _all_series(again) == got
