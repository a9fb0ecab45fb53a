"""Find every pod cgroup on the node: cgroup v1, v2 or hybrid, kubelet's systemd or cgroupfs driver.

Layouts (kubelet pkg/kubelet/cm: a cgroup name like ["kubepods", "burstable", "pod<uid>"] becomes
`kubepods/burstable/pod<uid>` with cgroupfs, and with systemd is joined by "-" and expanded by
ExpandSlice into `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice`, the uid's
"-" escaped as "_"). Guaranteed pods sit directly in the kubepods cgroup. Kubelet's `--cgroup-root`
prefixes the name, e.g. kind's `--cgroup-root=/kubelet` gives `kubelet.slice/kubelet-kubepods.slice/...`
or `kubelet/kubepods/...`, and a kubelet inside a container adds the container's own cgroup above it; so
the kubepods cgroups are searched for a few levels down rather than assumed at the top.

Hierarchies under the cgroup root:
- pure v2: `<root>/cgroup.controllers` exists; everything comes from that one tree (key "unified");
- hybrid / v1: `<root>/unified` (a cgroup2 mount, if present) plus the v1 controllers
  `<root>/cpu,cpuacct` or `<root>/cpuacct` (key "cpuacct"), `<root>/memory`, `<root>/blkio`.
On hybrid and v1 nodes the kubepods directories found in the v1 controllers are looked for at the
same place in every hierarchy (a second, stale `kubepods` left in `unified` by a runtime is ignored).
A pod's PodCgroup.paths holds its directory in every hierarchy where it exists; podstats takes each
figure from v2 where the v2 file exists, else from the v1 controller (see exporter/podstats.py).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from exporter.model import ErrorSink, LogErrors, PodCgroup

_LOG_ERRORS = LogErrors()
V1_CONTROLLERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cpuacct", ("cpu,cpuacct", "cpuacct,cpu", "cpuacct")),
    ("memory", ("memory",)),
    ("blkio", ("blkio",)),
)
# "kubepods" (cgroupfs), "kubepods.slice", "<root>-kubepods.slice" (systemd with --cgroup-root).
_KUBEPODS = re.compile(r"^(?:kubepods|(?:[\w.-]+-)?kubepods\.slice)$")
_QOS = re.compile(r"^(?:(?:[\w.-]+-)?kubepods-)?(burstable|besteffort)(?:\.slice)?$")
# Pod UIDs are UUIDs, or 32 hex digits for static/mirror pods (a config hash).
_POD_SYSTEMD = re.compile(r"^(?:[\w.-]+-)?kubepods(?:-burstable|-besteffort)?-pod([0-9a-fA-F_]{8,})\.slice$")
_POD_CGROUPFS = re.compile(r"^pod([0-9a-fA-F-]{8,})$")
_SEARCH_DEPTH = 4  # root/system.slice/docker-<id>.scope/kubelet.slice/kubelet-kubepods.slice
_EMPTY_RESCAN_SECONDS = 5.0
_SEARCH_BUDGET = 5000  # directories listed per hierarchy per search, whatever the node's cgroup count


@dataclass(slots=True)
class _Found:
    qos: str
    driver: str
    paths: dict[str, str] = field(default_factory=dict)


class PodCgroupFinder:
    """Lists pod cgroups; the kubepods cgroups are searched for once per `rescan_seconds`, pods every call."""

    def __init__(self, *, cgroup_root: str = "/sys/fs/cgroup", errors: ErrorSink = _LOG_ERRORS,
                 clock: Callable[[], float] = time.monotonic, rescan_seconds: float = 60.0) -> None:
        self._root = cgroup_root
        self._errors = errors
        self._clock = clock
        self._rescan_seconds = rescan_seconds
        self._kubepods: list[tuple[str, str]] = []  # (hierarchy key, kubepods directory)
        self._pure_v2 = False
        self._scanned_at: float | None = None

    def find(self) -> list[PodCgroup]:
        """Every pod cgroup found now, sorted by uid; never raises (failures go to the error sink)."""
        now = self._clock()
        # Nothing found yet (kubelet not started, or not a node): search again soon, but not every cycle,
        # since on a big non-Kubernetes host the bounded search is the costly part.
        every = self._rescan_seconds if self._kubepods else min(self._rescan_seconds, _EMPTY_RESCAN_SECONDS)
        if self._scanned_at is None or now - self._scanned_at >= every:
            self._scan()
            self._scanned_at = now
        pods: dict[str, _Found] = {}
        for key, kubepods in self._kubepods:
            try:
                self._list_pods(key, kubepods, pods)
            except FileNotFoundError as exc:
                # The kubepods cgroup itself went away (kubelet reconfigured): search again next time.
                self._errors.record("cgroup", f"{kubepods} vanished", exc)
                self._scanned_at = None
            except OSError as exc:
                self._errors.record("cgroup", f"listing {kubepods} failed", exc)
        return [self._to_cgroup(uid, f) for uid, f in sorted(pods.items())]

    def _to_cgroup(self, uid: str, f: _Found) -> PodCgroup:
        # v2 only when all figures can come from the unified tree; hybrid nodes count as v1.
        version = 2 if self._pure_v2 or set(f.paths) == {"unified"} else 1
        return PodCgroup(uid=uid, qos=f.qos, version=version, driver=f.driver, paths=f.paths)

    def _list_pods(self, key: str, kubepods: str, pods: dict[str, _Found]) -> None:
        driver = "systemd" if kubepods.endswith(".slice") else "cgroupfs"
        with os.scandir(kubepods) as entries:
            children = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
        for name in children:
            uid = _pod_uid(name)
            if uid is not None:
                _add(pods, uid, qos="guaranteed", driver=driver, key=key, path=os.path.join(kubepods, name))
                continue
            qos = _QOS.match(name)
            if qos is None:
                continue
            qos_dir = os.path.join(kubepods, name)
            try:
                with os.scandir(qos_dir) as entries:
                    pod_names = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
            except FileNotFoundError:
                continue  # removed between the two listings: nothing to report
            except OSError as exc:
                # One unlistable QoS directory must not hide the pods listed after it.
                self._errors.record("cgroup", f"listing {qos_dir} failed", exc)
                continue
            for pod_name in pod_names:
                uid = _pod_uid(pod_name)
                if uid is not None:
                    _add(pods, uid, qos=qos.group(1), driver=driver, key=key,
                         path=os.path.join(qos_dir, pod_name))

    def _scan(self) -> None:
        hierarchies = self._hierarchies()
        searched: list[tuple[str, str, list[str]]] = []
        for key, top in hierarchies:
            try:
                searched.append((key, top, _search_kubepods(top)))
            except OSError as exc:
                self._errors.record("cgroup", f"searching {top} for kubepods failed", exc)
        # Hybrid node: kubelet manages the v1 controllers and runc only mirrors each cgroup into the
        # unified tree, where a runtime may also have left a stale `kubepods` of its own (seen with
        # `ctr run --cgroup /kubepods/...`). The shallowest search would pick that one and miss the
        # unified half of every real pod, so the v1 controllers decide where kubepods is.
        v1_rel = sorted({os.path.relpath(d, top) for key, top, dirs in searched if key != "unified"
                         for d in dirs})
        found: list[tuple[str, str]] = []
        for key, top, own in searched:
            same = [os.path.join(top, rel) for rel in v1_rel if os.path.isdir(os.path.join(top, rel))]
            found.extend((key, d) for d in same or own)
        self._kubepods = found

    def _hierarchies(self) -> list[tuple[str, str]]:
        root = self._root
        self._pure_v2 = os.path.exists(os.path.join(root, "cgroup.controllers"))
        if self._pure_v2:
            return [("unified", root)]
        out: list[tuple[str, str]] = []
        unified = os.path.join(root, "unified")
        if os.path.exists(os.path.join(unified, "cgroup.controllers")):
            out.append(("unified", unified))
        for key, names in V1_CONTROLLERS:
            for name in names:
                path = os.path.join(root, name)
                if os.path.isdir(path):
                    out.append((key, path))
                    break
        if not out:
            self._errors.record("cgroup", f"no cgroup hierarchy under {root}")
        return out


def _pod_uid(name: str) -> str | None:
    m = _POD_SYSTEMD.match(name)
    if m:
        return m.group(1).replace("_", "-").lower()
    m = _POD_CGROUPFS.match(name)
    return m.group(1).lower() if m else None


def _add(pods: dict[str, _Found], uid: str, *, qos: str, driver: str, key: str, path: str) -> None:
    found = pods.get(uid)
    if found is None:
        pods[uid] = found = _Found(qos=qos, driver=driver)
    found.paths.setdefault(key, path)


def _search_kubepods(top: str) -> list[str]:
    """kubepods directories at the shallowest depth (≤ _SEARCH_DEPTH) where any exists, breadth first."""
    frontier = [top]
    budget = _SEARCH_BUDGET
    for _depth in range(_SEARCH_DEPTH):
        found: list[str] = []
        deeper: list[str] = []
        for d in frontier:
            if budget <= 0:
                return found
            budget -= 1
            try:
                with os.scandir(d) as entries:
                    for e in entries:
                        if not e.is_dir(follow_symlinks=False):
                            continue
                        if _KUBEPODS.match(e.name):
                            found.append(e.path)
                        else:
                            deeper.append(e.path)
            except (FileNotFoundError, NotADirectoryError):
                continue  # a cgroup removed while searching
        if found:
            return sorted(found)
        frontier = deeper
    return []
