"""Every query of every dashboard in deploy/grafana/, and every recording rule, proven against a real
Prometheus in each scrape mode.

Three real exporters read live copies of the recorded node trees (counters growing, tests/support/
live_tree.py) and name their pods through the fake API server; a real aggregator scrapes them and
takes a few pushed pods (POST /api/namespaces/.../metrics) besides. Three Debian `prometheus`
processes scrape at 1 s with deploy/prometheus/rules.yml loaded and honor_labels: true: one the
exporters directly, one the aggregator's federated /metrics, one both at once. For each, every
dashboard's variables are resolved through the label-values API the way Grafana does, and every
target of every panel is evaluated for every combination of values: it must parse, return values in
its panel unit's plausible range, and, over the combinations, return at least one series and one
value above zero (a stat that can be 0, like "Host network", excepted). Every recorded series must
exist too, and a pod scraped both ways must count once.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from aggregator.config import load
from aggregator.service import Aggregator
from tests.kube import FakeKube
from tests.support import free_port, require_tool, wait_until
from tests.support.deploy import DEPLOY, REPO
from tests.support.fixture_pods import create_fixture_pods, fixture_uids
from tests.support.live_tree import LiveTree, Ticker

NODES_DIR = REPO / "tests" / "fixtures" / "nodes"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
RULES = DEPLOY / "prometheus" / "rules.yml"
# shop/web-* pods have requests and limits, search/api-* requests only, shop/debug-* neither
LIMITED = [{"name": "app", "requests": {"cpu": "250m", "memory": "128Mi"},
           "limits": {"cpu": "1", "memory": "1Gi"}}]
REQUESTED = [{"name": "app", "requests": {"cpu": "100m", "memory": "64Mi"}}]
HOSTS = {"node-a": "127.0.0.2", "node-b": "127.0.0.3", "node-c": "127.0.0.4"}
TOKEN = "i14-push-token"
PUSHED = [("checkout", f"cart-{i}", "cart") for i in range(3)] + [("checkout", "batch-0", "")]
# What Grafana puts in for $__rate_interval with the data source's scrape interval at its 15 s default
# (4 x 15 s), the interval of deploy/prometheus; Prometheus here scrapes every second, so 60 samples.
RATE_INTERVAL = "1m"
# A panel's unit -> the values it may show. No CPU figure is above the cluster's CPUs (the fixture
# trees have 4 + 2 + 8; the pods' limits stay under that), so CPU in millicores fails.
CAPACITY_CORES = 14.0
RANGES: dict[str, tuple[float, float]] = {
    "cores": (0.0, CAPACITY_CORES),
    "bytes": (0.0, 2.0**50),
    "Bps": (0.0, 2.0**34),
    "percentunit": (0.0, 1.0),
    "none": (0.0, 1e5),
    "bool_yes_no": (0.0, 1.0),
}
MAY_BE_ZERO = {"bool_yes_no"}
# Prometheus scraping the exporters, the aggregator's federated /metrics, or both at once.
MODES = ("direct", "federated", "both")


def _post(url: str, body: dict[str, Any]) -> int:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return int(resp.status)


class Pusher:
    """Pushes the PUSHED pods to the aggregator every `period` seconds (the seed's push routes)."""

    def __init__(self, url: str, *, period: float = 0.5) -> None:
        self.url, self.period = url, period
        self.pushes = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pusher", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            stamp = datetime.now(UTC).isoformat()
            for i, (ns, pod, deployment) in enumerate(PUSHED):
                body: dict[str, Any] = {
                    "node_name": "node-a", "cpu_millicores": 100 + 50 * i, "memory_bytes": (64 + i) << 20,
                    "disk_io": {"read_bytes": 2048, "write_bytes": 4096},
                    "network_io": {"bytes_recv": 5000, "bytes_sent": 3000}, "timestamp": stamp,
                    "cpu_request_millicores": 200, "cpu_limit_millicores": 500,
                    "memory_request_bytes": 128 << 20, "memory_limit_bytes": 256 << 20,
                }
                if deployment:
                    body["deployment"] = deployment
                try:
                    status = _post(f"{self.url}/api/namespaces/{ns}/pods/{pod}/metrics", body)
                except (OSError, urllib.error.HTTPError) as exc:
                    self.failures.append(f"{pod}: {exc}")
                    continue
                if status == 201:
                    self.pushes += 1
            self._stop.wait(self.period)

    def __enter__(self) -> Pusher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@dataclass
class Cluster:
    aggregator: Aggregator
    exporter_targets: list[str]
    pusher: Pusher


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("grafana-queries")
    trees = [LiveTree(NODES_DIR / node, tmp / node) for node in HOSTS]
    port = free_port("127.0.0.2")
    procs: list[subprocess.Popen[bytes]] = []
    with FakeKube() as kube, Ticker(trees):
        create_fixture_pods(kube, HOSTS, web_containers=LIMITED, api_containers=REQUESTED)
        try:
            for (node, host), tree in zip(HOSTS.items(), trees, strict=True):
                with (tmp / f"exporter-{node}.log").open("wb") as log:
                    procs.append(subprocess.Popen(
                        [sys.executable, "-m", "exporter", "--listen", f"{host}:{port}", "--node-name", node,
                         "--proc-root", str(tree.root / "proc"), "--sys-root", str(tree.root / "sys"),
                         "--cgroup-root", str(tree.root / "cgroup"), "--rootfs", str(tree.root),
                         "--interval", "0.5", "--kubeconfig", str(kube.kubeconfig),
                         "--exclude-namespaces", ""],
                        cwd=REPO, stdout=log, stderr=subprocess.STDOUT))
            targets = [f"{host}:{port}" for host in HOSTS.values()]
            settings = load(["--listen", "127.0.0.1:0", "--targets", ",".join(targets),
                             "--scrape-interval", "0.5", "--scrape-timeout", "0.4", "--stale-after", "5",
                             "--ingest-token", TOKEN], {})
            with Aggregator(settings) as agg, Pusher(agg.url) as pusher:
                yield Cluster(aggregator=agg, exporter_targets=targets, pusher=pusher)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


@dataclass
class Prometheus:
    url: str
    mode: str
    proc: subprocess.Popen[bytes]
    log: Path
    queries: int = field(default=0)

    def get(self, path: str, params: list[tuple[str, str]]) -> Any:
        self.queries += 1
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as err:  # 400 and 422 carry Prometheus' error document
            with err:
                return json.load(err)

    def query(self, expr: str) -> list[dict[str, Any]]:
        doc = self.get("/api/v1/query", [("query", expr)])
        assert doc["status"] == "success", f"[{self.mode}] {expr!r} failed: {doc.get('error')}"
        assert doc["data"]["resultType"] == "vector", expr
        return list(doc["data"]["result"])

    def label_values(self, label: str, match: str) -> list[str]:
        doc = self.get(f"/api/v1/label/{label}/values", [("match[]", match)])
        assert doc["status"] == "success", f"[{self.mode}] label_values({match}, {label}): {doc.get('error')}"
        return sorted(v for v in doc["data"] if v)


EXPORTER_JOB, AGGREGATOR_JOB = "k8s-monitor-exporter", "k8s-monitor-aggregator"


def _start_prometheus(tmp: Path, mode: str, jobs: dict[str, list[str]]) -> Prometheus:
    """Prometheus scraping each job's targets every second with honor_labels, rules.yml loaded."""
    binary = require_tool("prometheus")
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": job, "honor_labels": True, "static_configs": [{"targets": targets}]}
                           for job, targets in jobs.items()],
    }
    path = tmp / f"prometheus-{mode}.yml"
    path.write_text(yaml.safe_dump(config))
    log = tmp / f"prometheus-{mode}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, f"--config.file={path}", f"--storage.tsdb.path={tmp / f'tsdb-{mode}'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=out, stderr=subprocess.STDOUT)
    return Prometheus(url=f"http://127.0.0.1:{port}", mode=mode, proc=proc, log=log)


