"""Resource Metrics API benchmark: PodMetricsList at N nodes x P pods x C containers, answered from memory.

One process: a Store filled with N nodes' readings (P pods of C containers each, spread over 100
namespaces, each pod labelled `app=app-<k>` for ten apps), pod labels in a LabelIndex as the metadata
watch keeps them, the metrics app behind its real TLS listener (cheroot, 8 threads, auth off: the
review cache makes authorization a dict lookup after the first request). While measuring, a writer
thread re-ingests every node every `--interval` seconds (the store-side load of the scrape loop at that
cluster size; the network side of scraping is the aggregator benchmark's). Printed: p50/p99 latency
and bytes of the all-namespaces list (what `kubectl top pod -A` asks) and of one namespace's pods with
a label selector (what an HPA asks every 15 s). Targets: p99 <= 1 s and <= 50 ms.

    python -m bench metrics_api                        # 1000 x 30 x 3
    python -m bench.metrics_api_bench --nodes 5 --pods 3 --requests 3     # smoke
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
ALL_TARGET, HPA_TARGET = 1.0, 0.050
NAMESPACES, APPS = 100, 10


def _readings(nodes: int, pods: int, containers: int, ts: float) -> list:
    from aggregator.model import ContainerReading, NodeReading, PodReading

    out = []
    for i in range(nodes):
        pod_readings = []
        for j in range(pods):
            n = i * pods + j
            cs = tuple(ContainerReading(f"c{k}", {
                "cpu_usage_cores": 0.001 * ((n + k) % 997 + 1),
                "memory_working_set_bytes": float(((n + k) % 500 + 10) << 20)}) for k in range(containers))
            pod_readings.append(PodReading(namespace=f"ns-{n % NAMESPACES}", pod=f"pod-{i}-{j}", uid=f"u-{n}",
                                           values={"cpu_usage_cores": 0.01}, containers=cs))
        out.append(NodeReading(node=f"node-{i:04d}", timestamp=ts, pods=tuple(pod_readings),
                               values={"cpu_usage_cores": 1.5, "memory_used_bytes": float(8 << 30)}))
    return out


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_api_bench")
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=30)
    parser.add_argument("--containers", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20, help="all-namespaces lists measured")
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from aggregator.metricsapi.app import create_metrics_app
    from aggregator.metricsapi.metadata import LabelIndex
    from aggregator.metricsapi.tls import TlsServer
    from aggregator.stats import AggregatorStats
    from aggregator.store.store import Store

    class Labels:
        def __init__(self, index: LabelIndex) -> None:
            self.index = index

        def pod(self, namespace: str, name: str) -> dict[str, str]:
            return self.index.get(namespace, name)  # type: ignore[return-value]

        def node(self, name: str) -> dict[str, str]:
            return {}

    store = Store(retention_points=10, interval=args.interval, stale_after=600)
    t0 = time.time() - 2 * args.interval
    for ts in (t0, t0 + args.interval):
        for reading in _readings(args.nodes, args.pods, args.containers, ts):
            store.ingest(reading)
    index = LabelIndex()
    index.replace([{"metadata": {"name": f"pod-{n // args.pods}-{n % args.pods}",
                                 "namespace": f"ns-{n % NAMESPACES}",
                                 "labels": {"app": f"app-{(n // NAMESPACES) % APPS}"}}}
                   for n in range(args.nodes * args.pods)])
    app = create_metrics_app(store=store, labels=Labels(index), stats=AggregatorStats(),
                             default_window=args.interval, clock=time.time)
    server = TlsServer(app, host="127.0.0.1", port=0).start()
    stop = threading.Event()
    write_seconds: list[float] = []

    def writer() -> None:
        ts = t0 + 2 * args.interval
        while not stop.wait(args.interval):
            batch = _readings(args.nodes, args.pods, args.containers, ts)
            start = time.perf_counter()
            for reading in batch:
                store.ingest(reading)
            write_seconds.append(time.perf_counter() - start)
            ts += args.interval

    served = Path(tempfile.mkdtemp(prefix="k8smon-bench-")) / "served.crt"
    served.write_bytes(server.certificate)  # verified against the served self-signed certificate
    session = requests.Session()
    base = f"{server.url}/apis/metrics.k8s.io/v1beta1"

    def measure(path: str, n: int) -> tuple[list[float], int, int]:
        """curl (another process: a client in this one would take the GIL from the server) times each
        request from connect to the last byte; the item count from one more request."""
        times, size = [], 0
        for _ in range(n):
            done = subprocess.run(["curl", "-sS", "-o", "/dev/null", "--cacert", str(served), "-w",
                                   "%{http_code} %{time_total} %{size_download}", f"{base}{path}"],
                                  capture_output=True, text=True, timeout=120, check=True)
            code, seconds, length = done.stdout.split()
            if code != "200":
                raise RuntimeError(f"{path}: HTTP {code}")
            times.append(float(seconds))
            size = int(length)
        items = len(session.get(f"{base}{path}", timeout=60, verify=str(served)).json()["items"])
        return times, size, items

    thread = threading.Thread(target=writer, daemon=True)
    n = min(7 + 3 * NAMESPACES, args.nodes * args.pods - 1)  # ns-7, app-3 at full size: 30 pods
    hpa = f"/namespaces/ns-{n % NAMESPACES}/pods?labelSelector=app%3Dapp-{(n // NAMESPACES) % APPS}"
    try:
        session.get(f"{base}/pods", timeout=60, verify=str(served))  # warm-up
        idle_t, _, _ = measure("/pods", max(2, args.requests // 4))
        idle_hpa_t, _, _ = measure(hpa, args.requests)
        thread.start()
        all_t, all_bytes, all_items = measure("/pods", args.requests)
        hpa_t, hpa_bytes, hpa_items = measure(hpa, 10 * args.requests)
    finally:
        stop.set()
        thread.join(args.interval * 2)
        server.stop()
        shutil.rmtree(served.parent, ignore_errors=True)
    pods = args.nodes * args.pods
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"metrics API: {args.nodes} nodes x {args.pods} pods x {args.containers} containers ({pods} pods), "
          f"store re-ingested every {args.interval:g}s ({len(write_seconds)} times, "
          f"{statistics.mean(write_seconds) if write_seconds else 0:.2f}s each)")
    print(f"  all namespaces      : {all_items} pods, {all_bytes / 1e6:.1f} MB, "
          f"p50 {statistics.median(all_t) * 1e3:.0f} ms, p99 {_percentile(all_t, 0.99) * 1e3:.0f} ms "
          f"(target <= {ALL_TARGET * 1e3:.0f} ms)")
    print(f"  namespace + selector: {hpa_items} pods, {hpa_bytes / 1e3:.1f} kB, "
          f"p50 {statistics.median(hpa_t) * 1e3:.1f} ms, p99 {_percentile(hpa_t, 0.99) * 1e3:.1f} ms "
          f"(target <= {HPA_TARGET * 1e3:.0f} ms)")
    print(f"  without the writer  : all namespaces p50 {statistics.median(idle_t) * 1e3:.0f} ms, "
          f"namespace + selector p50 {statistics.median(idle_hpa_t) * 1e3:.1f} ms")
    ok = _percentile(all_t, 0.99) <= ALL_TARGET and _percentile(hpa_t, 0.99) <= HPA_TARGET
    return 0 if ok or args.nodes < 1000 else 1


if __name__ == "__main__":
    sys.exit(main())
