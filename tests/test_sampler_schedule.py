"""The sampler's background schedule and error handling, without threads or real time (issue 17).

`Sampler._run` is driven in the test's own thread with a fake monotonic clock and a scripted stop
event whose `wait(timeout)` records the timeout and moves the clock by it: the waits between cycles
are asserted exactly (fixed ticks that do not drift by a cycle's cost; an overrun skips the missed
ticks instead of bursting), and so is what gets published. tests/test_exporter_sampler.py keeps the
real-thread test; this one is the deterministic form.
"""

from __future__ import annotations

import logging
import threading

import pytest

from exporter.containers import ContainerCgroup, ContainerUsage
from exporter.model import HostSample, PodCgroup, PodUsage
from exporter.sampler import CountingErrors, Sampler
from tests.exporter_fakes import FakeCgroups, FakeClock, FakePodStats, host_sample, pod_usage

A = "aaaaaaaa-0000-0000-0000-000000000001"


class ScriptedStop:
    """A stop event: `wait` records its timeout, advances the clock by it, and reports a stop after
    `waits` calls (or when `set`)."""

    def __init__(self, clock: FakeClock, waits: int) -> None:
        self.clock = clock
        self.left = waits
        self.timeouts: list[float] = []
        self.flag = False

    def wait(self, timeout: float) -> bool:
        self.timeouts.append(timeout)
        self.clock.advance(timeout)
        self.left -= 1
        if self.left <= 0:
            self.flag = True
        return self.flag

    def is_set(self) -> bool:
        return self.flag

    def set(self) -> None:
        self.flag = True


class CostlyHost:
    """A host reader whose reads take `costs[i]` seconds of the fake clock (the last cost repeats)."""

    def __init__(self, clock: FakeClock, costs: list[float], fail_on: int = 0) -> None:
        self.clock, self.costs, self.fail_on = clock, costs, fail_on
        self.reads = 0

    def read(self) -> HostSample:
        self.reads += 1
        self.clock.advance(self.costs[min(self.reads, len(self.costs)) - 1])
        if self.reads == self.fail_on:
            raise RuntimeError("reader bug")
        return host_sample()


def rig(costs: list[float], *, waits: int = 4, fail_on: int = 0,
        **timing: float) -> tuple[Sampler, CostlyHost, ScriptedStop, CountingErrors]:
    errors = CountingErrors()
    stats = FakePodStats(errors, {A: pod_usage(A)})
    mono = FakeClock(100.0)
    host = CostlyHost(mono, costs, fail_on)
    timing = {"interval": 5.0, "first_delay": 1.0} | timing
    sampler = Sampler(node="n1", host_reader=host, cgroup_finder=FakeCgroups(stats), pod_reader=stats,
                      errors=errors, now=FakeClock(1.7e9), monotonic=mono, cpu_clock=FakeClock(0.0), **timing)
    stop = ScriptedStop(mono, waits)
    sampler._stop = stop  # type: ignore[assignment]  # the schedule under a scripted event
    return sampler, host, stop, errors


def test_ticks_are_fixed_and_do_not_drift_by_the_cycle_cost() -> None:
    sampler, host, stop, _ = rig([0.5], waits=4)
    sampler._run()
    # baseline cycle, first delay, then each wait is the interval less the 0.5 s the cycle took
    assert stop.timeouts == [1.0, 4.5, 4.5, 4.5]
    assert host.reads == 4 and sampler.latest is not None and sampler.latest.sequence == 4


def test_an_overrun_skips_the_missed_ticks_instead_of_bursting() -> None:
    # the second published cycle takes 7 s: past its tick, so the next wait is a whole interval from now
    sampler, host, stop, _ = rig([0.5, 0.5, 7.0, 0.5], waits=5)
    sampler._run()
    assert stop.timeouts == [1.0, 4.5, 5.0, 4.5, 4.5]
    assert host.reads == 5


def test_a_cycle_that_ends_exactly_on_its_tick_starts_the_next_at_once() -> None:
    sampler, _, stop, _ = rig([0.5, 5.0], waits=3)
    sampler._run()
    assert stop.timeouts == [1.0, 0.0, 0.0]  # on time, not late: no tick is skipped


