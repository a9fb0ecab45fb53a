"""A recorded node tree (tests/fixtures/nodes/<node>) copied to a temporary directory whose counters
grow with wall time, so a real exporter reading it reports CPU in use and non-zero byte rates.

The recorded trees are frozen: an exporter over them sees no CPU time pass, so it has no CPU usage
to report and every rate is 0. `LiveTree.advance()` rewrites each counter file from its recorded
text plus a fixed rate times the seconds since the copy was made (written to a temporary file and
renamed, so a reader never sees half a file). Gauges (memory, filesystem) stay as recorded.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

NODE_BUSY = 0.25  # share of the node's CPUs that is busy
POD_CORES = 0.05  # CPU each pod uses
DISK_BPS = 1 << 20  # node block devices, bytes per second each way
NET_BPS = 10_000  # each interface, bytes per second each way
POD_IO_BPS = 4096  # each pod cgroup's block I/O per device, bytes per second each way


def _proc_stat(text: str, dt: float) -> str:
    cpus = sum(1 for line in text.splitlines() if re.match(r"cpu\d+ ", line))
    lines = []
    for line in text.splitlines():
        if line.startswith("cpu"):
            name, *fields = line.split()
            share = cpus if name == "cpu" else 1  # USER_HZ = 100 ticks per CPU-second
            ticks = [int(v) for v in fields]
            ticks[0] += int(dt * 100 * share * NODE_BUSY)  # user
            ticks[3] += int(dt * 100 * share * (1 - NODE_BUSY))  # idle
            lines.append(f"{name}{'  ' if name == 'cpu' else ' '}{' '.join(map(str, ticks))}")
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def _diskstats(text: str, dt: float) -> str:
    lines = []
    for line in text.splitlines():
        f = line.split()
        f[5] = str(int(f[5]) + int(dt * DISK_BPS / 512))  # sectors read
        f[9] = str(int(f[9]) + int(dt * DISK_BPS / 512))  # sectors written
        lines.append(" ".join(f))
    return "\n".join(lines) + "\n"


def _net_dev(text: str, dt: float) -> str:
    lines = []
    for line in text.splitlines():
        if ":" in line and "|" not in line:
            name, rest = line.split(":", 1)
            f = rest.split()
            f[0] = str(int(f[0]) + int(dt * NET_BPS))  # receive bytes
            f[8] = str(int(f[8]) + int(dt * NET_BPS))  # transmit bytes
            lines.append(f"{name}: {' '.join(f)}")
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def _cpu_stat(text: str, dt: float) -> str:
    return re.sub(r"^(usage_usec|user_usec) (\d+)$",
                  lambda m: f"{m.group(1)} {int(m.group(2)) + int(dt * 1e6 * POD_CORES)}", text, flags=re.M)


def _cpuacct(text: str, dt: float) -> str:
    return f"{int(text.strip()) + int(dt * 1e9 * POD_CORES)}\n"


def _io_stat(text: str, dt: float) -> str:
    return re.sub(r"\b(rbytes|wbytes)=(\d+)",
                  lambda m: f"{m.group(1)}={int(m.group(2)) + int(dt * POD_IO_BPS)}", text)


def _blkio(text: str, dt: float) -> str:
    return re.sub(r"^(\d+:\d+ (?:Read|Write)) (\d+)$",
                  lambda m: f"{m.group(1)} {int(m.group(2)) + int(dt * POD_IO_BPS)}", text, flags=re.M)


_BY_NAME: dict[str, Callable[[str, float], str]] = {
    "cpuacct.usage": _cpuacct,
    "io.stat": _io_stat,
    "blkio.throttle.io_service_bytes_recursive": _blkio,
    "blkio.io_service_bytes_recursive": _blkio,
}


def _grower(rel: Path) -> Callable[[str, float], str] | None:
    """How the file at `rel` (relative to the tree root) grows, or None for a file that does not."""
    if rel.as_posix() == "proc/stat":
        return _proc_stat
    if rel.as_posix() == "proc/diskstats":
        return _diskstats
    if rel.name == "dev" and rel.parent.name == "net":
        return _net_dev
    if rel.name == "cpu.stat":
        return _cpu_stat
    return _BY_NAME.get(rel.name)


class LiveTree:
    """A copy of a recorded tree at `dst` whose counters `advance()` moves to the current time."""

    def __init__(self, src: Path, dst: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        shutil.copytree(src, dst, symlinks=True)
        self.root = dst
        self._clock = clock
        self._t0 = clock()
        self._files: list[tuple[Path, str, Callable[[str, float], str]]] = []
        for path in sorted(dst.rglob("*")):
            if path.is_file() and not path.is_symlink() and (grow := _grower(path.relative_to(dst))):
                self._files.append((path, path.read_text(), grow))
        assert self._files, f"no counter files under {src}"

    def advance(self) -> None:
        dt = self._clock() - self._t0
        for path, recorded, grow in self._files:
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(grow(recorded, dt))
            os.replace(tmp, path)


class Ticker:
    """Advances trees every `period` seconds in a thread until stopped (a context manager)."""

    def __init__(self, trees: list[LiveTree], *, period: float = 0.2) -> None:
        self._trees = trees
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-tree", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            for tree in self._trees:
                tree.advance()

    def __enter__(self) -> Ticker:
        for tree in self._trees:
            tree.advance()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
