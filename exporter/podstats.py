"""Read one pod's cumulative CPU, memory, disk and network figures from its cgroups and /proc.

Which file each figure comes from (the first that exists in the pod's cgroup directories):
- CPU seconds: v2 `cpu.stat` usage_usec (always present in a cgroup2 tree, even on hybrid nodes where
  the cpu controller is bound to v1), else v1 `cpuacct.usage` (ns).
- Memory: v2 `memory.current` and `memory.stat` inactive_file, else v1 `memory.usage_in_bytes` and
  `memory.stat` total_inactive_file; working set = max(0, usage - inactive_file) as kubelet defines it.
- Disk: v2 `io.stat` rbytes/wbytes summed over devices, else v1 blkio (throttle recursive, then the CFQ
  recursive file, then throttle non-recursive), `Read`/`Write` lines summed. Caveat seen on kernel 6.18:
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

import contextlib
import errno
import os
from collections.abc import Callable, Iterator
from typing import TypeVar

from exporter.model import DiskCounters, ErrorSink, LogErrors, NetCounters, PodCgroup, PodUsage
from exporter.netdev import parse_net_dev, sum_interfaces

_LOG_ERRORS = LogErrors()
T = TypeVar("T")
_GONE_ERRNOS = frozenset({errno.ENOENT, errno.ENODEV, errno.ESRCH})  # cgroup or process removed
_V1_BLKIO_FILES = (
    "blkio.throttle.io_service_bytes_recursive",
    "blkio.io_service_bytes_recursive",
    "blkio.throttle.io_service_bytes",
)
_PROCS_SOURCES = ("unified", "cpuacct", "memory", "blkio")
_MAX_PID_TRIES = 8  # processes that exit while we look; past this the pod's network is None this cycle
_POD_NET_EXCLUDED = ("lo",)


class PodVanished(Exception):
    """The pod's cgroup went away while it was being read."""


class PodStatsReader:
    """Reads a PodUsage for one PodCgroup."""

    def __init__(self, *, proc_root: str = "/proc", errors: ErrorSink = _LOG_ERRORS) -> None:
        self._proc = proc_root
        self._errors = errors

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
        network, host_network = net if net is not None else (None, False)
        return PodUsage(uid=cgroup.uid, cpu_seconds=cpu, memory_usage_bytes=usage,
                        memory_working_set_bytes=working_set, disk=disk, network=network,
                        host_network=host_network)

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
        text = _read_optional(cg, "unified", "cpu.stat")
        if text is not None:
            return stat_value(text, "usage_usec") / 1e6
        text = _read_optional(cg, "cpuacct", "cpuacct.usage")
        return int(text) / 1e9 if text is not None else None

    def _memory(self, cg: PodCgroup) -> tuple[int, int] | None:
        current = _read_optional(cg, "unified", "memory.current")
        if current is not None:
            stat = _read_optional(cg, "unified", "memory.stat")
            inactive_key = "inactive_file"
        else:
            current = _read_optional(cg, "memory", "memory.usage_in_bytes")
            if current is None:
                return None
            stat = _read_optional(cg, "memory", "memory.stat")
            inactive_key = "total_inactive_file"
        usage = int(current)
        inactive = stat_value(stat, inactive_key) if stat is not None else 0
        return usage, max(0, usage - inactive)

    def _disk(self, cg: PodCgroup) -> DiskCounters | None:
        text = _read_optional(cg, "unified", "io.stat")
        if text is not None:
            return parse_io_stat(text)
        for name in _V1_BLKIO_FILES:
            text = _read_optional(cg, "blkio", name)
            if text is not None:
                return parse_blkio(text)
        return None

    # --- network: through one of the pod's processes ---------------------------------------------

    def _network(self, cg: PodCgroup) -> tuple[NetCounters | None, bool] | None:
        host = _HostNetns(self._proc)
        for tries, pid in enumerate(_pod_pids(cg)):
            if tries >= _MAX_PID_TRIES:
                break
            base = os.path.join(self._proc, str(pid))
            try:
                if host.same_as(base):
                    return None, True
                text = read_text(os.path.join(base, "net", "dev"))
            except (FileNotFoundError, ProcessLookupError):
                continue  # that process exited; any other process of the pod shares its namespace
            except _HostNetnsUnknown as exc:
                # Counting the node's traffic as the pod's would be worse than no figure.
                self._errors.record("cgroup", f"pod {cg.uid}: cannot tell the host's network namespace",
                                    exc.__cause__)
                return None, False
            return sum_interfaces(parse_net_dev(text), excluded=_POD_NET_EXCLUDED), False
        return None, False  # no process (yet / any more): nothing to read the namespace through


