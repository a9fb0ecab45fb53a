"""`make demo`: run an exporter on this machine and an aggregator scraping it; Ctrl-C stops both.

So that every route has something to show on a machine without pods, the demo also pushes a few
clearly-labelled sample pods (namespace `k8smon-demo`, on a pushed node `k8smon-demo-node`) through
the authenticated POST routes every 5 s: the way a push-only agent feeds the aggregator.

Exit status: 0 after Ctrl-C, 1 when an address is taken, a component exits or does not come up.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 30.0
PUSH_INTERVAL = 5.0
SAMPLE_NAMESPACE = "k8smon-demo"
SAMPLE_NODE = "k8smon-demo-node"
# (pod, deployment, base CPU millicores, base working set MiB, request m, limit m, memory limit MiB)
SAMPLE_PODS = (
    ("sample-web-7d9f8-x2k4p", "sample-web", 120, 96, 250, 500, 256),
    ("sample-web-7d9f8-q8m3z", "sample-web", 90, 88, 250, 500, 256),
    ("sample-worker-5c6b7-tt9wd", "sample-worker", 400, 300, 500, 1000, 512),
    ("sample-db-0", "", 60, 700, 200, 0, 1024),
)


# A node body in the seed's format, for the shell (the timestamp is filled in by `date`).
PUSH_EXAMPLE = (
    '{"node_name": "my-node", "cpu_millicores": 250, "memory_bytes": 1073741824, '
    '"disk_io": {"read_bytes": 0, "write_bytes": 4096}, "network_io": {"bytes_recv": 1200, '
    '"bytes_sent": 800}, "timestamp": "\'"$(date -u +%FT%TZ)"\'"}'
)


class DemoError(Exception):
    """Why the demo cannot go on (printed, exit 1)."""


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise DemoError(f"{text!r} is not host:port") from None


def _check_free(address: str, variable: str) -> None:
    """Fail before starting anything when an address is taken (the usual cause: a demo still running)."""
    host, port = _hostport(address)
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as waitress binds
        try:
            s.bind((host, port))
        except OSError as exc:
            raise DemoError(
                f"cannot listen on {address}: {exc.strerror or exc}. Is another demo or service using "
                f"it? Choose another address, e.g. make demo {variable}={host}:{port + 1}"
            ) from None


def _get(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.load(resp)


class Components:
    """The child processes, watched: one that exits ends the demo with its name and status."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        # Own sessions: Ctrl-C reaches only this script, which then stops both in order with SIGTERM
        # (a terminal's SIGINT to the whole group would interrupt them mid-import with tracebacks).
        self.procs[name] = subprocess.Popen(argv, cwd=ROOT, start_new_session=True, env=env)

    def check(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise DemoError(f"the {name} exited with status {p.returncode} (its log is above)")

    def stop(self) -> bool:
        """SIGTERM to each still running, in order; False when one had to be killed."""
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        clean = True
        for p in self.procs.values():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                clean = False
        return clean


def _wait_ready(url: str, components: Components, stopping: threading.Event, what: str) -> Any:
    deadline = time.monotonic() + STARTUP_SECONDS
    while not stopping.is_set():
        components.check()
        try:
            return _get(url, timeout=1)
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise DemoError(f"{what} did not answer {url} within {STARTUP_SECONDS:g} s")
        time.sleep(0.2)
    return None


class SamplePusher(threading.Thread):
    """Pushes the sample node and pods every PUSH_INTERVAL seconds (the seed's body format)."""

    def __init__(self, base: str, token: str, stopping: threading.Event) -> None:
        super().__init__(name="sample-pusher", daemon=True)
        self._base, self._token, self._stopping = base, token, stopping
        self.pushed = threading.Event()  # set after the first complete round of pushes
        self.last_error: str | None = None

    def _post(self, path: str, body: dict[str, Any]) -> None:
        req = urllib.request.Request(
            self._base + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._token}"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=5):
            pass

    def push_once(self, step: int) -> None:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        wave = 1 + 0.3 * math.sin(step / 6)  # a slow wave, so charts and sparklines move
        pods: list[tuple[str, dict[str, Any]]] = []
        for i, (pod, deployment, cpu, mem_mib, req, lim, mem_lim) in enumerate(SAMPLE_PODS):
            cpu_now = round(cpu * (wave if i % 2 == 0 else 2 - wave))
            mem_now = int(mem_mib * 2**20 * (1 + 0.05 * math.sin(step / 4 + i)))
            body: dict[str, Any] = {
                "node_name": SAMPLE_NODE,
                "cpu_millicores": cpu_now,
                "memory_bytes": mem_now,
                "disk_io": {"read_bytes": 4096 * (i + 1) * step % 65536, "write_bytes": 20_000 * (i + 1)},
                "network_io": {"bytes_recv": int(50_000 * wave * (i + 1)), "bytes_sent": 30_000 * (i + 1)},
                "timestamp": now,
                "uid": f"k8smon-demo-{i}",
                "cpu_request_millicores": req,
                "memory_limit_bytes": mem_lim * 2**20,
            }
            if lim:
                body["cpu_limit_millicores"] = lim
            if deployment:
                body["deployment"] = deployment
            pods.append((f"/api/namespaces/{SAMPLE_NAMESPACE}/pods/{pod}/metrics", body))
        self._post(
            f"/api/nodes/{SAMPLE_NODE}/metrics",
            {
                "node_name": SAMPLE_NODE,
                "cpu_millicores": sum(b["cpu_millicores"] for _, b in pods) + 150,
                "memory_bytes": sum(b["memory_bytes"] for _, b in pods) + 900 * 2**20,
                "disk_io": {"read_bytes": 200_000, "write_bytes": 450_000},
                "network_io": {"bytes_recv": int(400_000 * wave), "bytes_sent": 250_000},
                "timestamp": now,
                "cpu_capacity_millicores": 4000,
                "memory_total_bytes": 8 * 2**30,
            },
        )
        for path, body in pods:
            self._post(path, body)

    def run(self) -> None:
        step = 0
        while not self._stopping.is_set():
            try:
                self.push_once(step)
                self.last_error = None
                self.pushed.set()
            except (OSError, ValueError) as exc:  # the aggregator stopping, or a refused push
                if self._stopping.is_set():
                    return
                http = isinstance(exc, urllib.error.HTTPError)
                detail = exc.read().decode(errors="replace") if http else ""
                self.last_error = f"{exc} {detail}".strip()
                print(f"demo: sample push failed: {self.last_error}", file=sys.stderr, flush=True)
            step += 1
            self._stopping.wait(PUSH_INTERVAL)


def banner(exporter: str, aggregator: str, node: str, token: str) -> str:
    """What to try, with real names: this machine's node, a sample pod, the push token."""
    a = f"http://{aggregator}"
    pod = SAMPLE_PODS[0][0]
    return (
        "\nk8s-monitor demo is running (Ctrl-C stops both):\n"
        f"  dashboard:          open {a}/ui/ in a browser\n"
        f"  exporter metrics:   curl http://{exporter}/metrics\n"
        f"  status:             curl {a}/\n"
        f"  nodes:              curl {a}/api/nodes\n"
        f"  this machine:       curl {a}/api/nodes/{node}\n"
        f"  node history:       curl '{a}/api/nodes/{node}/timeseries?window=300'\n"
        f"  pods (top CPU):     curl '{a}/api/pods?sort=-cpu&limit=10'\n"
        f"  one pod:            curl '{a}/api/pods/{pod}?namespace={SAMPLE_NAMESPACE}'\n"
        f"  pod history:        curl '{a}/api/pods/{pod}/timeseries?namespace={SAMPLE_NAMESPACE}'\n"
        f"  namespaces:         curl {a}/api/namespaces\n"
        f"  deployments:        curl {a}/api/namespaces/{SAMPLE_NAMESPACE}/deployments\n"
        f"  deployment history: curl '{a}/api/deployments/sample-web/timeseries"
        f"?namespace={SAMPLE_NAMESPACE}'\n"
        f"  federated metrics:  curl {a}/metrics\n"
        f"  API reference:      curl {a}/openapi.json\n"
        f"\nSample pods (namespace {SAMPLE_NAMESPACE}, node {SAMPLE_NODE}) are pushed every "
        f"{PUSH_INTERVAL:g} s through the POST routes with this demo's token. Push a node yourself:\n"
        f"  curl -X POST -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' "
        f"{a}/api/nodes/my-node/metrics -d '{PUSH_EXAMPLE}'\n"
    )


def run(exporter: str, aggregator: str, stopping: threading.Event) -> None:
    """Start both, push samples, wait for Ctrl-C; DemoError when something fails."""
    _check_free(exporter, "DEMO_EXPORTER")
    _check_free(aggregator, "DEMO_AGGREGATOR")
    py = sys.executable
    token = secrets.token_urlsafe(12)
    components = Components()
    try:
        components.start("exporter", [py, "-m", "exporter", "--listen", exporter, "--interval", "5"])
        # The token goes through the environment, not argv, so `ps` does not show it.
        env = {**os.environ, "K8SMON_INGEST_TOKEN": token}
        components.start(
            "aggregator", [py, "-m", "aggregator", "--listen", aggregator, "--targets", exporter], env=env
        )
        status = _wait_ready(f"http://{exporter}/", components, stopping, "the exporter")
        if status is None:
            return
        node = status.get("node") or "<node>"
        if _wait_ready(f"http://{aggregator}/healthz", components, stopping, "the aggregator") is None:
            return
        pusher = SamplePusher(f"http://{aggregator}", token, stopping)
        pusher.start()
        if not pusher.pushed.wait(STARTUP_SECONDS):
            components.check()
            raise DemoError(f"the sample pods could not be pushed: {pusher.last_error}")
        # Print the routes once each has data: this machine scraped, the samples rolled up.
        for what, path in (
            ("the aggregator's first scrape", f"/api/nodes/{node}"),
            ("the sample pods' roll-up", f"/api/namespaces/{SAMPLE_NAMESPACE}/deployments/sample-web"),
        ):
            if _wait_ready(f"http://{aggregator}{path}", components, stopping, what) is None:
                return
        print(banner(exporter, aggregator, node, token), flush=True)
        while not stopping.wait(0.2):
            components.check()
    finally:
        stopping.set()
        components.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--exporter", default="127.0.0.1:9100", help="exporter address (DEMO_EXPORTER)")
    parser.add_argument("--aggregator", default="127.0.0.1:5000", help="aggregator address (DEMO_AGGREGATOR)")
    args = parser.parse_args()
    stopping = threading.Event()

    def stop(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        run(args.exporter, args.aggregator, stopping)
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr, flush=True)
        print("demo: stopped", flush=True)
        return 1
    print("demo: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
