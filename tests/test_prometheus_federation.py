"""A real Prometheus scrapes the aggregator's /metrics (honor_labels: true) and sees the JSON API's values."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aggregator.config import load
from aggregator.service import Aggregator
from tests.aggregator_fakes import FakeExporters, FakeNode
from tests.support import free_port, require_tool, wait_until


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


@pytest.fixture
def aggregator() -> Iterator[Aggregator]:
    nodes = [FakeNode("127.0.0.1", "prom-a", pods=4), FakeNode("127.0.0.1", "prom-b", pods=3)]
    with FakeExporters(nodes, interval=0.5) as fakes:
        settings = load(["--listen", "127.0.0.1:0", "--targets", ",".join(n.target for n in fakes.nodes),
                         "--scrape-interval", "0.5", "--scrape-timeout", "0.4", "--stale-after", "3"], {})
        with Aggregator(settings) as agg:
            yield agg


@pytest.fixture
def prometheus(tmp_path: Path, aggregator: Aggregator) -> Iterator[str]:
    binary = require_tool("prometheus")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        "  - job_name: k8s-monitor-aggregator\n"
        "    honor_labels: true\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{aggregator.server.port}']\n"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def query(prom: str, expr: str) -> list[dict[str, Any]]:
    try:
        doc = get(f"{prom}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    except OSError:
        return []  # not listening yet
    assert doc["status"] == "success", doc
    return list(doc["data"]["result"])


def test_prometheus_sees_the_json_api_values(prometheus: str, aggregator: Aggregator) -> None:
    url = aggregator.url
    wait_until(lambda: len(query(prometheus, "k8smon_pod_memory_working_set_bytes")) == 7, timeout=60,
               message="Prometheus scraped every pod from the aggregator", interval=0.3)
    up = query(prometheus, 'up{job="k8s-monitor-aggregator"}')
    assert [r["value"][1] for r in up] == ["1"]
    # Pods: exporter labels kept as they are (honor_labels), values equal to the JSON API's.
    pods = {(p["namespace"], p["pod_name"]): p for p in get(url + "/api/pods")["pods"]}
    prom_pods = query(prometheus, "k8smon_pod_memory_working_set_bytes")
    assert {(r["metric"]["namespace"], r["metric"]["pod"]) for r in prom_pods} == set(pods)
    for r in prom_pods:
        m = r["metric"]
        pod = pods[(m["namespace"], m["pod"])]
        assert float(r["value"][1]) == pytest.approx(pod["memory_bytes"])
        assert m["node"] == pod["node_name"]
        assert m["job"] == "k8s-monitor-aggregator"
        assert m.get("deployment", "") == (pod["deployment"] or "")  # JSON null = no deployment
    # Nodes.
    nodes = {n["node_name"]: n for n in get(url + "/api/nodes")["nodes"]}
    prom_nodes = query(prometheus, "k8smon_node_memory_total_bytes")
    assert {r["metric"]["node"] for r in prom_nodes} == set(nodes) == {"prom-a", "prom-b"}
    for r in prom_nodes:
        assert float(r["value"][1]) == pytest.approx(nodes[r["metric"]["node"]]["memory_total_bytes"])
    # Namespace roll-ups and per-target health.
    namespaces = {n["namespace"]: n for n in get(url + "/api/namespaces")["namespaces"]}
    prom_ns = query(prometheus, "k8smon_namespace_memory_working_set_bytes")
    assert {r["metric"]["namespace"] for r in prom_ns} == set(namespaces)
    for r in prom_ns:
        assert float(r["value"][1]) == pytest.approx(namespaces[r["metric"]["namespace"]]["memory_bytes"])
    targets = query(prometheus, "k8smon_target_up")
    assert sorted(r["metric"]["node"] for r in targets) == ["prom-a", "prom-b"]
    assert all(r["value"][1] == "1" for r in targets)
