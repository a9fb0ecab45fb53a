"""The aggregator under benchmark, in its own process, driven over its stdin.

The child runs a real `Aggregator` (discovery through the fake cluster's FakeKube) and a thread that
logs every scrape round: id, start, the scrape part (`duration_seconds`), the whole round as the loop
thread spent it (start until the round was published, after `end_round` and the federation hand-over)
and targets up. Commands, one per line, each answered with one JSON line:

- `stats`: the counters (`AggregatorStats.snapshot()`), the rounds logged since the last `stats`, RSS;
- `prefill`: pad every series to its full `--retention-points` history, then RSS, point buffers and
  points; the padding is plausible values (bench/persistence_bench.py) behind the real points,
  written in batches under the store lock so scraping goes on meanwhile (waiting 1000 real rounds
  would take 83 minutes at 5 s);
- `quit`: the final counters, then the aggregator stops.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from array import array
from pathlib import Path
from typing import Any

import psutil

from bench.placement import AGGREGATOR_CPUS_ENV, Placement, aggregator_env, pin_from_env

REPO = Path(__file__).resolve().parents[1]
PREFILL_BATCH = 256  # entities padded per hold of the store lock
TEMPLATES = 32
WHOLE_MISSING = 0xFFFFFFFF  # series.py's "no value" in a uint32 column


def _as(typecode: str, column: array) -> array:
    """`column` in storage `typecode` (uint32 -> float64 keeps every value; the sentinel becomes NaN)."""
    if column.typecode == typecode:
        return column
    return array(typecode, (math.nan if v == WHOLE_MISSING else float(v) for v in column))


def padded(
    series: Any, own: tuple[array, tuple[array, ...]], template: tuple[array, tuple[array, ...]], ts: array
) -> Any:
    """A series of the same class holding `ts` with the template's first values, then its own points."""
    own_ts, own_columns = own
    missing = len(ts)
    columns = []
    for values, column in zip(template[1], own_columns, strict=True):
        pad = values[:missing]
        code = "d" if "d" in (pad.typecode, column.typecode) else column.typecode
        columns.append(_as(code, pad) + _as(code, column))
    return type(series).restore(series.capacity, ts + own_ts, columns)


def padded_chunked(
    series: Any, own: tuple[array, tuple[array, ...]], pad: Any, cache: dict[int, Any]
) -> Any:
    """The same for a series stored as chunks (`export_chunks`/`restore_chunks`): the padding series
    `pad` is built once per template and cached as its chunk record, each copy gets bytes of its own
    (so RSS counts every series' history), then the series' own points are appended."""
    key = id(pad)
    if key not in cache:
        cache[key] = pad.export_chunks()
    record = cache[key]
    record = dataclasses.replace(record, blobs=tuple(bytes(bytearray(b)) for b in record.blobs))
    out = type(pad).restore_chunks(series.capacity, series.width, record)
    for i, t in enumerate(own[0]):
        out.append(t, [None if math.isnan(c[i]) else c[i] for c in own[1]])
    return out


def prefill(store: Any) -> dict[str, Any]:
    """Pad every series to capacity; {'skipped': reason} when the machine lacks the memory for it."""
    from bench.persistence_bench import plausible_series

    with store._lock:  # a benchmark-only shortcut into the store's tables
        entities = [*store._nodes.values(), *store._pods.values(), *store._groups.values()]
    capacity = store.retention_points
    held, points = store.buffer_bytes()
    missing_total = sum(max(0, capacity - len(e.series)) for e in entities)
    need = missing_total * (held / max(1, points)) * 1.3
    available = psutil.virtual_memory().available
    if need > available * 0.8:
        return {"skipped": f"full history needs ~{need / 2**30:.1f} GiB, "
                           f"{available / 2**30:.1f} GiB available"}
    rng = random.Random(15)
    templates = [plausible_series(rng, capacity).export() for _ in range(TEMPLATES)]
    stamps: dict[tuple[float, int], array] = {}  # every series scraped in the same rounds shares them
    pads: dict[tuple[int, float, int], Any] = {}
    records: dict[int, Any] = {}
    interval = store.interval
    for start in range(0, len(entities), PREFILL_BATCH):
        with store._lock:
            for k, entity in enumerate(entities[start:start + PREFILL_BATCH], start):
                series = entity.series
                missing = capacity - len(series)
                if missing <= 0 or len(series) == 0:
                    continue
                own = series.export()
                oldest = own[0][0]
                ts = stamps.get((oldest, missing))
                if ts is None:
                    ts = stamps[(oldest, missing)] = array(
                        "d", (oldest - interval * (missing - i) for i in range(missing)))
                template = templates[k % TEMPLATES]
                if hasattr(series, "export_chunks"):
                    pad = pads.get((k % TEMPLATES, oldest, missing))
                    if pad is None:  # a template's padding alone, then its chunk record is copied
                        empty = type(series)(capacity, series.width)
                        empty_own = (array("d"), tuple(array("d") for _ in template[1]))
                        pad = pads[(k % TEMPLATES, oldest, missing)] = padded(empty, empty_own, template, ts)
                    entity.series = padded_chunked(series, own, pad, records)
                else:
                    entity.series = padded(series, own, template, ts)
        time.sleep(0)  # let the scrape loop have the lock between batches
    return {}


