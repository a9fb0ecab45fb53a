"""PodStatsReader on the recorded trees: exact figures, counters advancing, pods and processes vanishing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.cgroups import PodCgroupFinder
from exporter.model import DiskCounters, NetCounters, PodCgroup, PodUsage
from exporter.podnet import PidIndex
from exporter.podstats import PodStatsReader, parse_blkio, parse_io_stat, stat_value
from tests.support.cgroups import RecordingErrors, copy_node_tree

A_G = "1f3a9c2e-5b7d-4e21-9a0b-6c8d7e5f4a31"
A_B = "2b4c6d8e-0f1a-4b3c-8d5e-7f9a0b1c2d43"
A_H = "3c5d7e9f-1a2b-4c3d-9e5f-8a0b1c2d3e55"
A_E = "4d6e8f0a-2b3c-4d4e-af60-9b1c2d3e4f67"


def read_all(tree: Path, errors: RecordingErrors) -> dict[str, PodUsage | None]:
    reader = PodStatsReader(proc_root=str(tree / "proc"), errors=errors)
    return {cg.uid: reader.read(cg) for cg in PodCgroupFinder(cgroup_root=str(tree / "cgroup")).find()}


def pods(tree: Path) -> dict[str, PodCgroup]:
    return {cg.uid: cg for cg in PodCgroupFinder(cgroup_root=str(tree / "cgroup")).find()}


def test_node_a_v2_containerd_exact(tmp_path: Path) -> None:
    errors = RecordingErrors()
    got = read_all(copy_node_tree("node-a", tmp_path), errors)
    assert got[A_G] == PodUsage(uid=A_G, cpu_seconds=12.5, memory_usage_bytes=300000000,
                                memory_working_set_bytes=200000000,
                                disk=DiskCounters(read_bytes=4096 + 1000, written_bytes=8192 + 2000),
                                network=NetCounters(120000, 80000), host_network=False)
    # inactive_file > usage: working set floored at 0
    assert got[A_B] == PodUsage(uid=A_B, cpu_seconds=3.0, memory_usage_bytes=50000000,
                                memory_working_set_bytes=0, disk=DiskCounters(100, 200),
                                network=NetCounters(3000, 4000), host_network=False)
    # host-network pod: flagged, its (host) traffic not attributed to it
    assert got[A_H] == PodUsage(uid=A_H, cpu_seconds=0.8, memory_usage_bytes=20000000,
                                memory_working_set_bytes=15000000, disk=DiskCounters(0, 0), network=None,
                                host_network=True)
    # no process at all: no namespace to read
    assert got[A_E] == PodUsage(uid=A_E, cpu_seconds=0.0, memory_usage_bytes=4096,
                                memory_working_set_bytes=4096, disk=DiskCounters(0, 0), network=None,
                                host_network=False)
    assert errors.records == []


def test_node_b_crio_skips_conmon_and_missing_io_stat(tmp_path: Path) -> None:
    errors = RecordingErrors()
    got = read_all(copy_node_tree("node-b", tmp_path), errors)
    g = got["5e7f9a1b-3c4d-4e5f-b071-0c2d3e4f5a79"]
    assert g is not None
    # conmon (pid 2000, host namespace) listed first must not make the pod look host-network
    assert (g.network, g.host_network) == (NetCounters(64000, 32000), False)
    assert g.disk == DiskCounters(65536, 131072)
    b = got["6f8a0b2c-4d5e-4f6a-8182-1d3e4f5a6b8c"]
    assert b is not None
    assert b.disk is None  # io controller not enabled for that pod: no figure, not an error
    assert b.network == NetCounters(1500 + 10, 2500 + 20)  # every interface but lo (net1: multus)
    assert b.memory_working_set_bytes == 9000000
    h = got["7a9b1c3d-5e6f-4a7b-9293-2e4f5a6b7c9d"]
    assert h is not None and h.host_network and h.network is None
    assert errors.records == []


def test_node_c_v1_docker_with_blkio_fallbacks(tmp_path: Path) -> None:
    errors = RecordingErrors()
    got = read_all(copy_node_tree("node-c", tmp_path), errors)
    g = got["9c1d3e5f-7a8b-4c9d-b4b5-4a6b7c8d9e0f"]
    assert g == PodUsage(uid=g.uid if g else "", cpu_seconds=42.0, memory_usage_bytes=500000000,
                         memory_working_set_bytes=300000000, disk=DiskCounters(8192 + 10, 16384 + 20),
                         network=NetCounters(5000000, 6000000), host_network=False)
    b = got["0d2e4f6a-8b9c-4d0e-85c6-5b7c8d9e0f1a"]
    assert b is not None and b.disk == DiskCounters(512, 1024)  # blkio.io_service_bytes_recursive
    assert b.cpu_seconds == pytest.approx(1.5)
    e = got["1e3f5a7b-9c0d-4e1f-96d7-6c8d9e0f1a2b"]
    assert e is not None and e.memory_working_set_bytes == 0 and e.host_network
    assert errors.records == []


def test_counters_advance_and_pods_come_and_go(tmp_path: Path) -> None:
    tree = copy_node_tree("node-a", tmp_path)
    errors = RecordingErrors()
    cgs = pods(tree)
    reader = PodStatsReader(proc_root=str(tree / "proc"), errors=errors)
    before = reader.read(cgs[A_G])
    g = Path(cgs[A_G].paths["unified"])
    (g / "cpu.stat").write_text("usage_usec 14000000\nuser_usec 1\nsystem_usec 1\n")
    (g / "memory.current").write_text("350000000\n")
    (g / "io.stat").write_text("8:0 rbytes=5000 wbytes=9000 rios=2 wios=3\n259:0 rbytes=1000 wbytes=2000\n")
    dev = tree / "proc/1001/net/dev"  # the first pid (1000) exits; 1001 shares the namespace
    shutil.rmtree(tree / "proc/1000")
    header = "".join(dev.read_text().splitlines(keepends=True)[:2])
    dev.write_text(header + "    lo: 99 1 0 0 0 0 0 0 99 1 0 0 0 0 0 0\n"
                            "  eth0: 180000 9 0 0 0 0 0 0 95000 9 0 0 0 0 0 0\n")
    # the besteffort pod is deleted, a new burstable one appears
    shutil.rmtree(cgs[A_E].paths["unified"])
    new_uid = "aaaabbbb-cccc-4ddd-8eee-ffff00001111"
    burstable = tree / "cgroup/kubepods.slice/kubepods-burstable.slice"
    new = burstable / f"kubepods-burstable-pod{new_uid.replace('-', '_')}.slice"
    new.mkdir()
    (new / "cpu.stat").write_text("usage_usec 250\n")
    (new / "cgroup.procs").write_text("")
    after = read_all(tree, errors)
    assert set(after) == {A_G, A_B, A_H, new_uid}
    now = after[A_G]
    assert before is not None and now is not None
    assert now.cpu_seconds is not None and before.cpu_seconds is not None
    assert now.cpu_seconds - before.cpu_seconds == pytest.approx(1.5)
    assert now.memory_working_set_bytes == 250000000
    assert now.disk == DiskCounters(6000, 11000)
    assert now.network == NetCounters(180000, 95000)
    assert after[new_uid] == PodUsage(uid=new_uid, cpu_seconds=0.00025, memory_usage_bytes=None,
                                      memory_working_set_bytes=None, disk=None, network=None,
                                      host_network=False)
    assert errors.records == []


def test_pod_vanishing_after_find_is_skipped_and_reported(tmp_path: Path) -> None:
    tree = copy_node_tree("node-c", tmp_path)
    cgs = pods(tree)
    victim = cgs["0d2e4f6a-8b9c-4d0e-85c6-5b7c8d9e0f1a"]
    for path in victim.paths.values():
        shutil.rmtree(path)
    errors = RecordingErrors()
    reader = PodStatsReader(proc_root=str(tree / "proc"), errors=errors)
    assert reader.read(victim) is None
    assert errors.sources() == ["cgroup"] and "vanished" in errors.records[0][1]
    # the memory directory alone going away mid-read also skips the pod
    other = cgs["9c1d3e5f-7a8b-4c9d-b4b5-4a6b7c8d9e0f"]
    shutil.rmtree(other.paths["memory"])
    assert reader.read(other) is None
    assert reader.read(cgs["1e3f5a7b-9c0d-4e1f-96d7-6c8d9e0f1a2b"]) is not None


def test_garbage_and_unreadable_files_cost_only_their_field(tmp_path: Path) -> None:
    tree = copy_node_tree("node-a", tmp_path)
    cg = pods(tree)[A_G]
    g = Path(cg.paths["unified"])
    (g / "memory.stat").write_text("inactive_file lots\n")
    (g / "io.stat").unlink()
    (g / "io.stat").mkdir()  # reading it fails with IsADirectoryError: not "vanished"
    for pid in (1000, 1001):  # both of the pod's listed processes
        (tree / f"proc/{pid}/net/dev").write_text("garbage\n\nno counters\n")
    errors = RecordingErrors()
    usage = PodStatsReader(proc_root=str(tree / "proc"), errors=errors).read(cg)
    assert usage is not None
    assert usage.cpu_seconds == 12.5
    assert (usage.memory_usage_bytes, usage.memory_working_set_bytes) == (None, None)
    assert usage.disk is None and usage.network is None and not usage.host_network
    assert errors.sources() == ["cgroup"] * 3
    assert [d.split(": ")[-1] for _s, d, _e in errors.records] == [
        "memory file has unexpected content", "reading disk failed", "network file has unexpected content"]


def test_without_pid1_ns_link_the_namespace_is_told_by_net_dev_inode(tmp_path: Path) -> None:
    tree = copy_node_tree("node-a", tmp_path)
    (tree / "proc/1/ns/net").unlink()  # as when ptrace access to the host's init is denied
    (tree / "proc/1200/net/dev").unlink()
    os.link(tree / "proc/1/net/dev", tree / "proc/1200/net/dev")  # procfs: same namespace, same inode
    errors = RecordingErrors()
    reader = PodStatsReader(proc_root=str(tree / "proc"), errors=errors)
    cgs = pods(tree)
    host = reader.read(cgs[A_H])
    assert host is not None and (host.host_network, host.network) == (True, None)
    other = reader.read(cgs[A_B])
    assert other is not None and (other.host_network, other.network) == (False, NetCounters(3000, 4000))
    assert errors.records == []
    # with neither pid 1's link nor its net/dev, no pod gets a network figure (never the host's traffic)
    (tree / "proc/1/net/dev").unlink()
    host = reader.read(cgs[A_H])
    assert host is not None and host.network is None and host.cpu_seconds == 0.8
    assert errors.sources() == ["cgroup"]


def test_outside_the_host_pid_namespace_pods_are_found_through_proc_cgroup(tmp_path: Path) -> None:
    # An exporter pod without hostPID reads cgroup.procs as 0 (v2) or nothing (v1): the host's pids are
    # not in its PID namespace. <proc>/<pid>/cgroup of the mounted host /proc still names each pod.
    trees = {name: copy_node_tree(name, tmp_path) for name in ("node-a", "node-b", "node-c")}
    for tree in trees.values():
        for procs in (tree / "cgroup").rglob("cgroup.procs"):
            if procs.read_text().strip():
                procs.write_text("0\n" * len(procs.read_text().split()))
    errors = RecordingErrors()
    a = read_all(trees["node-a"], errors)
    assert a[A_G] is not None and a[A_G].network == NetCounters(120000, 80000)
    assert a[A_B] is not None and a[A_B].network == NetCounters(3000, 4000)
    assert a[A_H] is not None and (a[A_H].network, a[A_H].host_network) == (None, True)
    assert a[A_E] is not None and (a[A_E].network, a[A_E].host_network) == (None, False)
    b = read_all(trees["node-b"], errors)
    g = b["5e7f9a1b-3c4d-4e5f-b071-0c2d3e4f5a79"]  # conmon (host namespace) skipped in the index too
    assert g is not None and (g.network, g.host_network) == (NetCounters(64000, 32000), False)
    c = read_all(trees["node-c"], errors)
    g = c["9c1d3e5f-7a8b-4c9d-b4b5-4a6b7c8d9e0f"]
    assert g is not None and g.network == NetCounters(5000000, 6000000)
    assert errors.records == []


def test_pid_index_is_built_once_per_pass_and_rebuilt_when_stale(tmp_path: Path) -> None:
    tree = copy_node_tree("node-a", tmp_path)
    for procs in (tree / "cgroup").rglob("cgroup.procs"):
        procs.write_text("")
    now = [100.0]
    reader = PodStatsReader(proc_root=str(tree / "proc"), clock=lambda: now[0])
    cgs = pods(tree)
    first = reader.read(cgs[A_B])
    assert first is not None and first.network == NetCounters(3000, 4000)
    # the pod's process moves on (pid 1100 exits, 1300 appears): the index built this pass is reused ...
    shutil.rmtree(tree / "proc/1100")
    shutil.copytree(tree / "proc/1000", tree / "proc/1300", symlinks=True)
    (tree / "proc/1300/cgroup").write_text(
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod2b4c6d8e_0f1a_4b3c_8d5e_7f9a0b1c2d43"
        ".slice/cri-containerd-bbb3.scope\n")
    same_pass = reader.read(cgs[A_B])
    assert same_pass is not None and same_pass.network is None  # its one known pid is gone
    # ... and rebuilt once it is older than a pass (1 s)
    now[0] += 1.5
    later = reader.read(cgs[A_B])
    assert later is not None and later.network == NetCounters(120000, 80000)  # 1300's namespace


def test_parsers() -> None:
    assert parse_io_stat("") == DiskCounters(0, 0)
    assert parse_io_stat("8:0 rbytes=1 wbytes=2 rios=3\n8:16 wbytes=5\n") == DiskCounters(1, 7)
    assert parse_blkio("8:0 Read 1\n8:0 Write 2\n8:0 Total 3\n8:16 Read 4\nTotal 7\n") == DiskCounters(5, 2)
    with pytest.raises(ValueError):
        parse_io_stat("8:0 rbytes=x\n")
    stat = "total_inactive_file 7\ninactive_file 5\nfile 9"
    assert (stat_value(stat, "inactive_file"), stat_value(stat, "total_inactive_file")) == (5, 7)
    assert stat_value(stat, "file") == 9  # last line without newline
    with pytest.raises(KeyError):
        stat_value(stat, "active_file")
    with pytest.raises(KeyError):
        stat_value("", "usage_usec")


def test_hostile_file_contents_never_escape_read(tmp_path: Path) -> None:
    tree = copy_node_tree("node-a", tmp_path)
    cg = pods(tree)[A_G]
    g = Path(cg.paths["unified"])
    (tree / "proc/1000").rename(tree / "proc/gone")  # so pid 1001's (hostile) net/dev is the one read
    targets = [g / "cpu.stat", g / "memory.current", g / "memory.stat", g / "io.stat",
               tree / "proc/1001/net/dev"]

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.binary(max_size=200), min_size=5, max_size=5))
    def check(contents: list[bytes]) -> None:
        for path, data in zip(targets, contents, strict=True):
            path.write_bytes(data)
        errors = RecordingErrors()
        usage = PodStatsReader(proc_root=str(tree / "proc"), errors=errors).read(cg)
        assert usage is not None and usage.uid == A_G
        assert set(errors.sources()) <= {"cgroup"}

    check()


def test_pid_index_classifies_new_pids_only_until_the_full_rescan(tmp_path: Path) -> None:
    tree = copy_node_tree("node-a", tmp_path)
    now = [0.0]
    index = PidIndex(proc_root=str(tree / "proc"), clock=lambda: now[0], max_age=1.0, full_rescan=60.0)
    assert index.pids(A_B) == [1100, 1101]
    assert index.pids(A_G) == [1000, 1001, 1002]
    # pid 1200 moves into pod B's cgroup: a known pid is not re-read on an ordinary refresh ...
    (tree / "proc/1200/cgroup").write_text(
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod2b4c6d8e_0f1a_4b3c_8d5e_7f9a0b1c2d43"
        ".slice/x.scope\n")
    shutil.rmtree(tree / "proc/1001")  # ... but exits are noticed
    now[0] = 2.0
    assert index.pids(A_B) == [1100, 1101]
    assert index.pids(A_G) == [1000, 1002]
    now[0] = 62.0  # ... and the full rescan reclassifies everything
    assert index.pids(A_B) == [1100, 1101, 1200]
    assert index.pids(A_H) == []
