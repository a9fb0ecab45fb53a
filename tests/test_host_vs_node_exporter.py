"""HostReader cross-checked against Debian's prometheus-node-exporter, read side by side on this machine."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.host import DEFAULT_EXCLUDED_INTERFACES, HostReader
from exporter.model import HostSample
from tests.support import free_port, require_tool, wait_until
from tests.support.cgroups import RecordingErrors

MIB = 1024 * 1024
# Our whole-device rule restated (exporter/host.py): node_exporter's default filter keeps zram/dm/md/nbd.
OUR_SKIPPED_DISKS = re.compile(r"^(loop|ram|zram|dm-|md|nbd|fd|sr)\d*")
BUSY_MODES = {"user", "nice", "system", "irq", "softirq", "steal"}


@dataclass
class NodeExporterReading:
    cpu_busy: float
    cpu_total: float
    cpus: int
    mem_total: float
    mem_avail: float
    disk_read: float
    disk_written: float
    net_rx: float
    net_tx: float
    fs_size: float
    fs_avail: float


def parse(text: str) -> NodeExporterReading:
    busy = total = mem_total = mem_avail = rd = wr = rx = tx = size = avail = 0.0
    cpus: set[str] = set()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            lb = s.labels
            if s.name == "node_cpu_seconds_total":
                cpus.add(lb["cpu"])
                if lb["mode"] in BUSY_MODES:
                    busy += s.value
                if lb["mode"] in BUSY_MODES | {"idle", "iowait"}:
                    total += s.value
            elif s.name == "node_memory_MemTotal_bytes":
                mem_total = s.value
            elif s.name == "node_memory_MemAvailable_bytes":
                mem_avail = s.value
            elif s.name in ("node_disk_read_bytes_total", "node_disk_written_bytes_total"):
                # node_exporter already drops partitions by name; sum the devices our rule keeps
                if not OUR_SKIPPED_DISKS.match(lb["device"]):
                    if s.name == "node_disk_read_bytes_total":
                        rd += s.value
                    else:
                        wr += s.value
            elif s.name in ("node_network_receive_bytes_total", "node_network_transmit_bytes_total"):
                if not any(fnmatchcase(lb["device"], g) for g in DEFAULT_EXCLUDED_INTERFACES):
                    if s.name == "node_network_receive_bytes_total":
                        rx += s.value
                    else:
                        tx += s.value
            elif s.name == "node_filesystem_size_bytes" and lb.get("mountpoint") == "/":
                size = s.value
            elif s.name == "node_filesystem_avail_bytes" and lb.get("mountpoint") == "/":
                avail = s.value
    return NodeExporterReading(busy, total, len(cpus), mem_total, mem_avail, rd, wr, rx, tx, size, avail)


@contextlib.contextmanager
def node_exporter() -> Iterator[str]:
    binary = require_tool("prometheus-node-exporter")
    address = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [binary, f"--web.listen-address={address}", "--collector.disable-defaults", "--collector.cpu",
         "--collector.meminfo", "--collector.diskstats", "--collector.netdev", "--collector.filesystem"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://{address}/metrics"

    def up() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"node_exporter exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    try:
        wait_until(up, timeout=20, message=f"node_exporter answering on {url}")
        yield url
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()


def side_by_side(url: str, reader: HostReader) -> tuple[NodeExporterReading, HostSample, float]:
    """One node_exporter scrape and one HostReader read back to back, and how long the pair took."""
    start = time.monotonic()
    with urllib.request.urlopen(url, timeout=10) as r:
        theirs = parse(r.read().decode())
    ours = reader.read()
    return theirs, ours, time.monotonic() - start


def test_host_figures_match_node_exporter(tmp_path: Path) -> None:
    errors = RecordingErrors()
    reader = HostReader(rootfs="/", errors=errors)
    with node_exporter() as url:
        ne0, us0, gap0 = side_by_side(url, reader)
        # Disk traffic we know of inside the window: 8 MiB written with O_DIRECT so it reaches the disk now.
        subprocess.run(["dd", "if=/dev/zero", f"of={tmp_path / 'io.bin'}", "bs=1M", "count=8", "oflag=direct",
                       "status=none"], check=True, timeout=60)
        time.sleep(1.5)  # the measurement window itself
        ne1, us1, gap1 = side_by_side(url, reader)
    assert errors.records == []
    for us in (us0, us1):
        assert us.cpu and us.disk and us.network and us.filesystem and us.memory_total_bytes
    assert us0.cpu and us1.cpu and us0.disk and us1.disk and us0.network and us1.network
    assert us0.filesystem and us1.filesystem and us1.memory_available_bytes is not None

    # CPU. node_exporter sums the per-CPU lines, we read the aggregate line: the same ticks. The two
    # reads of a pair are `gap` seconds apart, in which every CPU can add up to `gap` seconds; plus 2
    # ticks of rounding per CPU line. Its busy = user+nice+system+irq+softirq+steal, like ours.
    assert us1.cpu_count == ne1.cpus
    slack = ne1.cpus * (gap0 + gap1) + 0.02 * ne1.cpus
    ours_busy = us1.cpu.busy_seconds - us0.cpu.busy_seconds
    theirs_busy = ne1.cpu_busy - ne0.cpu_busy
    assert ours_busy == pytest.approx(theirs_busy, abs=slack), (ours_busy, theirs_busy, slack)
    ours_total = us1.cpu.total_seconds - us0.cpu.total_seconds
    assert ours_total == pytest.approx(ne1.cpu_total - ne0.cpu_total, abs=slack)

    # Memory: MemTotal never changes; MemAvailable moves with whatever else runs (64 MiB is far more
    # than one scrape's worth of allocation on this box, far less than a wrong unit would be).
    assert us1.memory_total_bytes == ne1.mem_total
    assert abs(us1.memory_available_bytes - ne1.mem_avail) < 64 * MIB

    # Disk: cumulative counters of the same devices read a moment apart; the 8 MiB we wrote is in the
    # delta of both. 2 MiB covers other tests' I/O landing between the two reads of a pair.
    assert abs(us1.disk.written_bytes - ne1.disk_written) < 2 * MIB
    assert abs(us1.disk.read_bytes - ne1.disk_read) < 2 * MIB
    ours_written = us1.disk.written_bytes - us0.disk.written_bytes
    assert ours_written >= 8 * MIB
    assert ours_written == pytest.approx(ne1.disk_written - ne0.disk_written, abs=4 * MIB)

    # Network: the same interfaces (ours after exclusion) from the same namespace; node_exporter reads
    # netlink stats, we read /proc/1/net/dev: the same kernel counters. 64 KiB covers background packets.
    assert abs(us1.network.receive_bytes - ne1.net_rx) < 64 * 1024
    assert abs(us1.network.transmit_bytes - ne1.net_tx) < 64 * 1024
    assert us1.network.receive_bytes - us0.network.receive_bytes == pytest.approx(
        ne1.net_rx - ne0.net_rx, abs=64 * 1024)

    # Filesystem of /: the size is fixed; available space moves with other writers (and our 8 MiB file).
    assert us1.filesystem.size_bytes == ne1.fs_size
    assert abs(us1.filesystem.avail_bytes - ne1.fs_avail) < 64 * MIB
