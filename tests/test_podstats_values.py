"""PodStatsReader values that the recorded-tree tests leave open: the per-device and per-interface detail
behind the totals (the sampler's monotonic per-device counters are built from it), which disks count and
when that decision is refreshed, v2 before v1 on hybrid nodes, the v1 blkio files' order, and what a pod
vanishing mid-read reports. Small hand-made trees under tmp_path; no root, no real cgroups."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

from exporter import podstats
from exporter.cgroups import PodCgroupFinder
from exporter.model import DiskCounters, NetCounters, PodCgroup
from exporter.podstats import PodStatsReader, PodVanished, blkio_devices, io_stat_devices
from tests.exporter_fakes import FakeClock
from tests.support.cgroups import RecordingErrors, copy_node_tree

UID = "5a5a5a5a-0000-4000-8000-00000000000b"
# diskstats of the hand-made node: one whole disk (sdq), its partition, a device-mapper device; numbers
# that no real machine's /proc/diskstats names, so a reader looking at the real /proc or /sys differs.
DISKSTATS = (" 240 7 sdq 1 0 8 0 1 0 8 0 0 0 0\n"
             " 240 8 sdq1 1 0 8 0 1 0 8 0 0 0 0\n"
             " 240 9 dm-9 1 0 8 0 1 0 8 0 0 0 0\n")
IO_STAT = ("240:7 rbytes=10 wbytes=20 rios=1 wios=2\n"
           "240:8 rbytes=1 wbytes=2 rios=1 wios=1\n"
           "240:9 rbytes=100 wbytes=200 rios=1 wios=1\n")


def node(tmp_path: Path) -> tuple[str, str]:
    """(proc root, sys root) of a node with the devices of DISKSTATS and no process."""
    proc, sys = tmp_path / "proc", tmp_path / "sys"
    proc.mkdir()
    (proc / "diskstats").write_text(DISKSTATS)
    (sys / "block/sdq/sdq1").mkdir(parents=True)
    (sys / "block/sdq/sdq1/partition").write_text("1\n")
    (sys / "block/dm-9").mkdir()
    return str(proc), str(sys)


def cgroup_dir(path: Path, files: dict[str, str] | None = None) -> str:
    """A cgroup-like directory holding `files` (name -> text) and an empty cgroup.procs."""
    path.mkdir(parents=True)
    (path / "cgroup.procs").write_text("")
    for name, text in (files or {}).items():
        (path / name).write_text(text)
    return str(path)


def v2_pod(tmp_path: Path, io_stat: str | None = IO_STAT) -> PodCgroup:
    files = {"cpu.stat": "usage_usec 1500000\n", "memory.current": "1000\n",
             "memory.stat": "inactive_file 400\n"}
    if io_stat is not None:
        files["io.stat"] = io_stat
    return PodCgroup(uid=UID, qos="burstable", version=2, driver="systemd",
                     paths={"unified": cgroup_dir(tmp_path / "pod", files)})


def test_only_whole_disks_are_kept_device_by_device(tmp_path: Path) -> None:
    proc, sys = node(tmp_path)
    errors = RecordingErrors()
    usage = PodStatsReader(proc_root=proc, sys_root=sys, errors=errors).read(v2_pod(tmp_path))
    assert usage is not None
    # the partition repeats its disk's bytes and dm-9 is stacked: only sdq counts
    assert usage.disk_devices == {"240:7": DiskCounters(read_bytes=10, written_bytes=20)}
    assert usage.disk == DiskCounters(10, 20)
    assert (usage.cpu_seconds, usage.memory_usage_bytes, usage.memory_working_set_bytes) == (1.5, 1000, 600)
    assert (usage.network, usage.network_interfaces, usage.host_network) == (None, None, False)
    assert errors.records == []


def test_disk_decisions_are_cached_for_a_minute_of_the_readers_clock(tmp_path: Path) -> None:
    proc, sys = node(tmp_path)
    clock = FakeClock(1000.0)
    reader = PodStatsReader(proc_root=proc, sys_root=sys, clock=clock)
    pod = v2_pod(tmp_path)
    first = reader.read(pod)
    assert first is not None and set(first.disk_devices or {}) == {"240:7"}
    # 240:9 is now a new whole disk (device numbers are reused): the cached decision holds for 60 s ...
    Path(proc, "diskstats").write_text(DISKSTATS.replace("dm-9", "sdr"))
    Path(sys, "block/sdr").mkdir()
    clock.advance(59.0)
    cached = reader.read(pod)
    assert cached is not None and set(cached.disk_devices or {}) == {"240:7"}
    clock.advance(1.0)  # ... then the devices are looked at again
    fresh = reader.read(pod)
    assert fresh is not None and fresh.disk_devices == {"240:7": DiskCounters(10, 20),
                                                        "240:9": DiskCounters(100, 200)}
    assert fresh.disk == DiskCounters(110, 220)


def test_hybrid_pod_takes_io_stat_before_blkio(tmp_path: Path) -> None:
    proc, sys = node(tmp_path)
    pod = v2_pod(tmp_path, io_stat="240:7 rbytes=10 wbytes=20\n")
    blkio = cgroup_dir(tmp_path / "blkio", {"blkio.throttle.io_service_bytes_recursive":
                                             "240:7 Read 999\n240:7 Write 888\n240:7 Total 1887\n"})
    hybrid = PodCgroup(uid=UID, qos="burstable", version=1, driver="cgroupfs",
                       paths={**pod.paths, "blkio": blkio})
    reader = PodStatsReader(proc_root=proc, sys_root=sys)
    usage = reader.read(hybrid)
    assert usage is not None and usage.disk_devices == {"240:7": DiskCounters(10, 20)}
    # without io.stat (io controller not enabled in the unified tree) the v1 file is the source
    Path(pod.paths["unified"], "io.stat").unlink()
    usage = reader.read(hybrid)
    assert usage is not None and usage.disk_devices == {"240:7": DiskCounters(999, 888)}


@pytest.mark.parametrize("present, expected", [
    (("blkio.throttle.io_service_bytes_recursive", "blkio.io_service_bytes_recursive",
      "blkio.throttle.io_service_bytes"), DiskCounters(1, 2)),
    (("blkio.io_service_bytes_recursive", "blkio.throttle.io_service_bytes"), DiskCounters(3, 4)),
    (("blkio.throttle.io_service_bytes",), DiskCounters(5, 6)),
    ((), None),
])
def test_v1_blkio_files_in_order(tmp_path: Path, present: tuple[str, ...],
                                 expected: DiskCounters | None) -> None:
    proc, sys = node(tmp_path)
    values = {"blkio.throttle.io_service_bytes_recursive": (1, 2), "blkio.io_service_bytes_recursive": (3, 4),
              "blkio.throttle.io_service_bytes": (5, 6)}
    blkio = cgroup_dir(tmp_path / "blkio")
    for name in present:
        r, w = values[name]
        Path(blkio, name).write_text(f"240:7 Read {r}\n240:7 Write {w}\n240:7 Total {r + w}\nTotal {r + w}\n")
    cpuacct = cgroup_dir(tmp_path / "cpuacct", {"cpuacct.usage": "2000000000\n"})
    pod = PodCgroup(uid=UID, qos="besteffort", version=1, driver="cgroupfs",
                    paths={"cpuacct": cpuacct, "blkio": blkio})
    usage = PodStatsReader(proc_root=proc, sys_root=sys).read(pod)
    assert usage is not None and usage.cpu_seconds == 2.0
    assert usage.disk == expected
    assert usage.disk_devices == (None if expected is None else {"240:7": expected})


def test_network_interfaces_are_passed_through(tmp_path: Path) -> None:
    tree = copy_node_tree("node-b", tmp_path)
    cgs = {cg.uid: cg for cg in PodCgroupFinder(cgroup_root=str(tree / "cgroup")).find()}
    reader = PodStatsReader(proc_root=str(tree / "proc"), sys_root=str(tree / "sys"))
    usage = reader.read(cgs["6f8a0b2c-4d5e-4f6a-8182-1d3e4f5a6b8c"])
    assert usage is not None
    # every interface but lo (net1: a second network through multus), each with its own counters
    assert usage.network_interfaces == {"eth0": NetCounters(1500, 2500), "net1": NetCounters(10, 20)}
    assert usage.network == NetCounters(1510, 2520)


def test_parsers_per_device() -> None:
    # a device listed twice keeps every byte; a device with only Write lines reads 0 bytes, not None
    assert blkio_devices("8:0 Read 1\n8:0 Read 2\n8:0 Write 4\n8:0 Write 8\n8:16 Write 5\n8:0 Total 15\n"
                         "Total 20\n") == {"8:0": DiskCounters(3, 12), "8:16": DiskCounters(0, 5)}
    # a blank line in the middle does not end the file
    assert io_stat_devices("8:0 rbytes=1 wbytes=2\n\n8:16 rbytes=3 wbytes=4 rios=9\n") == {
        "8:0": DiskCounters(1, 2), "8:16": DiskCounters(3, 4)}
    # garbage in a value is an error (reported, the pod's disk figure None), never a silent 0
    with pytest.raises(ValueError):
        io_stat_devices("8:0 rbytes=1=2 wbytes=3\n")


def test_a_pod_whose_blkio_directory_vanishes_is_skipped_and_says_which(tmp_path: Path) -> None:
    tree = copy_node_tree("node-c", tmp_path)
    cg = {c.uid: c for c in PodCgroupFinder(cgroup_root=str(tree / "cgroup")).find()}[
        "9c1d3e5f-7a8b-4c9d-b4b5-4a6b7c8d9e0f"]
    shutil.rmtree(cg.paths["blkio"])  # CPU and memory still readable: the disk read finds it gone
    errors = RecordingErrors()
    reader = PodStatsReader(proc_root=str(tree / "proc"), sys_root=str(tree / "sys"), errors=errors)
    assert reader.read(cg) is None
    ((source, detail, exc),) = errors.records
    assert (source, detail) == ("cgroup", f"pod {cg.uid} vanished mid-read; skipped this cycle")
    assert isinstance(exc, PodVanished) and str(exc) == f"{cg.paths['blkio']} is gone"
    assert isinstance(exc.__cause__, FileNotFoundError)


def test_enodev_from_a_removed_cgroup_skips_the_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Reading a file of a cgroup removed under us fails with ENODEV (not ENOENT) on some kernels.
    gone = OSError(errno.ENODEV, "No such device", "/sys/fs/cgroup/x/memory.current")

    def removed(*_args: object, **_kw: object) -> None:
        raise gone

    monkeypatch.setattr(podstats, "memory_bytes", removed)
    proc, sys = node(tmp_path)
    errors = RecordingErrors()
    assert PodStatsReader(proc_root=proc, sys_root=sys, errors=errors).read(v2_pod(tmp_path)) is None
    ((source, detail, exc),) = errors.records
    assert (source, detail) == ("cgroup", f"pod {UID} vanished mid-read; skipped this cycle")
    assert isinstance(exc, PodVanished) and str(exc) == str(gone) and exc.__cause__ is gone


def test_a_bad_file_is_reported_with_its_field_and_exception(tmp_path: Path) -> None:
    proc, sys = node(tmp_path)
    pod = v2_pod(tmp_path)
    Path(pod.paths["unified"], "cpu.stat").write_text("usage_usec lots\n")
    Path(pod.paths["unified"], "io.stat").unlink()
    Path(pod.paths["unified"], "io.stat").mkdir()  # unreadable, but the pod is there
    errors = RecordingErrors()
    usage = PodStatsReader(proc_root=proc, sys_root=sys, errors=errors).read(pod)
    assert usage is not None
    assert (usage.cpu_seconds, usage.memory_working_set_bytes, usage.disk, usage.disk_devices) == (
        None, 600, None, None)
    assert [(s, d) for s, d, _e in errors.records] == [
        ("cgroup", f"pod {UID}: cpu file has unexpected content"),
        ("cgroup", f"pod {UID}: reading disk failed")]
    assert isinstance(errors.records[0][2], ValueError)
    assert isinstance(errors.records[1][2], IsADirectoryError)
