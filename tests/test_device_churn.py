"""Disks and interfaces that come and go: the exposed `_total` counters never decrease (issue 10, item 2).

The real readers and the real sampler read a copied node tree (tests/fixtures/nodes/node-a) twice; between
the reads a disk and an interface leave and others appear, on the host and in a pod. The totals must grow
by what the devices that stayed moved plus what the new ones hold, as node_exporter/cAdvisor series summed
in PromQL would, instead of dropping to the survivors' sum (a counter reset to Prometheus' rate()).
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.cgroups import PodCgroupFinder
from exporter.collector import SnapshotCollector
from exporter.counters import MonotonicTotal
from exporter.host import HostReader
from exporter.model import DiskCounters, NetCounters, PodCgroup
from exporter.podstats import PodStatsReader
from exporter.sampler import CountingErrors, Sampler
from exporter.snapshot import Snapshot
from tests.fixtures.nodes.make_trees import net_dev
from tests.support import require, require_root
from tests.support.cgroups import FakeKubelet, cgroups_writable, copy_node_tree
from tests.support.netns import netns_pair

A_G = "1f3a9c2e-5b7d-4e21-9a0b-6c8d7e5f4a31"  # node-a's guaranteed pod: io.stat on 8:0 and 259:0
SECTOR = 512


def sampler_over(tree: Path, errors: CountingErrors) -> Sampler:
    return Sampler(
        node="node-a",
        host_reader=HostReader(proc_root=str(tree / "proc"), sys_root=str(tree / "sys"), rootfs=str(tree),
                               errors=errors),
        cgroup_finder=PodCgroupFinder(cgroup_root=str(tree / "cgroup"), errors=errors),
        pod_reader=PodStatsReader(proc_root=str(tree / "proc"), sys_root=str(tree / "sys"), errors=errors),
        errors=errors,
    )


def exposed(snapshot: Snapshot) -> dict[tuple[str, str], float]:
    """(sample name, uid or "") -> value of the disk/network totals /metrics serves."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snapshot, version="test"))
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            if s.name.endswith("_bytes_total") and ("_disk_" in s.name or "_network_" in s.name):
                out[(s.name, s.labels.get("uid", ""))] = s.value
    return out


def diskstats_line(major: int, minor: int, name: str, sectors_read: int, sectors_written: int) -> str:
    return f"{major:>4} {minor:>7} {name} 10 0 {sectors_read} 9 8 0 {sectors_written} 7 0 15 16 0 0 0 0 1 2\n"


def churn(tree: Path) -> None:
    """Between two reads: nvme0n1 detaches and sdb attaches; eth1 goes and eth2 comes; sda and eth0 move
    a little. In pod A_G, 259:0 leaves io.stat and 8:16 (sdb) appears; eth0 goes and net1 comes."""
    disks = tree / "proc/diskstats"
    lines = [ln for ln in disks.read_text().splitlines(keepends=True) if " nvme0n1" not in ln]
    lines = [ln.replace(" sda 1200 30 2000000 ", " sda 1200 30 2000100 ", 1) for ln in lines]
    disks.write_text("".join(lines) + diskstats_line(8, 16, "sdb", 40, 60))
    for rel in ("sys/block/nvme0n1/nvme0n1p1/partition", "sys/block/nvme0n1/dev"):
        (tree / rel).unlink()
    (tree / "sys/block/nvme0n1/nvme0n1p1").rmdir()
    (tree / "sys/block/nvme0n1").rmdir()
    (tree / "sys/block/sdb").mkdir()
    (tree / "sys/block/sdb/dev").write_text("8:16\n")
    (tree / "proc/1/net/dev").write_text(net_dev({"lo": (50000, 50000), "eth0": (7000500, 3000700),
                                                  "eth2": (300, 400)}))
    io = next((tree / "cgroup/kubepods.slice").glob("*pod1f3a9c2e*")) / "io.stat"
    io.write_text("8:0 rbytes=5096 wbytes=8192 rios=2 wios=2 dbytes=0 dios=0\n"
                  "8:16 rbytes=10 wbytes=20 rios=1 wios=1 dbytes=0 dios=0\n")
    for pid in (1000, 1001):
        (tree / f"proc/{pid}/net/dev").write_text(net_dev({"lo": (99, 99), "net1": (500, 600)}))


