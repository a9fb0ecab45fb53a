"""Two checkouts' per-round CPU side by side in one process: parse + convert, ingest, end_round and the
federation hand-over of the same snapshot documents, the two trees' rounds alternated.

On a shared machine whose speed drifts by 1.5-2x within minutes, two benchmark runs one after the other
compare the machine as much as the code. Here both trees' modules are loaded at once (the second import
of `aggregator` after the first's modules are set aside, so each tree's functions keep their own
globals), every round's documents are fed to both, and the figure is the median over rounds of each
round's new/base ratio, so a slow minute slows both sides of a pair alike.

    git worktree add /tmp/base main
    python -m bench.compare_trees /tmp/base . --nodes 1000 --rounds 10
"""

from __future__ import annotations

import argparse
import gc
import importlib
import statistics
import sys
import time
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.round_bench import INTERVAL, round_result

if TYPE_CHECKING:
    from aggregator.model import RoundResult

PACKAGES = ("aggregator", "k8smon_common", "tests", "bench")
STEPS = ("parse", "ingest", "end_round", "hand-over")


def load(root: Path) -> dict[str, Any]:
    """The entry points of the tree at `root`; modules of any tree loaded before are set aside first."""
    saved = {k: sys.modules.pop(k) for k in [k for k in sys.modules if k.split(".")[0] in PACKAGES]}
    sys.path.insert(0, str(root))
    try:
        return {
            "Store": importlib.import_module("aggregator.store.store").Store,
            "FederationCache": importlib.import_module("aggregator.federation").FederationCache,
            "AggregatorStats": importlib.import_module("aggregator.stats").AggregatorStats,
            "from_document": importlib.import_module("aggregator.readings").from_document,
            "load_document": importlib.import_module("aggregator.scraper").load_document,
            "render_document": importlib.import_module("tests.aggregator_fakes").render_document,
        }
    finally:
        sys.path.remove(str(root))
        for k in [k for k in sys.modules if k.split(".")[0] in PACKAGES]:
            del sys.modules[k]
        sys.modules.update(saved)


class Pipeline:
    """One tree's store and federation cache, fed whole rounds."""

    def __init__(self, tree: dict[str, Any], clock: list[float]) -> None:
        self.tree = tree
        stats = tree["AggregatorStats"]()
        self.store = tree["Store"](retention_points=1000, stale_after=3 * INTERVAL, stats=stats,
                                   clock=lambda: clock[0])
        self.cache = tree["FederationCache"](store=self.store, stats=stats, version="compare")

    def round(self, docs: list[str], result: RoundResult) -> list[float]:
        """CPU seconds of each of STEPS for one round of `docs`; `result` is read only (the running
        tree's RoundResult serves both trees' stores alike)."""
        t = self.tree
        gc.collect()  # each side starts its round with the same (empty) collector debt
        marks = [time.process_time()]
        readings = [t["from_document"](t["load_document"](d)).reading for d in docs]
        marks.append(time.process_time())
        for reading in readings:
            self.store.ingest(reading)
        marks.append(time.process_time())
        self.store.end_round(result)
        marks.append(time.process_time())
        self.cache.round_done(result)
        marks.append(time.process_time())
        return [b - a for a, b in pairwise(marks)]


def compare(base: Path, new: Path, *, nodes: int, pods: int, rounds: int, warmup: int = 2) -> dict[str, Any]:
    """Per step: each side's median CPU seconds and the median over rounds of new/base."""
    trees = {"base": load(base), "new": load(new)}
    clock = [0.0]
    pipelines = {name: Pipeline(tree, clock) for name, tree in trees.items()}
    render = trees["new"]["render_document"]
    seconds: dict[str, list[list[float]]] = {name: [] for name in pipelines}
    was_enabled = gc.isenabled()
    gc.disable()  # collections would land in whichever side crossed a threshold
    try:
        for seq in range(1, warmup + rounds + 1):
            result = round_result(nodes, seq, samples=0)
            clock[0] = result.started
            docs = [render(f"node-{n:04d}", pods=pods, seq=seq, timestamp=clock[0]).decode()
                    for n in range(nodes)]
            order = list(pipelines.items())
            for name, pipeline in order if seq % 2 else order[::-1]:
                steps = pipeline.round(docs, result)
                if seq > warmup:
                    seconds[name].append(steps)
    finally:
        if was_enabled:
            gc.enable()
    out: dict[str, Any] = {}
    for i, step in enumerate((*STEPS, "total")):
        def of(name: str, i: int = i) -> list[float]:
            return [sum(r) if i == len(STEPS) else r[i] for r in seconds[name]]
        ratios = [n / b for b, n in zip(of("base"), of("new"), strict=True) if b > 0]
        out[step] = {"base": statistics.median(of("base")), "new": statistics.median(of("new")),
                     "ratio": statistics.median(ratios) if ratios else None}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    figures = compare(args.base.resolve(), args.new.resolve(), nodes=args.nodes, pods=args.pods,
                      rounds=args.rounds)
    print(f"{args.nodes} x {args.pods}, {args.rounds} rounds each, alternated; CPU per round, medians")
    for step, f in figures.items():
        ratio = "n/a" if f["ratio"] is None else f"{f['ratio']:.3f}"
        print(f"  {step:10s} base {f['base'] * 1000:7.1f} ms   new {f['new'] * 1000:7.1f} ms   "
              f"new/base (median of per-round ratios) {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
