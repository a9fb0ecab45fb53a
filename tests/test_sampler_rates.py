"""The sampler's CPU rates, value by value: host cores and pod cores from two cumulative readings.

The host rule (busy share of total time, times the CPUs) and the pod rule (CPU seconds per second)
are each checked on the same boundaries as the aggregator's counter rule (tests/test_counter_rules.py):
an unchanged counter is 0, not "no rate"; a counter going back starts a new baseline; no time
passing gives no rate.
"""

from __future__ import annotations

import dataclasses

import pytest

from exporter.model import DiskCounters, HostSample, NetCounters
from exporter.sampler import CountingErrors, Sampler
from tests.exporter_fakes import FakeCgroups, FakeClock, FakeHost, FakePodStats, host_sample, pod_usage

A, B = "aaaaaaaa-0000-0000-0000-000000000001", "bbbbbbbb-0000-0000-0000-000000000002"


class Rig:
    def __init__(self) -> None:
        self.errors = CountingErrors()
        self.stats = FakePodStats(self.errors, {A: pod_usage(A, cpu=10.0)})
        self.host = FakeHost(host_sample(busy=1000.0, total=4000.0, cpus=4))
        self.mono = FakeClock(100.0)
        self.sampler = Sampler(node="n1", host_reader=self.host, cgroup_finder=FakeCgroups(self.stats),
                               pod_reader=self.stats, errors=self.errors, interval=5.0,
                               now=FakeClock(1_700_000_000.0), monotonic=self.mono, cpu_clock=FakeClock(0.0))

    def pod_rate(self, cpu: float, seconds: float) -> float | None:
        self.stats.set_cpu(A, cpu)
        self.mono.advance(seconds)
        return {p.usage.uid: p for p in self.sampler.cycle().pods}[A].cpu_usage_cores

    def host_rate(self, busy: float, total: float, cpus: int | None = 4) -> float | None:
        self.host.sample = dataclasses.replace(host_sample(busy=busy, total=total), cpu_count=cpus)
        return self.sampler.cycle().host_cpu_usage_cores


@pytest.mark.parametrize(
    ("cpu", "seconds", "expected"),
    [
        (12.0, 4.0, 0.5),  # 2 CPU seconds in 4 s
        (10.0, 5.0, 0.0),  # an idle pod uses 0 cores, it does not lose its figure
        (10.25, 0.5, 0.5),  # sub-second interval
        (11.0, 1.0, 1.0),  # exactly one second
        (9.0, 5.0, None),  # cgroup recreated under the same uid: a new baseline, no rate
        (11.0, 0.0, None),  # no time passed
    ],
)
def test_pod_cpu_rate(cpu: float, seconds: float, expected: float | None) -> None:
    rig = Rig()
    assert rig.sampler.cycle().pods[0].cpu_usage_cores is None  # the first reading is the baseline
    assert rig.pod_rate(cpu, seconds) == expected


def test_pod_rate_after_a_backwards_counter_uses_the_new_baseline() -> None:
    rig = Rig()
    rig.sampler.cycle()
    assert rig.pod_rate(2.0, 1.0) is None
    assert rig.pod_rate(3.0, 2.0) == 0.5  # from (2.0, t+1) to (3.0, t+3)


def test_pod_rate_after_no_time_passed_still_measures_from_the_reading_before() -> None:
    rig = Rig()
    rig.sampler.cycle()  # (10.0, 100)
    assert rig.pod_rate(10.0, 0.0) is None
    assert rig.pod_rate(14.0, 2.0) == 2.0


def test_a_pod_without_a_cpu_figure_has_no_rate_and_keeps_no_baseline() -> None:
    rig = Rig()
    rig.sampler.cycle()
    rig.stats.usages[A] = dataclasses.replace(rig.stats.usages[A], cpu_seconds=None)
    rig.mono.advance(1.0)
    assert rig.sampler.cycle().pods[0].cpu_usage_cores is None
    assert rig.pod_rate(20.0, 1.0) is None  # no baseline survived the missing figure


def test_pods_are_rated_separately_and_listed_by_uid() -> None:
    rig = Rig()
    rig.stats.usages = {B: pod_usage(B, cpu=100.0), A: pod_usage(A, cpu=10.0)}
    rig.sampler.cycle()
    rig.stats.set_cpu(A, 11.0)
    rig.stats.set_cpu(B, 104.0)
    rig.mono.advance(2.0)
    snap = rig.sampler.cycle()
    assert [(p.usage.uid, p.cpu_usage_cores) for p in snap.pods] == [(A, 0.5), (B, 2.0)]


@pytest.mark.parametrize(
    ("busy", "total", "cpus", "expected"),
    [
        (1002.0, 4008.0, 4, 1.0),  # 2 busy of 8 total seconds on 4 CPUs
        (1000.0, 4008.0, 4, 0.0),  # an idle host uses 0 cores
        (1008.0, 4008.0, 4, 4.0),  # fully busy
        (1010.0, 4008.0, 4, 4.0),  # busy beyond total (counter skew) is capped at all CPUs
        (1001.0, 4002.0, 8, 4.0),  # half busy on 8 CPUs
        (1001.0, 4000.0, 4, None),  # no time passed
        (999.0, 4008.0, 4, None),  # busy went back: /proc remounted, a new baseline
        (1002.0, 3999.0, 4, None),  # total went back
        (1002.0, 4008.0, None, None),  # CPU count unknown
    ],
)
def test_host_cpu_rate(busy: float, total: float, cpus: int | None, expected: float | None) -> None:
    rig = Rig()
    assert rig.sampler.cycle().host_cpu_usage_cores is None
    assert rig.host_rate(busy, total, cpus) == expected


