"""Sampler: CPU rates from cumulative readings with fake clocks, counter resets, exclusion, thread."""

from __future__ import annotations

import dataclasses
import time

import pytest

from exporter.model import HostSample
from exporter.sampler import CountingErrors, Sampler
from exporter.snapshot import PodMeta
from tests.exporter_fakes import (
    FakeCgroups,
    FakeClock,
    FakeHost,
    FakeLookup,
    FakePodStats,
    host_sample,
    pod_usage,
)
from tests.support import wait_until

A, B = "aaaaaaaa-0000-0000-0000-000000000001", "bbbbbbbb-0000-0000-0000-000000000002"


def make(*, pods: FakeLookup | None = None, exclude: tuple[str, ...] = ()) -> tuple[Sampler, dict]:
    errors = CountingErrors()
    stats = FakePodStats(errors, {A: pod_usage(A, cpu=10.0), B: pod_usage(B, cpu=5.0)})
    host = FakeHost(host_sample(busy=1000.0, total=4000.0, cpus=4))
    wall, mono, cpu = FakeClock(1_700_000_000.0), FakeClock(100.0), FakeClock(3.0)
    sampler = Sampler(node="n1", host_reader=host, cgroup_finder=FakeCgroups(stats), pod_reader=stats,
                      errors=errors, pods=pods, exclude_namespaces=exclude, interval=5.0,
                      now=wall, monotonic=mono, cpu_clock=cpu)
    return sampler, {"stats": stats, "host": host, "wall": wall, "mono": mono, "cpu": cpu, "errors": errors}


def by_uid(snapshot) -> dict:
    return {p.usage.uid: p for p in snapshot.pods}


def test_first_cycle_is_a_baseline_without_rates() -> None:
    sampler, _ = make()
    assert sampler.latest is None
    first = sampler.cycle()
    assert first.host_cpu_usage_cores is None
    assert all(p.cpu_usage_cores is None for p in first.pods)
    assert [p.usage.uid for p in first.pods] == [A, B]
    assert sampler.latest is first


def test_host_and_pod_cpu_rates_from_deltas() -> None:
    sampler, f = make()
    sampler.cycle()
    f["host"].sample = host_sample(busy=1002.0, total=4008.0, cpus=4)  # 2 busy of 8 total, 4 CPUs
    f["stats"].set_cpu(A, 10.5)
    f["stats"].set_cpu(B, 7.0)
    f["mono"].advance(2.0)
    f["wall"].advance(2.0)
    snap = sampler.cycle()
    assert snap.host_cpu_usage_cores == pytest.approx(1.0)
    pods = by_uid(snap)
    assert pods[A].cpu_usage_cores == pytest.approx(0.25)
    assert pods[B].cpu_usage_cores == pytest.approx(1.0)
    assert snap.timestamp == 1_700_000_002.0


def test_counter_going_backwards_starts_a_new_baseline() -> None:
    sampler, f = make()
    sampler.cycle()
    f["stats"].set_cpu(A, 2.0)  # cgroup recreated under the same uid
    f["host"].sample = host_sample(busy=10.0, total=40.0)  # /proc counters reset
    f["mono"].advance(1.0)
    snap = sampler.cycle()
    assert by_uid(snap)[A].cpu_usage_cores is None
    assert snap.host_cpu_usage_cores is None
    f["stats"].set_cpu(A, 2.5)
    f["host"].sample = host_sample(busy=14.0, total=48.0)
    f["mono"].advance(1.0)
    snap = sampler.cycle()
    assert by_uid(snap)[A].cpu_usage_cores == pytest.approx(0.5)
    assert snap.host_cpu_usage_cores == pytest.approx(2.0)


def test_no_time_passed_gives_no_rate_rather_than_a_division_error() -> None:
    sampler, f = make()
    sampler.cycle()
    f["stats"].set_cpu(A, 11.0)
    snap = sampler.cycle()
    assert by_uid(snap)[A].cpu_usage_cores is None
    assert snap.host_cpu_usage_cores is None


