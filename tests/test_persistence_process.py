"""`python -m aggregator --state-file` as a real process: SIGKILL and SIGTERM, restart, history present.

The exporter is an in-process fake (tests/aggregator_fakes.py) on 127.0.0.1; intervals are short so a
test takes seconds. Timeseries are compared as the API serves them, so the restored points are the
points a client saw before the restart, not merely "some data".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.aggregator_fakes import FakeExporters, FakeNode
from tests.support import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
NODE = "persist-node"
SERIES = [
    f"/api/nodes/{NODE}/timeseries",
    "/api/namespaces/shop/timeseries",
    "/api/deployments/app0/timeseries?namespace=payments",
    f"/api/pods/app0-{NODE}-1/timeseries?namespace=payments",
]


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as err:
        err.close()
        return None
    except OSError:
        return None


class Aggregator:
    """One aggregator process on a fresh port, its log in `log_path`."""

    def __init__(self, *, target: str, state: Path, log_path: Path, snapshot_interval: float) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aggregator", "--listen", f"127.0.0.1:{self.port}",
                 "--targets", target,
                 "--scrape-interval", "0.5", "--scrape-timeout", "0.4", "--stale-after", "2",
                 "--state-file", str(state), "--snapshot-interval", str(snapshot_interval),
                 "--log-format", "json"],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def get(self, path: str) -> Any:
        return _get(self.base + path)

    def series(self) -> dict[str, list[dict[str, Any]]]:
        out = {}
        for path in SERIES:
            doc = self.get(path)
            assert doc is not None, f"{path} did not answer 200"
            out[path] = doc["points"]
        return out

    def wait_ready(self) -> None:
        wait_until(lambda: self.proc.poll() is not None or self.get("/readyz"), timeout=60,
                   message="aggregator ready", interval=0.1)
        assert self.proc.poll() is None, f"exited {self.proc.returncode}: {self.log_path.read_text()}"

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@contextmanager
def aggregator(**kw: Any) -> Iterator[Aggregator]:
    agg = Aggregator(**kw)
    try:
        yield agg
    finally:
        agg.kill()


def _points(agg: Aggregator, n: int) -> None:
    wait_until(lambda: len((agg.get(SERIES[0]) or {"points": []})["points"]) >= n, timeout=60,
               message=f"{n} node points stored", interval=0.1)


def test_sigkill_loses_at_most_the_last_snapshot_interval(tmp_path: Path) -> None:
    state = tmp_path / "state.bin"
    log_path = tmp_path / "aggregator.log"
    with FakeExporters([FakeNode("127.0.0.1", NODE, pods=6)], interval=0.5) as fakes:
        target = fakes.nodes[0].target
        with aggregator(target=target, state=state, log_path=log_path, snapshot_interval=1.0) as first:
            first.wait_ready()
            _points(first, 6)
            seen = first.series()
            read_at = time.time()
            # The next periodic snapshot (at most one interval away) holds everything read above.
            wait_until(lambda: state.exists() and state.stat().st_mtime > read_at + 0.01, timeout=30,
                       message="a snapshot written after the series were read", interval=0.05)
            first.proc.send_signal(signal.SIGKILL)
            assert first.proc.wait(10) == -signal.SIGKILL
        with aggregator(target=target, state=state, log_path=log_path, snapshot_interval=1.0) as second:
            second.wait_ready()
            restored = second.series()
            for path, points in seen.items():
                assert len(points) >= 3, (path, points)
                assert restored[path][: len(points)] == points, f"{path}: history differs after SIGKILL"
            assert any("restored" in line["msg"] for line in second.log_lines())


def test_sigterm_writes_a_final_snapshot_and_restart_has_identical_history(tmp_path: Path) -> None:
    state = tmp_path / "state.bin"
    log_path = tmp_path / "aggregator.log"
    fakes = FakeExporters([FakeNode("127.0.0.1", NODE, pods=6)], interval=0.5)
    with fakes:
        target = fakes.nodes[0].target
        # A long interval: the only snapshot this process writes is the one on SIGTERM.
        first = Aggregator(target=target, state=state, log_path=log_path, snapshot_interval=3600)
        try:
            first.wait_ready()
            _points(first, 5)
        except BaseException:
            first.kill()
            raise
    # The exporter is gone: no point can be added after this read, so "identical" is exact.
    try:
        wait_until(lambda: (first.get(f"/api/nodes/{NODE}") or {}).get("status") == "down", timeout=30,
                   message="node marked down once its exporter is gone")
        seen = first.series()
        assert not state.exists()
        started = time.monotonic()
        first.proc.send_signal(signal.SIGTERM)
        assert first.proc.wait(30) == 0
        assert time.monotonic() - started < 30
    finally:
        first.kill()
    assert state.exists() and state.stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aggregator.log", "state.bin"]  # no temp file
    with aggregator(target=target, state=state, log_path=log_path, snapshot_interval=3600) as second:
        wait_until(lambda: second.get(f"/api/nodes/{NODE}/timeseries"), timeout=60,
                   message="restored node served", interval=0.1)
        assert second.series() == seen
        node = second.get(f"/api/nodes/{NODE}")
        assert node is not None and node["status"] == "down"


def test_a_corrupt_state_file_is_moved_aside_and_the_aggregator_starts_empty(tmp_path: Path) -> None:
    state = tmp_path / "state.bin"
    blob = b"K8SMSTAT" + os.urandom(200)
    state.write_bytes(blob)
    log_path = tmp_path / "aggregator.log"
    with (
        FakeExporters([FakeNode("127.0.0.1", NODE, pods=2)], interval=0.5) as fakes,
        aggregator(target=fakes.nodes[0].target, state=state, log_path=log_path, snapshot_interval=60) as agg,
    ):
        agg.wait_ready()
        (moved,) = tmp_path.glob("state.bin.corrupt-*")
        assert moved.read_bytes() == blob
        errors = [line for line in agg.log_lines() if line["level"].upper() == "ERROR"]
        assert any("unusable" in line["msg"] and "moved to" in line["msg"] for line in errors), errors
        _points(agg, 2)  # collecting as usual
        metrics = urllib.request.urlopen(agg.base + "/metrics", timeout=5).read().decode()
        assert 'k8smon_aggregator_errors_total{source="snapshot_load"} 1.0' in metrics
