"""HostReader's parsers value by value on small hand-written /proc and /sys trees: the stat line of
old kernels, CPUs counted from stat or the online list, meminfo without MemAvailable, diskstats edges."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter.host import HostReader, count_cpu_list
from exporter.model import NetCounters
from tests.support.cgroups import RecordingErrors

HZ = float(os.sysconf("SC_CLK_TCK"))
MEMINFO = "MemTotal:       16000 kB\nMemAvailable:    9000 kB\n"
STAT = "cpu  100 20 30 400 50 6 7 8 999 999\ncpu0 1 2 3 4\ncpu1 1 2 3 4\nintr 5 6\nctxt 7\n"


def node(tmp_path: Path, *, stat: str = STAT, meminfo: str = MEMINFO, diskstats: str = "",
         online: str | None = None) -> tuple[HostReader, RecordingErrors]:
    proc = tmp_path / "proc"
    (proc / "1" / "net").mkdir(parents=True)
    (proc / "stat").write_text(stat)
    (proc / "meminfo").write_text(meminfo)
    (proc / "diskstats").write_text(diskstats)
    (proc / "1" / "net" / "dev").write_text("Inter-|\n face |\n")
    sys = tmp_path / "sys"
    (sys / "devices" / "system" / "cpu").mkdir(parents=True)
    if online is not None:
        (sys / "devices" / "system" / "cpu" / "online").write_text(online)
    errors = RecordingErrors()
    return HostReader(proc_root=str(proc), sys_root=str(sys), rootfs=str(tmp_path), errors=errors), errors


def test_cpu_busy_and_total_leave_guest_time_out(tmp_path: Path) -> None:
    sample = node(tmp_path)[0].read()
    assert sample.cpu is not None
    # busy = user nice system irq softirq steal; guest is inside user already. total adds idle, iowait.
    assert sample.cpu.busy_seconds == (100 + 20 + 30 + 6 + 7 + 8) / HZ
    assert sample.cpu.total_seconds == (171 + 400 + 50) / HZ
    assert sample.cpu_count == 2  # cpu0, cpu1; not the total line, not intr/ctxt


def test_the_shortest_stat_line_of_old_kernels(tmp_path: Path) -> None:
    sample = node(tmp_path, stat="cpu 10 0 5 85\ncpu0 10 0 5 85\n")[0].read()
    assert sample.cpu is not None
    assert (sample.cpu.busy_seconds, sample.cpu.total_seconds) == (15 / HZ, 100 / HZ)


@pytest.mark.parametrize("first", ["cpu 1 2 3", "intr 1 2 3 4 5 6"])
def test_a_stat_without_the_cpu_total_first_is_an_error(tmp_path: Path, first: str) -> None:
    sample, errors = node(tmp_path, stat=f"{first}\ncpu0 1 2 3 4\n", online="0-1")
    reading = sample.read()
    assert reading.cpu is None
    assert reading.cpu_count == 2  # from the online list instead
    source, detail, exc = errors.records[0]
    assert (source, detail) == ("host", "reading host cpu failed")
    assert str(exc) == f"first line of stat is not the 'cpu' total: {first!r}"


def test_cpu_count_from_the_online_list_when_stat_lists_no_cpus(tmp_path: Path) -> None:
    reader, errors = node(tmp_path, stat="cpu 1 2 3 4\ncpufreq 9\n", online="0-3,8,10-11\n")
    assert reader.read().cpu_count == 7
    assert errors.records == []


def test_cpu_count_unknown_when_neither_source_has_it(tmp_path: Path) -> None:
    reader, errors = node(tmp_path, stat="cpu 1 2 3 4\n")
    assert reader.read().cpu_count is None
    assert [(s, d) for s, d, _ in errors.records] == [("host", "reading host cpu count failed")]


@pytest.mark.parametrize(("text", "count"),
                         [("0", 1), ("0-3", 4), ("0-3,8,10-11", 7), ("5\n", 1), ("2-2", 1)])
def test_count_cpu_list(text: str, count: int) -> None:
    assert count_cpu_list(text) == count


def test_memory_in_bytes(tmp_path: Path) -> None:
    sample = node(tmp_path)[0].read()
    assert (sample.memory_total_bytes, sample.memory_available_bytes) == (16000 * 1024, 9000 * 1024)


def test_a_meminfo_value_without_a_unit_is_bytes(tmp_path: Path) -> None:
    sample = node(tmp_path, meminfo="MemTotal: 5000\nMemAvailable: 3000 kB\n")[0].read()
    assert (sample.memory_total_bytes, sample.memory_available_bytes) == (5000, 3000 * 1024)


def test_available_memory_estimated_from_the_file_lru_without_memavailable(tmp_path: Path) -> None:
    meminfo = ("MemTotal: 10000 kB\nMemFree: 1000 kB\nBuffers: 50000 kB\nCached: 60000 kB\n"
               "SReclaimable: 200 kB\nActive(file): 300 kB\nInactive(file): 400 kB\n")
    sample = node(tmp_path, meminfo=meminfo)[0].read()
    assert sample.memory_available_bytes == (1000 + 200 + 300 + 400) * 1024


def test_available_memory_from_buffers_and_cached_on_the_oldest_kernels(tmp_path: Path) -> None:
    meminfo = "MemTotal: 10000 kB\nMemFree: 1000 kB\nBuffers: 50 kB\nCached: 600 kB\nSReclaimable: 7 kB\n"
    sample = node(tmp_path, meminfo=meminfo)[0].read()
    assert sample.memory_available_bytes == (1000 + 50 + 600 + 7) * 1024


def test_meminfo_without_memtotal_is_an_error(tmp_path: Path) -> None:
    reader, errors = node(tmp_path, meminfo="MemAvailable: 5 kB\n")
    sample = reader.read()
    assert (sample.memory_total_bytes, sample.memory_available_bytes) == (None, None)
    source, detail, exc = errors.records[0]
    assert (source, detail, str(exc)) == ("host", "reading host memory failed", "meminfo has no MemTotal")


def block_index(tmp_path: Path) -> None:
    """sda (8:0) and its partition sda1 (8:1) in the kernel's device index."""
    sys = tmp_path / "sys"
    sda = sys / "devices" / "pci0" / "block" / "sda"
    (sda / "sda1").mkdir(parents=True)
    (sda / "slaves").mkdir()
    (sda / "sda1" / "partition").write_text("1\n")
    (sys / "dev" / "block").mkdir(parents=True)
    os.symlink(sda, sys / "dev" / "block" / "8:0")
    os.symlink(sda / "sda1", sys / "dev" / "block" / "8:1")


