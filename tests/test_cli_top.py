"""`k8smon top` in a real terminal (tmux) against a real aggregator process fed through its push routes.

The aggregator runs as `python -m aggregator` on loopback with a 1-s round and no exporter; nodes and
pods arrive through the authenticated POST routes with known figures, so every expected cell below
is computed by hand the way `kubectl top` computes it.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support import free_port, require_tool, wait_until

ROOT = Path(__file__).resolve().parent.parent
K8SMON = str(Path(sys.executable).with_name("k8smon"))
TOKEN = "cli-test-token"
MI, GI = 2**20, 2**30
ANSI = re.compile(r"\x1b\[")

# node -> (cpu millicores, memory bytes, capacity millicores, memory total)
NODES = {
    "node-1": (1500, 2 * GI, 4000, 8 * GI),
    "node-2": (250.4, 1536 * MI + 512 * 1024, 2000, 4 * GI),
}
# (namespace, pod, node, deployment, cpu millicores, working set bytes)
PODS = [
    ("shop", "web-1", "node-1", "web", 250, 128 * MI),
    ("shop", "web-2", "node-1", "web", 120, 300 * MI),
    ("shop", "db-0", "node-2", "", 700, 1 * GI),
    ("ops", "agent-x", "node-2", "agent", 5, 64 * MI),
    ("default", "hello", "node-1", "", 0.4, 10 * MI + 5),
]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _io(scale: int) -> dict[str, dict[str, int]]:
    return {"disk_io": {"read_bytes": 1000 * scale, "write_bytes": 2000 * scale},
            "network_io": {"bytes_recv": 3000 * scale, "bytes_sent": 4000 * scale}}


@dataclass
class Aggregator:
    url: str
    proc: subprocess.Popen[bytes]

    def push_all(self, *, cpu_bump: float = 0.0) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        ts = _now()
        for node, (cpu, mem, cap, total) in NODES.items():
            body = {"node_name": node, "cpu_millicores": cpu + cpu_bump, "memory_bytes": mem,
                    "timestamp": ts, "cpu_capacity_millicores": cap, "memory_total_bytes": total, **_io(1)}
            r = requests.post(f"{self.url}/api/nodes/{node}/metrics", json=body, headers=headers, timeout=10)
            assert r.status_code == 201, r.text
        for ns, pod, node, dep, cpu, mem in PODS:
            body = {"node_name": node, "cpu_millicores": cpu, "memory_bytes": mem, "timestamp": ts, **_io(2)}
            if dep:
                body["deployment"] = dep
            if pod == "web-1":
                body.update(cpu_request_millicores=500, cpu_limit_millicores=1000,
                            memory_limit_bytes=256 * MI)
            path = f"/api/namespaces/{ns}/pods/{pod}/metrics"
            r = requests.post(self.url + path, json=body, headers=headers, timeout=10)
            assert r.status_code == 201, r.text


@pytest.fixture(scope="module")
def aggregator() -> Iterator[Aggregator]:
    port = free_port()
    env = {**os.environ, "K8SMON_INGEST_TOKEN": TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "--listen", f"127.0.0.1:{port}", "--targets", "127.0.0.2:9",
         "--scrape-interval", "1", "--stale-after", "3600"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    agg = Aggregator(f"http://127.0.0.1:{port}", proc)
    try:
        wait_until(lambda: _ok(f"{agg.url}/healthz"), timeout=30, message="the aggregator answers")
        for i in range(3):  # three points: rates, series and roll-ups
            if i:
                time.sleep(1.05)
            agg.push_all()
        namespaces = f"{agg.url}/api/namespaces"
        wait_until(lambda: len(requests.get(namespaces, timeout=5).json()["namespaces"]) == 3,
                   timeout=10, message="the namespaces are rolled up")
        yield agg
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


class Tmux:
    """A private tmux server (own socket) running bash in a 160x40 terminal."""

    def __init__(self, name: str) -> None:
        self.socket = name
        self._run("new-session", "-d", "-x", "160", "-y", "40", "-s", "t",
                  "env -i PATH=/usr/bin:/bin HOME=/tmp TERM=xterm-256color PS1='$ ' bash --norc --noprofile")

    def _run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True,
                              timeout=10).stdout

    def type(self, command: str) -> None:
        self._run("send-keys", "-t", "t", command, "Enter")

    def key(self, key: str) -> None:
        self._run("send-keys", "-t", "t", key)

    def screen(self, *, escapes: bool = False) -> str:
        return self._run("capture-pane", "-p", "-J", "-t", "t", *(["-e"] if escapes else []))

    def screen_if(self, condition: Callable[[str], bool], *, escapes: bool = False) -> str | None:
        """The screen when `condition` holds for it, else None (for wait_until)."""
        text = self.screen(escapes=escapes)
        return text if condition(text) else None

    def clear(self) -> None:
        self.type("clear")
        wait_until(lambda: self.screen().strip() == "$", timeout=5, message="the pane is cleared")

    def run(self, command: str, *, timeout: float = 20, escapes: bool = False) -> tuple[str, int]:
        """Type `command`, wait for it to finish; its screen output (without the prompt) and exit status."""
        self.clear()
        self.type(f"{command}; echo \"r\"\"c=$?\"")  # typed as r""c=, printed as rc=
        text = wait_until(lambda: self.screen_if(lambda s: "rc=" in s, escapes=escapes),
                          timeout=timeout, message=f"{command} finishes")
        out = text.split("\n", 1)[1]  # drop the typed command line (-J joined it if it wrapped)
        m = re.search(r"rc=(\d+)", out)
        assert m is not None
        return out[: m.start()], int(m.group(1))

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10,
                       check=False)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    require_tool("tmux")
    term = Tmux(f"k8smon-test-i10c-{secrets.token_hex(4)}")
    try:
        yield term
    finally:
        term.kill()


def _cmd(agg: Aggregator, args: str, env: str = "") -> str:
    return f"{env} K8SMON_SERVER={agg.url} {shlex.quote(K8SMON)} {args}".strip()


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip("\n").split("\n") if line.strip()]


def test_top_nodes_prints_kubectl_columns_and_units(aggregator: Aggregator, tmux: Tmux) -> None:
    out, rc = tmux.run(_cmd(aggregator, "top nodes", env="NO_COLOR=1"))
    assert rc == 0
    # CPU: whole millicores rounded up (250.4 -> 251m); %: truncated; memory: whole Mi rounded down
    assert _lines(out) == [
        "NAME     CPU(cores)   CPU%   MEMORY(bytes)   MEMORY%",
        "node-1   1500m        37%    2048Mi          25%",
        "node-2   251m         12%    1536Mi          37%",
    ]


def test_top_pods_all_namespaces_sorted_by_memory(aggregator: Aggregator, tmux: Tmux) -> None:
    out, rc = tmux.run(_cmd(aggregator, "top pods -A --sort-by memory", env="NO_COLOR=1"))
    assert rc == 0
    assert _lines(out) == [
        "NAMESPACE   NAME      CPU(cores)   MEMORY(bytes)",
        "shop        db-0      700m         1024Mi",
        "shop        web-2     120m         300Mi",
        "shop        web-1     250m         128Mi",
        "ops         agent-x   5m           64Mi",
        "default     hello     1m           10Mi",
    ]


def test_top_pods_defaults_to_the_default_namespace_like_kubectl(
    aggregator: Aggregator, tmux: Tmux
) -> None:
    out, rc = tmux.run(_cmd(aggregator, "top pods", env="NO_COLOR=1"))
    assert rc == 0
    assert _lines(out) == ["NAME    CPU(cores)   MEMORY(bytes)", "hello   1m           10Mi"]
    out, rc = tmux.run(_cmd(aggregator, "top pods -n nowhere", env="NO_COLOR=1"))
    assert rc == 0 and _lines(out) == ["No resources found in nowhere namespace."]


def test_namespaces_and_deployments(aggregator: Aggregator, tmux: Tmux) -> None:
    out, rc = tmux.run(_cmd(aggregator, "top namespaces --sort-by cpu", env="NO_COLOR=1"))
    assert rc == 0
    assert _lines(out) == [
        "NAME      CPU(cores)   MEMORY(bytes)   PODS",
        "shop      1070m        1452Mi          3",
        "ops       5m           64Mi            1",
        "default   1m           10Mi            1",
    ]
    out, rc = tmux.run(_cmd(aggregator, "top deployments -A", env="NO_COLOR=1"))
    assert rc == 0
    assert _lines(out) == [
        "NAMESPACE   NAME    CPU(cores)   MEMORY(bytes)   PODS",
        "ops         agent   5m           64Mi            1",
        "shop        web     370m         428Mi           2",
    ]


def test_wide_adds_percent_of_request_and_limit_io_node_and_a_sparkline(
    aggregator: Aggregator, tmux: Tmux
) -> None:
    out, rc = tmux.run(_cmd(aggregator, "top pods -n shop -o wide --sort-by name", env="NO_COLOR=1"))
    assert rc == 0
    lines = _lines(out)
    assert lines[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)", "%CPU/R", "%CPU/L", "%MEM/R", "%MEM/L",
                                "DISK(R/W)", "NET(RX/TX)", "NODE", "CPU(5m)"]
    web1 = next(line.split() for line in lines if line.startswith("web-1"))
    # 250m of a 500m request and a 1000m limit; 128Mi of a 256Mi limit, no memory request
    assert web1[:7] == ["web-1", "250m", "128Mi", "50%", "25%", "-", "50%"]
    assert web1[9] == "node-1"
    assert re.fullmatch(r"[▁▂▃▄▅▆▇█]{2,16}", web1[10]), web1  # the window's CPU points as bars


def test_json_output_parses_back_to_the_api_documents(aggregator: Aggregator) -> None:
    proc = subprocess.run([K8SMON, "--server", aggregator.url, "top", "pods", "-A", "-o", "json",
                           "--sort-by", "cpu"], capture_output=True, text=True, timeout=30, check=True)
    doc = json.loads(proc.stdout)
    assert doc["kind"] == "pods"
    names = [(p["namespace"], p["pod_name"]) for p in doc["items"]]
    assert names == [("shop", "db-0"), ("shop", "web-1"), ("shop", "web-2"), ("ops", "agent-x"),
                     ("default", "hello")]
    api = {(p["namespace"], p["pod_name"]): p for p in requests.get(f"{aggregator.url}/api/pods",
                                                                      timeout=5).json()["pods"]}
    for item in doc["items"]:
        served = api[(item["namespace"], item["pod_name"])]
        for key in ("cpu_millicores", "memory_bytes", "node_name", "deployment", "cpu_limit_millicores"):
            assert item[key] == served[key], key
    assert "\x1b" not in proc.stdout


def test_colour_only_on_a_terminal_and_never_with_no_color(aggregator: Aggregator, tmux: Tmux) -> None:
    coloured, rc = tmux.run(_cmd(aggregator, "top nodes"), escapes=True)
    assert rc == 0 and ANSI.search(coloured), coloured  # a TTY: the header is bold
    plain, rc = tmux.run(_cmd(aggregator, "top nodes", env="NO_COLOR=1"), escapes=True)
    assert rc == 0 and not ANSI.search(plain) and "node-1" in plain
    piped, rc = tmux.run(_cmd(aggregator, "top nodes | cat"), escapes=True)
    assert rc == 0 and not ANSI.search(piped) and "node-1" in piped


def test_watch_redraws_in_place(aggregator: Aggregator, tmux: Tmux) -> None:
    tmux.clear()
    tmux.type(_cmd(aggregator, "top nodes --watch --interval 0.5", env="NO_COLOR=1"))
    first = wait_until(lambda: tmux.screen_if(lambda s: "node-2" in s), timeout=15,
                       message="the first screen")
    assert "Every 0.5s: k8smon top nodes" in first
    assert re.search(r"node-1\s+1500m\s+37%", first)
    aggregator.push_all(cpu_bump=1000)  # node-1: 2500m = 62% of 4000m
    again = wait_until(lambda: tmux.screen_if(lambda s: bool(re.search(r"node-1\s+2500m\s+62%", s))),
                       timeout=15, message="the new figure replaces the old one")
    # in place: one title, one header and one row per node on the screen, whatever the refreshes
    assert again.count("Every 0.5s") == 1 and again.count("MEMORY(bytes)") == 1
    assert again.count("node-1") == 1 and "1500m" not in again
    assert "CPU(5m)" in again  # the sparkline column comes with --watch
    tmux.key("C-c")
    out = wait_until(lambda: tmux.screen_if(lambda s: s.rstrip().endswith("$")), timeout=10,
                     message="Ctrl-C ends the watch")
    assert "Traceback" not in out
    tmux.type('echo "rc=$?"')
    wait_until(lambda: "rc=0" in tmux.screen(), timeout=5, message="--watch exits 0 on Ctrl-C")
    aggregator.push_all()  # back to the figures the other tests expect


class _Failing(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(500)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"boom")

    def log_message(self, *args: Any) -> None:
        pass


def test_errors_have_clear_messages_and_distinct_exit_codes(aggregator: Aggregator, tmux: Tmux) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    out, rc = tmux.run(f"{shlex.quote(K8SMON)} --server {dead} top nodes")
    assert rc == 3 and f"k8smon: cannot reach the aggregator at {dead}" in out
    out, rc = tmux.run(_cmd(aggregator, "top pods nope -n shop"))
    assert rc == 5 and 'k8smon: pod "nope" not found in namespace "shop"' in out
    out, rc = tmux.run(_cmd(aggregator, "top nodes node-9"))
    assert rc == 5 and 'k8smon: node "node-9" not found' in out
    out, rc = tmux.run(_cmd(aggregator, "top gadgets"))
    assert rc == 2 and "unknown kind 'gadgets'" in out
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        out, rc = tmux.run(f"{shlex.quote(K8SMON)} --server 127.0.0.1:{server.server_port} top nodes")
    finally:
        server.shutdown()
        server.server_close()
    assert rc == 4 and "the server answered 500" in out
    assert "Traceback" not in out


def test_containers_without_per_container_figures_says_so(aggregator: Aggregator) -> None:
    proc = subprocess.run([K8SMON, "--server", aggregator.url, "top", "pods", "-n", "shop", "--containers"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0
    assert "serves no per-container figures" in proc.stderr
    assert proc.stdout.splitlines()[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]


def test_version() -> None:
    from k8smon_common import __version__

    proc = subprocess.run([K8SMON, "--version"], capture_output=True, text=True, timeout=30, check=True)
    assert proc.stdout.strip() == f"k8smon {__version__}"


class _Golden(http.server.BaseHTTPRequestHandler):
    """An exporter stand-in serving the recorded exposition (tests/fixtures), container families included."""

    body = (ROOT / "tests" / "fixtures" / "exporter_golden.prom").read_bytes()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


def test_containers_from_a_scraped_exporter() -> None:
    """Per-container rows from the container families an exporter serves, scraped by a real aggregator."""
    exporter = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Golden)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "--listen", f"127.0.0.1:{port}", "--targets",
         f"127.0.0.1:{exporter.server_port}", "--scrape-interval", "1", "--stale-after", "3600"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ok(f"{url}/api/pods/db-0?namespace=shop"), timeout=30, message="the scrape is in")
        out = subprocess.run([K8SMON, "--server", url, "top", "pods", "-n", "shop", "--containers"],
                             capture_output=True, text=True, timeout=30, check=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        exporter.shutdown()
        exporter.server_close()
    assert out.stderr == ""
    rows = [line.split() for line in out.stdout.splitlines()]
    assert rows[0] == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    # db: 0.5 cores, 1.8874368e+08 B = 180Mi; web: 0.2 cores, 150Mi; proxy: 0.05 cores, 40Mi
    assert sorted(rows[1:]) == [
        ["db-0", "db", "500m", "180Mi"],
        ["web-7d9f8b6c5d-x2x7q", "proxy", "50m", "40Mi"],
        ["web-7d9f8b6c5d-x2x7q", "web", "200m", "150Mi"],
    ]