@pytest.fixture(scope="module")
def proms(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Prometheus]]:
    tmp = tmp_path_factory.mktemp("prometheus")
    aggregator = [f"127.0.0.1:{cluster.aggregator.server.port}"]
    started = {mode: _start_prometheus(tmp, mode, jobs) for mode, jobs in (
        ("direct", {EXPORTER_JOB: cluster.exporter_targets}),
        ("federated", {AGGREGATOR_JOB: aggregator}),
        ("both", {EXPORTER_JOB: cluster.exporter_targets, AGGREGATOR_JOB: aggregator}),
    )}
    try:
        yield started
    finally:
        for p in started.values():
            p.proc.terminate()
        for p in started.values():
            try:
                p.proc.wait(15)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait(5)


def _records() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [r["record"] for g in groups for r in g["rules"] if "record" in r]


def _ready(prom: Prometheus) -> bool:
    """Every recorded series exists and the per-pod rates have a window of samples behind them."""
    if prom.proc.poll() is not None:
        pytest.fail(f"prometheus exited:\n{prom.log.read_text()[-3000:]}")
    try:
        return all(prom.query(r) for r in _records()) and bool(
            prom.query("count_over_time(k8smon_pod_cpu_usage_cores[1m]) >= 6"))
    except OSError:
        return False  # not listening yet
    except ValueError:  # JSONDecodeError: starting up, Prometheus answers 503 in plain text (seen in CI)
        return False