def test_diskstats_whole_disks_only_blank_lines_skipped(tmp_path: Path) -> None:
    diskstats = ("   8       0 sda 1 0 100 0 2 0 300 0 0 0 0\n"
                 "\n"
                 "   8       1 sda1 1 0 100 0 2 0 300 0 0 0 0\n"
                 "   8      16 sdb 1 0 10 0 2 0 30\n")  # exactly ten fields: the oldest format still read
    block_index(tmp_path)
    sample = node(tmp_path, diskstats=diskstats)[0].read()
    assert sample.disk_devices is not None
    assert {k: (v.read_bytes, v.written_bytes) for k, v in sample.disk_devices.items()} == {
        "sda": (100 * 512, 300 * 512), "sdb": (10 * 512, 30 * 512)}


def test_a_short_diskstats_line_is_an_error(tmp_path: Path) -> None:
    reader, errors = node(tmp_path, diskstats="   8 0 sda 1 0 100 0 2 0\n")
    assert reader.read().disk is None
    source, detail, exc = errors.records[0]
    assert (source, detail) == ("host", "reading host disk failed")
    assert str(exc) == "diskstats line has 9 fields: '   8 0 sda 1 0 100 0 2 0\\n'"


@pytest.mark.parametrize("text", ["3-2", "4-1"])
def test_a_cpu_list_counting_no_cpu_is_an_error(text: str) -> None:
    # a reversed range counts zero (or fewer) CPUs: an error, never a count of 0
    with pytest.raises(ValueError) as raised:
        count_cpu_list(text)
    assert str(raised.value) == f"empty cpu list {text!r}"