def test_host_and_pod_totals_stay_monotonic_when_devices_leave_and_arrive(tmp_path: Path) -> None:
    tree = copy_node_tree("node-a", tmp_path)
    errors = CountingErrors()
    sampler = sampler_over(tree, errors)
    first = sampler.cycle()
    before = exposed(first)
    assert first.host.disk == DiskCounters((2000000 + 600000) * SECTOR, (4000000 + 800000) * SECTOR)
    assert first.host.network == NetCounters(7000000 + 1000000, 3000000 + 500000)

    churn(tree)
    second = sampler.cycle()
    after = exposed(second)
    # host disk: sda moved 100 sectors read; nvme0n1 left keeping its bytes; sdb arrived with its own
    assert second.host.disk == DiskCounters((2000000 + 600000 + 100 + 40) * SECTOR,
                                            (4000000 + 800000 + 60) * SECTOR)
    # host network: eth0 moved 500/700, eth1 left (kept), eth2 arrived
    assert second.host.network == NetCounters(8000000 + 500 + 300, 3500000 + 700 + 400)
    pod = {p.usage.uid: p.usage for p in second.pods}[A_G]
    # pod disk: 8:0 read 1000 more, 259:0 left (kept), 8:16 arrived; network: eth0 left, net1 arrived
    assert pod.disk == DiskCounters(4096 + 1000 + 1000 + 10, 8192 + 2000 + 20)
    assert pod.network == NetCounters(120000 + 500, 80000 + 600)
    # what /metrics serves: every disk/network total of the node and of every pod, never lower
    assert before.keys() <= after.keys()
    lower = {k: (before[k], after[k]) for k in before if after[k] < before[k]}
    assert lower == {}
    assert after[("k8smon_node_disk_read_bytes_total", "")] == (2600000 + 140) * SECTOR
    assert errors.counts() == {}


def test_a_device_that_comes_back_reset_counts_its_new_value(tmp_path: Path) -> None:
    """An interface deleted and re-created between reads (a pod's sandbox restarted): its counter
    starts again near 0, which is a reset of that one counter, not a drop of the total."""
    tree = copy_node_tree("node-a", tmp_path)
    sampler = sampler_over(tree, CountingErrors())
    sampler.cycle()
    (tree / "proc/1/net/dev").write_text(net_dev({"eth0": (2000, 1000), "eth1": (1000100, 500100)}))
    assert sampler.cycle().host.network == NetCounters(8000000 + 2000 + 100, 3500000 + 1000 + 100)


def test_pod_that_leaves_and_returns_starts_again_and_other_pods_keep_theirs(tmp_path: Path) -> None:
    tree = copy_node_tree("node-a", tmp_path)
    sampler = sampler_over(tree, CountingErrors())
    sampler.cycle()
    io = next((tree / "cgroup/kubepods.slice").glob("*pod1f3a9c2e*")) / "io.stat"
    io.write_text("8:0 rbytes=4096 wbytes=8192\n")  # 259:0 gone from the pod
    assert {p.usage.uid: p.usage for p in sampler.cycle().pods}[A_G].disk == DiskCounters(5096, 10192)
    io.write_text("8:0 rbytes=4196 wbytes=8192\n259:0 rbytes=7 wbytes=9\n")  # back: its whole value
    assert {p.usage.uid: p.usage for p in sampler.cycle().pods}[A_G].disk == DiskCounters(5203, 10201)


