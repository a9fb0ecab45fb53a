"""Per-round store work, in-process on N nodes x P pods: `Store.ingest` of every node's reading, then
`Store.end_round` and the federation hand-over (`FederationCache.round_done`), the three the scrape
loop runs each round; and the federated text's render (the first `/metrics` after a round, on a
request thread). First the CPU time to parse and convert one exporter exposition of P pods (and C
containers each).

Synthetic readings (the fake exporters' pod identities and values) are ingested for a few warm-up
rounds (counters need a previous reading for rates), then each measured round ingests fresh
readings and times each step. Each N runs twice, side by side: with CPython's collector as before
(`collector=automatic`, the aggregator's young threshold) and with the aggregator's collection around
rounds (`collector=rounds`, aggregator/gcpolicy.py). Figures only; no targets asserted.

    python -m bench round                         # N = 100 and 1000, 30 pods, median of 7 rounds
    python -m bench.round_bench --nodes 1000 --rounds 5
    python -m bench.round_bench --nodes 1000 --containers 3   # with 3 containers per pod
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregator.model import RoundResult

REPO = Path(__file__).resolve().parents[1]
INTERVAL = 5.0


def readings(nodes: int, pods: int, seq: int, containers: int = 0) -> list[object]:
    """One round of NodeReadings whose values move with `seq` (like the fake exporters'), with
    `containers` containers per pod."""
    from aggregator.model import ContainerReading, NodeReading, PodReading
    from tests.aggregator_fakes import pod_identity

    ts = 1_700_000_000.0 + seq * INTERVAL
    out: list[object] = []
    for n in range(nodes):
        node = f"node-{n:04d}"
        pod_readings = []
        for i in range(pods):
            _node, ns, pod, uid, owner_kind, owner_name, deployment = pod_identity(node, i)
            values = {
                "cpu_usage_cores": 0.01 * (i + 1) + (seq % 5) / 100,
                "cpu_seconds_total": (i + 1) * 0.05 * seq,
                "memory_working_set_bytes": 1e8 + 1e6 * i,
                "memory_usage_bytes": 1.5e8 + 1e6 * i,
                "disk_read_bytes_total": 4096.0 * seq,
                "disk_written_bytes_total": 8192.0 * seq,
                "network_receive_bytes_total": 1000.0 * seq * (i + 1),
                "network_transmit_bytes_total": 500.0 * seq * (i + 1),
                "host_network": 0.0,
                "cpu_request_cores": 0.1,
                "cpu_limit_cores": 0.5,
                "memory_request_bytes": 1.28e8,
                "memory_limit_bytes": 2.56e8,
            }
            container_values = {"cpu_usage_cores": 0.003 * (i + 1), "cpu_seconds_total": 0.015 * seq,
                                "memory_working_set_bytes": 3e7 + 1e5 * i, "cpu_request_cores": 0.03,
                                "cpu_limit_cores": 0.15, "memory_request_bytes": 4e7,
                                "memory_limit_bytes": 8e7}
            per_pod = tuple(ContainerReading(f"c{k}", dict(container_values)) for k in range(containers))
            pod_readings.append(PodReading(ns, pod, uid, owner_kind, owner_name, deployment, values, per_pod))
        node_values = {
            "cpu_usage_cores": 0.5 + (seq % 7) / 10,
            "cpu_capacity_cores": 8.0,
            "cpu_seconds_total": 1000.0 + 2.5 * seq,
            "memory_used_bytes": 4e9 + 1e6 * (seq % 11),
            "memory_available_bytes": 12e9 - 1e6 * (seq % 11),
            "memory_total_bytes": 16e9,
            "disk_read_bytes_total": 1e6 * seq,
            "disk_written_bytes_total": 1e6 * seq,
            "network_receive_bytes_total": 1e6 * seq,
            "network_transmit_bytes_total": 1e6 * seq,
            "filesystem_size_bytes": 1e11,
            "filesystem_avail_bytes": 4e10,
        }
        out.append(NodeReading(node, ts, node_values, tuple(pod_readings)))
    return out


def round_result(nodes: int, seq: int, *, samples: int) -> RoundResult:
    """Round `seq`'s RoundResult for `readings(nodes, ..., seq)`: every target up, scraped at the
    round's start, `samples` samples each."""
    from aggregator.model import RoundResult, TargetStatus

    started = 1_700_000_000.0 + seq * INTERVAL
    targets = tuple(
        TargetStatus(target=f"10.0.{n // 250}.{n % 250}:9100", node=f"node-{n:04d}", up=True,
                     last_scrape=started, duration_seconds=0.01, samples=samples)
        for n in range(nodes)
    )
    return RoundResult(round_id=seq, started=started, duration_seconds=1.0, targets=targets)


class GcPauses:
    """A `gc.callbacks` entry adding up the seconds spent in garbage collections."""

    def __init__(self) -> None:
        self.total = 0.0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._start


@contextmanager
def aggregator_threshold() -> Iterator[None]:
    """The aggregator's young-generation threshold (gcpolicy.tune_gc) for the block, after one
    collection; the process's thresholds, and its freeze state when nothing was frozen before,
    restored after it (what RoundCollector froze meanwhile is let go)."""
    from aggregator.gcpolicy import GC_THRESHOLD0

    frozen, thresholds = gc.get_freeze_count(), gc.get_threshold()
    gc.collect()
    gc.set_threshold(GC_THRESHOLD0, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if not frozen:
            gc.unfreeze()


def measure(
    nodes: int, pods: int, *, rounds: int, warmup: int = 2, containers: int = 0, collector: str = "rounds"
) -> dict[str, list[float]]:
    """Seconds of each step per measured round: wall and CPU (this process's, which other processes on
    a busy machine disturb less), the loop's three steps together, and garbage-collection pauses.

    `collector`: "rounds", the aggregator's (gcpolicy.py: automatic collection off during the loop's
    steps, their objects frozen after them; the full collection it runs every FULL_EVERY seconds is
    timed once after the last round, "full collection"); "automatic", CPython's collector with the
    aggregator's young threshold, as before gcpolicy.py. The render runs between rounds either way.
    """
    from aggregator.federation import FederationCache
    from aggregator.gcpolicy import RoundCollector
    from aggregator.stats import AggregatorStats
    from aggregator.store.store import Store

    now = [1_700_000_000.0]
    stats = AggregatorStats()
    store = Store(retention_points=1000, stale_after=3 * INTERVAL, stats=stats, clock=lambda: now[0])
    cache = FederationCache(store=store, stats=stats, version="bench")
    policy = RoundCollector(full_every=math.inf)
    policy.active = collector == "rounds"
    steps = ("ingest", "end_round", "hand-over", "render")
    times: dict[str, list[float]] = {name: [] for step in steps for name in (step, f"{step} cpu")}
    times["loop's steps"], times["gc pauses in the loop's steps"] = [], []
    pauses = GcPauses()
    with aggregator_threshold():
        gc.callbacks.append(pauses)
        try:
            for seq in range(1, warmup + rounds + 1):
                batch = readings(nodes, pods, seq, containers)
                now[0] = 1_700_000_000.0 + seq * INTERVAL
                result = round_result(nodes, seq, samples=12 + 13 * pods)
                paused = pauses.total
                marks = [(time.perf_counter(), time.process_time())]
                with policy.round():
                    for reading in batch:
                        store.ingest(reading)  # type: ignore[arg-type]
                    marks.append((time.perf_counter(), time.process_time()))
                    store.end_round(result)
                    marks.append((time.perf_counter(), time.process_time()))
                    cache.round_done(result)
                marks.append((time.perf_counter(), time.process_time()))
                loop_paused = pauses.total - paused
                del batch, result
                cache.body()
                marks.append((time.perf_counter(), time.process_time()))
                if seq > warmup:
                    for step, (t0, c0), (t1, c1) in zip(steps, marks[:-1], marks[1:], strict=True):
                        times[step].append(t1 - t0)
                        times[f"{step} cpu"].append(c1 - c0)
                    # Collections land in whichever step allocates when a threshold is crossed: the
                    # sum cannot improve by moving them from one step to the other.
                    times["loop's steps"].append(marks[3][0] - marks[0][0])
                    times["gc pauses in the loop's steps"].append(loop_paused)
            if policy.active:
                policy.collect_all()
                times["full collection"] = [policy.last_full_seconds or 0.0]
        finally:
            gc.callbacks.remove(pauses)
    return times


def measure_parse(
    pods: int, containers: int, *, expositions: int = 200, repeats: int = 5
) -> dict[str, list[float]]:
    """CPU seconds to parse and convert one exporter's answer, per repeat over `expositions` distinct
    nodes: the JSON snapshot document the aggregator asks for (`load_document`, `from_document`), and
    the text exposition an exporter without it serves (FastParser with a warm per-target head
    cache, then `to_reading`)."""
    from aggregator.parser import FastParser
    from aggregator.readings import from_document, to_reading
    from aggregator.scraper import load_document
    from tests.aggregator_fakes import render_document, render_exposition

    texts = [render_exposition(f"node-{n:04d}", pods=pods, seq=1, timestamp=1.7e9, containers=containers)
             .decode() for n in range(expositions)]
    docs = [render_document(f"node-{n:04d}", pods=pods, seq=1, timestamp=1.7e9, containers=containers)
            .decode() for n in range(expositions)]
    parsers = [FastParser() for _ in texts]
    for parser, text in zip(parsers, texts, strict=True):
        to_reading(parser.parse(text))  # warm the per-target head caches, as after the first round
    out: dict[str, list[float]] = {"snapshot document": [], "text exposition": []}
    for _ in range(repeats):
        c0 = time.process_time()
        for doc in docs:
            from_document(load_document(doc))
        c1 = time.process_time()
        for parser, text in zip(parsers, texts, strict=True):
            to_reading(parser.parse(text))
        c2 = time.process_time()
        out["snapshot document"].append((c1 - c0) / expositions)
        out["text exposition"].append((c2 - c1) / expositions)
    return out


def main(argv: list[str] | None = None) -> int:
    """Print each step's median (and min/max), wall and CPU seconds, per N."""
    sys.path.insert(0, str(REPO))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, action="append", help="N (repeatable; default 100 and 1000)")
    parser.add_argument("--pods", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--containers", type=int, default=0, help="containers per pod (federated families)")
    parser.add_argument("--expositions", type=int, default=200, help="distinct nodes in the parse figures")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    for form, seconds in measure_parse(args.pods, args.containers, expositions=args.expositions).items():
        parse = [s * 1000 for s in seconds]
        print(f"parse+convert one {form} ({args.pods} pods, {args.containers} containers/pod): CPU median "
              f"{statistics.median(parse):.2f} ms (min {min(parse):.2f}, max {max(parse):.2f})", flush=True)
    for nodes in args.nodes or [100, 1000]:
        for collector in ("automatic", "rounds"):
            times = measure(nodes, args.pods, rounds=args.rounds, containers=args.containers,
                            collector=collector)
            extra = f" containers={nodes * args.pods * args.containers}" if args.containers else ""
            for step, values in times.items():
                print(f"N={nodes} pods={nodes * args.pods}{extra} collector={collector} {step}: "
                      f"median {statistics.median(values):.4f} s "
                      f"(min {min(values):.4f}, max {max(values):.4f}, {len(values)} rounds)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