# --- dashboards ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    dashboard: str
    panel: str
    unit: str
    ref: str
    expr: str


def _targets(dash: dict[str, Any]) -> list[Target]:
    out = []
    for panel in dash["panels"]:
        unit = panel["fieldConfig"]["defaults"]["unit"]
        for t in panel["targets"]:
            out.append(Target(dash["uid"], panel["title"], unit, t["refId"], t["expr"]))
    return out


_LABEL_VALUES = re.compile(r"^label_values\((?P<match>.+),\s*(?P<label>\w+)\)$")


def _substitute(text: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        text = text.replace(f"${{{name}}}", value).replace(f"${name}", value)
    return text


def _combinations(prom: Prometheus, dash: dict[str, Any]) -> list[dict[str, str]]:
    """Every assignment of the dashboard's query variables, each resolved after the ones before it."""
    combos: list[dict[str, str]] = [{}]
    for var in dash["templating"]["list"]:
        if var["type"] == "datasource":
            continue
        m = _LABEL_VALUES.match(var["query"])
        assert m, f"{dash['uid']}: ${var['name']} is not a label_values() query: {var['query']!r}"
        grown = []
        for combo in combos:
            values = prom.label_values(m["label"], _substitute(m["match"], combo))
            grown.extend({**combo, var["name"]: v} for v in values)
        assert grown, f"[{prom.mode}] {dash['uid']}: ${var['name']} has no values"
        combos = grown
    return combos


def _check_dashboards(prom: Prometheus) -> dict[str, int]:
    (capacity,) = prom.query("sum(max by (node) (k8smon_node_cpu_capacity_cores))")
    assert float(capacity["value"][1]) == CAPACITY_CORES
    failures: list[str] = []
    counts: dict[str, int] = {}
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        combos = _combinations(prom, dash)
        counts[dash["uid"]] = len(combos)
        for t in _targets(dash):
            low, high = RANGES[t.unit]
            series = 0
            peak = -math.inf
            for combo in combos:
                expr = _substitute(t.expr, {**combo, "__rate_interval": RATE_INTERVAL})
                assert "$" not in expr, f"{t.dashboard}/{t.panel}: unresolved variable in {expr!r}"
                for r in prom.query(expr):
                    value = float(r["value"][1])
                    series += 1
                    peak = max(peak, value)
                    if not low <= value <= high:  # also catches NaN
                        failures.append(f"{t.dashboard} / {t.panel} / {t.ref} ({t.unit}) {combo}: "
                                        f"{value} outside [{low}, {high}]: {expr}")
            if series == 0:
                failures.append(f"{t.dashboard} / {t.panel} / {t.ref}: no series in {combos}: {t.expr}")
            elif peak <= 0 and t.unit not in MAY_BE_ZERO:
                failures.append(f"{t.dashboard} / {t.panel} / {t.ref}: only zeros: {t.expr}")
    assert not failures, f"[{prom.mode}] " + "\n".join(failures)
    return counts


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_every_dashboard_query_returns_plausible_data(proms: dict[str, Prometheus], cluster: Cluster,
                                                      mode: str) -> None:
    prom = proms[mode]
    wait_until(lambda: _ready(prom), timeout=45, interval=0.5,
               message=f"[{mode}] Prometheus has every recorded series and a minute window of samples")
    started = time.monotonic()
    counts = _check_dashboards(prom)
    print(f"[{mode}] {prom.queries} API calls, variable combinations {counts}, "
          f"{time.monotonic() - started:.1f} s")
    assert cluster.pusher.pushes > 0 and not cluster.pusher.failures, cluster.pusher.failures[:3]
    # The mode really is what it says: only its own job, and pushed pods only through the aggregator.
    jobs = {r["metric"]["job"] for r in prom.query("count by (job) (k8smon_pod_memory_working_set_bytes)")}
    both = {EXPORTER_JOB, AGGREGATOR_JOB}
    assert jobs == {"direct": {EXPORTER_JOB}, "federated": {AGGREGATOR_JOB}, "both": both}[mode]
    pushed = prom.query('k8smon_pod_memory_working_set_bytes{namespace="checkout"}')
    assert len(pushed) == (0 if mode == "direct" else len(PUSHED))
    assert bool(prom.query("k8smon_namespace_pods")) == (mode != "direct")  # the aggregator's roll-ups


def _record_unit(record: str) -> str:
    """The unit of a recorded series, from its name (level:metric:operations)."""
    metric = record.split(":")[1]
    if record.endswith(":rate1m"):
        return "Bps"
    return {"_cores": "cores", "_bytes": "bytes", "k8smon_pods": "none"}[
        next(k for k in ("_cores", "_bytes", "k8smon_pods") if metric.endswith(k))]


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_every_recording_rule_has_plausible_output(proms: dict[str, Prometheus], mode: str) -> None:
    prom = proms[mode]
    wait_until(lambda: _ready(prom), timeout=45, interval=0.5, message=f"[{mode}] recorded series present")
    for record in _records():
        unit = _record_unit(record)
        low, high = RANGES[unit]
        result = prom.query(record)
        assert result, f"[{mode}] {record} recorded nothing"
        values = [float(r["value"][1]) for r in result]
        assert all(low <= v <= high for v in values), f"[{mode}] {record} ({unit}): {values}"
        assert max(values) > 0, f"[{mode}] {record}: only zeros"
        assert all("job" not in r["metric"] and "instance" not in r["metric"] for r in result), record


def _stat(name: str, title: str) -> str:
    """The expression of the stat panel `title` in dashboard file `name`."""
    dash = json.loads((DEPLOY / "grafana" / "dashboards" / name).read_text())
    (panel,) = [p for p in dash["panels"] if p["title"] == title]
    (target,) = panel["targets"]
    return str(target["expr"])


@pytest.mark.slow
def test_each_pod_counts_once_whichever_way_prometheus_scrapes(proms: dict[str, Prometheus]) -> None:
    """A pod scraped through both jobs counts once in the dashboards and the recording rules, and the
    same pods give the same namespace memory (a gauge read from the same recorded files; CPU and
    rates differ by sampling moments, so they are not compared)."""
    for prom in proms.values():
        wait_until(lambda p=prom: _ready(p), timeout=45, interval=0.5, message=f"[{prom.mode}] ready")
    fixture_pods = sum(len(fixture_uids(node)) for node in HOSTS)
    everything = fixture_pods + len(PUSHED)
    expected = {"direct": fixture_pods, "federated": everything, "both": everything}
    pods = _stat("k8s-monitor-cluster.json", "Pods")
    for mode, prom in proms.items():
        (count,) = prom.query(pods)
        assert float(count["value"][1]) == expected[mode], mode

    def by_ns(prom: Prometheus, record: str) -> dict[str, float]:
        return {r["metric"]["namespace"]: float(r["value"][1]) for r in prom.query(record)}

    record = "namespace:k8smon_pod_memory_working_set_bytes:sum"
    memory = {m: by_ns(prom, record) for m, prom in proms.items()}
    assert set(memory["direct"]) == {"shop", "search"}
    assert set(memory["federated"]) == set(memory["both"]) == {"shop", "search", "checkout"}  # pushed
    for ns, value in memory["direct"].items():
        assert memory["federated"][ns] == pytest.approx(value), ns
        assert memory["both"][ns] == pytest.approx(value), ns
    # Both read the aggregator's k8smon_namespace_pods, each at its own scrape moment: the pods pushed
    # in one round can differ from the next (4 pushes a cycle on a slow machine: checkout 2 vs 4 seen
    # once), so they are compared when they agree on a round. A pod counted twice would never agree.
    def counts() -> dict[str, dict[str, float]]:
        return {mode: by_ns(prom, "namespace:k8smon_pods:count") for mode, prom in proms.items()}

    agreed = wait_until(lambda: (c := counts())["both"] == c["federated"] and c, timeout=20, interval=0.5,
                        message="both jobs and the federation alone count the same pods per namespace")
    assert sum(agreed["direct"].values()) == fixture_pods