def test_pod_that_leaves_loses_its_baseline_and_vanishing_reads_are_counted() -> None:
    sampler, f = make()
    sampler.cycle()
    gone = f["stats"].usages.pop(B)
    f["stats"].usages[A] = None  # disappears mid-read
    f["mono"].advance(1.0)
    snap = sampler.cycle()
    assert snap.pods == ()
    assert snap.errors == {"cgroup": 1}
    f["stats"].usages[B] = dataclasses.replace(gone, cpu_seconds=6.0)
    f["mono"].advance(1.0)
    snap = sampler.cycle()
    assert by_uid(snap)[B].cpu_usage_cores is None  # back, but its old baseline was dropped


def test_metadata_attached_and_excluded_namespaces_dropped() -> None:
    lookup = FakeLookup({A: PodMeta(uid=A, namespace="kube-system", name="coredns"),
                         B: PodMeta(uid=B, namespace="shop", name="web")}, connected=True)
    sampler, _ = make(pods=lookup, exclude=("kube-system",))
    snap = sampler.cycle()
    assert [(p.usage.uid, p.meta.name if p.meta else None) for p in snap.pods] == [(B, "web")]
    assert snap.kube_connected is True
    lookup.pods.clear()  # not in the index (yet): kept, unnamed
    lookup.connected = False
    snap = sampler.cycle()
    assert {p.usage.uid: p.meta for p in snap.pods} == {A: None, B: None}
    assert snap.kube_connected is False


def test_timing_fields_come_from_the_injected_clocks() -> None:
    sampler, f = make()

    class SlowHost:
        def read(self) -> HostSample:
            f["mono"].advance(0.25)
            f["cpu"].advance(0.01)
            return host_sample()

    sampler._host_reader = SlowHost()
    snap = sampler.cycle()
    assert snap.duration_seconds == pytest.approx(0.25)
    assert snap.cpu_seconds == pytest.approx(0.01)
    assert snap.sequence == 1
    assert sampler.cycle().sequence == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.timestamp = 0.0  # type: ignore[misc]


def test_missing_host_cpu_gives_no_rate_and_no_crash() -> None:
    sampler, f = make()
    f["host"].sample = dataclasses.replace(host_sample(), cpu=None, cpu_count=None)
    sampler.cycle()
    snap = sampler.cycle()
    assert snap.host_cpu_usage_cores is None


def test_background_thread_publishes_soon_and_stops_quickly() -> None:
    errors = CountingErrors()
    stats = FakePodStats(errors, {A: pod_usage(A)})
    host = FakeHost(host_sample())
    sampler = Sampler(node="n1", host_reader=host, cgroup_finder=FakeCgroups(stats), pod_reader=stats,
                      errors=errors, interval=0.05, first_delay=0.05)
    sampler.start()
    try:
        first = wait_until(lambda: sampler.latest, timeout=5, message="first snapshot published")
        assert first.sequence == 2  # the baseline cycle is not published
        wait_until(lambda: sampler.latest.sequence >= 5, timeout=5, message="sampling continues")
    finally:
        started = time.monotonic()
        sampler.stop()
    assert time.monotonic() - started < 1.0
    count = host.reads
    time.sleep(0.2)  # proving a negative: no further reads once stopped
    assert host.reads == count


def test_a_reader_that_raises_is_counted_and_sampling_goes_on() -> None:
    errors = CountingErrors()
    stats = FakePodStats(errors, {})

    class FlakyHost:
        calls = 0

        def read(self) -> HostSample:
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("reader bug")
            return host_sample()

    sampler = Sampler(node="n1", host_reader=FlakyHost(), cgroup_finder=FakeCgroups(stats), pod_reader=stats,
                      errors=errors, interval=0.02, first_delay=0.02)
    sampler.start()
    try:
        wait_until(lambda: sampler.latest and sampler.latest.sequence >= 4, timeout=5,
                   message="sampling survives a failing cycle")
    finally:
        sampler.stop()
    assert errors.counts() == {"sampler": 1}
    assert sampler.latest.errors == {"sampler": 1}


def test_one_pod_read_raising_oserror_skips_that_pod_only() -> None:
    sampler, f = make()
    stats = f["stats"]

    class Raising(FakePodStats):
        def read(self, cgroup):  # type: ignore[no-untyped-def]
            if cgroup.uid == A:
                raise PermissionError("cgroup.procs: permission denied")
            return stats.read(cgroup)

    sampler._pod_reader = Raising(f["errors"], {})
    snap = sampler.cycle()
    assert [p.usage.uid for p in snap.pods] == [B]
    assert snap.errors == {"cgroup": 1}
