"""PodCgroupFinder + PodStatsReader against real cgroups and network namespaces on this machine (root).

Each test makes kubelet-style pod cgroups (cgroupfs driver under a private --cgroup-root) in the v1
controllers and the cgroup2 `unified` hierarchy, runs real processes in them, and compares what the
readers report with what the processes did. Everything is removed on teardown, also after failures.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.cgroups import PodCgroupFinder
from exporter.model import PodCgroup, PodUsage
from exporter.podstats import PodStatsReader
from tests.support import require, require_root, wait_until
from tests.support.cgroups import HOLDER, FakeKubelet, FakePod, RecordingErrors, cgroups_writable, prioritise
from tests.support.netns import netns_pair

pytestmark = pytest.mark.root
MIB = 1024 * 1024

# Burns `duty` of one core, after a "go" line on stdin (the test moves it into the pod's cgroups first).
# It steers by its own CPU clock (spin while behind duty x elapsed wall time, else nap 2 ms), so losing
# the CPU to other work on this shared 2-core box is caught up rather than lost.
BURNER = """
import sys, time
duty = float(sys.argv[1])
sys.stdin.readline()
print("go", flush=True)
w0, c0 = time.monotonic(), time.process_time()
while True:
    if time.process_time() - c0 >= duty * (time.monotonic() - w0):
        time.sleep(0.002)
"""
# In the pod's namespace: after "go", send K bytes to the peer and read K back, then report and wait.
CLIENT = """
import socket, sys
host, port, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sys.stdin.readline()
with socket.create_connection((host, port), timeout=20) as s:
    s.sendall(b"x" * k)
    s.shutdown(socket.SHUT_WR)
    got = 0
    while chunk := s.recv(65536):
        got += len(chunk)
print(got, flush=True)
sys.stdin.readline()
"""
# In the peer namespace: accept one connection, read until EOF, send as many bytes back.
ECHO = """
import socket, sys
srv = socket.socket(); srv.bind((sys.argv[1], 0)); srv.listen(1)
print(srv.getsockname()[1], flush=True)
srv.settimeout(30)
conn, _ = srv.accept()
got = 0
while chunk := conn.recv(65536):
    got += len(chunk)
