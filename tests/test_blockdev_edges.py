"""BlockDevices at its edges: devices the kernel's index does not place, devices with no `slaves/`,
short diskstats lines, the name a caller already knows, the defaults."""

from __future__ import annotations

import os
from pathlib import Path

from exporter.blockdev import BlockDevices


def indexed(root: Path, ma: int, mi: int, name: str, *, slaves: bool = True) -> None:
    """`<sys>/devices/virtual/block/<name>` and its `<sys>/dev/block/MAJ:MIN` link."""
    d = root / "sys" / "devices" / "virtual" / "block" / name
    d.mkdir(parents=True)
    if slaves:
        (d / "slaves").mkdir()
    (root / "sys" / "dev" / "block").mkdir(parents=True, exist_ok=True)
    os.symlink(d, root / "sys" / "dev" / "block" / f"{ma}:{mi}")


def test_a_device_missing_from_the_kernels_index_is_counted(tmp_path: Path) -> None:
    indexed(tmp_path, 8, 0, "sda")
    # Removed meanwhile: the link names a dm device that is gone, which must not decide anything.
    os.symlink(tmp_path / "sys/devices/virtual/block/dm-9", tmp_path / "sys" / "dev" / "block" / "8:16")
    b = BlockDevices(sys_root=str(tmp_path / "sys"), proc_root=str(tmp_path / "proc"))
    assert b.is_whole_disk("8:0") is True
    assert b.is_whole_disk("8:16") is True  # nothing says it is a copy
    assert b.is_whole_disk("8:32") is True  # never there at all


def test_a_device_without_a_slaves_directory_is_stacked_on_nothing(tmp_path: Path) -> None:
    indexed(tmp_path, 8, 0, "sda", slaves=False)
    indexed(tmp_path, 252, 0, "bcache0")
    os.symlink("../../sda", tmp_path / "sys/devices/virtual/block/bcache0/slaves/sda")
    b = BlockDevices(sys_root=str(tmp_path / "sys"), proc_root=str(tmp_path / "proc"))
    assert b.is_whole_disk("8:0") is True
    assert b.is_whole_disk("252:0") is False


def diskstats_node(root: Path, lines: str) -> BlockDevices:
    """No <sys>/dev/block: decided by diskstats names and <sys>/block."""
    (root / "proc").mkdir()
    (root / "proc" / "diskstats").write_text(lines)
    (root / "sys" / "block" / "sda").mkdir(parents=True)
    (root / "sys" / "block" / "vdb").mkdir(parents=True)
    return BlockDevices(sys_root=str(root / "sys"), proc_root=str(root / "proc"))


def test_diskstats_names_with_exactly_three_fields(tmp_path: Path) -> None:
    b = diskstats_node(tmp_path, "8 0 sda 1 2 3\n8 1 sda1\n252 0 vdb 1 2 3 4\n7 0\n")
    assert b.is_whole_disk("8:0") is True
    assert b.is_whole_disk("8:1") is False  # named by a three-field line: a partition, not in /sys/block
    assert b.is_whole_disk("252:0") is True
    assert b.is_whole_disk("7:0") is True  # no name at all: counted


def test_the_name_a_caller_knows_spares_the_lookup_and_decides(tmp_path: Path) -> None:
    b = diskstats_node(tmp_path, "8 0 sda 1 2 3\n")
    assert b.is_whole_disk("8:0", "sda1") is False  # the given name, not diskstats' "sda"
    assert b.is_whole_disk("9:9", "vdb") is True


def test_defaults_are_the_hosts_paths_and_a_minute() -> None:
    b = BlockDevices()
    assert (b._sys, b._proc, b._ttl) == ("/sys", "/proc", 60.0)
