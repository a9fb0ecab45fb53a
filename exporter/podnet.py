"""A pod's network figures, read through one of its processes: `<proc>/<pid>/net/dev` minus `lo`.

Which process: the pod cgroup's `cgroup.procs`, then its containers' (processes live in the container
cgroups). A reader in its own PID namespace (the exporter pod without hostPID) sees those files list
0 or nothing; then the pod's processes are found through `<proc>/<pid>/cgroup`, which names the pod's
cgroup and is readable by anyone: a uid -> pids index over the host's /proc, refreshed once per
sampling pass (`index_max_age`), only when needed, classifying only pids it has not seen before.
The kernel writes cgroup.procs in the reader's PID namespace, so where that is not the namespace of
`<proc>` (`<proc>/self` is not our pid) its pids are not used at all: the reader's own pod would list
the reader's own pids (1, ...), which in the host's /proc are other processes (pid 1, the host's init,
would make that pod look host-network).

Host network: the process shares the host's network namespace when `<proc>/<pid>/ns/net` and
`<proc>/1/ns/net` link to the same `net:[inode]`, or, where pid 1's link is not readable (no ptrace
access to the host's init), when the two `net/dev` files are the same procfs inode. Such a pod's traffic
is the node's: network None, host_network True.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator

from exporter.model import ErrorSink, LogErrors, NetCounters, PodCgroup
from exporter.netdev import counted_interfaces, parse_net_dev

_LOG_ERRORS = LogErrors()
_PROCS_SOURCES = ("unified", "cpuacct", "memory", "blkio")
_MAX_PID_TRIES = 8  # processes that exit while we look; past this the pod's network is None this cycle
_POD_NET_EXCLUDED = ("lo",)
# A pod uid inside a cgroup path: `pod<uuid>` (cgroupfs), `pod<uuid with _>.slice` (systemd), or the 32
# hex digits of a static pod. "kubepods" never matches: "pod" must be followed by hex.
_POD_IN_PATH = re.compile(
    r"pod([0-9a-fA-F]{8}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{32})(?![0-9a-fA-F])")


class PodVanished(Exception):
    """The pod's cgroup went away while it was being read."""


class PodNetworkReader:
    """Network counters of a pod, or (None, True) for host-network pods, (None, False) without a process."""

    def __init__(self, *, proc_root: str = "/proc", errors: ErrorSink = _LOG_ERRORS,
                 clock: Callable[[], float] = time.monotonic, index_max_age: float = 1.0) -> None:
        self._proc = proc_root
        self._errors = errors
        self._index = PidIndex(proc_root=proc_root, clock=clock, max_age=index_max_age)
        self._procs_usable = _same_pid_namespace(proc_root)

    def read(self, cg: PodCgroup) -> tuple[dict[str, NetCounters] | None, bool]:
        """(counters per interface but lo, host_network); raises PodVanished, OSError or ValueError for
        the caller to report."""
        host = _HostNetns(self._proc)
        # cgroup.procs first; the /proc index only after those pids ran out (0 = not in our PID namespace).
        # pod_pids is read even when its pids are of no use: it tells that the pod's cgroup went away.
        listed = (p for p in pod_pids(cg) if p > 0 and self._procs_usable)
        pids = _chain(listed, lambda: self._index.pids(cg.uid))
        for tries, pid in enumerate(pids):
            if tries >= _MAX_PID_TRIES:
                break
            base = os.path.join(self._proc, str(pid))
            try:
                if host.same_as(base):
                    return None, True
                # an interface name may hold any byte but '/', ':', NUL and blanks (dev_valid_name): one
                # odd name must not cost the pod's figure (names are only keys, never served)
                text = read_text(os.path.join(base, "net", "dev"), errors="surrogateescape")
            except (FileNotFoundError, ProcessLookupError):
                continue  # that process exited; any other process of the pod shares its namespace
            except _HostNetnsUnknown as exc:
                # Counting the node's traffic as the pod's would be worse than no figure.
                self._errors.record("cgroup", f"pod {cg.uid}: cannot tell the host's network namespace",
                                    exc.__cause__)
                return None, False
            return counted_interfaces(parse_net_dev(text), excluded=_POD_NET_EXCLUDED), False
        return None, False  # no process (yet / any more): nothing to read the namespace through


class PidIndex:
    """uid -> pids of the pod's processes, from `<proc>/<pid>/cgroup`.

    Refreshed when older than `max_age` (one sampling pass). A refresh lists `<proc>` and reads the
    cgroup file of new pids only: a node runs thousands of processes (~25 us each to classify), and a
    process rarely changes cgroup once inside a container. Every `full_rescan` seconds everything is
    classified again, which also catches the brief moment when runc's child has not yet joined its
    container cgroup, and pid reuse.
    """

    def __init__(self, *, proc_root: str, clock: Callable[[], float], max_age: float,
                 full_rescan: float = 60.0) -> None:
        self._proc = proc_root
        self._clock = clock
        self._max_age = max_age
        self._full_rescan = full_rescan
        self._built_at: float | None = None
        self._full_at: float | None = None
        self._known: dict[int, str | None] = {}  # pid -> pod uid, or None for a process of no pod
        self._pids: dict[str, list[int]] = {}

    def pids(self, uid: str) -> list[int]:
        """Pids whose cgroup is in pod `uid` (CRI-O's conmon excluded), at most _MAX_PID_TRIES."""
        now = self._clock()
        if self._built_at is None or now - self._built_at > self._max_age:
            if self._full_at is None or now - self._full_at > self._full_rescan:
                self._known.clear()
                self._full_at = now
            self._refresh()
            self._built_at = now
        return self._pids.get(uid, [])

    def _refresh(self) -> None:
        try:
            live = {int(name) for name in os.listdir(self._proc) if name.isdigit()}
        except OSError:
            live = set()
        known = {pid: uid for pid, uid in self._known.items() if pid in live}
        for pid in live - known.keys():
            try:
                text = read_text(os.path.join(self._proc, str(pid), "cgroup"))
            except (OSError, ValueError):
                continue  # exited meanwhile, or not ours to read: other processes will do
            m = _POD_IN_PATH.search(text)
            # CRI-O's conmon: in the pod's cgroup but the host's network namespace.
            known[pid] = m.group(1).replace("_", "-").lower() if m and "conmon" not in text else None
        self._known = known
        index: dict[str, list[int]] = {}
        for pid in sorted(known):
            uid = known[pid]
            if uid is not None:
                pids = index.setdefault(uid, [])
                if len(pids) < _MAX_PID_TRIES:
                    pids.append(pid)
        self._pids = index


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


def _same_pid_namespace(proc: str) -> bool:
    """Whether `proc` numbers processes as this process's PID namespace does (cgroup.procs uses ours):
    `<proc>/self` is this process under `proc`'s numbering. A directory without `self` is not a procfs
    (a recorded test tree, whose cgroup.procs name its own pids): taken as the same."""
    try:
        return int(os.readlink(os.path.join(proc, "self"))) == os.getpid()
    except (OSError, ValueError):
        return True


def read_text(path: str, errors: str = "strict") -> str:
    """Whole small file via os.open/os.read: a third of the cost of open() with a text wrapper, which
    matters at ~7 files per pod and 110 pods per cycle. ASCII; `errors` as for bytes.decode."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("ascii", errors)


def pod_pids(cg: PodCgroup) -> Iterator[int]:
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


def _chain(first: Iterable[int], then: Callable[[], Iterable[int]]) -> Iterator[int]:
    """`first`, then `then()` -- called only if `first` ran out (so the index is built only when needed)."""
    yield from first
    yield from then()
