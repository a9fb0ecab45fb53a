"""Plain values the readers produce and the sampler consumes (no Prometheus, no I/O here).

Readers return *cumulative* figures (CPU seconds, bytes); the sampler turns two readings into
rates. A field is None when its source could not be read this cycle; the reader has already
reported why to its ErrorSink.
"""

from __future__ import annotations

import logging
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


@dataclass(frozen=True, slots=True)
class NetCounters:
    receive_bytes: int
    transmit_bytes: int


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
