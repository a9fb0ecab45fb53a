"""What keep-alive saves the aggregator: CPU of one scrape round with and without reused connections.

    .venv/bin/python scripts/keepalive_cost.py --nodes 1000 --rounds 6

The fake exporters run in their own processes (bench/cluster.py); this process scrapes all of them
concurrently with `Scraper` (fetch and parse, as the scrape loop does, without the store), alternating
rounds on fresh connections (a new Scraper per round, its connections closed after it) with rounds on
the connections one Scraper kept. Prints this process's CPU (time.process_time) per round, median of each.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.scraper import Scraper
from aggregator.stats import AggregatorStats
from bench.cluster import FakeCluster


async def one_round(scraper: Scraper, targets: list[str]) -> float:
    t0 = time.process_time()
    outcomes = await asyncio.gather(*(scraper.scrape(t, None) for t in targets))
    spent = time.process_time() - t0
    down = [o.status.last_error for o in outcomes if not o.status.up]
    assert not down, down[:3]
    return spent


async def measure(targets: list[str], rounds: int) -> tuple[list[float], list[float], int]:
    def make() -> Scraper:
        return Scraper(timeout=10.0, max_response_bytes=1 << 24, stats=AggregatorStats())

    kept = make()
    await one_round(kept, targets)  # opens the connections kept from here on
    fresh_cpu: list[float] = []
    kept_cpu: list[float] = []
    for _ in range(rounds):
        scraper = make()
        fresh_cpu.append(await one_round(scraper, targets))
        await scraper.close()
        kept_cpu.append(await one_round(kept, targets))
    opened = kept.connections_opened
    await kept.close()
    return fresh_cpu, kept_cpu, opened


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    with FakeCluster(args.nodes, args.pods, interval=5.0) as cluster:
        fresh, kept, opened = asyncio.run(measure(list(cluster.targets), args.rounds))
    f, k = statistics.median(fresh), statistics.median(kept)
    print(f"{args.nodes} x {args.pods}, {args.rounds} rounds each, alternating; CPU here per round:")
    print(f"  fresh connections   median {f:.3f} s  ({', '.join(f'{x:.3f}' for x in fresh)})")
    print(f"  kept connections    median {k:.3f} s  ({', '.join(f'{x:.3f}' for x in kept)}); "
          f"{opened} connections opened in {args.rounds + 1} rounds")
    print(f"  saved               {f - k:.3f} s per round ({(f - k) / f:.0%}), "
          f"{(f - k) / args.nodes * 1e6:.0f} us per target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
