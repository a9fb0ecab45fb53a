"""tests/support/live_tree.py: the exporter's own readers see every counter of a live tree grow at the
stated rates and every gauge stay as recorded (what the Grafana query test relies on for data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.cgroups import PodCgroupFinder
from exporter.host import HostReader
from exporter.model import HostSample, PodUsage
from exporter.podstats import PodStatsReader
from tests.exporter_fakes import FakeClock
from tests.support import live_tree
from tests.support.live_tree import LiveTree

NODES = Path(__file__).resolve().parent / "fixtures" / "nodes"
DT = 10.0


def _host(root: Path) -> HostSample:
    return HostReader(proc_root=str(root / "proc"), sys_root=str(root / "sys"), rootfs=str(root)).read()


def _pods(root: Path) -> dict[str, PodUsage | None]:
    reader = PodStatsReader(proc_root=str(root / "proc"))
    return {cg.uid: reader.read(cg) for cg in PodCgroupFinder(cgroup_root=str(root / "cgroup")).find()}


@pytest.mark.parametrize("node", ["node-a", "node-b", "node-c"])
def test_counters_grow_at_their_rates_and_gauges_stay(tmp_path: Path, node: str) -> None:
    clock = FakeClock(100.0)
    tree = LiveTree(NODES / node, tmp_path / node, clock=clock)
    h0, p0 = _host(tree.root), _pods(tree.root)
    clock.advance(DT)
    tree.advance()
    h1, p1 = _host(tree.root), _pods(tree.root)

    assert h0.cpu and h1.cpu and h0.cpu_count and h0.disk and h1.disk and h0.network and h1.network
    busy = h1.cpu.busy_seconds - h0.cpu.busy_seconds
    total = h1.cpu.total_seconds - h0.cpu.total_seconds
    assert busy / total == pytest.approx(live_tree.NODE_BUSY, rel=0.01)
    assert total == pytest.approx(DT * h0.cpu_count, rel=0.01)
    assert h1.disk.read_bytes - h0.disk.read_bytes > 0
    assert h1.network.receive_bytes - h0.network.receive_bytes > 0
    assert h1.memory_total_bytes == h0.memory_total_bytes
    assert h1.memory_available_bytes == h0.memory_available_bytes

    assert set(p1) == set(p0)
    for uid, before in p0.items():
        after = p1[uid]
        assert before is not None and after is not None, uid
        assert before.cpu_seconds is not None and after.cpu_seconds is not None
        used = after.cpu_seconds - before.cpu_seconds
        assert used == pytest.approx(DT * live_tree.POD_CORES, rel=0.01), uid
        assert after.memory_working_set_bytes == before.memory_working_set_bytes, uid
        if before.network is not None:
            assert after.network is not None
            assert after.network.receive_bytes > before.network.receive_bytes, uid
    # Some pod on every tree has block I/O that grows (pods without io.stat lines stay at 0).
    grown = [u for u, b in p0.items() if b and b.disk and (d := p1[u]) and d.disk
             and d.disk.read_bytes > b.disk.read_bytes]
    assert grown


def test_the_copy_leaves_the_recorded_tree_alone(tmp_path: Path) -> None:
    before = (NODES / "node-a" / "proc" / "stat").read_text()
    clock = FakeClock()
    tree = LiveTree(NODES / "node-a", tmp_path / "a", clock=clock)
    clock.advance(60)
    tree.advance()
    assert (NODES / "node-a" / "proc" / "stat").read_text() == before
    assert (tree.root / "proc" / "stat").read_text() != before
