"""What handing one round's pods from a scrape process to a serving process costs, per format
(`python -m bench handover`; figures only, no target).

A split aggregator (docs/performance.md, "What is left") has a scrape side that ingests and rolls up
and a serving side that answers; each round the first hands the second what changed. The serving
side's own work is what its answers queue behind, so the format is chosen by the receiver's CPU.
A store of `--nodes` x `--pods` is built from two rounds of real readings (distinct values, counters
with rates, two containers a pod), then each format is sent and received in-process, pickled
(protocol 5) BATCH pods at a time as a pipe would carry them; CPU (process time) per round, median
of `--repeat`:

- objects: each pod's state as the store holds it (its PodReading with containers, Sample, row),
  received by unpickling; the serving side would then hold a replica of the store's objects.
- tuples: the same values as tuples and dicts, received by unpickling and building the PodReading,
  Sample and PodView the API's code reads.
- documents and points: each pod's listing document as the API encodes it (bytes, made by the scrape
  side) with its sample time, and its new point as one float64 array; received by unpickling and
  appending each point to that pod's series (the serving side keeps the history).
"""

from __future__ import annotations

import argparse
import gc
import math
import pickle
import statistics
import time
from array import array
from collections.abc import Callable
from typing import Any

from aggregator.api.app import api_dumps
from aggregator.api.views import PodDocCache
from aggregator.model import ContainerReading, NodeReading, PodReading, RoundResult
from aggregator.store.series import ChunkedSeries
from aggregator.store.store import Store
from aggregator.store.views import PodView, Sample

BATCH = 500  # pods a message: one unpickling holds the GIL for one message (~5-10 ms at 500)
POD_COUNTERS = ("cpu_seconds_total", "network_receive_bytes_total", "network_transmit_bytes_total",
                "fs_reads_bytes_total", "fs_writes_bytes_total")


def _values(n: int, p: int, r: int) -> dict[str, float]:
    x = n * 7919 + p * 104729  # distinct per pod, as in a cluster (the API's caches do not hit)
    values = {c: float(1_000 * (r + 1) * (1 + (x + i) % 977)) for i, c in enumerate(POD_COUNTERS)}
    values["cpu_usage_cores"] = ((x % 997) + 1) / 1000
    values["memory_working_set_bytes"] = float(1_000_000 + x % 900_001)
    values["cpu_requests_cores"], values["memory_requests_bytes"] = 0.25, 268435456.0
    return values


def _containers(n: int, p: int) -> tuple[ContainerReading, ...]:
    x = n * 31 + p
    return tuple(ContainerReading(f"c{c}", {"cpu_usage_cores": 0.001 * (x % 97 + c),
                                            "memory_working_set_bytes": 1e6 * (x % 89 + c)})
                 for c in range(2))


def _reading(n: int, pods: int, r: int, when: float) -> NodeReading:
    readings = tuple(PodReading(f"ns-{p % 7}", f"pod-{n}-{p}", f"uid-{n}-{p}", "ReplicaSet",
                                f"dep-{p % 3}-abc", f"dep-{p % 3}", _values(n, p, r), _containers(n, p))
                     for p in range(pods))
    node = {"cpu_usage_cores": 1.0, "cpu_seconds_total": 10.0 * (r + 1)}
    return NodeReading(f"node-{n}", when, node, readings)


def build(nodes: int, pods: int) -> tuple[Store, list[PodView]]:
    """A store after two rounds (so every pod has rates), and its pods as the API lists them."""
    now = time.time()
    store = Store(clock=lambda: now)  # fixed: building may outlast --stale-after on a busy machine
    for r, t in enumerate((now - 5, now)):
        for n in range(nodes):
            store.ingest(_reading(n, pods, r, t), round_id=r, received=t)
        store.end_round(RoundResult(r, t, 0.1, ()))
    return store, store.pods()


def _rows(store: Store, views: list[PodView]) -> list[tuple[float | None, ...]]:
    """Each pod's newest point's values, as its series holds them."""
    return [tuple(store.pod_series(v.namespace, v.pod, since=v.sample.timestamp)[-1].row) for v in views]


def _objects(views: list[PodView], rows: list[tuple[float | None, ...]]) -> list[tuple[Any, ...]]:
    return [(v.namespace, v.pod, v.node, v.last_seen, PodReading(v.namespace, v.pod, v.uid, v.owner_kind,
             v.owner_name, v.deployment, dict(v.sample.values), v.containers), v.sample, row)
            for v, row in zip(views, rows, strict=True)]


