"""Plain values the readers produce and the sampler consumes (no Prometheus, no I/O here).

Readers return *cumulative* figures (CPU seconds, bytes); the sampler turns two readings into
rates. A field is None when its source could not be read this cycle; the reader has already
reported why to its ErrorSink.

Disk and network figures come twice: per device/interface (`disk_devices`, `network_interfaces`, the
kernel's counters of the devices that count) and as `disk`/`network` totals. A reader's total is the
plain sum of its devices; in a published Snapshot the sampler has replaced it with a monotonic total
built from per-device deltas (exporter/counters.py), so a device that leaves never lowers it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)


class ErrorSink(Protocol):
    """Where readers report a failed read; the sampler counts these by `source`."""

    def record(self, source: str, detail: str, exc: BaseException | None = None) -> None: ...


class LogErrors:
    """Default sink: debug log only (tests and the sampler pass a counting sink)."""

    def record(self, source: str, detail: str, exc: BaseException | None = None) -> None:
        log.debug("%s: %s (%s)", source, detail, exc)


@dataclass(frozen=True, slots=True)
class CpuTimes:
    busy_seconds: float  # user+nice+system+irq+softirq+steal over all CPUs
    total_seconds: float  # busy + idle + iowait


@dataclass(frozen=True, slots=True)
class DiskCounters:
    read_bytes: int
    written_bytes: int

    @classmethod
    def total(cls, devices: Mapping[str, DiskCounters]) -> DiskCounters:
        """Bytes summed over `devices`."""
        return cls(read_bytes=sum(d.read_bytes for d in devices.values()),
                   written_bytes=sum(d.written_bytes for d in devices.values()))


@dataclass(frozen=True, slots=True)
class NetCounters:
    receive_bytes: int
    transmit_bytes: int

    @classmethod
    def total(cls, interfaces: Mapping[str, NetCounters]) -> NetCounters:
        """Bytes summed over `interfaces`."""
        return cls(receive_bytes=sum(c.receive_bytes for c in interfaces.values()),
                   transmit_bytes=sum(c.transmit_bytes for c in interfaces.values()))


@dataclass(frozen=True, slots=True)
class FilesystemUsage:
    mountpoint: str
    size_bytes: int
    avail_bytes: int


@dataclass(frozen=True, slots=True)
class HostSample:
    cpu: CpuTimes | None
    cpu_count: int | None
    memory_total_bytes: int | None
    memory_available_bytes: int | None
    disk: DiskCounters | None
    network: NetCounters | None
    filesystem: FilesystemUsage | None
    # The detail behind `disk`/`network`, left out of == (a sample equals another with the same totals).
    disk_devices: Mapping[str, DiskCounters] | None = field(default=None, compare=False)  # by name
    network_interfaces: Mapping[str, NetCounters] | None = field(default=None, compare=False)  # not excluded


@dataclass(frozen=True, slots=True)
class PodCgroup:
    """Where one pod's cgroup lives; `paths` maps controller (`cpuacct`, `memory`, `blkio`, or `unified`
    for cgroup v2) to an absolute directory."""

    uid: str  # with dashes, as the API reports it
    qos: str  # guaranteed | burstable | besteffort
    version: int  # 1 or 2
    driver: str  # systemd | cgroupfs
    paths: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PodUsage:
    uid: str
    cpu_seconds: float | None
    memory_usage_bytes: int | None
    memory_working_set_bytes: int | None
    disk: DiskCounters | None
    network: NetCounters | None  # None for host-network pods and pods with no process
    host_network: bool
    # The detail behind `disk`/`network`, left out of == (a sample equals another with the same totals).
    disk_devices: Mapping[str, DiskCounters] | None = field(default=None, compare=False)  # by "MAJ:MIN"
    network_interfaces: Mapping[str, NetCounters] | None = field(default=None, compare=False)  # but lo
