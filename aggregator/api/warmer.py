"""Prepares each round's pod listing JSON between rounds, so that listing requests only join bytes.

The store keeps the pods as each round left them (`Store.round_pod_listing`) while someone asks for
pod listings; their documents change once a round. Built by the first request after a round, the
whole listing's JSON (~1 s of CPU at 1000 x 30) made that request, and every request waiting on it,
slow once a round; here it is built right after the round ends, in the idle part of the interval,
while requests keep getting the previous round's listing. Only while whole listings, or parts of
more than `listing.PREPARE_AT` pods, are asked for (`PodDocCache.last_asked` within `demand`
seconds): a cluster nobody lists costs nothing, and a client polling one node's pods does not make
every round prepare 30k documents.
"""

from __future__ import annotations

import logging
import threading

from aggregator.api.inflight import GiveWay
from aggregator.api.views import PodDocCache
from aggregator.store.listing import PodListing
from aggregator.store.store import ROUND_LISTING_DEMAND, Store

log = logging.getLogger(__name__)

GIVE_WAY_SHARE = 0.5  # of the scrape interval: how long a round's preparation may pause for requests


class ListingWarmer:
    """One daemon thread: waits for the store's next round listing and prepares its JSON."""

    def __init__(self, store: Store, pod_docs: PodDocCache, *, poll: float = 0.5) -> None:
        self._store = store
        self._pod_docs = pod_docs
        self._poll = poll  # how often the thread looks at the stop flag while no round ends
        self.demand = ROUND_LISTING_DEMAND * store.interval
        self.prepared = 0  # listings prepared (tests and the benchmark read it)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._pod_docs.demand = self.demand
        self._pod_docs.warmed = True  # requests now leave each round's listing to this thread
        self._thread = threading.Thread(target=self._run, name="listing-warmer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._pod_docs.warmed = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _give_way(self) -> GiveWay:
        """A round's preparation gives way to requests in flight for half an interval at most."""
        return GiveWay(self._pod_docs.requests, budget=GIVE_WAY_SHARE * self._store.interval)

    def _run(self) -> None:
        last: PodListing | None = None
        while not self._stop.is_set():
            listing = self._store.next_round_listing(last, timeout=self._poll)
            if listing is None:
                continue
            last = listing
            if not self._pod_docs.preparing():  # nobody asked within `demand` seconds
                continue
            try:
                # prepares it, and the template, giving way to the requests in flight
                self._pod_docs.whole(listing, now=listing.built_at, give_way=self._give_way())
                self.prepared += 1
            except Exception:  # a bug here must not end the thread: requests then prepare it themselves
                log.exception("listing warmer: preparing the round's pod listing failed")
