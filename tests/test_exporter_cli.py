"""The exporter end to end: the service over a recorded node tree, and `python -m exporter` as a process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import load
from exporter.service import ExporterService
from tests.support import require, require_tool, wait_until

ROOT = Path(__file__).resolve().parents[1]
NODE_A = ROOT / "tests" / "fixtures" / "nodes" / "node-a"
POD_A1 = "1f3a9c2e-5b7d-4e21-9a0b-6c8d7e5f4a31"  # node-a's burstable pod (see make_trees.py)
CLOSE = {"Connection": "close"}  # keep-alive sockets would hold waitress' loop at shutdown


def fixture_args(node: Path = NODE_A, *extra: str) -> list[str]:
    require((node / "proc").is_dir(), f"fixture tree {node} missing (exporter readers' fixtures)")
    return ["--listen", "127.0.0.1:0", "--node-name", node.name, "--proc-root", str(node / "proc"),
            "--sys-root", str(node / "sys"), "--cgroup-root", str(node / "cgroup"), "--rootfs", str(node),
            "--interval", "0.2", "--exclude-namespaces", "", *extra]


def scrape(url: str) -> dict:
    with requests.get(f"{url}/metrics", headers=CLOSE, timeout=10) as resp:
        assert resp.status_code == 200
        return {f.name: f for f in text_string_to_metric_families(resp.text)}


def healthy(url: str) -> bool:
    with requests.get(f"{url}/healthz", headers=CLOSE, timeout=10) as resp:
        return resp.status_code == 200


def closed_port_kubeconfig(tmp_path: Path) -> Path:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: gone\n"
        f"clusters: [{{name: gone, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: gone, context: {cluster: gone, user: u}}]\n"
    )
    return path


def test_service_over_a_recorded_node_tree_without_an_api_server(tmp_path: Path) -> None:
    settings = load(fixture_args(NODE_A, "--kubeconfig", str(closed_port_kubeconfig(tmp_path))), {})
    service = ExporterService(settings, environ={})
    assert service.index is not None
    service.index.set_backoff(initial=0.01, cap=30.0)  # retry fast so errors show within the test
    service.start()
    try:
        wait_until(lambda: healthy(service.url), timeout=20, message="/healthz 200 after a first sample")
        wait_until(lambda: service.errors.counts().get("kube", 0) >= 2, timeout=20,
                   message="the pod index keeps retrying the absent API server")
        families = scrape(service.url)
    finally:
        service.stop()
    assert families["k8smon_exporter_kube_connected"].samples[0].value == 0
    pods = {s.labels["uid"]: s for s in families["k8smon_pod_cpu_seconds"].samples}
    assert len(pods) >= 3
    labels = pods[POD_A1].labels
    # standalone: labelled by uid
    assert (labels["pod"], labels["namespace"], labels["node"]) == (POD_A1, "", "node-a")
    assert pods[POD_A1].value == 12.5
    # MemTotal in node-a's meminfo
    assert families["k8smon_node_memory_total_bytes"].samples[0].value == 16_384_000 * 1024
    kube_errors = [s for s in families["k8smon_exporter_errors"].samples if s.labels["source"] == "kube"]
    assert kube_errors and kube_errors[0].value >= 1


def test_cli_process_serves_metrics_and_exits_0_on_sigterm() -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("K8SMON_") and k not in {"KUBERNETES_SERVICE_HOST", "NODE_NAME"}}
    proc = subprocess.Popen([sys.executable, "-m", "exporter", *fixture_args()], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        line = wait_until(lambda: next((x for x in lines if "listening on" in x), None), timeout=30,
                          message="the exporter prints its URL")
        url = line.split("listening on ", 1)[1].strip()
        wait_until(lambda: healthy(url), timeout=20, message="/healthz turns 200")
        families = scrape(url)
        with requests.get(f"{url}/metrics", headers=CLOSE, timeout=10) as resp:
            body = resp.content
        check = subprocess.run([require_tool("promtool"), "check", "metrics"], input=body,
                               capture_output=True, timeout=60, check=False)
        assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), check
        assert families["k8smon_exporter_pods_tracked"].samples[0].value >= 3
        assert "k8smon_node_cpu_capacity_cores" in families
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        reader.join(5)
        proc.stdout.close()
        stderr = proc.stderr.read()
        proc.stderr.close()
    assert "received SIGTERM" in stderr


@pytest.mark.parametrize("sig", [signal.SIGINT])
def test_cli_exits_0_on_sigint_before_any_scrape(sig: signal.Signals) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "exporter", *fixture_args()], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert "listening on" in proc.stdout.readline()
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()


def test_cli_listen_address_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = [a if a != "127.0.0.1:0" else f"127.0.0.1:{port}" for a in fixture_args()]
        proc = subprocess.run([sys.executable, "-m", "exporter", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert "cannot start" in proc.stderr and "in use" in proc.stderr.lower(), proc.stderr
