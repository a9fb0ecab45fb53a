"""Aggregator benchmark: a simulated cluster of N nodes x P pods discovered through a fake API server.

Three processes: (1) the fakes: N exporters on distinct 127.1.x.y addresses serving golden-format
expositions that change every interval (tests/aggregator_fakes.py) plus FakeKube whose Endpoints
list them; (2) the aggregator (`Aggregator` from aggregator.service, discovering through FakeKube);
(3) this one, which measures. Reported per N: scrape round duration median and max over the
measured rounds (the aggregator's own `last_round`; a handful of rounds has no p99), rounds skipped
over the whole run (a round that overran the interval skips ticks), aggregator CPU (cores, psutil
over the steady window) and RSS, then, after the aggregator pre-fills every series to its full
--retention-points (synthetically: waiting 1000 real rounds would take 83 minutes), RSS with full
history, buffer bytes per stored point, and API latency p50/p99 under 4 concurrent clients.
Targets at N = 1000: no round skipped over the whole run and every measured round inside the
interval, <= 1 core, RSS <= 2 GB with full history.

    python -m bench aggregator                 # N = 100 and 1000, 30 pods each
    python -m bench.aggregator_bench --nodes 3 --pods 3 --rounds 2 --interval 0.5    # smoke
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time
from array import array
from pathlib import Path
from typing import Any

import psutil
import requests

REPO = Path(__file__).resolve().parents[1]
NS, SVC = "k8s-monitor", "k8s-monitor-exporter"
ROUND_TARGET_FRACTION = 1.0  # a round must finish inside one interval
CPU_TARGET_CORES = 1.0
RSS_TARGET_BYTES = 2 << 30


def host(i: int) -> str:
    return f"127.1.{i // 200}.{i % 200 + 1}"


# --- child process 1: the fake cluster -----------------------------------------------------------


def serve_fakes(nodes: int, pods: int, interval: float) -> int:
    """Serve N fake exporters and a FakeKube listing them; print the kubeconfig; run until stdin closes."""
    sys.path.insert(0, str(REPO))
    from tests.aggregator_fakes import FakeExporters, FakeNode
    from tests.kube import FakeKube, objects
    from tests.support import free_port

    port = free_port(host(0))
    fake_nodes = [FakeNode(host(i), f"node-{i:04d}", pods=pods, port=port) for i in range(nodes)]
    with FakeKube() as kube, FakeExporters(fake_nodes, interval=interval, prerender=True) as fakes:
        kube.create(objects.endpoints(SVC, NS, addresses=[(n.host, n.node) for n in fakes.nodes], port=port))
        print(json.dumps({"kubeconfig": str(kube.kubeconfig)}), flush=True)
        sys.stdin.read()  # the parent closes stdin to stop us
    return 0


# --- child process 2: the aggregator --------------------------------------------------------------


def prefill(store: Any) -> None:
    """Fill every series to capacity, the memory a full history costs.

    Appending 1000 points to each of ~31k series one by one would take minutes, so this extends the
    ring's arrays directly (the series' private arrays: a benchmark-only shortcut) with copies of the
    newest point, so every column keeps the storage type real values gave it (series.py).
    """
    with store._lock:
        series = [n.series for n in store._nodes.values()] + [p.series for p in store._pods.values()]
        series += [g.series for g in store._groups.values()]
        for s in series:
            missing = s.capacity - len(s)
            if missing > 0 and len(s) and s._head == 0:
                # Older points go in front, so the newest (real) point stays the newest.
                oldest = s._ts[0]
                s._ts = array("d", (oldest - store.interval * (missing - i) for i in range(missing))) + s._ts
                s._columns = [array(c.typecode, [c[-1]]) * missing + c for c in s._columns]


def run_aggregator(kubeconfig: str, interval: float, timeout: float, scrape_format: str = "auto") -> int:
    """Run an Aggregator; on stdin `prefill` fill its history and report memory; `quit` stops it."""
    from aggregator.config import load
    from aggregator.service import Aggregator, tune_gc

    settings = load(["--listen", "127.0.0.1:0", "--kubeconfig", kubeconfig,
                     "--scrape-interval", str(interval), "--scrape-timeout", str(timeout),
                     "--stale-after", str(interval * 3), "--scrape-format", scrape_format,
                     "--log-level", "warning"], {})
    agg = Aggregator(settings)
    tune_gc()  # as `python -m aggregator` does
    agg.start()
    print(json.dumps({"url": agg.url}), flush=True)
    for line in sys.stdin:
        if line.strip() == "prefill":
            t0 = time.perf_counter()
            prefill(agg.store)
            gc.collect()
            held, points = agg.store.buffer_bytes()
            print(json.dumps({
                "rss": psutil.Process().memory_info().rss,
                "buffer_bytes": held,
                "points": points,
                "series": agg.store.series_counts(),
                "prefill_seconds": time.perf_counter() - t0,
                "stats": agg.stats.snapshot(),
            }), flush=True)
        elif line.strip() == "quit":
            print(json.dumps({"stats": agg.stats.snapshot()}), flush=True)
            break
    agg.stop()
    return 0


# --- the measuring parent ------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def api_latency(
    url: str, nodes: int, pods: int, *, seconds: float, window: int, clients: int = 4
) -> dict[str, list[float]]:
    """Latencies per route while `clients` threads request a mix of API routes as fast as they can."""
    from tests.aggregator_fakes import pod_identity

    _node, ns, pod, *_rest = pod_identity("node-0000", pods - 1)
    routes = [
        "/api/nodes",
        "/api/nodes/node-0000",
        "/api/nodes/node-0000/pods",
        "/api/namespaces",
        "/api/namespaces/shop/deployments",
        f"/api/pods/{pod}?namespace={ns}",
        f"/api/nodes/node-0000/timeseries?window={window}",
        f"/api/namespaces/shop/timeseries?window={window}",
        "/",
    ]
    results: dict[str, list[float]] = {r: [] for r in routes}
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    failures: list[str] = []

    def client(offset: int) -> None:
        with requests.Session() as session:
            i = offset
            while time.monotonic() < stop:
                route = routes[i % len(routes)]
                t0 = time.perf_counter()
                resp = session.get(url + route, timeout=30)
                elapsed = time.perf_counter() - t0
                if resp.status_code != 200:
                    with lock:
                        failures.append(f"{route}: HTTP {resp.status_code} {resp.text[:200]}")
                    if len(failures) > 20:
                        return
                with lock:
                    results[route].append(elapsed)
                i += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        print(f"  {len(failures)} API errors under load, first: {failures[0]}", flush=True)
    return results


def measure(
    nodes: int, pods: int, *, rounds: int, interval: float, timeout: float, api_seconds: float,
    scrape_format: str = "auto",
) -> dict:
    """Run the three processes for one cluster size and return the figures."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    fakes = subprocess.Popen([sys.executable, "-m", "bench.aggregator_bench", "--serve-fakes", str(nodes),
                              "--pods", str(pods), "--interval", str(interval)],
                             cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    agg = None
    try:
        assert fakes.stdout is not None and fakes.stdin is not None
        kubeconfig = json.loads(fakes.stdout.readline())["kubeconfig"]
        agg = subprocess.Popen([sys.executable, "-m", "bench.aggregator_bench",
                                "--run-aggregator", kubeconfig, "--interval", str(interval),
                                "--timeout", str(timeout), "--scrape-format", scrape_format],
                               cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert agg.stdout is not None and agg.stdin is not None
        url = json.loads(agg.stdout.readline())["url"]
        proc = psutil.Process(agg.pid)
        fake_proc = psutil.Process(fakes.pid)
        durations: dict[int, tuple[float, int, int]] = {}
        deadline = time.monotonic() + (rounds + 3) * interval * 3 + 60
        cpu_start: tuple[float, float] | None = None
        fake_start = 0.0
        while len(durations) < rounds + 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(durations)} rounds completed before the deadline")
            status = requests.get(url + "/", timeout=30).json()
            last = status.get("last_round")
            up, total = status["targets"]["up"], status["targets"]["total"]
            # Steady state: every target discovered and the exporters' first (slow) renders behind us.
            if last and total == nodes and last["round_id"] >= 3 and last["round_id"] not in durations:
                if cpu_start is None:
                    times, fake_times = proc.cpu_times(), fake_proc.cpu_times()
                    cpu_start = (time.monotonic(), times.user + times.system)
                    fake_start = fake_times.user + fake_times.system
                durations[last["round_id"]] = (last["duration_seconds"], up, total)
            time.sleep(min(0.5, interval / 4))
        assert cpu_start is not None
        times, fake_times = proc.cpu_times(), fake_proc.cpu_times()
        window = time.monotonic() - cpu_start[0]
        cpu = (times.user + times.system - cpu_start[1]) / window
        fake_cpu = (fake_times.user + fake_times.system - fake_start) / window
        load = os.getloadavg()[0]
        rss_running = proc.memory_info().rss
        first = min(durations)
        steady = [d for rid, (d, _, _) in durations.items() if rid != first]
        up_counts = [u for rid, (_, u, _) in durations.items() if rid != first]
        agg.stdin.write("prefill\n")
        agg.stdin.flush()
        memory = json.loads(agg.stdout.readline())
        latencies = api_latency(url, nodes, pods, seconds=api_seconds, window=int(1000 * interval))
        agg.stdin.write("quit\n")
        agg.stdin.flush()
        final = json.loads(agg.stdout.readline())["stats"]
        agg.wait(60)
        return {
            "nodes": nodes,
            "pods_per_node": pods,
            "scrape_format": scrape_format,
            "interval": interval,
            "rounds_measured": len(steady),
            "targets_up_min": min(up_counts),
            "stats": memory["stats"],
            "round_p50": pct(steady, 50),
            "round_max": max(steady),
            # Over the whole run (warm-up, measured rounds, prefill and the API phase), not just the
            # rounds measured: an overrun anywhere is a missed target.
            "rounds_total": final["counters"].get("rounds", 0),
            "rounds_skipped": final["counters"].get("rounds_skipped", 0),
            "cpu_cores": cpu,
            "fake_cpu_cores": fake_cpu,
            "load_average": load,
            "rss_running": rss_running,
            "rss_full_history": memory["rss"],
            "bytes_per_sample": memory["buffer_bytes"] / max(1, memory["points"]),
            "points": memory["points"],
            "series": memory["series"],
            "api": {r: (pct(v, 50), pct(v, 99), len(v)) for r, v in latencies.items()},
            "api_all": (pct([x for v in latencies.values() for x in v], 50),
                        pct([x for v in latencies.values() for x in v], 99)),
        }
    finally:
        for child in (agg, fakes):
            if child is None:
                continue
            if child.stdin is not None:
                child.stdin.close()  # the children stop when stdin closes
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.send_signal(signal.SIGKILL)
                child.wait(10)
            if child.stdout is not None:
                child.stdout.close()


