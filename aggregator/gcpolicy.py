"""Garbage collection in the aggregator process: what `python -m aggregator` turns on once it is built.

CPython's cycle collector frees only garbage cycles, and the aggregator makes next to none (a full
collection after 15 rounds of 300 x 30 found 0 unreachable objects): readings, samples and views are
freed by their reference counts when the next round replaces them. Yet every round creates a few
tracked objects per pod that live one round, and the collector scans each of them at least once in
the young generations and again in every full collection while it lives: a median 0.12 s (0.28 s with
a full collection) of the loop's 0.80 s a round at 1000 x 30, even with the young threshold raised to
10,000; with this policy 0.67 s (bench/profiles/2026-12-02-gc-rounds.txt, `python -m bench round`).

So, in the aggregator process only (`tune_gc`): during a scrape round automatic collection is off,
and when the round is published what it made is frozen (`gc.freeze`: out of every later collection,
still freed by reference counting). Between rounds the collector runs as usual on what requests
allocate. Every FULL_EVERY seconds, right after a round, one full collection goes over everything
(unfreeze, collect, freeze), so a cycle made during a round lives at most that long. The one cycle a
round does make is asyncio's: a closed connection's transport keeps a bound method of itself (~0.6 KB,
socket closed; 69 of them after 6 rounds against tests/test_scraper.py's bad exporters), one per
failed scrape. So a full collection also comes once FULL_AFTER_CONNECTIONS connections were opened
since the last one: at 1000 failing targets a round that is every 5 rounds, and ~3 MB of cycles.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

# Young-generation collection threshold (CPython's default is 700). Every round replaces a few
# GC-tracked objects per pod (readings, samples, views): at 1000 nodes x 30 pods the default ran
# ~360 collections a round, 2-3 of them full (whole-heap), 0.72-0.79 s of CPU per round; with
# 10,000: 24 a round and one full in three rounds, 0.33-0.37 s (scripts/profile_round.py,
# bench/profiles/). It still applies between rounds, to what requests allocate.
GC_THRESHOLD0 = 10_000
FULL_EVERY = 300.0  # seconds between full collections of everything (0.19 s at 1000 x 30)
FULL_AFTER_CONNECTIONS = 5000  # or sooner, once the scraper opened this many connections since the last


class RoundCollector:
    """Automatic collection off during a round, its objects frozen after it, a full collection every
    `full_every` seconds; does nothing until `active` (set by `tune_gc`, so tests and other programs
    that run scrape rounds keep their own collector settings)."""

    def __init__(
        self,
        *,
        full_every: float = FULL_EVERY,
        full_after_connections: int = FULL_AFTER_CONNECTIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.active = False
        self.full_every = full_every
        self.full_after_connections = full_after_connections
        self._clock = clock
        self._last_full = clock()
        self._connections_at_full = 0
        self.full_collections = 0
        self.last_full_seconds: float | None = None

    @contextmanager
    def round(self, connections: Callable[[], int] = lambda: 0) -> Iterator[None]:
        """Wrap one scrape round, from its first scrape until it is published; `connections`: the
        scraper's count of connections opened so far."""
        if not self.active:
            yield
            return
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            yield
        finally:
            gc.freeze()
            if was_enabled:
                gc.enable()
            opened = connections()
            if (
                self._clock() - self._last_full >= self.full_every
                or opened - self._connections_at_full >= self.full_after_connections
            ):
                self.collect_all()
                self._connections_at_full = opened

    def collect_all(self) -> int:
        """One full collection over every object, frozen ones included; the unreachable ones found."""
        t0 = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        self._last_full = self._clock()
        self.full_collections += 1
        self.last_full_seconds = time.perf_counter() - t0
        log.debug("full garbage collection: %d unreachable objects, %.3f s", found, self.last_full_seconds)
        return found


ROUNDS = RoundCollector()  # the process's one collector policy (gc settings are process-wide)


def tune_gc() -> None:
    """For an aggregator process, once it is built (and its history restored): collect once, freeze
    what start-up made (modules, the app, restored history: never garbage), collect the young
    generation less often (GC_THRESHOLD0), and manage collection around scrape rounds (`ROUNDS`)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD0, *gc.get_threshold()[1:])
    ROUNDS.active = True
