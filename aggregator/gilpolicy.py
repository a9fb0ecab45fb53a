"""The GIL's switch interval in the aggregator process: what `python -m aggregator` sets once built.

A thread that wants the GIL waits for the switch interval (CPython's default 5 ms) before it asks the
running thread to let go. A request for one node or pod passes the GIL between waitress's I/O thread
and a worker thread a few times, and each time it queues behind the scrape loop, which is busy with
Python work most of a round: at the default a 1-ms answer took 10-28 ms at p90. At 1 ms (1000 x 30,
4 clients polling the one-entity documents and their timeseries, 7 alternated pairs of 40-s runs):
p90 median 15.2 -> 12.3 ms, p99 median 53.5 -> 33.6 ms (lower in 6 of the 7 pairs), with the same
CPU and round times (bench/profiles/2026-12-03-switch-interval.txt).
Set here for the aggregator process only, like the collector policy (gcpolicy.py): tests and other
programs keep CPython's default.
"""

from __future__ import annotations

import sys

SWITCH_INTERVAL = 0.001  # seconds


def tune_switching() -> None:
    """The aggregator's switch interval, for the whole process (`sys.setswitchinterval`)."""
    sys.setswitchinterval(SWITCH_INTERVAL)
