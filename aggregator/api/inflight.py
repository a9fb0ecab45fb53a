"""Background work that gives way to the API's requests: the requests in flight, and a pause for threads
that work between rounds.

Every thread of the aggregator shares one GIL, and a thread that wants it waits behind every busy
one. A one-node or one-pod answer is 0.3-0.5 ms of work, yet at 1000 x 30 under 4 polling clients
its p99 inside the app was 24-30 ms, and most answers over 15 ms came while the listing warmer made
the round's 30k pod documents (~1.1-1.5 s of CPU a round). The warmer has slack (requests get the
round before while it works); the requests do not. So it pauses while a request is being answered,
and for LINGER after one is (waitress still sends the answer), for half an interval at most in a
round (`GiveWay`'s budget), so that its round is ready in time however busy the API is: p99 inside
the app 16-19 ms, in 3 of 3 alternated pairs (bench/profiles/2026-12-03g-warmer-gives-way.txt).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import falcon

LINGER = 0.001  # seconds after the last answer during which a request still counts as in flight
STEP = 0.0005  # seconds a paused worker sleeps before it looks again


class RequestsInFlight:
    """A falcon middleware counting the requests being answered (process_request to process_response).

    A request is answered in one thread from its process_request to its process_response (waitress
    gives it to one worker), so the threads stand for the requests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._threads: set[int] = set()  # the threads answering a request
        self._aside: set[int] = set()  # those of them waiting for background work (`aside`)
        self._last_end = -LINGER  # when the last request ended (`clock`)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self._lock:
            self._threads.add(threading.get_ident())

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        me = threading.get_ident()
        with self._lock:
            if me in self._threads:  # not when a middleware before it ended the request
                self._threads.discard(me)
                self._last_end = self._clock()

    def busy(self) -> bool:
        """A request is being answered (and not waiting for background work), or was within LINGER."""
        with self._lock:
            return len(self._threads) > len(self._aside) or self._clock() - self._last_end < LINGER

    @contextmanager
    def aside(self) -> Iterator[None]:
        """While the calling request waits for background work (a round's listing being prepared), it
        does not count: the work must not give way to what waits for it. Elsewhere a no-op."""
        me = threading.get_ident()
        with self._lock:
            counted = me in self._threads and me not in self._aside
            if counted:
                self._aside.add(me)
        try:
            yield
        finally:
            if counted:
                with self._lock:
                    self._aside.discard(me)


class GiveWay:
    """Called every few items by a background job: sleeps while requests are in flight, `budget`
    seconds at most in all (the job's result is due: the warmer's by the next round)."""

    def __init__(
        self,
        requests: RequestsInFlight,
        *,
        budget: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._requests = requests
        self._budget = budget
        self._clock = clock
        self._sleep = sleep
        self.paused = 0.0  # seconds given way so far

    def __call__(self) -> None:
        while self.paused < self._budget and self._requests.busy():
            started = self._clock()
            self._sleep(STEP)
            self.paused += self._clock() - started
