"""A live k8s-monitor for the dashboard's browser tests: a real exporter on this machine, the real
aggregator (waitress on loopback) scraping it, and pods pushed through the authenticated POST routes
so every page has data; plus a headless Chromium driven by Playwright.

The exporter reads this machine's /proc (moving host figures) and an empty cgroup root (no pods of
its own: other engineers' test cgroups on a shared machine must not leak into the page), so every
pod on the page is one of PODS below, pushed every PUSH_INTERVAL seconds with moving values.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aggregator.config import load
from aggregator.service import Aggregator
from tests.support import free_port, require, require_tool, wait_until

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "dashboard-test-token"
EXPORTER_NODE = "dash-node-a"
PUSHED_NODE = "dash-node-b"
PUSH_INTERVAL = 1.0
# (namespace, pod, node, deployment or "", cpu request m, memory limit bytes)
PODS: list[tuple[str, str, str, str, float | None, float | None]] = [
    ("shop", "web-5d4f8-abcde", EXPORTER_NODE, "web", 250.0, 512 * 2**20),
    ("shop", "web-5d4f8-fghij", PUSHED_NODE, "web", 250.0, 512 * 2**20),
    ("shop", "cart-7c9b2-klmno", EXPORTER_NODE, "cart", 100.0, None),
    ("search", "api-6f7d9-pqrst", PUSHED_NODE, "api", 500.0, 2**30),
    ("search", "api-6f7d9-uvwxy", EXPORTER_NODE, "api", 500.0, 2**30),
    ("search", "debug-shell", PUSHED_NODE, "", None, None),
]


def get_json(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "application/json"}),
                                timeout=timeout) as resp:
        return json.load(resp)


def _post(url: str, body: dict[str, Any]) -> None:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=5):
        pass


@dataclass
class Pusher:
    """Pushes PODS (and PUSHED_NODE) every PUSH_INTERVAL seconds until stopped."""

    url: str
    stop_event: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)
    rounds: int = 0

    def push_once(self, seq: int) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        _post(f"{self.url}/api/nodes/{PUSHED_NODE}/metrics", {
            "node_name": PUSHED_NODE, "cpu_millicores": 1200 + 100 * (seq % 5), "memory_bytes": 3 * 2**30,
            "disk_io": {"read_bytes": 4096 * seq, "write_bytes": 8192}, "network_io": {"bytes_recv": 20000,
            "bytes_sent": 10000}, "timestamp": stamp, "cpu_capacity_millicores": 4000,
            "memory_total_bytes": 8 * 2**30})
        for i, (ns, pod, node, dep, cpu_req, mem_lim) in enumerate(PODS):
            body: dict[str, Any] = {
                "node_name": node, "cpu_millicores": 40 * (i + 1) + 5 * (seq % 4),
                "memory_bytes": (64 + 32 * i) * 2**20,
                "disk_io": {"read_bytes": 1024 * i, "write_bytes": 2048},
                "network_io": {"bytes_recv": 5000 * (i + 1), "bytes_sent": 2500 * (i + 1)},
                "timestamp": stamp,
                "namespace": ns, "pod_name": pod, "uid": f"uid-{pod}",
            }
            if dep:
                body["deployment"] = dep
            if cpu_req is not None:
                body["cpu_request_millicores"] = cpu_req
                body["cpu_limit_millicores"] = cpu_req * 2
            if mem_lim is not None:
                body["memory_request_bytes"] = mem_lim // 2
                body["memory_limit_bytes"] = mem_lim
            _post(f"{self.url}/api/namespaces/{ns}/pods/{pod}/metrics", body)

    def run(self) -> None:
        seq = 0
        while not self.stop_event.is_set():
            seq += 1
            try:
                self.push_once(seq)
                self.rounds += 1
            except OSError as err:  # the aggregator stopped (banner test): keep trying quietly
                self.errors.append(str(err))
            self.stop_event.wait(PUSH_INTERVAL)


@dataclass
class Live:
    url: str
    aggregator: Aggregator
    pusher: Pusher


@contextmanager
def exporter(tmp: Path) -> Iterator[str]:
    """A real exporter reading this machine's /proc; yields its host:port."""
    address = f"127.0.0.1:{free_port()}"
    (tmp / "cgroup").mkdir(exist_ok=True)
    log = (tmp / "exporter.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--listen", address, "--node-name", EXPORTER_NODE,
         "--cgroup-root", str(tmp / "cgroup"), "--interval", "0.5"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://{address}/healthz", timeout=1) as resp:
                    return resp.status == 200
            except OSError:
                return proc.poll() is not None  # dead: stop waiting, fail below

        wait_until(healthy, timeout=60, message="exporter healthy", interval=0.2)
        assert proc.poll() is None, (tmp / "exporter.log").read_text()
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextmanager
def live_aggregator(target: str, *, retention_points: int = 4000) -> Iterator[Live]:
    """The aggregator scraping `target` every second, with the pusher feeding it."""
    settings = load(["--listen", "127.0.0.1:0", "--targets", target, "--scrape-interval", "1",
                     "--scrape-timeout", "0.8", "--ingest-token", TOKEN, "--stale-after", "30",
                     "--retention-points", str(retention_points)], {})
    agg = Aggregator(settings).start()
    pusher = Pusher(agg.url)
    thread = threading.Thread(target=pusher.run, name="dashboard-pusher", daemon=True)
    thread.start()
    try:
        def ready() -> bool:
            nodes = {n["node_name"]: n for n in get_json(agg.url + "/api/nodes")["nodes"]}
            pods = get_json(agg.url + "/api/pods")["pods"]
            # Three rounds in: rates and a few chart points exist everywhere.
            return len(nodes) == 2 and len(pods) == len(PODS) and pusher.rounds >= 3 and all(
                n["cpu_millicores"] is not None and n["network_io"]["bytes_recv_per_second"] is not None
                for n in nodes.values())

        wait_until(ready, timeout=60, message="both nodes and every pushed pod with rates", interval=0.3)
        yield Live(url=agg.url, aggregator=agg, pusher=pusher)
    finally:
        pusher.stop_event.set()
        thread.join(10)
        agg.stop()


def chromium() -> str:
    """The system Chromium (Debian's `chromium`; .ci/run installs it)."""
    path = require_tool("chromium")
    try:
        import playwright  # noqa: F401
    except ImportError:
        require(False, "playwright (the test extra) is not installed")
    return path