conn.sendall(b"y" * got)
conn.close()
print(got, flush=True)
"""


@pytest.fixture
def kubelet() -> Iterator[FakeKubelet]:
    require_root()
    ok, why = cgroups_writable()
    require(ok, f"cgroups not writable here: {why}")
    with FakeKubelet() as k:
        yield k


def found(pod: FakePod, errors: RecordingErrors | None = None) -> PodCgroup:
    """The pod as the finder sees it under the real cgroup root (other pods ignored)."""
    finder = PodCgroupFinder(cgroup_root="/sys/fs/cgroup", errors=errors or RecordingErrors())
    mine = [cg for cg in finder.find() if cg.uid == pod.uid]
    assert len(mine) == 1, f"finder did not find pod {pod.uid}"
    return mine[0]


def read(cg: PodCgroup, errors: RecordingErrors) -> PodUsage:
    usage = PodStatsReader(errors=errors).read(cg)
    assert usage is not None, errors.records
    return usage


def line(proc: object) -> str:
    out = proc.stdout  # type: ignore[attr-defined]
    return out.readline().decode().strip()


def say(proc: object, text: str = "go") -> None:
    proc.stdin.write(f"{text}\n".encode())  # type: ignore[attr-defined]
    proc.stdin.flush()  # type: ignore[attr-defined]


def test_finder_sees_the_pod_in_every_hierarchy(kubelet: FakeKubelet) -> None:
    pod = kubelet.create_pod("burstable")
    cg = found(pod)
    assert (cg.qos, cg.driver, cg.version) == ("burstable", "cgroupfs", 1)
    assert cg.paths == pod.dirs  # unified + cpuacct + memory + blkio


def test_half_a_core_is_measured_from_two_reads(kubelet: FakeKubelet) -> None:
    pod = kubelet.create_pod("guaranteed")
    burner = kubelet.start([sys.executable, "-c", BURNER, "0.5"], pod=pod, new_session=True)
    # nice -10 for it and its autogroup (we are root): CPU-bound neighbours on this shared box get ~1/10
    # of its weight, so they cannot starve it below its half core; it still only asks for half a core.
    prioritise(burner.pid)
    say(burner)
    assert line(burner) == "go"
    cg = found(pod)
    v1_only = PodCgroup(uid=cg.uid, qos=cg.qos, version=1, driver=cg.driver,
                        paths={k: v for k, v in cg.paths.items() if k != "unified"})
    errors = RecordingErrors()
    windows: list[float] = []
    # Up to 3 windows of 2 s: every window must match the process's own accounting exactly, and one must
    # show the half core. Only starvation by neighbours (load averages above 5 were seen on this shared
    # 2-core box) excuses a window, and that is visible in the process's own CPU time too.
    for _window in range(3):
        t0, a, a1, own0 = time.monotonic(), read(cg, errors), read(v1_only, errors), _cpu_seconds(burner.pid)
        time.sleep(2.0)  # the measurement window itself, not a wait for something to happen
        t1, b, b1, own1 = time.monotonic(), read(cg, errors), read(v1_only, errors), _cpu_seconds(burner.pid)
        assert a.cpu_seconds is not None and b.cpu_seconds is not None
        # The pod's CPU is the process's own (utime+stime in clock ticks: ±2 ticks of rounding).
        assert b.cpu_seconds - a.cpu_seconds == pytest.approx(own1 - own0, abs=0.03)
        # v2 cpu.stat usage_usec (preferred) and v1 cpuacct.usage count the same CPU time
        assert a1.cpu_seconds is not None and b1.cpu_seconds is not None
        assert b1.cpu_seconds - a1.cpu_seconds == pytest.approx(b.cpu_seconds - a.cpu_seconds, abs=0.05)
        windows.append((b.cpu_seconds - a.cpu_seconds) / (t1 - t0))
        # ±0.15 cores: the burner steers to 0.5 by its own clock at nice -10, but the kernel can still
        # delay it (→ less), and catching up after a stall that began before t0 can push it over (→ more).
        if 0.35 <= windows[-1] <= 0.65:
            break
    assert 0.35 <= windows[-1] <= 0.65, f"measured {windows} cores for a 0.5-core burner"
    assert errors.records == []


def _cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` from /proc/<pid>/stat (fields 14 and 15, after the parenthesised comm)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_working_set_of_held_memory(kubelet: FakeKubelet) -> None:
    n = 64 * MIB
    pod = kubelet.create_pod("burstable")
    holder = kubelet.start([sys.executable, "-c", HOLDER, str(n)], pod=pod)
    errors = RecordingErrors()
    before = read(found(pod), errors)
    say(holder)
    assert line(holder) == "held"
    after = read(found(pod), errors)
    assert after.memory_working_set_bytes is not None and after.memory_usage_bytes is not None
    # ≥ N: the touched pages are charged to the pod (moved before allocating); < N + 40 MiB: the
    # interpreter's own later allocations and page tables, nothing else lives in this cgroup.
    assert n <= after.memory_working_set_bytes < n + 40 * MIB, after
    assert after.memory_working_set_bytes <= after.memory_usage_bytes
    assert (before.memory_working_set_bytes or 0) < 40 * MIB
    assert errors.records == []


def _whole_disk_of(path: Path) -> str:
    st = os.stat(path)
    dev = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    sysdev = Path("/sys/dev/block") / dev
    if (sysdev / "partition").exists():
        dev = (sysdev.resolve().parent / "dev").read_text().strip()
    return dev


def test_direct_io_writes_are_counted(kubelet: FakeKubelet, tmp_path: Path) -> None:
    size = 16 * MIB
    require(Path("/sys/dev/block").is_dir(), "no /sys/dev/block to find the disk under tmp_path")
    dev = _whole_disk_of(tmp_path)
    pod = kubelet.create_pod("besteffort")
    # Finding on this kernel (6.18, v1 blkio): the blkio.throttle.io_service_bytes* files stay at 0
    # until some cgroup has a throttle rule on the device (then all cgroups are counted); a rule far
    # above any real rate turns accounting on without limiting anything. Real v1 nodes without blkio
    # limits may therefore report 0 pod disk bytes (documented in exporter/podstats.py).
    blkio = pod.dirs["blkio"]
    for knob in ("blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device"):
        with open(os.path.join(blkio, knob), "w", encoding="ascii") as f:
            f.write(f"{dev} {1 << 40}")
    target = tmp_path / "direct.bin"
    writer = kubelet.start(["sh", "-c", f"read x; exec dd if=/dev/zero of={target} bs=1M count=16 "
                                        "oflag=direct status=none"], pod=pod)
    errors = RecordingErrors()
    before = read(found(pod), errors)
    say(writer)
    assert writer.wait(timeout=60) == 0
    after = read(found(pod), errors)
    assert before.disk is not None and after.disk is not None
    written = after.disk.written_bytes - before.disk.written_bytes
    # O_DIRECT bypasses the page cache: exactly the file's bytes reach the disk (plus at most a little
    # metadata the filesystem may charge to this cgroup).
    assert size <= written < size + 2 * MIB, f"{written} bytes counted for a {size}-byte O_DIRECT write"
    assert errors.records == []


def test_pod_network_namespace_traffic(kubelet: FakeKubelet) -> None:
    require(shutil.which("ip") is not None, "iproute2 `ip` is not installed")
    k = 1 * MIB
    with netns_pair() as pair:
        echo = kubelet.start(pair.exec_argv(pair.b, [sys.executable, "-c", ECHO, pair.addr_b]))
        port = int(line(echo))
        pod = kubelet.create_pod("burstable")
        client = kubelet.start(pair.exec_argv(pair.a, [sys.executable, "-c", CLIENT, pair.addr_b, str(port),
                                                       str(k)]), pod=pod)
        errors = RecordingErrors()
        cg = found(pod)
        before = read(cg, errors)
        assert before.host_network is False and before.network is not None
        say(client)
        assert int(line(client)) == k
        assert int(line(echo)) == k
        after = read(cg, errors)
        assert after.network is not None
        tx = after.network.transmit_bytes - before.network.transmit_bytes
        rx = after.network.receive_bytes - before.network.receive_bytes
        # ≥ K payload each way; TCP/IP/Ethernet headers add ~5% at this MSS (66 B per 1448 B segment),
        # ACKs, the handshake and ARP/IPv6 chatter on a fresh link add a few KiB more. On a loaded
        # machine a slow reader gets smaller segments, each ACKed: 1.17x was seen in the full suite
        # (2026-12-03). Counting another pod's traffic as well would be 2x.
        for name, moved in (("transmit", tx), ("receive", rx)):
            assert k <= moved < k * 1.30 + 64 * 1024, f"{name}: {moved} bytes counted for {k} sent"
        assert errors.records == []
        say(client)


def test_host_network_pod_is_flagged_and_processless_pod_has_no_network(kubelet: FakeKubelet) -> None:
    host_pod = kubelet.create_pod("besteffort")
    kubelet.start([sys.executable, "-c", "import sys; sys.stdin.readline()"], pod=host_pod)
    empty_pod = kubelet.create_pod("besteffort")
    errors = RecordingErrors()
    host = read(found(host_pod), errors)
    assert (host.host_network, host.network) == (True, None)
    empty = read(found(empty_pod), errors)
    assert (empty.host_network, empty.network) == (False, None)
    assert errors.records == []


def test_pod_removed_between_find_and_read_is_skipped(kubelet: FakeKubelet) -> None:
    pod = kubelet.create_pod("besteffort")
    cg = found(pod)
    for d in (*pod.container_dirs.values(), *pod.dirs.values()):
        os.rmdir(d)
    wait_until(lambda: not any(os.path.exists(d) for d in pod.dirs.values()), timeout=5,
               message="pod cgroups removed")
    errors = RecordingErrors()
    assert PodStatsReader(errors=errors).read(cg) is None
    assert errors.sources() == ["cgroup"]
