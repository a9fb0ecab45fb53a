"""Where the benchmark's processes run: the aggregator on a CPU of its own, everything else on the rest.

In a cluster the exporters run on the other nodes and the dashboards on people's machines; the
aggregator has its pod's CPU. On a small machine the fake exporters, the API clients, Prometheus and
this driver would otherwise compete with the aggregator for the same cores, and its latencies would
measure them (pinning alone took target 2's p99 for one node or pod document from 136-141 to 45-58 ms:
bench/profiles/2026-12-03d-lock-waits.txt). Affinity is inherited: the driver's thread pins itself
to the others' CPUs before starting the fakes and clients, and the aggregator child pins itself to
its own CPU before it starts a thread (`AGGREGATOR_CPUS_ENV`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

AGGREGATOR_CPUS_ENV = "K8SMON_BENCH_AGGREGATOR_CPUS"


@dataclass(frozen=True)
class Placement:
    aggregator: frozenset[int]  # empty: not pinned
    others: frozenset[int]


def describe(aggregator: set[int], others: set[int]) -> str:
    """Where the processes run, from their actual affinities (the aggregator's, the fakes')."""
    if aggregator & others:
        return f"not pinned: the aggregator (CPU {_cpus(aggregator)}) shares CPUs with the fakes and clients"
    return (f"aggregator alone on CPU {_cpus(aggregator)}; fakes, API clients and the driver on CPU "
            f"{_cpus(others)} (as in a cluster, where they run on other machines)")


def _cpus(cpus: Iterable[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def plan(pin: bool) -> Placement:
    """The last CPU this process may use for the aggregator, the rest for everything else; no pinning
    when asked for none or with one CPU."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return Placement(frozenset(), frozenset(cpus))
    return Placement(frozenset(cpus[-1:]), frozenset(cpus[:-1]))


@contextmanager
def driver_on(placement: Placement) -> Iterator[None]:
    """This thread (and the processes and threads it starts meanwhile) on the others' CPUs."""
    if not placement.aggregator:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, placement.others)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def aggregator_env(placement: Placement) -> dict[str, str]:
    """What the aggregator child's environment needs to pin itself (nothing when not pinned)."""
    return {AGGREGATOR_CPUS_ENV: _cpus(placement.aggregator)} if placement.aggregator else {}


def pin_from_env() -> None:
    """In the aggregator child, before any thread starts: its CPUs, if the parent gave some."""
    wanted = os.environ.get(AGGREGATOR_CPUS_ENV, "")
    if wanted:
        os.sched_setaffinity(0, {int(c) for c in wanted.split(",")})
