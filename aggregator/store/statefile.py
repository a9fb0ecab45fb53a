"""`--state-file`: the Store written to disk every `--snapshot-interval` and on SIGTERM, restored on start.

File format (version 3), no pickle; every integer little-endian:

    header   MAGIC (8 bytes) | u16 version | u16 flags (bit 0: body is one zlib stream) | u32 reserved
    body     chunks: u32 meta_len | u32 array_len | meta (UTF-8 JSON) | array bytes
             first chunk: {"columns": [...], "created": unix_s, "byteorder": "little"} and no arrays;
             then {"records": [{"kind", "meta", "hidden", "chunks", "open"}, ...]} with, per record,
             the series as it is held in memory (series.py, chunks.py): `chunks` u16 point counts,
             `chunks` u32 byte sizes, 2 x `chunks` float64 smallest/largest timestamps, `open` points of
             the open chunk as float64 (timestamp and values side by side), then the closed chunks'
             bytes as they are (compressed once, when they closed: never re-encoded to be written);
             `hidden` oldest points of the first chunk are past the capacity and not shown.
             A chunk with meta_len 0 ends the body.
             Still read: version 2 ({"kind", "meta", "n", "types"}: n float64 timestamps then per column
             n values, `I` uint32 with 0xFFFFFFFF for missing or `d` float64 with NaN) and version 1
             (no `types`, n x len(columns) float32 values row by row); their points are encoded on load.
    trailer  u64 body length (uncompressed) | u32 CRC32 of the uncompressed body | END (8 bytes)

A truncated file misses the trailer or fails the CRC; a file from an incompatible build fails the
magic, the version or the column check. Any of those: an error log, the file moved aside to
`<path>.corrupt-<unix-ts>`, and an empty start. Writes go to a temp file in the same directory,
fsynced, `os.replace`d over the old one and the directory fsynced, so a crash at any moment leaves
either the old snapshot or the new one.

zlib: supported by the reader, off by default: the closed chunks are compressed already (zstd), and
version 2's measurement (bench/persistence_bench.py: level 1 saved a third of the size for 6x the
write time) predates them.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import sys
import threading
import time
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from aggregator.stats import AggregatorStats
from aggregator.store.series import COLUMNS, ChunkRecord
from aggregator.store.snapshot import EntityRecord, StateError
from aggregator.store.store import Store

log = logging.getLogger(__name__)

MAGIC = b"K8SMSTAT"
END = b"K8SMEND\n"
VERSION = 3
READS = (1, 2, 3)
TYPECODES = ("I", "d")  # version 2's column types
FLAG_ZLIB = 1
_HEADER = struct.Struct("<8sHHI")
_CHUNK = struct.Struct("<II")
_TRAILER = struct.Struct("<QI8s")
_READ = 1 << 20
MAX_META_BYTES = 256 << 20  # a corrupt length must not make the reader allocate gigabytes


class SnapshotError(Exception):
    """The state file cannot be used: truncated, corrupt, wrong magic/version or schema."""


# --- writing -----------------------------------------------------------------------------------------


class _BodyWriter:
    """Writes body bytes to `out`, compressing if asked, keeping the length and CRC of the raw body."""

    def __init__(self, out: IO[bytes], *, compress: bool) -> None:
        self._out = out
        self._zlib = zlib.compressobj(1) if compress else None
        self.length = 0
        self.crc = 0

    def write(self, data: bytes | memoryview) -> None:
        self.length += len(data)
        self.crc = zlib.crc32(data, self.crc)
        self._out.write(self._zlib.compress(data) if self._zlib is not None else data)

    def close(self) -> None:
        if self._zlib is not None:
            self._out.write(self._zlib.flush())


def _le(values: array) -> array:
    if sys.byteorder != "little":
        values = array(values.typecode, values)
        values.byteswap()
    return values


def _chunk(body: _BodyWriter, meta: dict[str, Any], arrays: Iterable[array | bytes]) -> None:
    raw = json.dumps(meta, separators=(",", ":")).encode()
    parts = [_le(a) if isinstance(a, array) else a for a in arrays]
    body.write(_CHUNK.pack(len(raw), sum(len(memoryview(a).cast("B")) for a in parts)))
    body.write(raw)
    for part in parts:
        body.write(memoryview(part).cast("B"))


def _record_meta(r: EntityRecord) -> dict[str, Any]:
    if r.chunks is None:
        raise ValueError(f"a {r.kind} record without its chunks")  # export_state always gives them
    return {"kind": r.kind, "meta": r.meta, "hidden": r.chunks.hidden, "chunks": len(r.chunks.counts),
            "open": len(r.chunks.open) // (len(COLUMNS) + 1)}


def _record_arrays(r: EntityRecord) -> Iterator[array | bytes]:
    c = r.chunks
    assert c is not None
    yield from (c.counts, array("I", map(len, c.blobs)), c.bounds, c.open, *c.blobs)


def write_snapshot(
    path: Path, batches: Iterable[list[EntityRecord]], *, compress: bool = False, now: float | None = None
) -> int:
    """Write the records atomically to `path`; returns the file size. OSError on failure (no partial file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as out:
            out.write(_HEADER.pack(MAGIC, VERSION, FLAG_ZLIB if compress else 0, 0))
            body = _BodyWriter(out, compress=compress)
            created = time.time() if now is None else now
            _chunk(body, {"columns": list(COLUMNS), "created": created, "byteorder": "little"}, ())
            for batch in batches:
                if not batch:
                    continue
                meta = {"records": [_record_meta(r) for r in batch]}
                _chunk(body, meta, (a for r in batch for a in _record_arrays(r)))
            body.write(_CHUNK.pack(0, 0))
            body.close()
            out.write(_TRAILER.pack(body.length, body.crc, END))
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return size


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (on Linux a directory can be opened and fsynced)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- reading -----------------------------------------------------------------------------------------


class _BodyReader:
    """Reads exactly-sized pieces of the body from the file region, inflating if needed, with a CRC."""

    def __init__(self, src: IO[bytes], *, size: int, compressed: bool, chunk: int = _READ) -> None:
        self._src = src
        self._chunk = chunk
        self._left = size  # file bytes of the body region still unread
        self._zlib = zlib.decompressobj() if compressed else None
        self._buf = bytearray()
        self.length = 0
        self.crc = 0

    def _inflate(self, data: bytes) -> None:
        assert self._zlib is not None
        try:
            self._buf += self._zlib.decompress(data, self._chunk)
        except zlib.error as exc:
            raise SnapshotError(f"corrupt compressed body: {exc}") from None

    def _more(self) -> bool:
        """Move more bytes into the buffer; False when the body region is used up."""
        if self._zlib is not None and self._zlib.unconsumed_tail:
            self._inflate(self._zlib.unconsumed_tail)
            return True
        if self._left <= 0:
            return False
        raw = self._src.read(min(self._chunk, self._left))
        if not raw:
            raise SnapshotError("truncated: the file ends early")
        self._left -= len(raw)
        if self._zlib is None:
            self._buf += raw
        else:
            self._inflate(raw)
        return True

    def read(self, n: int) -> bytes:
        while len(self._buf) < n:
            if not self._more():
                raise SnapshotError("truncated: the body ends early")
        data = bytes(self._buf[:n])
        del self._buf[:n]
        self.length += n
        self.crc = zlib.crc32(data, self.crc)
        return data

    def finish(self) -> None:
        """The body must end exactly where the trailer begins."""
        # Compressed: the stream's last bytes may not have been needed yet; they must inflate to nothing.
        while not self._buf and self._more():
            pass
        if self._buf or self._left:
            raise SnapshotError("corrupt: bytes after the end of the body")
        if self._zlib is not None and (not self._zlib.eof or self._zlib.unused_data):
            raise SnapshotError("corrupt: the compressed body does not end where the trailer begins")


def _array(typecode: str, data: bytes) -> array:
    out = array(typecode)
    out.frombytes(data)
    if sys.byteorder != "little":
        out.byteswap()
    return out


def _json(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise SnapshotError(f"corrupt metadata: {exc}") from None
    if not isinstance(doc, dict):
        raise SnapshotError("corrupt metadata: not an object")
    return doc


def _columns(
    rec: dict[str, Any], arrays: bytes, offset: int, n: int, version: int
) -> tuple[tuple[array, ...], int]:
    """The record's value columns starting at `offset`, and the offset after them."""
    width = len(COLUMNS)
    if version == 1:  # float32 rows: exact for what they hold, widened to float64 columns
        end = offset + 4 * n * width
        if end > len(arrays):
            raise SnapshotError("corrupt: point arrays shorter than their counts")
        rows = _array("f", arrays[offset:end])
        return tuple(array("d", rows[c::width]) for c in range(width)), end
    types = rec.get("types")
    if not isinstance(types, str) or len(types) != width or not set(types) <= set(TYPECODES):
        raise SnapshotError(f"corrupt: a record with column types {types!r}")
    out = []
    for code in types:
        end = offset + array(code).itemsize * n
        if end > len(arrays):
            raise SnapshotError("corrupt: point arrays shorter than their counts")
        out.append(_array(code, arrays[offset:end]))
        offset = end
    return tuple(out), offset


def _count(rec: dict[str, Any], key: str) -> int:
    value = rec.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SnapshotError(f"corrupt: a record without a valid {key!r}")
    return value


def _chunked_records(records: list[Any], arrays: bytes) -> Iterator[EntityRecord]:
    """Version 3: each record's series as its closed chunks' bytes and the open chunk's points."""
    offset = 0
    stride = len(COLUMNS) + 1

    def take(size: int) -> bytes:
        nonlocal offset
        end = offset + size
        if end > len(arrays):
            raise SnapshotError("corrupt: point arrays shorter than their counts")
        data, offset = arrays[offset:end], end
        return data

    for rec in records:
        if not isinstance(rec, dict):
            raise SnapshotError("corrupt: a record that is not an object")
        k, n_open, hidden = _count(rec, "chunks"), _count(rec, "open"), _count(rec, "hidden")
        kind, rec_meta = rec.get("kind"), rec.get("meta")
        if not isinstance(kind, str) or not isinstance(rec_meta, dict):
            raise SnapshotError("corrupt: a record without kind/meta")
        counts = _array("H", take(2 * k))
        sizes = _array("I", take(4 * k))
        bounds = _array("d", take(16 * k))
        open_points = _array("d", take(8 * stride * n_open))
        blobs = tuple(take(size) for size in sizes)
        yield EntityRecord(kind, rec_meta, chunks=ChunkRecord(hidden, counts, bounds, blobs, open_points))
    if offset != len(arrays):
        raise SnapshotError("corrupt: point arrays longer than their counts")


def _records(meta: dict[str, Any], arrays: bytes, version: int) -> Iterator[EntityRecord]:
    offset = 0
    records = meta.get("records")
    if not isinstance(records, list):
        raise SnapshotError("corrupt: a chunk without records")
    if version >= 3:
        yield from _chunked_records(records, arrays)
        return
    for rec in records:
        if not isinstance(rec, dict) or not isinstance(rec.get("n"), int) or rec["n"] < 0:
            raise SnapshotError("corrupt: a record without a point count")
        n = rec["n"]
        ts_end = offset + 8 * n
        if ts_end > len(arrays):
            raise SnapshotError("corrupt: point arrays shorter than their counts")
        kind, rec_meta = rec.get("kind"), rec.get("meta")
        if not isinstance(kind, str) or not isinstance(rec_meta, dict):
            raise SnapshotError("corrupt: a record without kind/meta")
        timestamps = _array("d", arrays[offset:ts_end])
        columns, offset = _columns(rec, arrays, ts_end, n, version)
        yield EntityRecord(kind, rec_meta, timestamps, columns)
    if offset != len(arrays):
        raise SnapshotError("corrupt: point arrays longer than their counts")


def read_snapshot(path: Path, *, chunk: int = _READ) -> Iterator[EntityRecord]:
    """The records of a state file; SnapshotError (possibly after some records) when it is unusable.

    Callers must not trust what they got until the iterator is exhausted: the CRC is checked last.
    """
    with open(path, "rb") as src:
        size = os.fstat(src.fileno()).st_size
        if size < _HEADER.size + _TRAILER.size:
            raise SnapshotError(f"truncated: {size} bytes")
        magic, version, flags, _ = _HEADER.unpack(src.read(_HEADER.size))
        if magic != MAGIC:
            raise SnapshotError(f"not a k8s-monitor state file (magic {magic!r})")
        if version not in READS:
            raise SnapshotError(f"unsupported format version {version} (this build reads {READS})")
        src.seek(size - _TRAILER.size)
        length, crc, end = _TRAILER.unpack(src.read(_TRAILER.size))
        if end != END:
            raise SnapshotError("truncated: no end marker")
        src.seek(_HEADER.size)
        body = _BodyReader(src, size=size - _HEADER.size - _TRAILER.size, compressed=bool(flags & FLAG_ZLIB),
                           chunk=chunk)
        first = True
        while True:
            meta_len, arrays_len = _CHUNK.unpack(body.read(_CHUNK.size))
            if meta_len == 0:
                break
            if meta_len > MAX_META_BYTES or arrays_len > length:
                raise SnapshotError("corrupt: a chunk length past the body")
            meta = _json(body.read(meta_len))
            arrays = body.read(arrays_len)
            if first:
                if meta.get("columns") != list(COLUMNS):
                    raise SnapshotError(
                        f"schema mismatch: columns {meta.get('columns')!r}, expected {list(COLUMNS)}")
                first = False
                continue
            yield from _records(meta, arrays, version)
        body.finish()
        if body.length != length or body.crc != crc:
            raise SnapshotError("corrupt: length/CRC mismatch")


# --- restore and the snapshot thread -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """What happened to the state file at startup."""

    outcome: str  # restored | missing | corrupt
    counts: dict[str, int]
    moved_to: Path | None = None
    reason: str | None = None


def restore(
    store: Store, path: Path, *, stats: AggregatorStats, clock: Callable[[], float] = time.time
) -> RestoreResult:
    """Load `path` into the store: missing = start empty, unusable = moved aside; never raises."""
    path = Path(path)
    if not path.parent.is_dir():
        stats.error("snapshot_load")
        log.error("the directory of --state-file %s does not exist; snapshots will fail until it does", path)
        return RestoreResult("missing", {}, reason="no such directory")
    if not path.exists():
        log.info("state file %s does not exist yet; starting empty", path)
        return RestoreResult("missing", {})
    t0 = time.perf_counter()
    try:
        records = list(read_snapshot(path))  # the whole file verified before anything reaches the store
        counts = store.import_state(records)
    except (SnapshotError, StateError, OSError, ValueError) as exc:
        stats.error("snapshot_load")
        moved = path.with_name(f"{path.name}.corrupt-{int(clock())}")
        try:
            os.replace(path, moved)
        except OSError as move_exc:
            log.error("state file %s is unusable (%s) and could not be moved aside: %s; starting empty",
                      path, exc, move_exc)
            return RestoreResult("corrupt", {}, reason=str(exc))
        log.error("state file %s is unusable (%s); moved to %s, starting empty", path, exc, moved)
        return RestoreResult("corrupt", {}, moved_to=moved, reason=str(exc))
    log.info("restored %s from %s in %.2fs", ", ".join(f"{n} {k}" for k, n in counts.items()), path,
             time.perf_counter() - t0)
    stats.set("snapshot_restored_series", sum(counts.values()))
    return RestoreResult("restored", counts)


class Snapshotter:
    """Writes the store to `path` every `interval` seconds from its own thread, and once more on stop()."""

    def __init__(
        self, *, store: Store, path: Path, interval: float, stats: AggregatorStats, compress: bool = False
    ) -> None:
        self._store = store
        self._path = Path(path)
        self._interval = interval
        self._stats = stats
        self._compress = compress
        self._stop = threading.Event()
        self._write_lock = threading.Lock()  # the periodic and the final snapshot never overlap
        self._thread: threading.Thread | None = None

    def start(self) -> Snapshotter:
        self._thread = threading.Thread(target=self._run, name="snapshotter", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.snapshot()

    def snapshot(self) -> bool:
        """Write one snapshot now; False (logged and counted) when it failed. Never raises."""
        with self._write_lock:
            t0 = time.perf_counter()
            try:
                size = write_snapshot(self._path, self._store.export_state(), compress=self._compress)
            except (OSError, ValueError, StateError) as exc:
                self._stats.error("snapshot")
                log.error("writing the state file %s failed: %s", self._path, exc)
                return False
            elapsed = time.perf_counter() - t0
        self._stats.set("snapshot_duration_seconds", elapsed)
        self._stats.set("snapshot_bytes", size)
        self._stats.set("snapshot_timestamp_seconds", time.time())
        self._stats.incr("snapshots")
        log.debug("state written to %s: %d bytes in %.3fs", self._path, size, elapsed)
        return True

    def stop(self, *, final: bool = True, timeout: float = 30.0) -> bool:
        """Stop the thread (waiting for a write in progress), then write the final snapshot if asked."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        return self.snapshot() if final else True