def test_first_delay_is_at_most_one_interval() -> None:
    sampler, _, stop, _ = rig([0.0], interval=0.5, first_delay=1.0, waits=3)
    sampler._run()
    assert stop.timeouts == [0.5, 0.5, 0.5]
    sampler, _, stop, _ = rig([0.0], interval=5.0, first_delay=2.0, waits=2)
    sampler._run()
    assert stop.timeouts == [2.0, 5.0]


def test_stopped_during_the_first_delay_publishes_nothing() -> None:
    sampler, host, stop, _ = rig([0.5], waits=1)
    sampler._run()
    assert stop.timeouts == [1.0]
    assert host.reads == 1  # the baseline was read ...
    assert sampler.latest is None  # ... but never published: rates need two readings


def test_the_unpublished_baseline_leaves_what_was_served_before() -> None:
    sampler, host, _, _ = rig([0.5], waits=1)
    served = sampler.cycle()  # a cycle run by hand before the thread starts
    sampler._run()  # baseline read, then stopped during the first delay
    assert host.reads == 2 and sampler.latest is served


def test_stopped_before_the_loop_runs_no_cycle() -> None:
    sampler, host, stop, _ = rig([0.5], waits=2)
    stop.wait = lambda timeout: False  # type: ignore[method-assign]  # the first delay passes ...
    stop.flag = True  # ... but stop was asked meanwhile
    sampler._run()
    assert host.reads == 1 and sampler.latest is None


def test_a_failing_cycle_keeps_the_last_snapshot_counts_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    sampler, _, stop, errors = rig([0.5], waits=4, fail_on=3)
    seen: list[int | None] = []
    real_wait = stop.wait

    def wait(timeout: float) -> bool:
        seen.append(sampler.latest.sequence if sampler.latest is not None else None)
        return real_wait(timeout)

    stop.wait = wait  # type: ignore[method-assign]
    with caplog.at_level(logging.DEBUG, logger="exporter.sampler"):
        sampler._run()
    # baseline (seq 1, unpublished); seq 2 published; read 3 raises: seq 2 still served; seq 3 next
    assert seen == [None, 2, 2, 3]
    assert errors.counts() == {"sampler": 1}
    assert sampler.latest is not None and sampler.latest.errors == {"sampler": 1}
    failed = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [(r.name, r.getMessage()) for r in failed] == [("exporter.sampler", "sampling cycle failed")]
    assert failed[0].exc_info is not None and str(failed[0].exc_info[1]) == "reader bug"
    debug = ("exporter.sampler", logging.DEBUG, "sampler: sampling cycle failed (reader bug)")
    assert debug in caplog.record_tuples


def test_a_failing_baseline_is_counted_and_the_next_cycle_is_published() -> None:
    sampler, host, _, errors = rig([0.5], waits=2, fail_on=1)
    sampler._run()
    assert errors.counts() == {"sampler": 1}
    assert sampler.latest is not None and sampler.latest.sequence == 1 and host.reads == 2


def test_counting_errors_logs_each_record_at_debug_and_counts_by_source(
        caplog: pytest.LogCaptureFixture) -> None:
    errors = CountingErrors()
    with caplog.at_level(logging.DEBUG, logger="exporter.sampler"):
        errors.record("cgroup", "reading pod x", OSError("gone"))
        errors.record("cgroup", "pod y vanished")
        errors.record("kube", "watch failed")
    assert caplog.record_tuples == [
        ("exporter.sampler", logging.DEBUG, "cgroup: reading pod x (gone)"),
        ("exporter.sampler", logging.DEBUG, "cgroup: pod y vanished (None)"),
        ("exporter.sampler", logging.DEBUG, "kube: watch failed (None)"),
    ]
    counts = errors.counts()
    assert counts == {"cgroup": 2, "kube": 1}
    counts["cgroup"] = 99  # a copy: the caller cannot change the sink
    assert errors.counts() == {"cgroup": 2, "kube": 1}