class _HostNetnsUnknown(Exception):
    """Neither the host's ns/net link nor its net/dev could be examined."""


class _HostNetns:
    """Whether a process shares the host's network namespace (pid 1 of `<proc>` is the host's init).

    First choice: `ns/net` links name the namespace (`net:[4026531840]`). Reading pid 1's link needs
    ptrace access to it, which a container without CAP_SYS_PTRACE (or a sandbox like our CI's) lacks;
    then compare the inodes of `net/dev`: procfs gives each namespace's /proc/<pid>/net its own entries,
    so the same inode means the same namespace, and stat needs no ptrace access.
    """

    def __init__(self, proc: str) -> None:
        self._proc = proc
        self._link: str | None = None
        self._inode: tuple[int, int] | None = None
        with contextlib.suppress(PermissionError, FileNotFoundError):  # then decided by inode below
            self._link = os.readlink(os.path.join(proc, "1", "ns", "net"))

    def same_as(self, base: str) -> bool:
        if self._link is not None:
            try:
                return os.readlink(os.path.join(base, "ns", "net")) == self._link
            except PermissionError:
                pass
        if self._inode is None:
            try:
                st = os.stat(os.path.join(self._proc, "1", "net", "dev"))
            except OSError as exc:
                raise _HostNetnsUnknown from exc
            self._inode = (st.st_dev, st.st_ino)
        st = os.stat(os.path.join(base, "net", "dev"))
        return (st.st_dev, st.st_ino) == self._inode


def _read_optional(cg: PodCgroup, key: str, name: str) -> str | None:
    """A file of the pod's `key` directory; None when the pod has no such directory or the kernel no such
    file (a controller not enabled there is the node's configuration, not a failure); PodVanished when
    the directory itself went away."""
    directory = cg.paths.get(key)
    if directory is None:
        return None
    try:
        return read_text(os.path.join(directory, name))
    except FileNotFoundError as exc:
        if not os.path.isdir(directory):
            raise PodVanished(f"{directory} is gone") from exc
        return None


def read_text(path: str) -> str:
    """Whole small file via os.open/os.read: a third of the cost of open() with a text wrapper, which
    matters at ~7 files per pod and 110 pods per cycle."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("ascii")


def stat_value(text: str, key: str) -> int:
    """The value of `key` in `key value` lines (cpu.stat, memory.stat); KeyError when absent.

    Looks the one key up instead of parsing all ~40 lines of memory.stat; matches at line starts only,
    so `inactive_file` never finds `total_inactive_file`.
    """
    needle = key + " "
    start = 0 if text.startswith(needle) else text.find("\n" + needle) + 1
    if start == 0 and not text.startswith(needle):
        raise KeyError(key)
    end = text.find("\n", start)
    return int(text[start + len(needle):end if end >= 0 else None])


def parse_io_stat(text: str) -> DiskCounters:
    """Sum rbytes/wbytes over the devices of a v2 `io.stat` (`8:0 rbytes=1 wbytes=2 rios=...`)."""
    read = written = 0
    for line in text.splitlines():
        for item in line.split()[1:]:
            key, _, value = item.partition("=")
            if key == "rbytes":
                read += int(value)
            elif key == "wbytes":
                written += int(value)
    return DiskCounters(read_bytes=read, written_bytes=written)


def parse_blkio(text: str) -> DiskCounters:
    """Sum the `Read`/`Write` lines of a v1 blkio io_service_bytes file (`8:0 Read 4096`; `Total` skipped)."""
    read = written = 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "Read":
            read += int(parts[2])
        elif len(parts) == 3 and parts[1] == "Write":
            written += int(parts[2])
    return DiskCounters(read_bytes=read, written_bytes=written)


def _pod_pids(cg: PodCgroup) -> Iterator[int]:
    """Pids of the pod: its own cgroup.procs, then its containers', then one level below (breadth first).

    CRI-O's conmon (`crio-conmon-<id>.scope`) lives in the pod's cgroup but in the host's network
    namespace, so it is skipped: it would make every pod look host-network.
    """
    top = next((cg.paths[k] for k in _PROCS_SOURCES if k in cg.paths), None)
    if top is None:
        return
    level = [top]
    for depth in range(3):
        deeper: list[str] = []
        for d in level:
            try:
                pids = read_text(os.path.join(d, "cgroup.procs")).split()
                with os.scandir(d) as entries:
                    deeper.extend(e.path for e in entries
                                  if e.is_dir(follow_symlinks=False) and "conmon" not in e.name)
            except FileNotFoundError as exc:
                if depth == 0:
                    raise PodVanished(f"{d} is gone") from exc
                continue  # a container cgroup removed meanwhile (restart): look at the others
            yield from (int(p) for p in pids)
        level = deeper
