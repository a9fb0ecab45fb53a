"""Container cgroups beneath a pod cgroup: which directories are containers, their CPU and memory, and
whether an unnamed one is the pod's sandbox.

Directory names (kubelet's driver + the runtime), `<id>` being the runtime's 64-hex container id that
`status.containerStatuses[].containerID` carries after `<runtime>://`:
- systemd driver: `cri-containerd-<id>.scope`, `crio-<id>.scope`, `docker-<id>.scope`;
- cgroupfs driver: `<id>` (containerd, Docker), `crio-<id>` (CRI-O).
CRI-O's `crio-conmon-<id>.scope` is its monitor process, not a container, and is skipped.

The container directory has the same name in every hierarchy, so one listing (unified, else cpuacct,
else memory) names the containers and the pod's other hierarchies are joined with that name. Figures
follow the pod's rules (exporter/cgroupusage.py): CPU from v2 `cpu.stat` usage_usec where the unified
tree has the container, else v1 `cpuacct.usage`; memory from v2 (`memory.current` - inactive_file) on
pure v2 pods, else from the v1 memory controller (usage_in_bytes - total_inactive_file).

A container whose cgroup disappears mid-read (it exited, a restart) is left out of this cycle quietly:
that is churn, not an error. Unexpected file contents cost that figure and are reported.

The sandbox ("pause") container has a cgroup like any other but no status in the API; its process is
`pause` (kubelet's pause image; CRI-O's infra container uses the same image). `SandboxCheck` decides
this once per container id from the command name of one of its processes.
"""

from __future__ import annotations

import errno
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from exporter.cgroupusage import cpu_seconds, memory_bytes
from exporter.model import ErrorSink, LogErrors, PodCgroup
from exporter.podnet import read_text

_LOG_ERRORS = LogErrors()
_CONTAINER_DIR = re.compile(r"^(?:cri-containerd-|crio-|docker-)?([0-9a-f]{64})(?:\.scope)?$")
_ID_IN_PATH = re.compile(r"(?:^|[/-])([0-9a-f]{64})(?:\.scope)?$")
_LISTING_ORDER = ("unified", "cpuacct", "memory")
_GONE_ERRNOS = frozenset({errno.ENOENT, errno.ENODEV, errno.ESRCH})
SANDBOX_COMMANDS = frozenset({"pause"})


@dataclass(frozen=True, slots=True)
class ContainerCgroup:
    """One container's directories: `paths` maps the pod's hierarchy keys to the container's directory."""

    id: str  # the runtime's container id (64 hex digits)
    paths: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ContainerUsage:
    """Cumulative CPU and current memory of one container cgroup (None: unreadable this cycle)."""

    cgroup: ContainerCgroup
    cpu_seconds: float | None
    memory_usage_bytes: int | None
    memory_working_set_bytes: int | None

    @property
    def id(self) -> str:
        return self.cgroup.id


def container_id(name: str) -> str | None:
    """The container id in a container cgroup's directory name, or None for anything else."""
    m = _CONTAINER_DIR.match(name)
    return m.group(1) if m else None


class _Gone(Exception):
    """The container's cgroup went away while it was being read."""


