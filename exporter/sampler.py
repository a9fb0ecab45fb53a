"""Background sampling: read host and pods every interval, derive CPU rates, publish a Snapshot.

Readers return cumulative figures; the sampler keeps the previous reading per pod and for the host
so it can turn two readings into CPU cores. A counter that goes backwards (a cgroup recreated under
the same pod UID, a host reboot seen through a remounted /proc) starts a new baseline instead of
producing a negative rate. Disk and network totals are rebuilt from per-device deltas
(exporter/counters.py) so they never decrease when a device or interface goes away.

Containers (when a container reader is given) are named and their rates derived by
exporter/containertrack.py.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Protocol, TypeVar

from exporter.containertrack import ContainerSource, ContainerTracker
from exporter.counters import MonotonicTotal, cpu_rate
from exporter.model import CpuTimes, DiskCounters, HostSample, NetCounters, PodCgroup, PodUsage
from exporter.snapshot import PodMeta, PodSample, Snapshot

log = logging.getLogger(__name__)
Clock = Callable[[], float]
S = TypeVar("S", HostSample, PodUsage)


class CountingErrors:
    """ErrorSink that logs at debug and counts by source (rendered as k8smon_exporter_errors_total)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def record(self, source: str, detail: str, exc: BaseException | None = None) -> None:
        log.debug("%s: %s (%s)", source, detail, exc)
        with self._lock:
            self._counts[source] = self._counts.get(source, 0) + 1

    def counts(self) -> dict[str, int]:
        """A copy of the counts so far."""
        with self._lock:
            return dict(self._counts)


class HostSource(Protocol):
    def read(self) -> HostSample: ...


class CgroupSource(Protocol):
    def find(self) -> list[PodCgroup]: ...


class PodStatsSource(Protocol):
    def read(self, cgroup: PodCgroup) -> PodUsage | None: ...


class PodLookup(Protocol):
    """The pod index as the sampler sees it."""

    @property
    def connected(self) -> bool: ...

    def get(self, uid: str) -> PodMeta | None: ...