def _tuples(views: list[PodView], rows: list[tuple[float | None, ...]]) -> list[tuple[Any, ...]]:
    return [(v.namespace, v.pod, v.uid, v.node, v.deployment, v.owner_kind, v.owner_name, v.last_seen,
             tuple((c.name, c.values) for c in v.containers),
             _sample(v.sample), row) for v, row in zip(views, rows, strict=True)]


def _sample(s: Sample) -> tuple[Any, ...]:
    return s.timestamp, s.values, s.deltas, s.rates, s.interval_seconds


def _documents(store: Store, rows: list[tuple[float | None, ...]]) -> list[tuple[Any, ...]]:
    listing = store.pod_listing()  # the pods `build` returned, in the same order
    views = listing.views
    table = PodDocCache(api_dumps()).prepare(listing, asked=False)
    return [(v.namespace, v.pod, v.sample.timestamp, table[v.namespace, v.pod],
             array("d", (math.nan if x is None else x for x in row)))
            for v, row in zip(views, rows, strict=True)]


class Receiver:
    """The serving side: each pod's series (its history), filled as rounds arrive."""

    def __init__(self, views: list[PodView]) -> None:
        self.series = {(v.namespace, v.pod): ChunkedSeries(1000) for v in views}

    def objects(self, items: list[tuple[Any, ...]]) -> None:
        for ns, pod, node, seen, r, sample, row in items:
            PodView(ns, pod, r.uid, node, r.deployment, r.owner_kind, r.owner_name, seen, sample,
                    r.containers)
            self.series[ns, pod].append(sample.timestamp, row)

    def tuples(self, items: list[tuple[Any, ...]]) -> None:
        for ns, pod, uid, node, dep, kind, owner, seen, containers, sample, row in items:
            t, values, deltas, rates, iv = sample
            cs = tuple(ContainerReading(name, v) for name, v in containers)
            PodReading(ns, pod, uid, kind, owner, dep, values, cs)
            PodView(ns, pod, uid, node, dep, kind, owner, seen, Sample(t, values, deltas, rates, iv), cs)
            self.series[ns, pod].append(t, row)

    def documents(self, items: list[tuple[Any, ...]]) -> None:
        for ns, pod, t, _doc, point in items:
            self.series[ns, pod].append(t, point)


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.process_time()
    out = call()
    return time.process_time() - t0, out


def measure(items: list[tuple[Any, ...]], receive: Callable[[list[tuple[Any, ...]]], None],
            repeat: int) -> tuple[float, float, int]:
    """Median sender and receiver CPU (s) of one round, and its bytes."""
    sent: list[float] = []
    got: list[float] = []
    size = 0
    for _ in range(repeat):
        cpu, blobs = _timed(lambda: [pickle.dumps(items[i:i + BATCH], protocol=5)
                                     for i in range(0, len(items), BATCH)])
        sent.append(cpu)
        size = sum(map(len, blobs))
        got.append(_timed(lambda blobs=blobs: [receive(pickle.loads(b)) for b in blobs])[0])
    return statistics.median(sent), statistics.median(got), size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.handover_bench",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    store, views = build(args.nodes, args.pods)
    print(f"{args.nodes} nodes x {args.pods} pods: {len(views)} pods built in "
          f"{time.perf_counter() - t0:.1f} s; per round, median of {args.repeat}, {BATCH} pods a message")
    # Collections off while timing, as the aggregator has them during its rounds (gcpolicy.py): a
    # collection that a timed step happened to start cost up to 1 s here, over both stores' objects.
    enabled = gc.isenabled()
    gc.disable()
    try:
        _formats(store, views, args)
    finally:
        if enabled:
            gc.enable()
    return 0


def _formats(store: Store, views: list[PodView], args: argparse.Namespace) -> None:
    rows = _rows(store, views)
    receiver = Receiver(views)
    formats: list[tuple[str, list[tuple[Any, ...]], Callable[[list[tuple[Any, ...]]], None]]] = [
        ("objects, made views, points appended", _objects(views, rows), receiver.objects),
        ("tuples, made objects and views, points appended", _tuples(views, rows), receiver.tuples),
        ("documents (bytes) and points (arrays), appended", _documents(store, rows), receiver.documents),
    ]
    for name, items, receive in formats:
        sent, got, size = measure(items, receive, args.repeat)
        print(f"  {name:<50} sender {sent * 1000:7.1f} ms   receiver {got * 1000:7.1f} ms   "
              f"{size / 1e6:6.1f} MB")


if __name__ == "__main__":
    raise SystemExit(main())
