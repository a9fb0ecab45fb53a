"""End to end on loopback: FakeKube's Endpoints list real exporters (one per fixture node, each on its own
127.0.0.x); the aggregator discovers, scrapes and serves them; endpoints come and go; exporters die, hang
(SIGSTOP) or turn into garbage, and the others keep their cadence.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from aggregator.config import load
from aggregator.parser import parse_reference
from aggregator.service import Aggregator
from tests.kube import FakeKube, objects
from tests.support import free_port, wait_until
from tests.support.fixture_pods import create_fixture_pods, fixture_uids

ROOT = Path(__file__).resolve().parent.parent
NODES_DIR = ROOT / "tests" / "fixtures" / "nodes"
NS, SVC = "k8s-monitor", "k8s-monitor-exporter"
INTERVAL, TIMEOUT = 1.0, 0.6
HOSTS = {"node-a": "127.0.0.2", "node-b": "127.0.0.3", "node-c": "127.0.0.4"}
EXTRA_HOST = "127.0.0.5"


def get(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.load(resp)


@dataclass
class Cluster:
    kube: FakeKube
    port: int
    aggregator: Aggregator
    logs: Path
    exporters: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    stopped: list[int] = field(default_factory=list)
    garbage: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return self.aggregator.url

    def start_exporter(self, node: str, host: str, *, roots: str | None = None) -> None:
        tree = NODES_DIR / (roots or node)
        log = (self.logs / f"exporter-{node}.log").open("wb")
        try:
            self.exporters[node] = subprocess.Popen(
                [sys.executable, "-m", "exporter", "--listen", f"{host}:{self.port}", "--node-name", node,
                 "--proc-root", str(tree / "proc"), "--sys-root", str(tree / "sys"),
                 "--cgroup-root", str(tree / "cgroup"), "--rootfs", str(tree), "--interval", "0.5",
                 "--kubeconfig", str(self.kube.kubeconfig), "--exclude-namespaces", ""],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()

    def wait_exporter(self, host: str) -> None:
        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://{host}:{self.port}/healthz", timeout=1) as resp:
                    return resp.status == 200
            except OSError:
                return False

        wait_until(healthy, timeout=60, message=f"exporter on {host} healthy", interval=0.2)

    def endpoints(self, nodes: dict[str, str]) -> None:
        obj = objects.endpoints(SVC, NS, addresses=[(ip, n) for n, ip in nodes.items()], port=self.port)
        if self.kube.get("v1", "Endpoints", SVC, NS) is None:
            self.kube.create(obj)
        else:
            self.kube.update(obj)

    def status(self) -> dict[str, Any]:
        return get(self.url + "/")

    def target(self, host: str) -> dict[str, Any] | None:
        for item in self.status()["targets"]["items"]:
            if item["target"] == f"{host}:{self.port}":
                return item
        return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    logs = tmp_path_factory.mktemp("e2e")
    port = free_port("127.0.0.2")
    with FakeKube() as kube:
        create_fixture_pods(kube, HOSTS)
        settings = load(["--listen", "127.0.0.1:0", "--kubeconfig", str(kube.kubeconfig),
                         "--scrape-interval", str(INTERVAL), "--scrape-timeout", str(TIMEOUT),
                         "--stale-after", "3"], {})
        c = Cluster(kube=kube, port=port, aggregator=Aggregator(settings), logs=logs)
        try:
            for node, host in HOSTS.items():
                c.start_exporter(node, host)
            for host in HOSTS.values():
                c.wait_exporter(host)
            c.endpoints(HOSTS)
            c.aggregator.start()
            yield c
        finally:
            c.aggregator.stop()
            for pid in c.stopped:
                os.kill(pid, signal.SIGCONT)
            for proc in c.exporters.values():
                if proc.poll() is None:
                    proc.kill()
                proc.wait(10)
            if c.garbage is not None:
                c.garbage.shutdown()
                c.garbage.server_close()


def ready(cluster: Cluster) -> bool:
    try:
        return bool(get(cluster.url + "/readyz")["status"] == "ready")
    except urllib.error.HTTPError as err:
        assert err.code == 503
        err.close()
        return False


def exporter_samples(cluster: Cluster, host: str) -> list[Any]:
    with urllib.request.urlopen(f"http://{host}:{cluster.port}/metrics", timeout=5) as resp:
        return parse_reference(resp.read().decode())


def test_every_node_pod_namespace_and_deployment_with_correct_sums(cluster: Cluster) -> None:
    expected_pods = {(("shop" if i % 3 < 2 else "search"), node) for node in HOSTS
                     for i, _ in enumerate(fixture_uids(node))}
    total_pods = sum(len(fixture_uids(n)) for n in HOSTS)

    def all_in() -> bool:
        nodes = {n["node_name"] for n in get(cluster.url + "/api/nodes")["nodes"]}
        pods = get(cluster.url + "/api/pods")["pods"]
        return ready(cluster) and nodes == set(HOSTS) and len(pods) == total_pods

    wait_until(all_in, timeout=30, message="every node and pod in the JSON API")
    # Expected figures straight from the exporters' own /metrics.
    node_mem: dict[str, float] = {}
    ns_mem: dict[str, float] = defaultdict(float)
    dep_mem: dict[tuple[str, str], float] = defaultdict(float)
    pod_mem: dict[tuple[str, str], float] = {}
    for node, host in HOSTS.items():
        for s in exporter_samples(cluster, host):
            if s.name == "k8smon_node_memory_used_bytes":
                node_mem[node] = s.value
            elif s.name == "k8smon_pod_memory_working_set_bytes":
                ns_mem[s.labels["namespace"]] += s.value
                pod_mem[(s.labels["namespace"], s.labels["pod"])] = s.value
                if s.labels["deployment"]:
                    dep_mem[(s.labels["namespace"], s.labels["deployment"])] += s.value
    assert {ns for ns, _ in expected_pods} == set(ns_mem), "exporters named every pod via the fake API"
    assert {dep for _, dep in dep_mem} == {"web", "api"}
    nodes = {n["node_name"]: n for n in get(cluster.url + "/api/nodes")["nodes"]}
    for node, mem in node_mem.items():
        assert nodes[node]["memory_bytes"] == pytest.approx(mem)
        assert nodes[node]["status"] == "up"
    pods = {(p["namespace"], p["pod_name"]): p for p in get(cluster.url + "/api/pods")["pods"]}
    assert set(pods) == set(pod_mem)
    for key, mem in pod_mem.items():
        assert pods[key]["memory_bytes"] == pytest.approx(mem)
    namespaces = {n["namespace"]: n for n in get(cluster.url + "/api/namespaces")["namespaces"]}
    for ns, mem in ns_mem.items():
        assert namespaces[ns]["memory_bytes"] == pytest.approx(mem), ns
    for (ns, dep), mem in dep_mem.items():
        doc = get(f"{cluster.url}/api/namespaces/{ns}/deployments/{dep}")
        assert doc["memory_bytes"] == pytest.approx(mem), dep
    node_pods = get(cluster.url + "/api/nodes/node-b/pods")
    assert node_pods["count"] == len(fixture_uids("node-b"))


def test_endpoints_added_and_removed_within_one_interval(cluster: Cluster) -> None:
    cluster.start_exporter("node-d", EXTRA_HOST, roots="node-a")
    cluster.wait_exporter(EXTRA_HOST)
    changed = time.monotonic()
    cluster.endpoints({**HOSTS, "node-d": EXTRA_HOST})
    wait_until(lambda: (cluster.target(EXTRA_HOST) or {}).get("up"), timeout=INTERVAL * 2 + 1,
               message="new endpoint scraped within one interval")
    assert time.monotonic() - changed <= INTERVAL * 2 + 1
    assert "node-d" in {n["node_name"] for n in get(cluster.url + "/api/nodes")["nodes"]}
    cluster.endpoints(HOSTS)
    wait_until(lambda: cluster.target(EXTRA_HOST) is None, timeout=INTERVAL * 2 + 1,
               message="removed endpoint no longer scraped")
    cluster.endpoints({**HOSTS, "node-d": EXTRA_HOST})  # back, for the fault test
    wait_until(lambda: (cluster.target(EXTRA_HOST) or {}).get("up"), timeout=INTERVAL * 2 + 1,
               message="endpoint back")


class _Garbage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"\x00\x01 this is not prometheus {{{\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def test_killed_hung_and_garbage_exporters_are_down_and_the_others_keep_cadence(cluster: Cluster) -> None:
    wait_until(lambda: (cluster.target(EXTRA_HOST) or {}).get("up"), timeout=10, message="node-d up")
    cluster.exporters["node-b"].kill()
    cluster.exporters["node-b"].wait(10)
    stopped = cluster.exporters["node-c"].pid
    os.kill(stopped, signal.SIGSTOP)
    cluster.stopped.append(stopped)
    cluster.exporters["node-d"].kill()
    cluster.exporters["node-d"].wait(10)
    garbage = ThreadingHTTPServer((EXTRA_HOST, cluster.port), _Garbage)
    cluster.garbage = garbage
    threading.Thread(target=garbage.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def reasons() -> dict[str, str | None]:
        return {h: (cluster.target(h) or {}).get("last_error") for h in
                (HOSTS["node-b"], HOSTS["node-c"], EXTRA_HOST)}

    wait_until(lambda: all(reasons().values()), timeout=10, message="three bad targets down")
    got = reasons()
    assert got[HOSTS["node-b"]] == "connection refused"
    assert got[HOSTS["node-c"]] == f"timeout after {TIMEOUT:g}s"
    assert (got[EXTRA_HOST] or "").startswith("parse error")
    # node-a keeps its cadence: fresh scrapes every interval, each round within the timeout.
    seen: list[str] = []
    durations: list[float] = []
    deadline = time.monotonic() + INTERVAL * 4.5
    while time.monotonic() < deadline:
        status = cluster.status()
        a = cluster.target(HOSTS["node-a"])
        assert a is not None and a["up"]
        if not seen or seen[-1] != a["last_scrape"]:
            seen.append(a["last_scrape"])
            durations.append(status["last_round"]["duration_seconds"])
        time.sleep(0.1)
    assert len(seen) >= 4, seen
    assert max(durations) <= TIMEOUT + 0.4, durations
    nodes = {n["node_name"]: n for n in get(cluster.url + "/api/nodes")["nodes"]}
    assert nodes["node-a"]["status"] == "up"
    for node in ("node-b", "node-c", "node-d"):
        assert nodes[node]["status"] == "down", nodes[node]
        assert nodes[node]["last_error"]
        assert nodes[node]["memory_bytes"] is not None, "a down node keeps its last known values"