def test_the_background_thread_is_a_daemon_named_sampler_and_stop_joins_it() -> None:
    sampler, _, _, _ = rig([0.0])
    sampler._stop = threading.Event()  # the real event: stop() must end the thread
    sampler.start()
    thread = sampler._thread
    assert thread is not None and thread.name == "sampler" and thread.daemon
    sampler.stop()
    assert not thread.is_alive()


def test_default_schedule_is_a_first_snapshot_after_1_s_then_every_5_s() -> None:
    errors = CountingErrors()
    stats = FakePodStats(errors, {A: pod_usage(A)})
    mono = FakeClock(100.0)
    sampler = Sampler(node="n1", host_reader=CostlyHost(mono, [0.5]), cgroup_finder=FakeCgroups(stats),
                      pod_reader=stats, errors=errors, monotonic=mono)
    stop = ScriptedStop(mono, 3)
    sampler._stop = stop  # type: ignore[assignment]
    sampler._run()
    assert sampler.interval == 5.0 and stop.timeouts == [1.0, 4.5, 4.5]


class FakeThread:
    def __init__(self) -> None:
        self.joins: list[float | None] = []

    def join(self, timeout: float | None = None) -> None:
        self.joins.append(timeout)


def test_stop_waits_a_bounded_time_for_the_cycle_in_progress() -> None:
    sampler, _, _, _ = rig([0.0])
    sampler.stop()  # never started: nothing to join, no error
    thread = FakeThread()
    sampler._thread = thread  # type: ignore[assignment]
    sampler.stop()
    sampler.stop(0.25)
    assert thread.joins == [5.0, 0.25]  # never an unbounded join: a stuck reader cannot hang shutdown


def test_read_errors_are_counted_and_logged_with_their_detail(caplog: pytest.LogCaptureFixture) -> None:
    errors = CountingErrors()
    stats = FakePodStats(errors, {A: pod_usage(A)})

    class BrokenFinder:
        def find(self) -> list[PodCgroup]:
            raise OSError("no cgroupfs")

    class BrokenPodReader:
        def read(self, cgroup: PodCgroup) -> PodUsage | None:
            raise OSError(f"{cgroup.uid} gone")

    sampler = Sampler(node="n1", host_reader=CostlyHost(FakeClock(), [0.0]), cgroup_finder=BrokenFinder(),
                      pod_reader=stats, errors=errors)
    with caplog.at_level(logging.DEBUG, logger="exporter.sampler"):
        snap = sampler.cycle()
        sampler = Sampler(node="n1", host_reader=CostlyHost(FakeClock(), [0.0]),
                          cgroup_finder=FakeCgroups(stats), pod_reader=BrokenPodReader(), errors=errors)
        snap2 = sampler.cycle()
    assert snap.pods == () and snap.errors == {"cgroup": 1}
    assert snap2.pods == () and snap2.errors == {"cgroup": 2}
    assert caplog.record_tuples == [
        ("exporter.sampler", logging.DEBUG, "cgroup: finding pod cgroups failed (no cgroupfs)"),
        ("exporter.sampler", logging.DEBUG, f"cgroup: reading pod {A} ({A} gone)"),
    ]


def test_a_failing_container_read_is_counted_in_the_sampler_errors_and_keeps_the_pod() -> None:
    errors = CountingErrors()
    stats = FakePodStats(errors, {A: pod_usage(A)})

    class BrokenContainers:
        def read(self, cgroup: PodCgroup) -> list[ContainerUsage]:
            raise OSError("containers gone")

        def is_sandbox(self, container: ContainerCgroup) -> bool | None:
            return None

    sampler = Sampler(node="n1", host_reader=CostlyHost(FakeClock(), [0.0]), cgroup_finder=FakeCgroups(stats),
                      pod_reader=stats, errors=errors, container_reader=BrokenContainers())
    snap = sampler.cycle()
    assert [p.usage.uid for p in snap.pods] == [A] and snap.pods[0].containers == ()
    assert snap.errors == {"cgroup": 1}