def test_available_memory_estimate_without_sreclaimable(tmp_path: Path) -> None:
    # kernels before 2.6.19 have no SReclaimable line: it counts as 0 in the estimate
    meminfo = "MemTotal: 10000 kB\nMemFree: 1000 kB\nActive(file): 300 kB\nInactive(file): 400 kB\n"
    sample = node(tmp_path, meminfo=meminfo)[0].read()
    assert sample.memory_available_bytes == (1000 + 300 + 400) * 1024


NET_DEV = ("Inter-|\n face |\n    lo: 5 0 0 0 0 0 0 0 5 0 0 0 0 0 0 0\n"
           "  eth0: 100 0 0 0 0 0 0 0 200 0 0 0 0 0 0 0\n  veth1: 7 0 0 0 0 0 0 0 8 0 0 0 0 0 0 0\n"
           "  eth1: 1000 0 0 0 0 0 0 0 2000 0 0 0 0 0 0 0\n")


def test_network_interfaces_are_passed_through(tmp_path: Path) -> None:
    reader, errors = node(tmp_path)
    (tmp_path / "proc" / "1" / "net" / "dev").write_text(NET_DEV)
    sample = reader.read()
    assert sample.network_interfaces == {"eth0": NetCounters(100, 200), "eth1": NetCounters(1000, 2000)}
    assert sample.network == NetCounters(1100, 2200)
    assert errors.records == []


def test_network_falls_back_to_our_own_namespace_and_says_so(tmp_path: Path) -> None:
    reader, errors = node(tmp_path)
    (tmp_path / "proc" / "1" / "net" / "dev").unlink()
    (tmp_path / "proc" / "net").mkdir()
    (tmp_path / "proc" / "net" / "dev").write_text(NET_DEV)
    sample = reader.read()
    assert sample.network == NetCounters(1100, 2200)
    ((source, detail, exc),) = errors.records
    assert (source, detail) == ("host", "1/net/dev unreadable, trying the next source")
    assert isinstance(exc, FileNotFoundError)
    (tmp_path / "proc" / "net" / "dev").unlink()  # neither source: no network figure
    errors.records.clear()
    sample = reader.read()
    assert (sample.network, sample.network_interfaces) == (None, None)
    assert [(s, d) for s, d, _ in errors.records] == [
        ("host", "1/net/dev unreadable, trying the next source"),
        ("host", "net/dev unreadable, trying the next source"),
        ("host", "reading host network failed")]
    assert str(errors.records[-1][2]) == f"neither 1/net/dev nor net/dev readable under {tmp_path / 'proc'}"


def test_an_unreadable_root_filesystem_is_reported_as_such(tmp_path: Path) -> None:
    proc, sys = tmp_path / "proc", tmp_path / "sys"
    node(tmp_path)
    errors = RecordingErrors()
    sample = HostReader(proc_root=str(proc), sys_root=str(sys), rootfs=str(tmp_path / "gone"),
                        errors=errors).read()
    assert sample.filesystem is None and sample.memory_total_bytes == 16000 * 1024
    ((source, detail, exc),) = errors.records
    assert (source, detail) == ("host", "reading host filesystem failed")
    assert isinstance(exc, FileNotFoundError)


def test_an_interface_name_with_any_bytes_costs_nothing(tmp_path: Path) -> None:
    # dev_valid_name allows any byte but '/', ':', NUL and blanks: a Latin-1 name is not garbage
    reader, errors = node(tmp_path)
    (tmp_path / "proc" / "1" / "net" / "dev").write_bytes(
        NET_DEV.encode() + b"  w\xe9lan0: 10 0 0 0 0 0 0 0 20 0 0 0 0 0 0 0\n")
    sample = reader.read()
    assert sample.network == NetCounters(1110, 2220)
    assert errors.records == []
