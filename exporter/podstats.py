"""Read one pod's cumulative CPU, memory, disk and network figures from its cgroups and /proc.

Which file each figure comes from (the first that exists in the pod's cgroup directories):
- CPU seconds and memory: exporter/cgroupusage.py (the rules the pod's containers share).
- Disk: v2 `io.stat` rbytes/wbytes per device, else v1 blkio (throttle recursive, then the CFQ
  recursive file, then throttle non-recursive), `Read`/`Write` lines per device; only whole physical
  disks count (exporter/blockdev.py: not partitions, not dm/md stacked on a disk that the kernel lists
  with the same bytes, not loop/zram). Caveat seen on kernel 6.18:
  the v1 blkio.throttle.* counters stay 0 for a device until some cgroup has a throttle rule on it
  (then every cgroup is counted), so v1 nodes without blkio limits may report 0 pod disk bytes.
- Network: `<proc>/<pid>/net/dev` (minus `lo`) of one process of the pod; if that process shares the
  host's network namespace (`<proc>/<pid>/ns/net` and `<proc>/1/ns/net` link to the same
  `net:[inode]`, or where pid 1's link is not readable, the two `net/dev` files are the same procfs
  inode), the pod is host-network and its traffic is the node's: network None.

A pod whose cgroup disappears mid-read is skipped for this cycle (read returns None, reported at
debug to the error sink with source "cgroup"); a file that cannot be read or parsed costs only its field.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from typing import TypeVar

from exporter.blockdev import BlockDevices
from exporter.cgroupusage import cpu_seconds, memory_bytes, read_cgroup_file, stat_value
from exporter.model import DiskCounters, ErrorSink, LogErrors, NetCounters, PodCgroup, PodUsage
from exporter.podnet import PodNetworkReader, PodVanished, read_text

__all__ = ["PodStatsReader", "PodVanished", "blkio_devices", "io_stat_devices", "parse_blkio",
           "parse_io_stat", "read_text", "stat_value"]

_LOG_ERRORS = LogErrors()
T = TypeVar("T")
_GONE_ERRNOS = frozenset({errno.ENOENT, errno.ENODEV, errno.ESRCH})  # cgroup or process removed
_V1_BLKIO_FILES = (
    "blkio.throttle.io_service_bytes_recursive",
    "blkio.io_service_bytes_recursive",
    "blkio.throttle.io_service_bytes",
)


class PodStatsReader:
    """Reads a PodUsage for one PodCgroup."""

    def __init__(self, *, proc_root: str = "/proc", sys_root: str = "/sys", errors: ErrorSink = _LOG_ERRORS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._errors = errors
        self._devices = BlockDevices(sys_root=sys_root, proc_root=proc_root, clock=clock)
        self._net = PodNetworkReader(proc_root=proc_root, errors=errors, clock=clock)

    def read(self, cgroup: PodCgroup) -> PodUsage | None:
        """Cumulative figures of the pod, or None when it vanished mid-read (reported, source "cgroup")."""
        try:
            cpu = self._field(cgroup, "cpu", lambda: self._cpu_seconds(cgroup))
            memory = self._field(cgroup, "memory", lambda: self._memory(cgroup))
            disk = self._field(cgroup, "disk", lambda: self._disk(cgroup))
            net = self._field(cgroup, "network", lambda: self._network(cgroup))
        except PodVanished as exc:
            self._errors.record("cgroup", f"pod {cgroup.uid} vanished mid-read; skipped this cycle", exc)
            return None
        usage, working_set = memory if memory is not None else (None, None)
        interfaces, host_network = net if net is not None else (None, False)
        return PodUsage(uid=cgroup.uid, cpu_seconds=cpu, memory_usage_bytes=usage,
                        memory_working_set_bytes=working_set,
                        disk=DiskCounters.total(disk) if disk is not None else None,
                        network=NetCounters.total(interfaces) if interfaces is not None else None,
                        host_network=host_network, disk_devices=disk, network_interfaces=interfaces)

    def _field(self, cgroup: PodCgroup, what: str, fn: Callable[[], T]) -> T | None:
        try:
            return fn()
        except PodVanished:
            raise
        except OSError as exc:
            if exc.errno in _GONE_ERRNOS:
                raise PodVanished(str(exc)) from exc
            self._errors.record("cgroup", f"pod {cgroup.uid}: reading {what} failed", exc)
        except (ValueError, IndexError, KeyError) as exc:
            self._errors.record("cgroup", f"pod {cgroup.uid}: {what} file has unexpected content", exc)
        return None

    # --- CPU, memory, disk: files in the pod's cgroup directories ---------------------------------

    def _cpu_seconds(self, cg: PodCgroup) -> float | None:
        try:
            return cpu_seconds(cg.paths)
        except FileNotFoundError as exc:
            raise _vanished(exc) from exc

    def _memory(self, cg: PodCgroup) -> tuple[int, int] | None:
        try:
            return memory_bytes(cg.paths)
        except FileNotFoundError as exc:
            raise _vanished(exc) from exc

    def _disk(self, cg: PodCgroup) -> dict[str, DiskCounters] | None:
        """Whole physical disks by "MAJ:MIN" -> the pod's cumulative bytes on them."""
        text = _read_optional(cg, "unified", "io.stat")
        devices = io_stat_devices(text) if text is not None else None
        for name in _V1_BLKIO_FILES if devices is None else ():
            text = _read_optional(cg, "blkio", name)
            if text is not None:
                devices = blkio_devices(text)
                break
        if devices is None:
            return None
        return {dev: c for dev, c in devices.items() if self._devices.is_whole_disk(dev)}

    # --- network: through one of the pod's processes (exporter/podnet.py) -----------------------

    def _network(self, cg: PodCgroup) -> tuple[dict[str, NetCounters] | None, bool]:
        return self._net.read(cg)


