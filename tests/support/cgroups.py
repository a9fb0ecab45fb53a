"""Helpers for pod cgroup tests: recorded node trees, an error sink that remembers, and real kubelet-style
pod cgroups on this machine (v1 controllers plus the v2 `unified` hierarchy), always removed on teardown.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

NODE_TREES = Path(__file__).resolve().parent.parent / "fixtures" / "nodes"
CGROUP_ROOT = "/sys/fs/cgroup"
# For `python -c HOLDER <n>` in a pod: after a "go" line, allocates and touches n bytes of anonymous
# memory, says "held", and holds them until the next line.
HOLDER = """
import sys
n = int(sys.argv[1])
sys.stdin.readline()
block = bytearray(b"\\x01") * n
print("held", flush=True)
sys.stdin.readline()
"""

# Where this machine has a hierarchy for each PodCgroup key (cpu and cpuacct are separate mounts here).
V1_DIRS = {"cpuacct": ("cpu,cpuacct", "cpuacct"), "memory": ("memory",), "blkio": ("blkio",)}


def copy_node_tree(name: str, dest: Path) -> Path:
    """A private copy of tests/fixtures/nodes/<name> (symlinks kept) that a test may mutate."""
    target = dest / name
    shutil.copytree(NODE_TREES / name, target, symlinks=True)
    return target


@dataclass
class RecordingErrors:
    """ErrorSink that keeps every report, for assertions."""

    records: list[tuple[str, str, BaseException | None]] = field(default_factory=list)

    def record(self, source: str, detail: str, exc: BaseException | None = None) -> None:
        self.records.append((source, detail, exc))

    def sources(self) -> list[str]:
        return [r[0] for r in self.records]


def hierarchies(root: str = CGROUP_ROOT) -> dict[str, str]:
    """PodCgroup key -> hierarchy mount on this machine (v1 controllers, `unified` when cgroup2 is there)."""
    out: dict[str, str] = {}
    unified = os.path.join(root, "unified")
    if os.path.exists(os.path.join(unified, "cgroup.controllers")):
        out["unified"] = unified
    for key, names in V1_DIRS.items():
        for n in names:
            if os.path.isdir(os.path.join(root, n)):
                out[key] = os.path.join(root, n)
                break
    return out


def cgroups_writable(root: str = CGROUP_ROOT) -> tuple[bool, str]:
    """Whether this process can create cgroups in every hierarchy the tests use, and why not."""
    found = hierarchies(root)
    missing = {"unified", "cpuacct", "memory", "blkio"} - set(found)
    if missing:
        return False, f"no {sorted(missing)} hierarchy under {root}"
    for mount in found.values():
        probe = os.path.join(mount, f"k8smon-probe-{uuid.uuid4().hex[:8]}")
        try:
            os.mkdir(probe)
            os.rmdir(probe)
        except OSError as exc:
            return False, f"cannot create a cgroup in {mount}: {exc}"
    return True, ""


@dataclass
class FakePod:
    """A kubelet-style (cgroupfs driver) pod cgroup under a private `--cgroup-root`, in every hierarchy."""

    uid: str
    qos: str
    dirs: dict[str, str]  # key -> pod directory
    container_dirs: dict[str, str]  # key -> the one container's directory

    def add_process(self, pid: int) -> None:
        """Move `pid` into the pod's container cgroup in every hierarchy (charges made after this count)."""
        for d in self.container_dirs.values():
            with open(os.path.join(d, "cgroup.procs"), "w", encoding="ascii") as f:
                f.write(str(pid))


class FakeKubelet:
    """Creates pod cgroups like kubelet's cgroupfs driver with `--cgroup-root=/k8smon-test-<random>`, so
    tests never meet a real kubelet's pods or each other's; `close()` kills what it started and removes
    every cgroup it made, children first."""

    def __init__(self, root: str = CGROUP_ROOT, *, tag: str = "") -> None:
        # `tag`: the engineer's or suite's tag, so parallel runs can tell whose cgroups are whose.
        self.prefix = f"k8smon-test-{tag + '-' if tag else ''}{uuid.uuid4().hex[:10]}"
        self.mounts = hierarchies(root)
        self.pods: list[FakePod] = []
        self._created: list[str] = []  # in creation order; removed in reverse
        self._procs: list[subprocess.Popen[bytes]] = []

    def _mkdir(self, path: str) -> None:
        if not os.path.isdir(path):
            os.mkdir(path)
            self._created.append(path)

    def create_pod(self, qos: str = "besteffort", container: str = "c" * 64) -> FakePod:
        uid = str(uuid.uuid4())
        parts = [self.prefix, "kubepods"] + ([] if qos == "guaranteed" else [qos]) + [f"pod{uid}"]
        dirs: dict[str, str] = {}
        cdirs: dict[str, str] = {}
        for key, mount in self.mounts.items():
            path = mount
            for p in parts:
                path = os.path.join(path, p)
                self._mkdir(path)
            dirs[key] = path
            cdirs[key] = os.path.join(path, container)
            self._mkdir(cdirs[key])
        pod = FakePod(uid=uid, qos=qos, dirs=dirs, container_dirs=cdirs)
        self.pods.append(pod)
        return pod

    def start(self, argv: Sequence[str], *, pod: FakePod | None = None, stdin: int | None = subprocess.PIPE,
              new_session: bool = False) -> subprocess.Popen[bytes]:
        """Start a process we own (killed in close()); if `pod` is given, move it into the pod first.
        `new_session`: its own session, hence its own scheduler autogroup (see `prioritise`)."""
        proc = subprocess.Popen(list(argv), stdin=stdin, stdout=subprocess.PIPE,
                                start_new_session=new_session)
        self._procs.append(proc)
        if pod is not None:
            pod.add_process(proc.pid)
        return proc

    def close(self) -> None:
        """Kill our processes (by PID), wait for them, then rmdir our cgroups deepest first."""
        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
        problems: list[str] = []
        for path in reversed(self._created):
            # A killed process leaves its cgroup a moment later: retry briefly, then report.
            deadline = time.monotonic() + 5
            while True:
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if time.monotonic() > deadline:
                        problems.append(f"{path}: {exc}")
                        break
                    time.sleep(0.05)
        self._created.clear()
        if problems:
            raise RuntimeError("cgroups left behind: " + "; ".join(problems))

    def __enter__(self) -> FakeKubelet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def leftover_test_cgroups(root: str = CGROUP_ROOT) -> Iterator[str]:
    """Top-level `k8smon-test-*` cgroups in any hierarchy (a failed teardown's traces)."""
    for mount in hierarchies(root).values():
        for name in os.listdir(mount):
            if name.startswith("k8smon-test-"):
                yield os.path.join(mount, name)


def prioritise(pid: int, nice: int = -10) -> None:
    """Raise a process's CPU weight against everything else on the box (root only).

    With sched_autogroup (on here), nice only ranks tasks inside one session's autogroup; other
    sessions' work competes group against group. So the process (started with new_session=True) gets
    its autogroup's nice set as well as its own.
    """
    os.setpriority(os.PRIO_PROCESS, pid, nice)
    autogroup = f"/proc/{pid}/autogroup"
    if os.path.exists(autogroup):
        with open(autogroup, "w", encoding="ascii") as f:
            f.write(str(nice))