def report(r: dict) -> bool:
    """Print one size's figures; True when it met the targets."""
    mib = 1 << 20
    print(f"N = {r['nodes']} nodes x {r['pods_per_node']} pods, interval {r['interval']:g}s, "
          f"--scrape-format {r['scrape_format']}, "
          f"{r['rounds_measured']} rounds measured; series {r['series']}")
    print(f"  scrape round   median {r['round_p50']:.3f}s  max {r['round_max']:.3f}s of "
          f"{r['rounds_measured']} measured; ticks skipped by overrunning rounds over the whole run: "
          f"{r['rounds_skipped']:.0f} ({r['rounds_total']:.0f} rounds completed)"
          f"  (fewest targets up in a round: {r['targets_up_min']}/{r['nodes']})")
    gauges = r["stats"]["gauges"]
    print(f"  after a round: store.end_round {gauges.get('end_round_seconds', 0):.3f}s, federation "
          f"{gauges.get('federation_round_seconds', 0):.3f}s (its render on the first /metrics scrape: "
          f"{gauges.get('federation_seconds', 0):.3f}s); errors {r['stats']['errors']}")
    print(f"  fake cluster CPU {r['fake_cpu_cores']:.2f} cores; machine load average {r['load_average']:.1f} "
          f"on {os.cpu_count()} CPUs")
    print(f"  aggregator CPU {r['cpu_cores']:.2f} cores;  RSS {r['rss_running'] / mib:.0f} MiB running, "
          f"{r['rss_full_history'] / mib:.0f} MiB with full history ({r['points']} points)")
    print(f"  bytes per stored point (point buffers allocated) {r['bytes_per_sample']:.1f}")
    p50, p99 = r["api_all"]
    print(f"  API, 4 concurrent clients: all routes p50 {p50 * 1000:.1f} ms  p99 {p99 * 1000:.1f} ms")
    for route, (a, b, n) in r["api"].items():
        print(f"    {route:<55} p50 {a * 1000:8.1f} ms  p99 {b * 1000:8.1f} ms  (n={n})")
    ok = (r["round_max"] < r["interval"] * ROUND_TARGET_FRACTION and r["rounds_skipped"] == 0
          and r["targets_up_min"] == r["nodes"]
          and r["cpu_cores"] <= CPU_TARGET_CORES
          and r["rss_full_history"] <= RSS_TARGET_BYTES)
    print(f"  targets (no round skipped and every round < interval, <= 1 core, RSS <= 2 GiB): "
          f"{'met' if ok else 'MISSED'}", flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, action="append", help="cluster sizes (default 100 and 1000)")
    parser.add_argument("--pods", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=6, help="steady rounds to measure per size")
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=None, help="scrape timeout (default 0.8 x interval)")
    parser.add_argument("--api-seconds", type=float, default=10.0)
    parser.add_argument("--scrape-format", choices=("auto", "text"), default="auto",
                        help="the aggregator's --scrape-format: auto (the fakes answer the JSON snapshot "
                             "document) or text (the text format Prometheus reads)")
    parser.add_argument("--serve-fakes", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--run-aggregator", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_fakes:
        return serve_fakes(args.serve_fakes, args.pods, args.interval)
    timeout = args.timeout if args.timeout is not None else args.interval * 0.8
    if args.run_aggregator:
        return run_aggregator(args.run_aggregator, args.interval, timeout, args.scrape_format)
    ok = True
    for n in args.nodes or [100, 1000]:
        ok = report(measure(n, args.pods, rounds=args.rounds, interval=args.interval, timeout=timeout,
                            api_seconds=args.api_seconds, scrape_format=args.scrape_format)) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
