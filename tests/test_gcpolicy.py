"""Garbage collection around scrape rounds (aggregator/gcpolicy.py): automatic collection off during a
round, what the round made frozen after it, one full collection every `full_every` seconds that
also frees cycles made during rounds; nothing at all unless the process turned it on."""

from __future__ import annotations

import gc
import socket
import subprocess
import sys
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aggregator.discovery import StaticDiscovery
from aggregator.federation import FederationCache
from aggregator.gcpolicy import RoundCollector
from aggregator.scraper import Scraper
from aggregator.service import ScrapeService
from aggregator.stats import AggregatorStats
from aggregator.store.store import Store
from tests.support import wait_until

REPO = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Cycle:
    """An object in a reference cycle: only the cycle collector frees it."""

    def __init__(self) -> None:
        self.me = self


def _in_collected_generations(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())  # get_objects leaves the frozen ones out


@pytest.fixture(autouse=True)
def _leave_gc_as_found() -> Iterator[None]:
    enabled, frozen = gc.isenabled(), gc.get_freeze_count()
    yield
    if not frozen:
        gc.unfreeze()
    gc.enable() if enabled else gc.disable()


def test_inactive_it_leaves_the_collector_alone() -> None:
    collector = RoundCollector(full_every=0.0)
    frozen = gc.get_freeze_count()
    with collector.round():
        assert gc.isenabled()
        made = Cycle()
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen
    assert _in_collected_generations(made)
    assert collector.full_collections == 0  # full_every 0 would collect after every round if active


def test_a_round_runs_without_automatic_collection_and_its_objects_are_frozen_after_it() -> None:
    clock = Clock()
    collector = RoundCollector(full_every=300.0, clock=clock)
    collector.active = True
    with collector.round():
        assert not gc.isenabled()
        made = Cycle()
        assert _in_collected_generations(made)
    assert gc.isenabled()
    assert not _in_collected_generations(made)  # frozen: no later collection scans it
    assert gc.is_tracked(made)
    assert collector.full_collections == 0


def test_a_frozen_object_without_a_cycle_is_still_freed_by_its_reference_count() -> None:
    collector = RoundCollector(full_every=300.0, clock=Clock())
    collector.active = True

    class Plain:
        pass

    with collector.round():
        made = Plain()
    gone = weakref.ref(made)
    del made
    assert gone() is None


def test_a_cycle_made_in_a_round_is_freed_by_the_full_collection_once_full_every_has_passed() -> None:
    clock = Clock()
    collector = RoundCollector(full_every=300.0, clock=clock)
    collector.active = True
    with collector.round():
        made = Cycle()
    alive = weakref.ref(made)
    del made
    gc.collect()
    assert alive() is not None  # frozen: an ordinary full collection does not see it
    clock.now += 299.0
    with collector.round():
        pass
    assert alive() is not None and collector.full_collections == 0  # not yet
    clock.now += 1.0
    with collector.round():
        pass
    assert alive() is None
    assert collector.full_collections == 1
    assert collector.last_full_seconds is not None and collector.last_full_seconds >= 0
    assert gc.get_freeze_count() > 0  # the survivors are frozen again
    clock.now += 299.0
    with collector.round():
        pass
    assert collector.full_collections == 1  # the next one full_every after the last


def test_enough_new_connections_bring_the_full_collection_forward() -> None:
    """A closed asyncio connection leaves a small cycle (its transport's bound method of itself): the
    full collection also comes once `full_after_connections` were opened since the last one."""
    clock = Clock()
    opened = [0]
    collector = RoundCollector(full_every=300.0, full_after_connections=100, clock=clock)
    collector.active = True
    for count, collections in ((99, 0), (100, 1), (150, 1), (199, 1), (200, 2)):
        opened[0] = count
        with collector.round(lambda: opened[0]):
            pass
        assert collector.full_collections == collections, count
    clock.now += 299.0  # the last one came with the connections: full_every counts from it
    with collector.round(lambda: opened[0]):
        pass
    assert collector.full_collections == 2


def test_a_round_that_raises_still_freezes_and_turns_collection_back_on() -> None:
    collector = RoundCollector(full_every=300.0, clock=Clock())
    collector.active = True
    with pytest.raises(RuntimeError), collector.round():
        made = Cycle()
        raise RuntimeError("a bug in the round")
    assert gc.isenabled()
    assert not _in_collected_generations(made)


def test_collection_that_was_off_stays_off() -> None:
    collector = RoundCollector(full_every=300.0, clock=Clock())
    collector.active = True
    gc.disable()
    with collector.round():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_tune_gc_turns_the_policy_on_in_a_fresh_process() -> None:
    code = (
        "import gc\n"
        "from aggregator.gcpolicy import ROUNDS, GC_THRESHOLD0, tune_gc\n"
        "assert not ROUNDS.active\n"
        "tune_gc()\n"
        "assert ROUNDS.active and gc.get_threshold()[0] == GC_THRESHOLD0 and gc.get_freeze_count() > 0\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def _running(discovery: StaticDiscovery, collector: RoundCollector, *, timeout: float, interval: float,
             until: Callable[[], object], message: str) -> Scraper:
    """Run a scrape service with `collector` until `until()` holds, then stop it; its scraper."""
    stats = AggregatorStats()
    store = Store(stats=stats)
    scraper = Scraper(timeout=timeout, max_response_bytes=1 << 20, stats=stats)
    service = ScrapeService(discovery=discovery, scraper=scraper, store=store,
                            federation=FederationCache(store=store, stats=stats, version="test"),
                            stats=stats, interval=interval, collector=collector)
    service.start()
    try:
        wait_until(until, timeout=20, message=message, interval=0.02)
    finally:
        service.stop()
    return scraper


def test_the_scrape_loop_runs_each_round_inside_its_collector() -> None:
    """The service's rounds go through `collector.round()`: discovery, read at the start of every
    round, sees automatic collection off, and it is on again once the service stops."""
    seen: list[bool] = []

    class Recording(StaticDiscovery):
        def targets(self) -> dict[str, str | None]:
            seen.append(gc.isenabled())
            return dict(super().targets())

    collector = RoundCollector(full_every=3600.0)
    collector.active = True
    # Nothing listens on port 1 of the loopback address: each scrape fails at once.
    _running(Recording(["127.0.0.1:1"]), collector, timeout=0.5, interval=0.05,
             until=lambda: len(seen) >= 3, message="three rounds")
    assert len(seen) >= 3, seen
    assert not any(seen)
    assert gc.isenabled()


def test_the_scrape_loop_counts_its_connections_toward_the_next_full_collection() -> None:
    """Against an exporter that accepts and never answers, every round opens a connection and closes
    it at the timeout; the service hands the scraper's count to its collector, whose full collection
    then comes long before `full_every`."""
    collector = RoundCollector(full_every=3600.0, full_after_connections=3)
    collector.active = True
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)  # the kernel completes the handshake; nobody answers
        scraper = _running(StaticDiscovery([f"127.0.0.1:{hung.getsockname()[1]}"]), collector, timeout=0.1,
                           interval=0.15, until=lambda: collector.full_collections >= 1,
                           message="a full collection brought forward by the connections")
    assert collector.full_collections >= 1
    assert scraper.connections_opened >= 3
