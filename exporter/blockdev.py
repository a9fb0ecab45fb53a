"""Which block devices are whole physical disks: one rule for the host's diskstats and the pods' I/O files.

Only whole physical disks are counted. Partitions repeat their disk's bytes; device-mapper (LVM, crypt,
multipath) and md (software RAID) devices are stacked on disks whose bytes the kernel counts again
underneath (a v1 `blkio.throttle.*` file lists a container's writes on both `253:2` and the `8:48` below
it); loop, ram, zram, nbd, floppy and optical devices are not where node workloads store data.

A device is decided by its number (MAJ:MIN, as io.stat and blkio name it) through, in order:
1. `<sys>/dev/block/MAJ:MIN` (the kernel's own index): not a disk when it has a `partition` file, a
   name in the list above, or a non-empty `slaves/` (stacked on other devices, whatever its name);
2. without `<sys>/dev/block`: the name from `<proc>/diskstats`, a whole device when `<sys>/block` lists it
   (partitions live one level deeper), with the same name and `slaves/` tests;
3. without either directory: the name alone (`sda1`, `nvme0n1p1` are partitions; a stacked device with
   an unknown name such as bcache0 cannot be told apart here).
Device numbers are dynamic (253 is device-mapper on one node, zram on another), so the number alone never
decides. A device none of these can place (gone between two reads) is counted: nothing says it is a copy.
Decisions are cached for `ttl` seconds; a removed device's number may be reused by a new one.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable

# loop*, ram*: files and RAM presented as disks; zram*: compressed RAM (node_exporter drops it too);
# dm-*, md*: stacked on real disks; nbd*: network block devices (bytes counted on the network);
# fd*, sr*: floppy and optical drives.
_NOT_STORAGE = re.compile(r"^(loop|ram|zram|dm-|md|nbd|fd|sr)\d*")
# Partitions by name, for when sysfs is not mounted: sda1, vdb2, xvda1, nvme0n1p1, mmcblk0p1.
_PARTITION = re.compile(r"^((s|v|h|xv)d[a-z]+\d+|(nvme\d+n\d+|mmcblk\d+)p\d+)$")


def name_is_whole_disk(name: str) -> bool:
    """The name-only rule (no sysfs): not a partition and not a stacked or non-storage device."""
    return not _NOT_STORAGE.match(name) and not _PARTITION.match(name)


class BlockDevices:
    """Decides whether MAJ:MIN (or a diskstats name) is a whole physical disk; see the module docstring."""

    def __init__(self, *, sys_root: str = "/sys", proc_root: str = "/proc", ttl: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._sys = sys_root
        self._proc = proc_root
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, bool] = {}
        self._names: dict[str, str] = {}  # MAJ:MIN -> name from diskstats (fallbacks 2 and 3 only)
        self._expires = 0.0

    def is_whole_disk(self, dev: str, name: str | None = None) -> bool:
        """Whether device `dev` ("MAJ:MIN") is a whole physical disk; `name` spares a diskstats lookup."""
        now = self._clock()
        if now >= self._expires:
            self._cache.clear()
            self._names.clear()
            self._expires = now + self._ttl
        hit = self._cache.get(dev)
        if hit is None:
            hit = self._cache[dev] = self._decide(dev, name)
        return hit

    def _decide(self, dev: str, name: str | None) -> bool:
        index = os.path.join(self._sys, "dev", "block")
        if os.path.isdir(index):
            return _sysfs_whole_disk(os.path.join(index, dev))
        name = name or self._name(dev)
        if name is None:
            return True
        block = os.path.join(self._sys, "block")
        try:
            whole = set(os.listdir(block))
        except OSError:
            return name_is_whole_disk(name)
        return name in whole and not _NOT_STORAGE.match(name) and not _stacked(os.path.join(block, name))

    def _name(self, dev: str) -> str | None:
        if not self._names:
            try:
                with open(os.path.join(self._proc, "diskstats"), encoding="ascii") as f:
                    for line in f:
                        fields = line.split()
                        if len(fields) >= 3:
                            self._names[f"{fields[0]}:{fields[1]}"] = fields[2]
            except OSError:
                return None
        return self._names.get(dev)


def _sysfs_whole_disk(path: str) -> bool:
    """Rule 1 on `<sys>/dev/block/MAJ:MIN`, a link to the device's directory."""
    try:
        real = os.path.realpath(path, strict=True)
    except OSError:
        return True  # not (any more) in the kernel's index: nothing says it is a copy
    if _NOT_STORAGE.match(os.path.basename(real)) or os.path.exists(os.path.join(real, "partition")):
        return False
    return not _stacked(real)


def _stacked(device_dir: str) -> bool:
    """Whether the device is built on others (dm, md, bcache...): its `slaves/` lists them."""
    try:
        return bool(os.listdir(os.path.join(device_dir, "slaves")))
    except OSError:
        return False  # no slaves directory (old kernels, some drivers): stacked on nothing
