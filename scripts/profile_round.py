"""Profile the aggregator's per-round CPU in-process: parse N exporter bodies, ingest, end of round.

    .venv/bin/python scripts/profile_round.py --nodes 1000 --rounds 2 [--scrape-federation]

The fake exporters' bodies (tests/aggregator_fakes.py) are rendered before the clock starts; what is
timed is what the scrape loop does with them (the HTTP fetch aside): `Scraper._parse` (text or the
JSON snapshot document, `--format`), `Store.ingest`, `Store.end_round`, the federation's end of
round and, with `--scrape-federation`, one /metrics render per round. Prints CPU per round with and
without cProfile,
garbage-collection pauses, and cProfile's top functions (cumulative and own time).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import itertools
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

INTERVAL = 5.0
T0 = 1_700_000_000.0


class GcPauses:
    """CPU seconds spent in garbage collections (a gc.callbacks entry)."""

    def __init__(self) -> None:
        self.seconds, self.count, self.full, self._start = 0.0, 0, 0, 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.process_time()
            return
        self.seconds += time.process_time() - self._start
        self.count += 1
        self.full += info["generation"] == 2


class Rounds:
    """The aggregator's per-round work on pre-rendered bodies, phase by phase."""

    def __init__(self, nodes: int, pods: int, *, scrape_federation: bool, document: bool) -> None:
        from aggregator.federation import FederationCache
        from aggregator.scraper import Scraper
        from aggregator.stats import AggregatorStats
        from aggregator.store.store import Store
        from tests.aggregator_fakes import ExpositionTemplate

        self.nodes = nodes
        self.templates = [
            ExpositionTemplate(f"node-{i:04d}", pods=pods, timestamp=lambda s: T0 + s * INTERVAL)
            for i in range(nodes)
        ]
        self.now = T0
        stats = AggregatorStats()
        self.store = Store(retention_points=1000, stale_after=3 * INTERVAL, stats=stats,
                           clock=lambda: self.now)
        self.federation = FederationCache(store=self.store, stats=stats, version="profile")
        self.scraper = Scraper(timeout=4, max_response_bytes=1 << 26, stats=stats)
        from aggregator.gcpolicy import tune_gc

        tune_gc()  # as `python -m aggregator` does (and the fakes' templates out of its collections)
        self.scrape_federation = scrape_federation
        self.document = document

    def run(self, seq: int, times: dict[str, float], prof: cProfile.Profile | None = None) -> None:
        from aggregator.model import RoundResult, TargetStatus
        from k8smon_common import snapshotdoc

        if self.document:
            bodies = [t.render_document(seq) for t in self.templates]
        else:
            bodies = [t.render(seq) for t in self.templates]
        content_type = snapshotdoc.CONTENT_TYPE if self.document else "text/plain; version=0.0.4"
        self.now = T0 + seq * INTERVAL
        marks = [("start", 0.0)]
        if prof:
            prof.enable()
        marks.append(("start", time.process_time()))
        for i, body in enumerate(bodies):
            reading, _ = self.scraper._parse(f"t{i}", body, None, content_type)
            self.store.ingest(reading, round_id=seq, received=self.now)
        marks.append(("parse+ingest", time.process_time()))
        targets = tuple(TargetStatus(f"t{i}", f"node-{i:04d}", True) for i in range(self.nodes))
        result = RoundResult(seq, self.now, 1.0, targets)
        self.store.end_round(result)
        marks.append(("end_round", time.process_time()))
        self.federation.round_done(result)
        marks.append(("federation round", time.process_time()))
        if self.scrape_federation:
            self.federation.body()
            marks.append(("federation render", time.process_time()))
        if prof:
            prof.disable()
        for (_, before), (name, after) in itertools.pairwise(marks[1:]):
            times[name] = times.get(name, 0.0) + after - before


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--pods", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--top", type=int, default=35)
    ap.add_argument("--scrape-federation", action="store_true", help="render /metrics once per round")
    ap.add_argument("--format", choices=("text", "document"), default="document",
                    help="what the fake exporters answer: text, or the JSON snapshot document")
    args = ap.parse_args()
    rounds = Rounds(args.nodes, args.pods, scrape_federation=args.scrape_federation,
                    document=args.format == "document")
    for seq in (1, 2):  # counters need a previous reading
        rounds.run(seq, {})
    samples = args.rounds * args.nodes * (13 + 13 * args.pods)
    pauses = GcPauses()
    gc.callbacks.append(pauses)
    plain: dict[str, float] = {}
    for seq in range(3, 3 + args.rounds):
        rounds.run(seq, plain)
    prof = cProfile.Profile()
    profiled: dict[str, float] = {}
    for seq in range(3 + args.rounds, 3 + 2 * args.rounds):
        rounds.run(seq, profiled, prof)
    print(f"{args.format}: {args.nodes} nodes x {args.pods} pods, {args.rounds} rounds each way, "
          f"{samples // args.rounds} samples a round; CPU seconds per round:")
    for name, seconds in plain.items():
        under = profiled[name] / args.rounds
        print(f"  {name:<18} {seconds / args.rounds:7.3f}  (under cProfile {under:.3f})")
    print(f"  CPU per sample {sum(plain.values()) / samples * 1e6:.2f} us; garbage collections (unprofiled "
          f"rounds) {pauses.count}, {pauses.full} full, {pauses.seconds / args.rounds:.3f} s per round; "
          f"{len(gc.get_objects())} objects tracked")
    for key in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(key).print_stats(args.top)
        print(out.getvalue().replace(str(Path(__file__).resolve().parents[1]) + "/", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