class ContainerReader:
    """Lists and reads the container cgroups of one pod; `is_sandbox` tells unnamed ones apart."""

    def __init__(self, *, proc_root: str = "/proc", errors: ErrorSink = _LOG_ERRORS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._errors = errors
        self._sandbox = SandboxCheck(proc_root=proc_root, clock=clock)

    def read(self, cg: PodCgroup) -> list[ContainerUsage]:
        """Every container of the pod, by id; [] when the pod's cgroup cannot be listed (it vanished)."""
        out: list[ContainerUsage] = []
        for container in self.list(cg):
            try:
                cpu = self._figure(container, "cpu", lambda c=container: _cpu_seconds(c))
                memory = self._figure(container, "memory", lambda c=container: _memory(c, v2=cg.version == 2))
            except _Gone:
                continue
            usage, working_set = memory if memory is not None else (None, None)
            out.append(ContainerUsage(cgroup=container, cpu_seconds=cpu, memory_usage_bytes=usage,
                                      memory_working_set_bytes=working_set))
        return out

    @staticmethod
    def list(cg: PodCgroup) -> list[ContainerCgroup]:
        """The pod's container cgroups, sorted by id ([] when the pod cannot be listed)."""
        key = next((k for k in _LISTING_ORDER if k in cg.paths), None)
        if key is None:
            return []
        try:
            with os.scandir(cg.paths[key]) as entries:
                found = {cid: e.name for e in entries
                         if e.is_dir(follow_symlinks=False) and (cid := container_id(e.name)) is not None}
        except OSError:
            return []  # the pod went away: podstats reports that once for the pod
        return [ContainerCgroup(id=cid, paths={k: os.path.join(d, name) for k, d in cg.paths.items()})
                for cid, name in sorted(found.items())]

    def is_sandbox(self, container: ContainerCgroup) -> bool | None:
        """True for the pod's sandbox, False for a workload container, None when no process shows it."""
        return self._sandbox.check(container)

    def _figure(self, container: ContainerCgroup, what: str, fn: Callable[[], object]) -> object:
        try:
            return fn()
        except OSError as exc:
            if exc.errno in _GONE_ERRNOS:
                raise _Gone from exc
            self._errors.record("cgroup", f"container {container.id[:12]}: reading {what} failed", exc)
        except (ValueError, IndexError, KeyError) as exc:
            self._errors.record("cgroup", f"container {container.id[:12]}: {what} file has unexpected "
                                "content", exc)
        return None


def _cpu_seconds(c: ContainerCgroup) -> float | None:
    # The container's directory is joined by name into every hierarchy of its pod: a hybrid node's
    # runtime may have no unified mirror of it, then v1 cpuacct.
    return cpu_seconds(c.paths, v1_when_unified_gone=True)


def _memory(c: ContainerCgroup, *, v2: bool) -> tuple[int, int] | None:
    return memory_bytes(c.paths, ("unified",) if v2 else ("memory",))


class SandboxCheck:
    """Whether a container is the pod's sandbox, from the command name of one of its processes.

    Its pids come from the container's `cgroup.procs`; a reader in another PID namespace (the exporter
    pod without hostPID) sees 0s there, so then from an index of `<proc>/<pid>/cgroup` (readable by
    anyone), rebuilt at most every `index_max_age` seconds and only while some container is undecided.
    An id's answer never changes, so it is kept (the cache is bounded).
    """

    def __init__(self, *, proc_root: str, clock: Callable[[], float], index_max_age: float = 1.0,
                 cache_limit: int = 8192) -> None:
        self._proc = proc_root
        self._clock = clock
        self._max_age = index_max_age
        self._limit = cache_limit
        self._decided: dict[str, bool] = {}
        self._index: dict[str, list[int]] = {}
        self._known: dict[int, str | None] = {}  # pid -> container id (None: not in a container)
        self._built_at: float | None = None

    def check(self, container: ContainerCgroup) -> bool | None:
        hit = self._decided.get(container.id)
        if hit is not None:
            return hit
        for pid in self._pids(container):
            try:
                comm = read_text(os.path.join(self._proc, str(pid), "comm")).strip()
            except (OSError, ValueError):
                continue  # exited meanwhile: another process of the container may answer
            if len(self._decided) >= self._limit:
                self._decided.clear()
            self._decided[container.id] = answer = comm in SANDBOX_COMMANDS
            return answer
        return None

    def _pids(self, container: ContainerCgroup) -> list[int]:
        for key in ("unified", "cpuacct", "memory"):
            directory = container.paths.get(key)
            if directory is None:
                continue
            try:
                pids = [int(p) for p in read_text(os.path.join(directory, "cgroup.procs")).split()]
            except (OSError, ValueError):
                continue
            if any(pids):
                return [p for p in pids if p > 0]
        return self._indexed(container.id)

    def _indexed(self, cid: str) -> list[int]:
        now = self._clock()
        if self._built_at is None or now - self._built_at > self._max_age:
            self._refresh()
            self._built_at = now
        return self._index.get(cid, [])

    def _refresh(self) -> None:
        try:
            live = {int(name) for name in os.listdir(self._proc) if name.isdigit()}
        except OSError:
            live = set()
        known = {pid: cid for pid, cid in self._known.items() if pid in live}
        for pid in live - known.keys():
            try:
                text = read_text(os.path.join(self._proc, str(pid), "cgroup"))
            except (OSError, ValueError):
                continue
            known[pid] = next((m.group(1) for line in text.splitlines()
                               if (m := _ID_IN_PATH.search(line)) is not None), None)
        self._known = known
        index: dict[str, list[int]] = {}
        for pid, cid in known.items():
            if cid is not None:
                index.setdefault(cid, []).append(pid)
        self._index = index
