"""Read the node's own figures from a (possibly mounted) /proc and /sys into a HostSample.

Every part (CPU, memory, disks, network, filesystem) is read independently: a part that fails is None
in the sample and reported to the ErrorSink with source "host"; the others still count.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TypeVar

from exporter.blockdev import BlockDevices
from exporter.model import (
    CpuTimes,
    DiskCounters,
    ErrorSink,
    FilesystemUsage,
    HostSample,
    LogErrors,
    NetCounters,
)
from exporter.netdev import counted_interfaces, parse_net_dev

# Container-side and overlay interfaces: their traffic is already counted on the physical interface
# (or never leaves the node), so adding them would double count. `lo` never leaves the node.
DEFAULT_EXCLUDED_INTERFACES: tuple[str, ...] = (
    "lo", "veth*", "cali*", "flannel*", "cni*", "docker*", "br-*", "vxlan*", "tunl*", "kube-ipvs*",
    "cilium*", "lxc*", "weave*", "genev_sys*", "virbr*", "tap*", "nodelocaldns", "kube-bridge",
    "vethwe*", "datapath", "antrea-*", "ovs-system", "nebula*", "ifb*", "dummy*",
)

_SECTOR = 512  # /proc/diskstats always counts 512-byte sectors, whatever the device's sector size
_KIB = 1024
_LOG_ERRORS = LogErrors()
T = TypeVar("T")


class HostReader:
    """Reads CPU, memory, disk, network and root-filesystem figures of the node."""

    def __init__(self, *, proc_root: str = "/proc", sys_root: str = "/sys", rootfs: str = "/",
                 excluded_interfaces: Sequence[str] = DEFAULT_EXCLUDED_INTERFACES,
                 errors: ErrorSink = _LOG_ERRORS) -> None:
        self._proc = proc_root
        self._sys = sys_root
        self._rootfs = rootfs
        self._excluded = tuple(excluded_interfaces)
        self._errors = errors
        self._devices = BlockDevices(sys_root=sys_root, proc_root=proc_root)
        self._user_hz = float(os.sysconf("SC_CLK_TCK"))

    def read(self) -> HostSample:
        """One reading of every part; a part that fails is None (and reported)."""
        cpu_times, cpu_count = self._guard("cpu", self._read_cpu) or (None, None)
        if cpu_count is None:
            cpu_count = self._guard("cpu count", self._read_cpu_online)
        mem_total, mem_avail = self._guard("memory", self._read_memory) or (None, None)
        disks = self._guard("disk", self._read_disks)
        interfaces = self._guard("network", self._read_network)
        return HostSample(
            cpu=cpu_times,
            cpu_count=cpu_count,
            memory_total_bytes=mem_total,
            memory_available_bytes=mem_avail,
            disk=DiskCounters.total(disks) if disks is not None else None,
            network=NetCounters.total(interfaces) if interfaces is not None else None,
            filesystem=self._guard("filesystem", self._read_filesystem),
            disk_devices=disks,
            network_interfaces=interfaces,
        )

    def _guard(self, part: str, fn: Callable[[], T]) -> T | None:
        # A failed part must not lose the others; OSError covers missing/unreadable files, ValueError and
        # IndexError cover garbage in them.
        try:
            return fn()
        except (OSError, ValueError, IndexError) as exc:
            self._errors.record("host", f"reading host {part} failed", exc)
            return None

    def _read_cpu(self) -> tuple[CpuTimes, int | None]:
        with open(os.path.join(self._proc, "stat"), encoding="ascii") as f:
            lines = f.read().splitlines()
        fields = lines[0].split()
        if fields[0] != "cpu" or len(fields) < 5:
            raise ValueError(f"first line of stat is not the 'cpu' total: {lines[0]!r}")
        # user nice system idle iowait irq softirq steal guest guest_nice; older kernels stop early.
        v = [int(x) for x in fields[1:9]] + [0] * (9 - len(fields))
        user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
        # guest and guest_nice are already included in user and nice: adding them would double count.
        busy = user + nice + system + irq + softirq + steal
        total = busy + idle + iowait
        count = sum(1 for line in lines[1:] if line.startswith("cpu") and line[3:4].isdigit())
        return CpuTimes(busy_seconds=busy / self._user_hz, total_seconds=total / self._user_hz), count or None

    def _read_cpu_online(self) -> int:
        with open(os.path.join(self._sys, "devices/system/cpu/online"), encoding="ascii") as f:
            return count_cpu_list(f.read())

    def _read_memory(self) -> tuple[int, int]:
        info: dict[str, int] = {}
        with open(os.path.join(self._proc, "meminfo"), encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    info[key] = int(parts[0]) * (_KIB if parts[1:] == ["kB"] else 1)
        total = info["MemTotal"] if "MemTotal" in info else _missing("MemTotal")
        if "MemAvailable" in info:
            avail = info["MemAvailable"]
        else:
            # Kernels before 3.14 lack MemAvailable; like the kernel's own estimate, count free memory
            # plus the page cache and reclaimable slab (buffers+cached where the file LRU lines are absent).
            lru = "Active(file)" in info
            cache_keys = ("Active(file)", "Inactive(file)") if lru else ("Buffers", "Cached")
            avail = sum(info.get(k, 0) for k in ("MemFree", "SReclaimable", *cache_keys))
        return total, avail

    def _read_disks(self) -> dict[str, DiskCounters]:
        """Whole physical disks (exporter/blockdev.py) by name -> cumulative bytes."""
        disks: dict[str, DiskCounters] = {}
        with open(os.path.join(self._proc, "diskstats"), encoding="ascii") as f:
            for line in f:
                fields = line.split()
                if len(fields) < 10:
                    if fields:
                        raise ValueError(f"diskstats line has {len(fields)} fields: {line!r}")
                    continue
                name = fields[2]
                if not self._devices.is_whole_disk(f"{fields[0]}:{fields[1]}", name):
                    continue
                disks[name] = DiskCounters(read_bytes=int(fields[5]) * _SECTOR,
                                           written_bytes=int(fields[9]) * _SECTOR)
        return disks

    def _read_network(self) -> dict[str, NetCounters]:
        # <proc>/1/net/dev is the host's namespace even when this process runs in a pod's namespace with
        # the host's /proc mounted; <proc>/net/dev is our own namespace (right with hostNetwork or bare).
        for rel in ("1/net/dev", "net/dev"):
            try:
                # an interface name may hold any byte but '/', ':', NUL and blanks (dev_valid_name): one
                # odd name must not cost the node's figure (names are only keys, never served)
                with open(os.path.join(self._proc, rel), encoding="ascii", errors="surrogateescape") as f:
                    text = f.read()
            except (FileNotFoundError, PermissionError) as exc:
                self._errors.record("host", f"{rel} unreadable, trying the next source", exc)
                continue
            return counted_interfaces(parse_net_dev(text), excluded=self._excluded)
        raise FileNotFoundError(f"neither 1/net/dev nor net/dev readable under {self._proc}")

    def _read_filesystem(self) -> FilesystemUsage:
        st = os.statvfs(self._rootfs)
        # Labelled "/" like node_exporter with --path.rootfs: the configured path (e.g. /host/root in the
        # pod) *is* the node's root filesystem.
        return FilesystemUsage(mountpoint="/", size_bytes=st.f_blocks * st.f_frsize,
                               avail_bytes=st.f_bavail * st.f_frsize)


def count_cpu_list(text: str) -> int:
    """Number of CPUs in a kernel cpu list such as `0-3,8,10-11`."""
    count = 0
    for part in text.strip().split(","):
        lo, sep, hi = part.partition("-")
        count += (int(hi) - int(lo) + 1) if sep else (1 if int(lo) >= 0 else 0)
    if count <= 0:
        raise ValueError(f"empty cpu list {text!r}")
    return count


def _missing(key: str) -> int:
    raise ValueError(f"meminfo has no {key}")
