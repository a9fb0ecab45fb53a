"""A small cluster for the Resource Metrics API tests: the fake API server with its aggregation layer, two
real exporters on loopback reading real cgroup pods (a private cgroup root per node, names containing
`k8smon-test-<tag>`), and a real aggregator serving metrics.k8s.io behind APIServices.

Once every pod has a complete sample the aggregator stops scraping (`freeze()`), so the figures the
tests compare (kubectl, the raw metrics API, the JSON API) are one set of numbers.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

from aggregator.config import load as load_aggregator
from aggregator.service import Aggregator
from exporter.config import load as load_exporter
from exporter.service import ExporterService
from tests.kube import FakeKube, objects
from tests.support import wait_until
from tests.support.containerd import TestCgroupRoot

HIERARCHIES = ("unified", "cpu", "cpuacct", "memory", "blkio")
NAMESPACE, SERVICE = "k8s-monitor", "k8s-monitor-metrics-api"
# Holds `argv[1]` MiB (charged to its cgroup: allocated after the move) and burns `argv[2]` of a core.
WORKER = """
import sys, time
sys.stdin.readline()
held = b"x" * (int(sys.argv[1]) << 20)
duty = float(sys.argv[2])
while True:
    start = time.monotonic()
    while time.monotonic() - start < duty * 0.1:
        pass
    time.sleep(0.1 * (1 - duty))
