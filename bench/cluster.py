"""A simulated cluster for the aggregator benchmark: fake exporters in their own processes, FakeKube here.

N exporters listen on distinct addresses 127.1.x.y (one port for all, as a Service's Endpoints give
it) and serve golden-format expositions of P pods that change every interval
(tests/aggregator_fakes.py), each snapshot's bodies rendered ahead of its time as a real exporter
serves its last sample's render. They are split over several processes, each serving a slice of the
addresses from its own asyncio thread, so the exporters neither share the aggregator's GIL nor one
core, at a lower priority than the aggregator (FAKE_NICE); all slices share one start time, so every
exporter's snapshot changes at the same instants.
FakeKube (a thread of the calling process) lists the addresses as the exporters' Endpoints.

    with FakeCluster(1000, 30, interval=5.0) as cluster:
        cluster.kubeconfig, cluster.targets, cluster.pids
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NS, SVC = "k8s-monitor", "k8s-monitor-exporter"
NODES_PER_PROCESS = 625  # 1000 nodes: 2 processes, 5000: 8
# The fakes stand for other machines: at a lower priority they take only CPU that the aggregator (and
# the API clients timing it) leave. At normal priority, 8 slices rendering their snapshots at once
# got 8 of every 9 time slices, and a 5000-node round's end_round (CPU only) took 6-9 s of wall time
# at 0.33 cores (2.8 s at nice 10; bench/results/2026-12-03e-target3-fakes.txt).
FAKE_NICE = 10


def host(i: int) -> str:
    return f"127.1.{i // 200}.{i % 200 + 1}"


def node_name(i: int) -> str:
    return f"node-{i:04d}"


def processes_for(nodes: int) -> int:
    return min(8, max(1, round(nodes / NODES_PER_PROCESS)))


class FakeCluster:
    """N fake exporters over `processes` child processes, behind a FakeKube Endpoints object."""

    def __init__(self, nodes: int, pods: int, *, interval: float, processes: int | None = None) -> None:
        self.nodes, self.pods, self.interval = nodes, pods, interval
        self.processes = processes or processes_for(nodes)
        self.port = 0
        self.children: list[subprocess.Popen[str]] = []
        self._kube: Any = None
        self.kubeconfig = ""

    @property
    def targets(self) -> list[str]:
        return [f"{host(i)}:{self.port}" for i in range(self.nodes)]

    @property
    def pids(self) -> list[int]:
        return [c.pid for c in self.children]

    def __enter__(self) -> FakeCluster:
        sys.path.insert(0, str(REPO))
        from tests.kube import FakeKube, objects
        from tests.support import free_port

        self.port = free_port(host(0))
        t0 = time.time() + 1.0  # every slice's snapshot 1 starts at the same instant
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        bounds = [self.nodes * k // self.processes for k in range(self.processes + 1)]
        try:
            for first, end in itertools.pairwise(bounds):
                self.children.append(subprocess.Popen(
                    [sys.executable, "-m", "bench.cluster", "--first", str(first), "--end", str(end),
                     "--pods", str(self.pods), "--interval", str(self.interval), "--port", str(self.port),
                     "--t0", repr(t0)],
                    cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
            for child in self.children:
                assert child.stdout is not None
                line = child.stdout.readline()
                if not line:
                    raise RuntimeError(f"fake exporter process {child.pid} exited before serving")
                json.loads(line)
            self._kube = FakeKube().__enter__()
            self._kube.create(objects.endpoints(
                SVC, NS, addresses=[(host(i), node_name(i)) for i in range(self.nodes)], port=self.port))
            self.kubeconfig = str(self._kube.kubeconfig)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def cpus(self) -> set[int]:
        """The CPUs the fake exporter processes may run on (their affinities, together)."""
        import psutil

        return {c for pid in self.pids for c in psutil.Process(pid).cpu_affinity()}

    def cpu_seconds(self) -> float:
        """User + system CPU of every fake exporter process so far."""
        import psutil

        total = 0.0
        for pid in self.pids:
            try:
                t = psutil.Process(pid).cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system
        return total

    def __exit__(self, *exc: object) -> None:
        if self._kube is not None:
            self._kube.__exit__(None, None, None)
            self._kube = None
        for child in self.children:
            if child.stdin is not None:
                child.stdin.close()  # a slice stops when its stdin closes
        for child in self.children:
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.send_signal(signal.SIGKILL)
                child.wait(10)
            if child.stdout is not None:
                child.stdout.close()
        self.children = []


def serve_slice(first: int, end: int, *, pods: int, interval: float, port: int, t0: float) -> int:
    """Serve exporters first..end-1 until stdin closes; print one JSON line once they all listen."""
    os.nice(FAKE_NICE)  # before its threads start: they inherit it
    sys.path.insert(0, str(REPO))
    from tests.aggregator_fakes import FakeExporters, FakeNode

    # every node its own values (FakeNode.variant), as pods differ from node to node in a cluster
    nodes = [FakeNode(host(i), node_name(i), pods=pods, port=port, variant=i) for i in range(first, end)]
    with FakeExporters(nodes, interval=interval, prerender=True, t0=t0):
        print(json.dumps({"serving": end - first}), flush=True)
        sys.stdin.read()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="serve one slice of the fake exporters (internal)")
    parser.add_argument("--first", type=int, required=True)
    parser.add_argument("--end", type=int, required=True)
    parser.add_argument("--pods", type=int, required=True)
    parser.add_argument("--interval", type=float, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--t0", type=float, required=True)
    a = parser.parse_args(argv)
    return serve_slice(a.first, a.end, pods=a.pods, interval=a.interval, port=a.port, t0=a.t0)


if __name__ == "__main__":
    sys.exit(main())
