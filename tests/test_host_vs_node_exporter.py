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


def sandwich(url: str, reader: HostReader) -> tuple[HostSample, NodeExporterReading, HostSample]:
    """Our read, a node_exporter scrape, our read again: cumulative counters of theirs must lie between
    ours, whatever else runs on the box meanwhile (no tolerance guessed from load)."""
    before = reader.read()
    with urllib.request.urlopen(url, timeout=10) as r:
        theirs = parse(r.read().decode())
    return before, theirs, reader.read()


def between(lo: float, x: float, hi: float, *, slack: float = 0.0) -> bool:
    return lo - slack <= x <= hi + slack


def test_host_figures_match_node_exporter(tmp_path: Path) -> None:
    errors = RecordingErrors()
    reader = HostReader(rootfs="/", errors=errors)
    with node_exporter() as url:
        a0, ne0, b0 = sandwich(url, reader)
        # Disk traffic we know of inside the window: 8 MiB written with O_DIRECT so it reaches the disk now.
        subprocess.run(["dd", "if=/dev/zero", f"of={tmp_path / 'io.bin'}", "bs=1M", "count=8", "oflag=direct",
                       "status=none"], check=True, timeout=60)
        time.sleep(1.5)  # the measurement window itself
        a1, ne1, b1 = sandwich(url, reader)
    assert errors.records == []
    for ours, ne in ((a0, ne0), (b0, ne0), (a1, ne1), (b1, ne1)):
        assert ours.cpu and ours.disk and ours.network and ours.filesystem
        assert ours.memory_total_bytes and ours.memory_available_bytes
        assert ours.cpu_count == ne.cpus
    assert a0.cpu and b0.cpu and a1.cpu and b1.cpu and a0.disk and b0.disk and a1.disk and b1.disk
    assert a0.network and b0.network and a1.network and b1.network and a1.filesystem and b1.filesystem
    assert a1.memory_available_bytes is not None and b1.memory_available_bytes is not None
    # The kernel converts each /proc/stat field to ticks separately, truncating: a sum of per-CPU
    # fields can trail the aggregate line by up to one tick per CPU per field (6 busy modes, 8 in all).
    tick = 1 / os.sysconf("SC_CLK_TCK")
    busy_slack = ne0.cpus * 6 * tick
    # iowait of an idle CPU is known to step backwards slightly on NO_HZ kernels: a little extra.
    total_slack = ne0.cpus * 8 * tick + 0.05

    for (a, ne, b) in ((a0, ne0, b0), (a1, ne1, b1)):
        # CPU: node_exporter sums the per-CPU lines, we read the aggregate line the kernel sums from the
        # same per-CPU ticks; its busy = user+nice+system+irq+softirq+steal like ours. Rounding (above)
        # is the only slack.
        assert a.cpu and b.cpu
        assert between(a.cpu.busy_seconds, ne.cpu_busy, b.cpu.busy_seconds, slack=busy_slack), (
            a.cpu, ne.cpu_busy, b.cpu)
        assert between(a.cpu.total_seconds, ne.cpu_total, b.cpu.total_seconds, slack=total_slack)
        # Disk and network: monotonic counters of the same devices (ours after our exclusions), so
        # theirs lies between our two reads exactly. Network: node_exporter reads netlink stats64 of its
        # own namespace, we read /proc/1/net/dev; here both are the host's namespace.
        assert a.disk and b.disk and a.network and b.network
        assert between(a.disk.read_bytes, ne.disk_read, b.disk.read_bytes)
        assert between(a.disk.written_bytes, ne.disk_written, b.disk.written_bytes)
        assert between(a.network.receive_bytes, ne.net_rx, b.network.receive_bytes)
        assert between(a.network.transmit_bytes, ne.net_tx, b.network.transmit_bytes)
        # Memory: MemTotal is fixed; MemAvailable moves both ways with other work, so it only has to lie
        # near our two reads (64 MiB: far more than a scrape's worth of churn, far less than a unit error).
        assert a.memory_total_bytes == ne.mem_total
        assert a.memory_available_bytes is not None and b.memory_available_bytes is not None
        lo, hi = sorted((a.memory_available_bytes, b.memory_available_bytes))
        assert between(lo, ne.mem_avail, hi, slack=64 * MIB)
    # The 8 MiB we wrote shows up in both, and the deltas agree up to what landed outside the sandwiches.
    assert b1.disk.written_bytes - a0.disk.written_bytes >= 8 * MIB
    assert between(a1.disk.written_bytes - b0.disk.written_bytes, ne1.disk_written - ne0.disk_written,
                   b1.disk.written_bytes - a0.disk.written_bytes)
    assert between(a1.cpu.busy_seconds - b0.cpu.busy_seconds, ne1.cpu_busy - ne0.cpu_busy,
                   b1.cpu.busy_seconds - a0.cpu.busy_seconds, slack=2 * busy_slack)

    # Filesystem of /: the size is fixed; available space moves with other writers (and our 8 MiB file).
    assert b1.filesystem.size_bytes == ne1.fs_size
    assert abs(b1.filesystem.avail_bytes - ne1.fs_avail) < 64 * MIB