class Sampler:
    """Reads everything once per cycle and swaps in a new immutable Snapshot."""

    def __init__(
        self,
        *,
        node: str,
        host_reader: HostSource,
        cgroup_finder: CgroupSource,
        pod_reader: PodStatsSource,
        errors: CountingErrors,
        pods: PodLookup | None = None,
        container_reader: ContainerSource | None = None,
        exclude_namespaces: Collection[str] = (),
        interval: float = 5.0,
        first_delay: float = 1.0,
        now: Clock = time.time,
        monotonic: Clock = time.monotonic,
        cpu_clock: Clock = time.thread_time,
    ) -> None:
        self.node = node
        self._host_reader = host_reader
        self._cgroup_finder = cgroup_finder
        self._pod_reader = pod_reader
        self._errors = errors
        self._pods = pods
        self._containers = (None if container_reader is None
                            else ContainerTracker(container_reader, errors, monotonic=monotonic))
        self._exclude = frozenset(exclude_namespaces)
        self.interval = interval
        self._first_delay = min(interval, first_delay)
        self._now = now
        self._monotonic = monotonic
        self._cpu_clock = cpu_clock
        self._prev_host: tuple[CpuTimes, int | None] | None = None
        self._prev_pods: dict[str, tuple[float, float]] = {}  # uid -> (cpu seconds, monotonic time)
        self._host_io = _IoTotals()
        self._pod_io: dict[str, _IoTotals] = {}  # uid -> its disk and network totals
        self._cycles = 0
        self._latest: Snapshot | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def latest(self) -> Snapshot | None:
        """The snapshot to serve, or None before the first one."""
        return self._latest

    def cycle(self) -> Snapshot:
        """Read once, update the baselines and return the new snapshot (also kept as `latest`)."""
        started_wall = self._now()
        started_mono = self._monotonic()
        started_cpu = self._cpu_clock()
        host = self._host_io.fold(self._host_reader.read())
        host_cores = self._host_rate(host)
        pods = self._read_pods()
        self._cycles += 1
        snapshot = Snapshot(
            node=self.node,
            timestamp=started_wall,
            duration_seconds=max(0.0, self._monotonic() - started_mono),
            cpu_seconds=max(0.0, self._cpu_clock() - started_cpu),
            sequence=self._cycles,
            host=host,
            host_cpu_usage_cores=host_cores,
            pods=pods,
            errors=self._errors.counts(),
            kube_connected=self._pods.connected if self._pods is not None else False,
        )
        self._latest = snapshot  # one reference swap: readers see the old or the new, never half
        return snapshot

    def _host_rate(self, host: HostSample) -> float | None:
        if host.cpu is None:
            return None
        prev, self._prev_host = self._prev_host, (host.cpu, host.cpu_count)
        if prev is None or host.cpu_count is None:
            return None
        busy = host.cpu.busy_seconds - prev[0].busy_seconds
        total = host.cpu.total_seconds - prev[0].total_seconds
        if busy < 0 or total <= 0:
            return None  # counters went backwards or no time passed: this reading is the new baseline
        return min(1.0, busy / total) * host.cpu_count

    def _read_pods(self) -> tuple[PodSample, ...]:
        try:
            cgroups = self._cgroup_finder.find()
        except OSError as exc:
            self._errors.record("cgroup", "finding pod cgroups failed", exc)
            cgroups = []
        samples: list[PodSample] = []
        seen: dict[str, tuple[float, float]] = {}
        # A pod keeps its disk/network totals while its cgroup exists (a failed read costs no reset).
        self._pod_io = {cg.uid: self._pod_io.get(cg.uid) or _IoTotals() for cg in cgroups}
        for cgroup in cgroups:
            meta = self._pods.get(cgroup.uid) if self._pods is not None else None
            if meta is not None and meta.namespace in self._exclude:
                continue
            try:
                usage = self._pod_reader.read(cgroup)
            except OSError as exc:  # the reader should have handled it; one pod must not cost the cycle
                self._errors.record("cgroup", f"reading pod {cgroup.uid}", exc)
                continue
            if usage is None:
                continue  # the reader already counted why
            usage = self._pod_io[cgroup.uid].fold(usage)
            rate = None
            if usage.cpu_seconds is not None:
                stamp = self._monotonic()
                rate = cpu_rate(self._prev_pods.get(usage.uid), usage.cpu_seconds, stamp)
                seen[usage.uid] = (usage.cpu_seconds, stamp)
            containers = self._containers.read(cgroup, meta) if self._containers is not None else ()
            samples.append(PodSample(usage=usage, cpu_usage_cores=rate, meta=meta, containers=containers))
        self._prev_pods = seen  # pods that left drop their baseline with them
        if self._containers is not None:
            self._containers.end_cycle({cg.uid for cg in cgroups})
        samples.sort(key=lambda s: s.usage.uid)
        return tuple(samples)

    # --- background thread ---------------------------------------------------------------------

    def start(self) -> Sampler:
        """Take a baseline now, publish the first snapshot after min(interval, 1 s), then every interval."""
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()
        return self

    def _safe_cycle(self, *, publish: bool) -> None:
        previous = self._latest
        try:
            self.cycle()
        except Exception as exc:  # a reader bug must not kill sampling; count it and keep going
            log.exception("sampling cycle failed")
            self._errors.record("sampler", "sampling cycle failed", exc)
            return
        if not publish:
            self._latest = previous

    def _run(self) -> None:
        self._safe_cycle(publish=False)  # baseline: rates need two readings
        if self._stop.wait(self._first_delay):
            return
        deadline = self._monotonic()
        while not self._stop.is_set():
            self._safe_cycle(publish=True)
            deadline += self.interval
            now = self._monotonic()
            if deadline < now:  # a cycle overran: skip the missed ticks instead of bursting
                deadline = now + self.interval
            if self._stop.wait(deadline - now):
                return

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the cycle in progress, if any."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


class _IoTotals:
    """Monotonic disk and network totals of the host or of one pod."""

    __slots__ = ("disk", "network")

    def __init__(self) -> None:
        self.disk = MonotonicTotal()
        self.network = MonotonicTotal()

    def fold(self, sample: S) -> S:
        """`sample` with its disk/network totals replaced by the monotonic ones (None stays None)."""
        disk = net = None
        if sample.disk is not None:
            disk = DiskCounters(*self.disk.update(_pairs(sample.disk_devices, sample.disk)))
        if sample.network is not None:
            net = NetCounters(*self.network.update(_pairs(sample.network_interfaces, sample.network)))
        return dataclasses.replace(sample, disk=disk, network=net)


def _pairs(devices: Mapping[str, DiskCounters] | Mapping[str, NetCounters] | None,
           total: DiskCounters | NetCounters) -> dict[str, tuple[int, int]]:
    # A reader that gives no per-device figures (a test double) is one device.
    items = devices.items() if devices is not None else (("", total),)
    return {name: (c.read_bytes, c.written_bytes) if isinstance(c, DiskCounters)
            else (c.receive_bytes, c.transmit_bytes) for name, c in items}
