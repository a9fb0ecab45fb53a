"""HostReader against the recorded node trees: exact values, counters advancing, fallbacks, bad input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.host import DEFAULT_EXCLUDED_INTERFACES, HostReader, count_cpu_list
from exporter.model import CpuTimes, DiskCounters, NetCounters
from tests.support.cgroups import RecordingErrors, copy_node_tree

HZ = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024


def reader(tree: Path, errors: RecordingErrors, **kw: object) -> HostReader:
    return HostReader(proc_root=str(tree / "proc"), sys_root=str(tree / "sys"), rootfs=str(tree),
                      errors=errors, **kw)  # type: ignore[arg-type]


def test_node_a_exact_values(tmp_path: Path) -> None:
    errors = RecordingErrors()
    s = reader(copy_node_tree("node-a", tmp_path), errors).read()
    # busy = user+nice+system+irq+softirq+steal = 100000+2000+30000+1000+2000+500 (guest 7000/100 not added)
    assert s.cpu == CpuTimes(busy_seconds=135500 / HZ, total_seconds=(135500 + 800000 + 5000) / HZ)
    assert s.cpu_count == 4
    assert (s.memory_total_bytes, s.memory_available_bytes) == (16384000 * 1024, 8192000 * 1024)
    # whole disks sda + nvme0n1 only: partitions, loop0, dm-0 (stacked on sda) and zram0 are skipped
    assert s.disk == DiskCounters(read_bytes=(2000000 + 600000) * 512, written_bytes=(4000000 + 800000) * 512)
    # <proc>/1/net/dev (host namespace), not <proc>/net/dev; eth0 + eth1, virtual interfaces excluded
    assert s.network == NetCounters(7000000 + 1000000, 3000000 + 500000)
    assert s.filesystem is not None and s.filesystem.mountpoint == "/"
    assert errors.records == []


def test_node_b_and_c_differ_and_use_fallbacks(tmp_path: Path) -> None:
    errors = RecordingErrors()
    b = reader(copy_node_tree("node-b", tmp_path), errors).read()
    assert b.cpu == CpuTimes(busy_seconds=50500 / HZ, total_seconds=351500 / HZ)
    assert b.cpu_count == 2
    assert b.disk == DiskCounters(read_bytes=(300000 + 7000) * 512, written_bytes=(500000 + 9000) * 512)
    assert b.network == NetCounters(2000000, 1000000)  # cilium_host, lxc* excluded

    c = reader(copy_node_tree("node-c", tmp_path), errors).read()
    # an old kernel's stat line without steal/guest columns
    assert c.cpu == CpuTimes(busy_seconds=610000 / HZ, total_seconds=3630000 / HZ)
    assert c.cpu_count == 8
    # no MemAvailable: MemFree + SReclaimable + Active(file) + Inactive(file)
    assert c.memory_available_bytes == (1000000 + 100000 + 1500000 + 1400000) * 1024
    # no /sys/block: partitions by name (sda1, nvme0n1p1), md0/nbd0/ram0 by prefix
    assert c.disk == DiskCounters(read_bytes=(8000000 + 100 + 20) * 512,
                                  written_bytes=(16000000 + 300 + 40) * 512)
    assert c.network == NetCounters(90000000 + 1000, 45000000 + 2000)  # eth0 + bond0
    assert errors.records == []


def test_counters_advance_between_reads(tmp_path: Path) -> None:
    tree = copy_node_tree("node-a", tmp_path)
    errors = RecordingErrors()
    r = reader(tree, errors)
    first = r.read()
    stat = tree / "proc/stat"
    stat.write_text(stat.read_text().replace("cpu  100000 2000 30000 800000 5000",
                                             "cpu  100400 2000 30000 800200 5000", 1))
    disks = tree / "proc/diskstats"
    disks.write_text(disks.read_text().replace(" sda 1200 30 2000000 ", " sda 1201 30 2000008 ", 1))
    net = tree / "proc/1/net/dev"
    net.write_text(net.read_text().replace("7000000", "7001500").replace("  500000", "  500900"))
    second = r.read()
    assert first.cpu is not None and second.cpu is not None
    assert second.cpu.busy_seconds - first.cpu.busy_seconds == pytest.approx(400 / HZ)
    assert second.cpu.total_seconds - first.cpu.total_seconds == pytest.approx(600 / HZ)
    assert first.disk is not None and second.disk is not None
    assert second.disk.read_bytes - first.disk.read_bytes == 8 * 512
    assert second.disk.written_bytes == first.disk.written_bytes
    assert first.network is not None and second.network is not None
    assert second.network.receive_bytes - first.network.receive_bytes == 1500
    assert second.network.transmit_bytes - first.network.transmit_bytes == 900


def test_falls_back_to_own_namespace_when_pid1_net_unreadable(tmp_path: Path) -> None:
    tree = copy_node_tree("node-a", tmp_path)
    (tree / "proc/1/net/dev").unlink()
    errors = RecordingErrors()
    s = reader(tree, errors).read()
    assert s.network == NetCounters(424242, 242424)
    assert errors.sources() == ["host"]  # the degraded source is reported


def test_each_broken_part_is_none_and_reported_while_others_read(tmp_path: Path) -> None:
    tree = copy_node_tree("node-a", tmp_path)
    (tree / "proc/meminfo").write_text("MemTotal: lots kB\n")
    (tree / "proc/diskstats").write_text("8 0 sda 1 2\n")
    (tree / "proc/net/dev").unlink()
    (tree / "proc/1/net/dev").write_text("header\nheader\neth0 no colon here\n")
    errors = RecordingErrors()
    s = reader(tree, errors, excluded_interfaces=("lo",)).read()
    assert s.memory_total_bytes is None and s.memory_available_bytes is None
    assert s.disk is None
    assert s.network is None
    assert s.cpu is not None and s.cpu_count == 4
    assert set(errors.sources()) == {"host"}
    assert [d for _s, d, _e in errors.records] == [
        "reading host memory failed", "reading host disk failed", "reading host network failed"]
    assert any(isinstance(e, ValueError) for _s, _d, e in errors.records)


def test_missing_proc_root_gives_an_all_none_sample_not_a_crash(tmp_path: Path) -> None:
    errors = RecordingErrors()
    s = HostReader(proc_root=str(tmp_path / "nope"), sys_root=str(tmp_path / "nope"),
                   rootfs=str(tmp_path / "nope"), errors=errors).read()
    assert (s.cpu, s.cpu_count, s.memory_total_bytes, s.disk, s.network, s.filesystem) == (None,) * 6
    assert errors.records and set(errors.sources()) == {"host"}


def test_cpu_count_falls_back_to_sys_online(tmp_path: Path) -> None:
    tree = copy_node_tree("node-a", tmp_path)
    stat = tree / "proc/stat"
    kept = [line for line in stat.read_text().splitlines() if not line.startswith("cpu") or line[3] == " "]
    stat.write_text("\n".join(kept) + "\n")
    (tree / "sys/devices/system/cpu/online").write_text("0-2,5,7-8\n")
    s = reader(tree, RecordingErrors()).read()
    assert s.cpu_count == 6
    assert count_cpu_list("0") == 1
    with pytest.raises(ValueError):
        count_cpu_list("")


def test_excluded_interfaces_are_configurable(tmp_path: Path) -> None:
    tree = copy_node_tree("node-a", tmp_path)
    everything = reader(tree, RecordingErrors(), excluded_interfaces=()).read().network
    assert everything == NetCounters(50000 + 7000000 + 11111 + 333 + 5555 + 77 + 1000000,
                                     50000 + 3000000 + 22222 + 444 + 6666 + 88 + 500000)
    only_eth0 = reader(tree, RecordingErrors(),
                       excluded_interfaces=(*DEFAULT_EXCLUDED_INTERFACES, "eth1")).read()
    assert only_eth0.network == NetCounters(7000000, 3000000)


def test_filesystem_matches_statvfs(tmp_path: Path) -> None:
    s = reader(copy_node_tree("node-a", tmp_path), RecordingErrors()).read()
    st = os.statvfs(tmp_path)
    assert s.filesystem is not None
    assert s.filesystem.size_bytes == st.f_blocks * st.f_frsize
    # avail moves with whatever else writes to this disk; a few MiB of slack covers the gap between calls
    assert abs(s.filesystem.avail_bytes - st.f_bavail * st.f_frsize) < 64 * MIB


def test_hostile_proc_contents_never_escape_read(tmp_path: Path) -> None:
    tree = copy_node_tree("node-b", tmp_path)
    targets = [tree / "proc/stat", tree / "proc/meminfo", tree / "proc/diskstats", tree / "proc/1/net/dev",
               tree / "sys/devices/system/cpu/online"]
    reader = HostReader(proc_root=str(tree / "proc"), sys_root=str(tree / "sys"), rootfs=str(tree))

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.binary(max_size=300), min_size=5, max_size=5))
    def check(contents: list[bytes]) -> None:
        for path, data in zip(targets, contents, strict=True):
            path.write_bytes(data)
        sample = reader.read()
        assert sample.filesystem is not None  # the one part no file above can break

    check()