def test_host_rate_after_an_unknown_cpu_count_measures_from_that_reading() -> None:
    rig = Rig()
    rig.sampler.cycle()  # busy 1000 / total 4000
    assert rig.host_rate(1004.0, 4008.0, None) is None
    assert rig.host_rate(1006.0, 4012.0, 4) == 2.0  # from (1004, 4008): 2 of 4 s on 4 CPUs


def test_a_reading_without_cpu_times_keeps_the_previous_baseline() -> None:
    rig = Rig()
    rig.sampler.cycle()  # busy 1000 / total 4000
    rig.host.sample = dataclasses.replace(host_sample(), cpu=None)
    assert rig.sampler.cycle().host_cpu_usage_cores is None
    assert rig.host_rate(1004.0, 4016.0, 4) == 1.0  # measured from the reading before the gap


def test_snapshot_timing_and_sequence() -> None:
    rig = Rig()
    cpu = FakeClock(7.0)
    rig.sampler._cpu_clock = cpu

    class Slow:
        def read(self) -> HostSample:
            rig.mono.advance(0.5)
            cpu.advance(0.125)
            return host_sample()

    rig.sampler._host_reader = Slow()
    first = rig.sampler.cycle()
    assert (first.duration_seconds, first.cpu_seconds, first.sequence) == (0.5, 0.125, 1)
    assert (first.node, first.timestamp) == ("n1", 1_700_000_000.0)
    assert rig.sampler.cycle().sequence == 2


def test_clocks_going_back_never_give_negative_durations() -> None:
    rig = Rig()
    cpu = FakeClock(7.0)
    rig.sampler._cpu_clock = cpu

    class Stepping:
        def read(self) -> HostSample:
            rig.mono.advance(-1.0)
            cpu.advance(-1.0)
            return host_sample()

    rig.sampler._host_reader = Stepping()
    snap = rig.sampler.cycle()
    assert (snap.duration_seconds, snap.cpu_seconds) == (0.0, 0.0)


def test_counting_errors_counts_by_source_and_hands_out_copies() -> None:
    errors = CountingErrors()
    errors.record("cgroup", "a")
    errors.record("cgroup", "b", OSError("x"))
    errors.record("host", "c")
    counts = errors.counts()
    assert counts == {"cgroup": 2, "host": 1}
    counts["cgroup"] = 99
    assert errors.counts() == {"cgroup": 2, "host": 1}


def test_a_finder_that_raises_costs_the_pods_of_one_cycle_only() -> None:
    rig = Rig()

    class Failing:
        def find(self) -> list:
            raise OSError("cgroup root unreadable")

    finder = rig.sampler._cgroup_finder
    rig.sampler._cgroup_finder = Failing()
    snap = rig.sampler.cycle()
    assert snap.pods == () and snap.errors == {"cgroup": 1}
    rig.sampler._cgroup_finder = finder
    assert [p.usage.uid for p in rig.sampler.cycle().pods] == [A]


def test_host_rate_over_an_interval_of_one_tick_or_less() -> None:
    rig = Rig()
    rig.sampler.cycle()  # busy 1000 / total 4000
    assert rig.host_rate(1000.5, 4001.0, 4) == 2.0  # half of one second on 4 CPUs


def test_without_a_pod_index_the_snapshot_says_not_connected() -> None:
    assert Rig().sampler.cycle().kube_connected is False


def test_pod_and_host_io_totals_keep_what_a_device_that_left_moved() -> None:
    rig = Rig()
    disks = {"8:0": DiskCounters(read_bytes=100, written_bytes=200),
             "8:16": DiskCounters(read_bytes=50, written_bytes=50)}
    nics = {"eth0": NetCounters(receive_bytes=1000, transmit_bytes=10),
            "eth1": NetCounters(receive_bytes=500, transmit_bytes=5)}

    def with_devices(sample, disks, nics):  # type: ignore[no-untyped-def]
        return dataclasses.replace(
            sample, disk=DiskCounters(sum(d.read_bytes for d in disks.values()),
                                      sum(d.written_bytes for d in disks.values())),
            disk_devices=disks, network=NetCounters(sum(n.receive_bytes for n in nics.values()),
                                                    sum(n.transmit_bytes for n in nics.values())),
            network_interfaces=nics)

    rig.stats.usages[A] = with_devices(rig.stats.usages[A], disks, nics)
    rig.host.sample = with_devices(host_sample(), disks, nics)
    first = rig.sampler.cycle()
    assert (first.pods[0].usage.disk, first.pods[0].usage.network) == (
        DiskCounters(150, 250), NetCounters(1500, 15))
    # 8:16 and eth1 go away; the others move on. The totals only grow.
    later_disks = {"8:0": DiskCounters(read_bytes=110, written_bytes=230)}
    later_nics = {"eth0": NetCounters(receive_bytes=1100, transmit_bytes=12)}
    rig.stats.usages[A] = with_devices(rig.stats.usages[A], later_disks, later_nics)
    rig.host.sample = with_devices(host_sample(), later_disks, later_nics)
    rig.mono.advance(5.0)
    snap = rig.sampler.cycle()
    for usage in (snap.pods[0].usage, snap.host):
        assert usage.disk == DiskCounters(160, 280)
        assert usage.network == NetCounters(1600, 17)


def test_a_pod_or_host_without_io_figures_keeps_none() -> None:
    rig = Rig()
    rig.stats.usages[A] = dataclasses.replace(rig.stats.usages[A], disk=None, network=None, host_network=True)
    rig.host.sample = dataclasses.replace(host_sample(), disk=None, network=None)
    snap = rig.sampler.cycle()
    assert (snap.pods[0].usage.disk, snap.pods[0].usage.network) == (None, None)
    assert (snap.host.disk, snap.host.network) == (None, None)