def _round_log(agg: Any, out: list[dict[str, Any]], lock: threading.Lock, stop: threading.Event) -> None:
    """Every round the service publishes, seen within 20 ms of its publication."""
    seen = None
    while not stop.wait(0.02):
        last = agg.service.last_round()
        if last is None or last.round_id == seen:
            continue
        seen = last.round_id
        gauges = agg.stats.snapshot()["gauges"]
        with lock:
            out.append({
                "id": last.round_id,
                "started": last.started,
                "scrape_s": last.duration_seconds,
                "total_s": time.time() - last.started,
                "end_round_s": gauges.get("end_round_seconds"),
                # the round's hand-over only: /metrics renders on its first scrape
                "federation_s": gauges.get("federation_round_seconds"),
                "up": sum(1 for t in last.targets if t.up),
                "targets": len(last.targets),
            })


def run_child(kubeconfig: str, interval: float, timeout: float, extra: list[str]) -> int:
    pin_from_env()  # before any thread starts: they inherit it
    from aggregator import service
    from aggregator.config import load

    settings = load(["--listen", "127.0.0.1:0", "--kubeconfig", kubeconfig,
                     "--scrape-interval", str(interval), "--scrape-timeout", str(timeout),
                     "--log-level", "warning", *extra], {})
    agg = service.Aggregator(settings)
    try:  # what `python -m aggregator` does once built (in service.py before gcpolicy.py; older: nothing)
        from aggregator.gcpolicy import tune_gc
    except ImportError:
        tune_gc = getattr(service, "tune_gc", None)
    if tune_gc is not None:
        tune_gc()
    try:  # and its switch interval (gilpolicy.py; older trees: CPython's default)
        from aggregator.gilpolicy import tune_switching
    except ImportError:
        pass
    else:
        tune_switching()
    agg.start()
    rounds: list[dict[str, Any]] = []
    lock, stop = threading.Lock(), threading.Event()
    logger = threading.Thread(target=_round_log, args=(agg, rounds, lock, stop), daemon=True)
    logger.start()
    print(json.dumps({"url": agg.url, "cpus": sorted(os.sched_getaffinity(0))}), flush=True)
    me = psutil.Process()
    for line in sys.stdin:
        command = line.strip()
        if command == "stats":
            with lock:
                new, rounds[:] = list(rounds), []
            print(json.dumps({"stats": agg.stats.snapshot(), "rounds": new, "rss": me.memory_info().rss}),
                  flush=True)
        elif command == "prefill":
            t0 = time.perf_counter()
            result = prefill(agg.store)
            gc.collect()
            held, points = agg.store.buffer_bytes()
            print(json.dumps({**result, "rss": me.memory_info().rss, "buffer_bytes": held, "points": points,
                              "series": agg.store.series_counts(), "seconds": time.perf_counter() - t0}),
                  flush=True)
        elif command == "quit":
            break
    stop.set()
    logger.join(5)
    print(json.dumps({"stats": agg.stats.snapshot()}), flush=True)
    agg.stop()
    return 0


class AggregatorProcess:
    """The parent's handle on the child: commands, CPU of its process tree, the round log so far."""

    def __init__(
        self, kubeconfig: str, *, interval: float, timeout: float, args: tuple[str, ...] = (),
        placement: Placement | None = None,
    ) -> None:
        self.kubeconfig, self.interval, self.timeout, self.args = kubeconfig, interval, timeout, args
        self.placement = placement
        self.rounds: list[dict[str, Any]] = []
        self.url = ""
        self.cpus: set[int] = set()  # the child's CPU affinity, as it reported it once started
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> AggregatorProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop(AGGREGATOR_CPUS_ENV, None)
        if self.placement is not None:
            env.update(aggregator_env(self.placement))
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.aggregator_process", self.kubeconfig, str(self.interval),
             str(self.timeout), *self.args],
            cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        first = self._read()
        self.url = first["url"]
        self.cpus = set(first.get("cpus", ()))
        self.ps = psutil.Process(self._proc.pid)
        return self

    def _read(self) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the aggregator process exited (status {self._proc.poll()})")
        return dict(json.loads(line))

    def command(self, name: str) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(name + "\n")
        self._proc.stdin.flush()
        reply = self._read()
        self.rounds.extend(reply.get("rounds", ()))
        return reply

    def cpu_seconds(self) -> float:
        """User + system CPU of the aggregator and any process it started (ingest workers, if any)."""
        total = 0.0
        for p in [self.ps, *self.ps.children(recursive=True)]:
            try:
                t = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system
        return total

    def wait_rounds(self, count: int, *, after: int = 0, deadline_s: float) -> dict[str, Any]:
        """Poll `stats` until `count` rounds numbered above `after` are logged; the last reply."""
        deadline = time.monotonic() + deadline_s
        while True:
            reply = self.command("stats")
            if sum(1 for r in self.rounds if r["id"] > after) >= count:
                return reply
            if time.monotonic() > deadline:
                raise RuntimeError(f"{count} rounds after round {after} did not finish in {deadline_s:.0f}s "
                                   f"(last round: {self.rounds[-1] if self.rounds else None})")
            time.sleep(0.1)

    def last_id(self) -> int:
        return self.rounds[-1]["id"] if self.rounds else 0

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None and proc.poll() is None:
                proc.stdin.write("quit\n")
                proc.stdin.close()
            proc.wait(60)
        except (OSError, subprocess.TimeoutExpired):
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


if __name__ == "__main__":
    sys.exit(run_child(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]))
