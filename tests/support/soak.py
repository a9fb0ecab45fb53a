"""Soak helpers: many simulated nodes whose pods churn every snapshot, and the figures the soak judges.

`python -m tests.support.soak --nodes 200 ...` serves the nodes from one asyncio loop in a process of
its own (so the aggregator's RSS is measured alone and the two do not share one interpreter lock),
prints one JSON line `{"targets": [...]}` and serves until its stdin closes, it gets SIGTERM, or
`--max-seconds` pass, whichever comes first: it always stops itself.

Node `i` listens on 127.10.x.y (its own loopback address). Its snapshot number `seq` advances every
`interval` seconds of wall time; snapshot `seq` holds pods `seq*churn .. seq*churn+pods-1`, so every
snapshot deletes the `churn` oldest pods and creates `churn` new ones. The exposition is written by
prometheus_client with the families and labels of docs/metrics.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

POD_LABELS = ["node", "namespace", "pod", "uid", "owner_kind", "owner_name", "deployment"]
NAMESPACES = ("shop", "payments", "search", "monitoring", "default")
DEPLOYMENTS = 6  # per namespace: the roll-up groups stay a fixed set while pods churn


def node_address(i: int) -> str:
    """Loopback address of simulated node `i` (0-based): 127.10.0.1, 127.10.0.2, ..."""
    return f"127.10.{i // 250}.{i % 250 + 1}"


def pod_ids(seq: int, *, pods: int, churn: int) -> range:
    """Pod numbers alive in snapshot `seq`."""
    return range(seq * churn, seq * churn + pods)


@dataclass(frozen=True)
class NodeSnapshot:
    """What one simulated node exposes in snapshot `seq`."""

    node: str
    seq: int
    timestamp: float
    pods: int
    churn: int

    def collect(self) -> Iterator[Metric]:
        n = [self.node]
        ts = GaugeMetricFamily("k8smon_exporter_sample_timestamp_seconds", "Snapshot time.", labels=["node"])
        ts.add_metric(n, self.timestamp)
        yield ts
        for name, value in (("cpu_usage_cores", 1.0 + self.seq % 3), ("cpu_capacity_cores", 8.0),
                            ("memory_used_bytes", 4e9), ("memory_total_bytes", 16e9)):
            family = GaugeMetricFamily(f"k8smon_node_{name}", name, labels=["node"])
            family.add_metric(n, value)
            yield family
        cpu_total = CounterMetricFamily("k8smon_node_cpu_seconds", "cpu", labels=["node"])
        cpu_total.add_metric(n, 100.0 + 2.0 * self.seq)
        yield cpu_total
        gauges = {k: GaugeMetricFamily(f"k8smon_pod_{k}", k, labels=POD_LABELS)
                  for k in ("cpu_usage_cores", "memory_working_set_bytes")}
        counters = {k: CounterMetricFamily(f"k8smon_pod_{k}", k, labels=POD_LABELS)
                    for k in ("cpu_seconds", "network_receive_bytes")}
        for pid in pod_ids(self.seq, pods=self.pods, churn=self.churn):
            ns = NAMESPACES[pid % len(NAMESPACES)]
            dep = f"app{pid % DEPLOYMENTS}"
            labels = [self.node, ns, f"{dep}-{self.node}-{pid}", f"uid-{self.node}-{pid}", "Deployment", dep,
                      dep]
            age = self.seq - pid // max(self.churn, 1)
            gauges["cpu_usage_cores"].add_metric(labels, 0.01 * (pid % 10 + 1))
            gauges["memory_working_set_bytes"].add_metric(labels, 1e8 + 1e5 * (pid % 50))
            counters["cpu_seconds"].add_metric(labels, 0.05 * max(age, 0))
            counters["network_receive_bytes"].add_metric(labels, 1000.0 * max(age, 0))
        yield from gauges.values()
        yield from counters.values()

    def render(self) -> bytes:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)  # type: ignore[arg-type]
        return generate_latest(registry)


class ChurningNodes:
    """Serves `nodes` simulated exporters from one asyncio loop (call `serve_until` in a thread or main)."""

    def __init__(self, *, nodes: int, pods: int, churn: int, interval: float) -> None:
        self.names = [f"soak-{i:03d}" for i in range(nodes)]
        self.pods, self.churn, self.interval = pods, churn, interval
        self.t0 = time.time()
        self.targets: list[str] = []
        self.requests = 0
        self._cache: dict[str, tuple[int, bytes]] = {}

    def seq(self) -> int:
        return int((time.time() - self.t0) / self.interval) + 1

    def body(self, index: int) -> bytes:
        node, seq = self.names[index], self.seq()
        cached = self._cache.get(node)
        if cached is None or cached[0] != seq:
            snap = NodeSnapshot(node=node, seq=seq, timestamp=self.t0 + seq * self.interval, pods=self.pods,
                                churn=self.churn)
            cached = self._cache[node] = (seq, snap.render())
        return cached[1]

    async def _serve(self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            body = self.body(index)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the scraper gave up (timeout) or went away: nothing to answer
        finally:
            writer.close()

    async def run(self, stop: asyncio.Event) -> None:
        servers = []
        try:
            for i in range(len(self.names)):
                server = await asyncio.start_server(
                    lambda r, w, i=i: self._serve(i, r, w), node_address(i), 0, backlog=64)
                servers.append(server)
                self.targets.append(f"{node_address(i)}:{server.sockets[0].getsockname()[1]}")
            print(json.dumps({"targets": self.targets}), flush=True)
            await stop.wait()
        finally:
            for server in servers:
                server.close()


def levelled_growth(samples: Sequence[float]) -> tuple[float, float]:
    """(growth over the last third, growth over the first third) of a series sampled at a steady pace.

    Growth is measured between the medians of the first and last five samples of each third, so one
    outlier (a collection that just ran, a transient buffer) does not decide it.
    """
    if len(samples) < 30:
        raise ValueError(f"need at least 30 samples to judge thirds, got {len(samples)}")
    third = len(samples) // 3

    def median(xs: Sequence[float]) -> float:
        s = sorted(xs)
        return s[len(s) // 2]

    first = samples[:third]
    last = samples[-third:]
    return median(last[-5:]) - median(last[:5]), median(first[-5:]) - median(first[:5])


def main(argv: Sequence[str] | None = None) -> int:
    """Serve churning nodes until stdin closes, SIGTERM, or --max-seconds."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.soak")
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--pods", type=int, default=20, help="pods alive on each node at any time")
    parser.add_argument("--churn", type=int, default=3, help="pods deleted and created per node per snapshot")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between snapshots")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop after this long regardless")
    args = parser.parse_args(argv)
    nodes = ChurningNodes(nodes=args.nodes, pods=args.pods, churn=args.churn, interval=args.interval)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.call_later(args.max_seconds, stop.set)

        def watch_stdin() -> None:
            sys.stdin.read()  # returns at EOF: the parent closed the pipe or died
            loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=watch_stdin, name="stdin-eof", daemon=True).start()
        await nodes.run(stop)

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