readings = st.lists(  # successive readings: device -> (a, b), each device present or not
    st.dictionaries(st.sampled_from(["sda", "sdb", "eth0", "eth1", "8:0"]),
                    st.tuples(st.integers(0, 10**12), st.integers(0, 10**12)), max_size=5),
    min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(readings)
def test_monotonic_total_never_decreases_and_adds_every_increase(seq: list[dict[str, tuple[int, int]]],
                                                                  ) -> None:
    total = MonotonicTotal()
    last = (0, 0)
    expected = [0, 0]
    prev: dict[str, tuple[int, int]] = {}
    for reading in seq:
        got = total.update(reading)
        for dev, pair in reading.items():
            for i in (0, 1):
                old = prev.get(dev)
                expected[i] += pair[i] if old is None or pair[i] < old[i] else pair[i] - old[i]
        prev = reading
        assert got[0] >= last[0] and got[1] >= last[1]
        assert got == tuple(expected)
        last = got
    assert total.update(seq[0]) >= last  # whatever comes next


# In the pod's network namespace: on each stdin line "<n> <address>", send n bytes as 1000-byte UDP datagrams
# to <address>:9 (out of an extra veth whose peer, in the other namespace, drops them).
SENDER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
print("ready", flush=True)
for line in sys.stdin:
    n, dst = line.split()
    for _ in range(int(n) // 1000):
        s.sendto(b"x" * 1000, (dst, 9))
    print("sent", flush=True)
"""


class _OnePod:
    """The real cgroup finder, narrowed to the test's pod (other suites' pods may exist meanwhile)."""

    def __init__(self, uid: str) -> None:
        self._finder = PodCgroupFinder(cgroup_root="/sys/fs/cgroup")
        self._uid = uid

    def find(self) -> list[PodCgroup]:
        return [cg for cg in self._finder.find() if cg.uid == self._uid]


@pytest.mark.root
def test_real_pod_interface_deleted_and_added_keeps_the_total_growing() -> None:
    """Real kernel, real sampler: a pod's interface carries traffic, is deleted, another is added."""
    require_root()
    ok, why = cgroups_writable()
    require(ok, f"cgroups not writable here: {why}")
    net = random.randint(1, 254)

    def ip(pair_ns: str, *args: str) -> None:
        subprocess.run(["ip", "-n", pair_ns, *args], check=True, capture_output=True, timeout=20)

    with FakeKubelet(tag="i10b") as kubelet, netns_pair("i10b") as pair:

        def add_interface(name: str, subnet: str) -> None:
            """An extra veth in the pod's namespace (peer in the other one), with a fixed neighbour so
            datagrams to <subnet>.2 leave through it without ARP."""
            ip(pair.a, "link", "add", name, "type", "veth", "peer", "name", name + "p", "netns", pair.b)
            ip(pair.b, "link", "set", name + "p", "up")
            ip(pair.a, "addr", "add", f"{subnet}.1/24", "dev", name)
            ip(pair.a, "link", "set", name, "up")
            ip(pair.a, "neigh", "add", f"{subnet}.2", "lladdr", "02:00:00:00:00:01", "dev", name,
               "nud", "permanent")

        add_interface("kmx1", f"198.18.{net}")
        pod = kubelet.create_pod("burstable")
        sender = kubelet.start(pair.exec_argv(pair.a, [sys.executable, "-c", SENDER]), pod=pod)
        assert sender.stdin is not None and sender.stdout is not None
        # Until `ip netns exec` has entered the namespace, the pod's only process is in the host's.
        assert sender.stdout.readline() == b"ready\n"
        errors = CountingErrors()
        sampler = Sampler(node="real", host_reader=HostReader(errors=errors), cgroup_finder=_OnePod(pod.uid),
                          pod_reader=PodStatsReader(errors=errors), errors=errors)

        def send(n: int, dst: str) -> None:
            sender.stdin.write(f"{n} {dst}\n".encode())  # type: ignore[union-attr]
            sender.stdin.flush()  # type: ignore[union-attr]
            assert sender.stdout.readline() == b"sent\n"  # type: ignore[union-attr]

        def tx() -> int:
            pods = sampler.cycle().pods
            assert len(pods) == 1 and pods[0].usage.network is not None, pods
            return pods[0].usage.network.transmit_bytes

        start = tx()
        send(200_000, f"198.18.{net}.2")
        sent = tx()
        assert sent >= start + 200 * 1028  # 200 datagrams of 1000 bytes + UDP/IP headers
        ip(pair.a, "link", "del", "kmx1")  # the interface goes, with its 205,600+ transmitted bytes
        after_delete = tx()
        assert sent <= after_delete < sent + 10_000  # kept (stray IPv6 neighbour packets on the veth aside)
        add_interface("kmx2", f"198.19.{net}")
        send(50_000, f"198.19.{net}.2")
        assert tx() >= after_delete + 50 * 1028
        assert errors.counts() == {}