"""


@dataclass(frozen=True)
class Container:
    name: str
    mib: int
    duty: float


@dataclass(frozen=True)
class PodSpec:
    namespace: str
    name: str
    node: str
    labels: dict[str, str]
    containers: tuple[Container, ...]


PODS = (
    PodSpec("shop", "web-1", "node-a", {"app": "web", "tier": "front"},
            (Container("app", 24, 0.15), Container("sidecar", 8, 0.0))),
    PodSpec("shop", "db-0", "node-a", {"app": "db"}, (Container("db", 48, 0.05),)),
    PodSpec("shop", "web-2", "node-b", {"app": "web"}, (Container("app", 16, 0.08),)),
    PodSpec("kube-system", "dns-1", "node-b", {"k8s-app": "dns"}, (Container("coredns", 4, 0.0),)),
)


@dataclass
class MetricsCluster:
    kube: FakeKube
    aggregator: Aggregator
    roots: dict[str, TestCgroupRoot] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return self.aggregator.url

    @property
    def metrics_url(self) -> str:
        assert self.aggregator.metrics_api is not None
        return self.aggregator.metrics_api.url

    def json(self, path: str, **params: str) -> Any:
        resp = requests.get(f"{self.api}{path}", params=params, timeout=10)
        resp.raise_for_status()
        return resp.json()

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cache = self.kube.kubeconfig.parent / "kubectl-cache"
        return subprocess.run(["kubectl", "--kubeconfig", str(self.kube.kubeconfig), "--cache-dir",
                               str(cache), *args], capture_output=True, text=True, timeout=60, check=check)


def register_apiservices(kube: FakeKube, port: int, *, ca_bundle: str | None = None) -> None:
    """The Service, its Endpoints (the metrics listener on 127.0.0.1) and both APIServices."""
    with contextlib.suppress(Exception):
        kube.create(objects.namespace(NAMESPACE))
    kube.create(objects.service(SERVICE, NAMESPACE, port=443, port_name="https", headless=False))
    kube.create(objects.endpoints(SERVICE, NAMESPACE, addresses=[("127.0.0.1", "node-a")], port=port,
                                  port_name="https"))
    for version in ("v1beta1", "v1"):
        spec: dict[str, Any] = {"group": "metrics.k8s.io", "version": version, "groupPriorityMinimum": 100,
                                "versionPriority": 100,
                                "service": {"namespace": NAMESPACE, "name": SERVICE, "port": 443}}
        if ca_bundle is None:
            spec["insecureSkipTLSVerify"] = True
        else:
            spec["caBundle"] = ca_bundle
        kube.create({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                     "metadata": {"name": f"{version}.metrics.k8s.io"}, "spec": spec})


def _start_pod(kube: FakeKube, root: TestCgroupRoot, spec: PodSpec,
               procs: list[subprocess.Popen[bytes]]) -> None:
    uid = str(uuid.uuid4())
    obj = objects.pod(spec.name, spec.namespace, node=spec.node, uid=uid, labels=spec.labels,
                      containers=[objects.container(c.name) for c in spec.containers])
    for container, status in zip(spec.containers, obj["status"]["containerStatuses"], strict=True):
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        status["containerID"] = f"containerd://{cid}"
        dirs = [root.mkdir(h, f"kubepods/besteffort/pod{uid}/{cid}") for h in HIERARCHIES]
        proc = subprocess.Popen([sys.executable, "-c", WORKER, str(container.mib), str(container.duty)],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        procs.append(proc)
        for d in dirs:
            with open(os.path.join(d, "cgroup.procs"), "w", encoding="ascii") as f:
                f.write(str(proc.pid))
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    kube.create(obj)


@contextlib.contextmanager
def metrics_cluster(tag: str, *, auth_flags: tuple[str, ...] = ()) -> Iterator[MetricsCluster]:
    """Everything above, torn down (processes by PID, cgroups deepest first) whatever happens."""
    procs: list[subprocess.Popen[bytes]] = []
    roots = {node: TestCgroupRoot(tag) for node in ("node-a", "node-b")}
    problems: list[str] = []
    try:
        with FakeKube(aggregation=True, bookmark_interval=0.2) as kube, contextlib.ExitStack() as stack:
            for node in roots:
                kube.create(objects.node(node, labels={"zone": node[-1]}))
            for ns in ("shop", "kube-system"):
                kube.create(objects.namespace(ns))
            kube.create(kube.aggregation.authentication_configmap())
            for root in roots.values():
                for h in HIERARCHIES:
                    root.mkdir(h, "kubepods/besteffort")
            for spec in PODS:
                _start_pod(kube, roots[spec.node], spec, procs)
            targets = []
            for node, root in roots.items():
                settings = load_exporter(["--listen", "127.0.0.1:0", "--node-name", node, "--cgroup-root",
                                          str(root.view), "--kubeconfig", str(kube.kubeconfig),
                                          "--interval", "1", "--liveness-timeout", "30",
                                          "--exclude-namespaces", ""], {})
                exporter = stack.enter_context(ExporterService(settings, environ={}))
                targets.append(exporter.url.removeprefix("http://"))
            settings = load_aggregator(["--listen", "127.0.0.1:0", "--targets", ",".join(targets),
                                        "--metrics-api-listen", "127.0.0.1:0", "--kubeconfig",
                                        str(kube.kubeconfig), "--scrape-interval", "1", "--scrape-timeout",
                                        "0.9", "--stale-after", "600", *auth_flags], environ={})
            aggregator = stack.enter_context(Aggregator(settings, environ={}))
            assert aggregator.metrics_api is not None
            register_apiservices(kube, aggregator.metrics_api.server.port)
            cluster = MetricsCluster(kube=kube, aggregator=aggregator, roots=roots)
            yield cluster
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if proc.stdin is not None:
                proc.stdin.close()
        for root in roots.values():
            problems += root.close()
            problems += [f"left behind: {p}" for p in root.leftovers()]
    assert problems == []


def wait_complete(cluster: MetricsCluster) -> None:
    """Wait for complete samples of every pod (read from the store), then stop scraping."""
    store = cluster.aggregator.store

    def ready() -> bool:
        pods = {(p.namespace, p.pod): p for p in store.pods()}
        for spec in PODS:
            pod = pods.get((spec.namespace, spec.name))
            if pod is None or len(pod.containers) != len(spec.containers):
                return False
            if any("cpu_usage_cores" not in c.values or "memory_working_set_bytes" not in c.values
                   for c in pod.containers):
                return False
        nodes = store.nodes()
        return len(nodes) == 2 and all(n.sample and "cpu_usage_cores" in n.sample.values for n in nodes)

    wait_until(ready, timeout=60, message="every pod and node measured completely")
    cluster.aggregator.service.stop()  # freeze: kubectl, the raw API and the JSON API see one sample