def _read_optional(cg: PodCgroup, key: str, name: str) -> str | None:
    """A file of the pod's `key` directory; None when the pod has no such directory or the kernel no such
    file (a controller not enabled there is the node's configuration, not a failure); PodVanished when
    the directory itself went away."""
    try:
        return read_cgroup_file(cg.paths, key, name)
    except FileNotFoundError as exc:
        raise _vanished(exc) from exc


def _vanished(exc: FileNotFoundError) -> PodVanished:
    """read_cgroup_file's FileNotFoundError for a directory that went away, as the pod vanishing."""
    return PodVanished(f"{os.path.dirname(exc.filename or '')} is gone")


def io_stat_devices(text: str) -> dict[str, DiskCounters]:
    """rbytes/wbytes per device of a v2 `io.stat` (`8:0 rbytes=1 wbytes=2 rios=...`)."""
    devices: dict[str, DiskCounters] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        dev, *items = line.split()
        read = written = 0
        for item in items:
            key, _, value = item.partition("=")
            if key == "rbytes":
                read = int(value)
            elif key == "wbytes":
                written = int(value)
        devices[dev] = DiskCounters(read_bytes=read, written_bytes=written)
    return devices


def blkio_devices(text: str) -> dict[str, DiskCounters]:
    """`Read`/`Write` bytes per device of a v1 blkio io_service_bytes file (`8:0 Read 4096`; `Total`
    skipped)."""
    read: dict[str, int] = {}
    written: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "Read":
            read[parts[0]] = read.get(parts[0], 0) + int(parts[2])
        elif len(parts) == 3 and parts[1] == "Write":
            written[parts[0]] = written.get(parts[0], 0) + int(parts[2])
    return {dev: DiskCounters(read_bytes=read.get(dev, 0), written_bytes=written.get(dev, 0))
            for dev in read.keys() | written.keys()}


def parse_io_stat(text: str) -> DiskCounters:
    """rbytes/wbytes of a v2 `io.stat` summed over every device listed (no whole-disk rule)."""
    return DiskCounters.total(io_stat_devices(text))


def parse_blkio(text: str) -> DiskCounters:
    """`Read`/`Write` of a v1 blkio io_service_bytes file summed over every device (no whole-disk rule)."""
    return DiskCounters.total(blkio_devices(text))
