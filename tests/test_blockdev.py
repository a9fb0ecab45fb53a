"""One "whole physical disk" rule for the host's diskstats and the pods' v1 blkio and v2 io.stat (issue 10,
item 3).

On an LVM/device-mapper or md node, the kernel lists a container's I/O on the dm device *and* on the disk
beneath it with the same bytes (v1 `blkio.throttle.*`: `8:48` and `253:2`, as in netdata issue #1157).
The tree built here has a disk sdd (8:48) with a partition sdd1 (8:49) under an LVM volume dm-2 (253:2),
an md RAID md0 (9:0) over sde (8:64), a bcache0 (252:0) stacked on sde too (stacked by `slaves/`, not by
name), a zram0 on major 253 (dynamic majors: the number alone never decides) and a loop0 (7:0). Only sdd
and sde are storage of their own; each reader must count them and nothing else, whichever of the three
sources (sysfs' device index, /sys/block with diskstats names, names alone) the node offers.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter.blockdev import BlockDevices
from exporter.host import HostReader
from exporter.model import DiskCounters, PodCgroup
from exporter.podstats import PodStatsReader

SECTOR = 512
# (major, minor, name, sysfs directory under sys/devices, slaves, sectors read, sectors written)
DEVICES = [
    (8, 48, "sdd", "pci0000:00/0000:00:10.0/host2/target2:0:0/2:0:0:0/block/sdd", [], 1000, 3000),
    (8, 49, "sdd1", "pci0000:00/0000:00:10.0/host2/target2:0:0/2:0:0:0/block/sdd/sdd1", [], 1000, 3000),
    (8, 64, "sde", "pci0000:00/0000:00:10.0/host2/target2:0:1/2:0:1:0/block/sde", [], 500, 700),
    (253, 2, "dm-2", "virtual/block/dm-2", ["sdd1"], 1000, 3000),
    (9, 0, "md0", "virtual/block/md0", ["sde"], 400, 600),
    (252, 0, "bcache0", "virtual/block/bcache0", ["sde"], 100, 100),
    (253, 0, "zram0", "virtual/block/zram0", [], 77, 77),
    (7, 0, "loop0", "virtual/block/loop0", [], 66, 0),
]
WHOLE = {"8:48", "8:64"}
LAYOUTS = ("sysfs dev index", "sys/block + diskstats names", "names only")


def build(root: Path, layout: str) -> Path:
    """A /proc + /sys tree for `layout`; returns root."""
    (root / "proc").mkdir(parents=True)
    (root / "proc/diskstats").write_text("".join(
        f"{ma:>4} {mi:>7} {name} 10 0 {r} 9 8 0 {w} 7 0 15 16 0 0 0 0 1 2\n"
        for ma, mi, name, _, _, r, w in DEVICES))
    if layout == "names only":
        return root
    sys = root / "sys"
    (sys / "block").mkdir(parents=True)
    for ma, mi, name, rel, slaves, _, _ in DEVICES:
        d = sys / "devices" / rel
        (d / "slaves").mkdir(parents=True)
        (d / "dev").write_text(f"{ma}:{mi}\n")
        if name[-1].isdigit() and name.startswith("sd"):
            (d / "partition").write_text(name[3:] + "\n")
        else:  # /sys/block lists whole devices only (links into devices/)
            os.symlink(os.path.relpath(d, sys / "block"), sys / "block" / name)
        for s in slaves:
            os.symlink("../../" + s, d / "slaves" / s)  # target need not resolve for the rule
        if layout == "sysfs dev index":
            (sys / "dev/block").mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(d, sys / "dev/block"), sys / "dev/block" / f"{ma}:{mi}")
    return root


@pytest.mark.parametrize("layout", LAYOUTS)
def test_one_rule_decides_every_device(tmp_path: Path, layout: str) -> None:
    tree = build(tmp_path, layout)
    devices = BlockDevices(sys_root=str(tree / "sys"), proc_root=str(tree / "proc"))
    decided = {f"{ma}:{mi}" for ma, mi, *_ in DEVICES if devices.is_whole_disk(f"{ma}:{mi}")}
    # Without any sysfs, bcache0's stacking is invisible: only its name could tell, and the name rule does
    # not know it. With either sysfs source its slaves/ give it away.
    assert decided == WHOLE | ({"252:0"} if layout == "names only" else set())


@pytest.mark.parametrize("layout", LAYOUTS)
def test_host_counts_whole_physical_disks_only(tmp_path: Path, layout: str) -> None:
    tree = build(tmp_path, layout)
    disk = HostReader(proc_root=str(tree / "proc"), sys_root=str(tree / "sys"), rootfs=str(tree)).read().disk
    extra = (100, 100) if layout == "names only" else (0, 0)  # bcache0, see above
    assert disk == DiskCounters((1000 + 500 + extra[0]) * SECTOR, (3000 + 700 + extra[1]) * SECTOR)


# One container's writes as the kernel lists them on an LVM node: the dm volume and the disk below.
V1_BLKIO = """\
8:48 Read 4096
8:48 Write 1048576
8:48 Sync 1048576
8:48 Async 4096
8:48 Total 1052672
253:2 Read 4096
253:2 Write 1048576
253:2 Sync 1048576
253:2 Async 4096
253:2 Total 1052672
9:0 Read 512
9:0 Write 1024
8:64 Read 512
8:64 Write 1024
7:0 Read 99
7:0 Write 0
Total 2106467
"""
V2_IO_STAT = """\
8:48 rbytes=4096 wbytes=1048576 rios=1 wios=256 dbytes=0 dios=0
253:2 rbytes=4096 wbytes=1048576 rios=1 wios=256 dbytes=0 dios=0
9:0 rbytes=512 wbytes=1024 rios=1 wios=1 dbytes=0 dios=0
8:64 rbytes=512 wbytes=1024 rios=1 wios=1 dbytes=0 dios=0
253:0 rbytes=77 wbytes=77 rios=1 wios=1 dbytes=0 dios=0
"""


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("controller", "filename", "text"), [
    ("blkio", "blkio.throttle.io_service_bytes_recursive", V1_BLKIO),
    ("unified", "io.stat", V2_IO_STAT),
], ids=["v1-blkio", "v2-io.stat"])
def test_pod_io_counts_each_byte_once(tmp_path: Path, layout: str, controller: str, filename: str,
                                      text: str) -> None:
    tree = build(tmp_path, layout)
    pod = tree / "cgroup/kubepods/podf00"
    pod.mkdir(parents=True)
    (pod / filename).write_text(text)
    (pod / "cgroup.procs").write_text("")
    cg = PodCgroup(uid="f00", qos="guaranteed", version=2 if controller == "unified" else 1,
                   driver="cgroupfs", paths={controller: str(pod)})
    usage = PodStatsReader(proc_root=str(tree / "proc"), sys_root=str(tree / "sys")).read(cg)
    assert usage is not None
    assert usage.disk == DiskCounters(4096 + 512, 1048576 + 1024)
    assert usage.disk_devices is not None and set(usage.disk_devices) == WHOLE


def test_decisions_are_cached_and_expire(tmp_path: Path) -> None:
    tree = build(tmp_path, "sysfs dev index")
    now = [0.0]
    devices = BlockDevices(sys_root=str(tree / "sys"), proc_root=str(tree / "proc"), ttl=60,
                           clock=lambda: now[0])
    assert devices.is_whole_disk("8:48")
    # dm-2 is removed and its number reused by a plain disk: the cached answer holds until `ttl`
    link = tree / "sys/dev/block/253:2"
    assert not devices.is_whole_disk("253:2")
    link.unlink()
    os.symlink(os.readlink(tree / "sys/dev/block/8:64"), link)
    now[0] = 30
    assert not devices.is_whole_disk("253:2")  # cached
    now[0] = 61
    assert devices.is_whole_disk("253:2")
