"""Exporter fault injection: the node's files and the API server misbehave; the exporter keeps serving.

What existing tests already prove is not repeated here (docs/faults.md maps each fault to its test):
a pod removed before read() (test_podstats_fixtures), garbage in pod files and a directory where a
file is expected (ditto), garbage meminfo and short diskstats lines (test_host_reader), dropped
watches, 410 and the API away and back at the index level (test_exporter_podindex_kube).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.cgroups import PodCgroupFinder
from exporter.collector import SnapshotCollector
from exporter.config import load
from exporter.host import HostReader
from exporter.model import HostSample, PodCgroup
from exporter.podstats import PodStatsReader
from exporter.sampler import CountingErrors, HostSource, Sampler
from exporter.service import ExporterService, default_readers
from exporter.snapshot import Snapshot
from k8smon_common.config import ConfigError
from k8smon_common.contract import NO_SAMPLE_YET
from tests.kube import FakeKube, objects
from tests.support import require, require_root, wait_until
from tests.support.cgroups import copy_node_tree
from tests.test_exporter_cli import NODE_A, fixture_args

ROOT = Path(__file__).resolve().parents[1]
A_G = "1f3a9c2e-5b7d-4e21-9a0b-6c8d7e5f4a31"  # node-a: guaranteed pod, cpu 12.5 s
A_B = "2b4c6d8e-0f1a-4b3c-8d5e-7f9a0b1c2d43"  # burstable
A_H = "3c5d7e9f-1a2b-4c3d-9e5f-8a0b1c2d3e55"  # burstable, host network
A_E = "4d6e8f0a-2b3c-4d4e-af60-9b1c2d3e4f67"  # besteffort, no process
NODE_A_UIDS = {A_G, A_B, A_H, A_E}
BESTEFFORT = "cgroup/kubepods.slice/kubepods-besteffort.slice"
CLOSE = {"Connection": "close"}


def sampler_over(tree: Path, errors: CountingErrors, *, finder: PodCgroupFinder | None = None) -> Sampler:
    """A Sampler with the real readers rooted in a copied node tree (no API: pods labelled by uid)."""
    return Sampler(
        node=tree.name,
        host_reader=HostReader(proc_root=str(tree / "proc"), sys_root=str(tree / "sys"), rootfs=str(tree),
                               errors=errors),
        cgroup_finder=finder or PodCgroupFinder(cgroup_root=str(tree / "cgroup"), errors=errors),
        pod_reader=PodStatsReader(proc_root=str(tree / "proc"), errors=errors),
        errors=errors,
    )


def render(snapshot: Snapshot) -> dict:
    """What /metrics would serve for `snapshot`, parsed back."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snapshot, version="test"))
    text = generate_latest(registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def pod_cpu(snapshot: Snapshot) -> dict[str, float | None]:
    return {p.usage.uid: p.usage.cpu_seconds for p in snapshot.pods}


# --- cgroups vanishing while the sampler reads them -------------------------------------------------


class _RemovingFinder:
    """The real finder, then one pod's directories are removed before the sampler reads them."""

    def __init__(self, inner: PodCgroupFinder, victim: str) -> None:
        self.inner, self.victim = inner, victim

    def find(self) -> list[PodCgroup]:
        found = self.inner.find()
        for cg in found:
            if cg.uid == self.victim:
                for path in cg.paths.values():
                    shutil.rmtree(path, ignore_errors=True)
        return found


def test_pod_removed_between_find_and_read_costs_that_pod_only(tmp_path: Path) -> None:
    tree = copy_node_tree("node-a", tmp_path)
    errors = CountingErrors()
    inner = PodCgroupFinder(cgroup_root=str(tree / "cgroup"), errors=errors)
    sampler = sampler_over(tree, errors, finder=_RemovingFinder(inner, A_B))  # type: ignore[arg-type]
    snap = sampler.cycle()
    assert set(pod_cpu(snap)) == NODE_A_UIDS - {A_B}
    assert pod_cpu(snap)[A_G] == 12.5
    assert snap.errors == {"cgroup": 1}  # counted, and published in the snapshot
    families = render(snap)
    assert families["k8smon_exporter_errors"].samples[0].labels["source"] == "cgroup"
    assert {s.labels["uid"] for s in families["k8smon_pod_cpu_seconds"].samples} == NODE_A_UIDS - {A_B}
    # the next cycle no longer finds it: nothing more to report
    assert set(pod_cpu(sampler.cycle())) == NODE_A_UIDS - {A_B}
    assert errors.counts() == {"cgroup": 1}


def _clone_pod(template: Path, parent: Path, uid: str) -> Path:
    target = parent / f"kubepods-besteffort-pod{uid.replace('-', '_')}.slice"
    shutil.copytree(template, target)
    return target


def test_pods_created_and_removed_concurrently_with_sampling(tmp_path: Path) -> None:
    """A churn thread clones and removes pod cgroups as fast as it can while cycles run back to back."""
    tree = copy_node_tree("node-a", tmp_path)
    parent = tree / BESTEFFORT
    template = next(parent.iterdir())
    errors = CountingErrors()
    sampler = sampler_over(tree, errors)
    stop = threading.Event()
    churned = [0]

    def churn() -> None:
        live: list[Path] = []
        for i in range(20_000):  # bounded; normally stopped by the event long before
            if stop.is_set():
                break
            live.append(_clone_pod(template, parent, str(uuid.uuid4())))
            if len(live) > 5 or i % 3 == 0:
                shutil.rmtree(live.pop(0), ignore_errors=True)
            churned[0] += 1

    worker = threading.Thread(target=churn, name="churn", daemon=True)
    worker.start()
    cycles = 0
    try:
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline and cycles < 2000:
            snap = sampler.cycle()
            cycles += 1
            cpu = pod_cpu(snap)
            assert set(cpu) >= NODE_A_UIDS, "a stable pod went missing while others churned"
            assert cpu[A_G] == 12.5 and cpu[A_E] == 0.0
    finally:
        stop.set()
        worker.join(10)
    assert cycles >= 5 and churned[0] >= 20, (cycles, churned[0])
    counts = errors.counts()
    assert "sampler" not in counts, "an exception escaped the readers"
    assert set(counts) <= {"cgroup"}
    print(f"\n{cycles} cycles beside {churned[0]} pod cgroups created; errors {counts}")


# --- permission denied (root ignores file modes: drop the capabilities instead) ----------------------

_READ_AS_UNPRIVILEGED = """
import json, sys
from exporter.cgroups import PodCgroupFinder
from exporter.host import HostReader
from exporter.model import HostSample
from exporter.podstats import PodStatsReader
from tests.support.cgroups import RecordingErrors
tree = sys.argv[1]
errors = RecordingErrors()
host = HostReader(proc_root=tree + "/proc", sys_root=tree + "/sys", rootfs=tree, errors=errors).read()
cgroups = PodCgroupFinder(cgroup_root=tree + "/cgroup", errors=errors).find()
reader = PodStatsReader(proc_root=tree + "/proc", errors=errors)
pods = {}
for cg in cgroups:
    u = reader.read(cg)
    pods[cg.uid] = None if u is None else {
        "cpu": u.cpu_seconds, "memory": u.memory_working_set_bytes,
        "disk": None if u.disk is None else u.disk.read_bytes,
        "network": None if u.network is None else u.network.receive_bytes}
print(json.dumps({
    "host": {"cpu": host.cpu is not None, "memory": host.memory_total_bytes, "disk": host.disk is not None,
             "network": host.network is not None},
    "pods": pods,
    "errors": [[s, d, type(e).__name__] for s, d, e in errors.records]}))
"""


def test_permission_denied_files_and_directories_cost_only_their_part(tmp_path: Path) -> None:
    """Root bypasses file modes, so the reader runs under `setpriv` with every capability dropped
    (CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH gone): uid 0 then obeys the modes like any user."""
    require_root()
    setpriv = shutil.which("setpriv")
    require(setpriv is not None, "setpriv (util-linux) is needed to drop capabilities")
    assert setpriv is not None
    tree = copy_node_tree("node-a", tmp_path)
    (tree / "proc/meminfo").chmod(0)
    pod_g = next((tree / "cgroup/kubepods.slice").glob(f"*{A_G.replace('-', '_')}*"))
    (pod_g / "memory.stat").chmod(0)
    # A whole QoS directory unlistable. It is listed before besteffort (directory order of the copy), so
    # the pods listed after it must survive too.
    (tree / "cgroup/kubepods.slice/kubepods-burstable.slice").chmod(0)
    proc = subprocess.run([setpriv, "--inh-caps=-all", "--bounding-set=-all", sys.executable, "-c",
                           _READ_AS_UNPRIVILEGED, str(tree)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["host"] == {"cpu": True, "memory": None, "disk": True, "network": True}
    # the unreadable burstable directory hides its pods, not the guaranteed and besteffort ones
    assert set(out["pods"]) == {A_G, A_E}, out
    assert out["pods"][A_G] == {"cpu": 12.5, "memory": None, "disk": 5096, "network": 120000}
    assert out["pods"][A_E] == {"cpu": 0.0, "memory": 4096, "disk": 0, "network": None}
    kinds = {(s, e) for s, _d, e in out["errors"]}
    assert kinds == {("host", "PermissionError"), ("cgroup", "PermissionError")}, out["errors"]
    assert len(out["errors"]) == 3, out["errors"]


# --- malformed /proc files ------------------------------------------------------------------------

MALFORMED = [
    # (file under proc/, bytes written, part of the HostSample that is lost)
    ("stat", b"", "cpu"),
    ("stat", b"cpu  10 20", "cpu"),
    ("stat", b"\xff\xfe\x00garbage", "cpu"),
    ("meminfo", b"MemTotal:  \xe2\x82\xac kB\n", "memory"),
    ("meminfo", b"MemFree: 5 kB\n", "memory"),
    ("diskstats", b"   8       0 sda 1 2 3\n", "disk"),
    ("diskstats", b"   8       0 sda a b c d e f g h i j k\n", "disk"),
    ("1/net/dev", b"Inter-|   Receive\n face |bytes\n  eth0: 12 x\n", "network"),
]


@pytest.mark.parametrize(("name", "content", "lost"), MALFORMED,
                         ids=[f"{n}-{i}" for i, (n, _c, _l) in enumerate(MALFORMED)])
def test_malformed_proc_file_loses_one_family_and_the_scrape_still_renders(
    tmp_path: Path, name: str, content: bytes, lost: str
) -> None:
    tree = copy_node_tree("node-a", tmp_path)
    (tree / "proc" / name).write_bytes(content)
    if name == "1/net/dev":
        (tree / "proc/net/dev").write_bytes(content)  # the fallback source is just as broken
    errors = CountingErrors()
    snap = sampler_over(tree, errors).cycle()
    h = snap.host
    parts = {"cpu": h.cpu, "memory": h.memory_total_bytes, "disk": h.disk, "network": h.network}
    assert parts.pop(lost) is None
    assert all(v is not None for v in parts.values()), parts
    assert errors.counts().get("host", 0) >= 1 and "sampler" not in errors.counts()
    families = render(snap)
    family = {"cpu": "k8smon_node_cpu_seconds", "memory": "k8smon_node_memory_total_bytes",
              "disk": "k8smon_node_disk_read_bytes", "network": "k8smon_node_network_receive_bytes"}
    assert family[lost] not in families
    assert all(family[p] in families for p in parts)
    assert len(families["k8smon_pod_cpu_seconds"].samples) == 4  # the pods are untouched


def test_garbage_cgroup_procs_costs_the_network_figure_only(tmp_path: Path) -> None:
    tree = copy_node_tree("node-a", tmp_path)
    pod_g = next((tree / "cgroup/kubepods.slice").glob(f"*{A_G.replace('-', '_')}*"))
    (pod_g / "cgroup.procs").write_bytes(b"12ab\n\x00\n")
    errors = CountingErrors()
    snap = sampler_over(tree, errors).cycle()
    usage = next(p.usage for p in snap.pods if p.usage.uid == A_G)
    assert usage.network is None and usage.cpu_seconds == 12.5 and usage.memory_working_set_bytes == 2e8
    assert errors.counts() == {"cgroup": 1}


# --- thousands of dead pod cgroups ----------------------------------------------------------------

DEAD_PODS = 3000


def test_thousands_of_dead_pod_cgroups_one_cycle_bounded_and_correct(tmp_path: Path) -> None:
    """Pod cgroups kubelet failed to remove: the control files exist, no process is left in them."""
    tree = copy_node_tree("node-a", tmp_path)
    parent = tree / BESTEFFORT
    # Hard links to one set of files: creating 15,000 small files costs ~30 s on this CI disk, links ~5 s.
    files = tmp_path / "dead-files"
    files.mkdir()
    contents = {"cgroup.procs": b"", "cpu.stat": b"usage_usec 1000000\nuser_usec 0\nsystem_usec 0\n",
                "memory.current": b"4096\n", "memory.stat": b"anon 0\ninactive_file 0\n", "io.stat": b""}
    for name, data in contents.items():
        (files / name).write_bytes(data)
    dead = set()
    t0 = time.perf_counter()
    for i in range(DEAD_PODS):
        uid = f"dead0000-0000-4000-8000-{i:012d}"
        d = parent / f"kubepods-besteffort-pod{uid.replace('-', '_')}.slice"
        d.mkdir()
        for name in contents:
            os.link(files / name, d / name)
        dead.add(uid)
    built = time.perf_counter() - t0
    errors = CountingErrors()
    sampler = sampler_over(tree, errors)
    t0 = time.perf_counter()
    snap = sampler.cycle()
    elapsed = time.perf_counter() - t0
    cpu = pod_cpu(snap)
    assert set(cpu) == NODE_A_UIDS | dead
    assert all(cpu[u] == 1.0 for u in dead) and cpu[A_G] == 12.5
    assert all(p.usage.network is None and not p.usage.host_network for p in snap.pods if p.usage.uid in dead)
    assert errors.counts() == {}
    families = render(snap)
    assert len(families["k8smon_pod_cpu_seconds"].samples) == DEAD_PODS + 4
    # a second cycle: every dead pod has a baseline now, so a rate (0 cores) and no error
    second = sampler.cycle()
    rates = {p.usage.uid: p.cpu_usage_cores for p in second.pods}
    assert all(rates[u] == 0.0 for u in dead)
    parent.rename(tmp_path / "cleaned-up")  # kubelet finally cleans up (a rename: rmtree is slow here)
    parent.mkdir()
    assert set(pod_cpu(sampler.cycle())) == NODE_A_UIDS - {A_E}
    print(f"\n{DEAD_PODS} dead pod cgroups: tree built in {built:.2f}s, one cycle {elapsed:.2f}s wall "
          f"(snapshot says {snap.duration_seconds:.2f}s, {snap.cpu_seconds:.2f}s CPU)")
    # Bounded: linear work per pod; generous so a loaded 2-core CI machine does not flake (the figure
    # that matters is printed above; bench/ measures speed).
    assert elapsed < 60


# --- the API server misbehaving while /metrics is scraped -------------------------------------------


@dataclass
class Scrapes:
    """A background scraper of /metrics recording what every answer said."""

    url: str
    seen: list[tuple[int, int, int, frozenset[str]]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        for _ in range(10_000):  # bounded; stopped by the event
            if self.stop.wait(0.05):
                return
            try:
                with requests.get(f"{self.url}/metrics", headers=CLOSE, timeout=5) as resp:
                    status, text = resp.status_code, resp.text
            except requests.RequestException as exc:
                self.failures.append(repr(exc))
                continue
            if status == 503 and text.strip() == NO_SAMPLE_YET and not self.seen:
                continue  # before the first sample: "not ready yet", not a scrape of a snapshot
            families = {f.name: f for f in text_string_to_metric_families(text)}
            pods = families.get("k8smon_pod_cpu_seconds")
            tracked = families.get("k8smon_exporter_pods_tracked")
            names = frozenset(s.labels["pod"] for s in pods.samples) if pods else frozenset()
            seq = int(families["k8smon_exporter_samples"].samples[0].value) if "k8smon_exporter_samples" \
                in families else 0
            self.seen.append((status, int(tracked.samples[0].value) if tracked else -1, seq, names))

    def latest_names(self) -> frozenset[str]:
        return self.seen[-1][3] if self.seen else frozenset()


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube(bookmark_interval=0.2) as fake:
        yield fake


def _name_node_a_pods(kube: FakeKube, node: str = "node-a") -> dict[str, str]:
    names = {A_G: "web-0", A_B: "web-1", A_H: "agent-x", A_E: "idle-0"}
    for uid, name in names.items():
        kube.create(objects.pod(name, "shop", node=node, uid=uid))
    return names


def _service(kube: FakeKube, *extra: str) -> ExporterService:
    service = ExporterService(load(fixture_args(NODE_A, "--kubeconfig", str(kube.kubeconfig), *extra), {}),
                              environ={})
    assert service.index is not None
    service.index.set_backoff(initial=0.02, cap=0.2)  # retry fast so each fault plays out within the test
    return service


def test_api_absent_at_start_then_500_drops_and_410_while_metrics_keep_serving(kube: FakeKube) -> None:
    names = _name_node_a_pods(kube)
    kube.pause()  # the API server is down when the exporter starts
    service = _service(kube)
    scrapes = Scrapes(service.url)
    scraper = threading.Thread(target=scrapes.run, name="scrapes", daemon=True)
    service.start()
    scraper.start()
    index = service.index
    assert index is not None
    try:
        wait_until(lambda: service.errors.counts().get("kube", 0) >= 2, timeout=20,
                   message="retries the absent API server, counting each failure")
        wait_until(lambda: scrapes.latest_names() == NODE_A_UIDS, timeout=20,
                   message="standalone meanwhile: pods served, labelled by uid")
        kube.resume()
        wait_until(lambda: scrapes.latest_names() == set(names.values()), timeout=30,
                   message="named once the API server appears")
        for _ in range(3):
            kube.drop_watches()
        kube.fail_next(6, 500, path_contains="pods")
        kube.drop_watches()
        wait_until(lambda: index.connected and kube.open_watches > 0, timeout=30,
                   message="back on a watch after the 500s")
        relists = index.relists
        kube.pause()  # history moves on while the exporter is cut off, then is compacted away:
        kube.create(objects.pod("elsewhere-1", "shop", node="node-b"))
        kube.compact()
        kube.resume()  # resuming from the old version answers 410 Expired, so a relist
        wait_until(lambda: index.relists > relists, timeout=30, message="410 leads to a relist")
        kube.pause()  # and away again for a while
        wait_until(lambda: not index.connected, timeout=20, message="notices the API is gone")
        count = len(scrapes.seen)
        wait_until(lambda: len(scrapes.seen) >= count + 5, timeout=20, message="scrapes go on")
        kube.resume()
        wait_until(lambda: index.connected, timeout=30, message="reconnects")
    finally:
        scrapes.stop.set()
        scraper.join(10)
        service.stop()
    assert not scrapes.failures, scrapes.failures[:3]
    statuses = {s for s, _t, _q, _n in scrapes.seen}
    assert statuses == {200}
    first_named = next(i for i, s in enumerate(scrapes.seen) if s[3] == set(names.values()))
    # every scrape served all four pods; once named, they never fell back to uids (names kept while away)
    assert all(t == 4 for _s, t, _q, _n in scrapes.seen if t != -1)
    assert all(s[3] == set(names.values()) for s in scrapes.seen[first_named:])
    sequences = [q for _s, _t, q, _n in scrapes.seen]
    assert sequences == sorted(sequences) and sequences[-1] > sequences[0]
    assert service.errors.counts().get("kube", 0) >= 4
    assert set(service.errors.counts()) <= {"kube"}
    print(f"\n{len(scrapes.seen)} scrapes, all 200; errors {service.errors.counts()}, "
          f"relists {index.relists}")


def test_unknown_node_name_matches_no_pods_and_labels_them_by_uid(kube: FakeKube) -> None:
    _name_node_a_pods(kube)  # the pods are on node-a; this exporter believes it runs on another node
    service = _service(kube, "--node-name", "no-such-node")
    service.start()
    try:
        assert service.index is not None
        wait_until(lambda: service.index is not None and service.index.connected, timeout=20,
                   message="the index lists (nothing) from the API")

        def families() -> dict | None:
            with requests.get(f"{service.url}/metrics", headers=CLOSE, timeout=5) as resp:
                if resp.status_code == 503:  # no sample yet
                    return None
                got = {f.name: f for f in text_string_to_metric_families(resp.text)}
            return got if "k8smon_pod_cpu_seconds" in got and got["k8smon_exporter_kube_connected"] \
                .samples[0].value == 1 else None

        got = wait_until(families, timeout=20, message="a snapshot taken while connected")
    finally:
        service.stop()
    labels = [s.labels for s in got["k8smon_pod_cpu_seconds"].samples]
    assert {lab["uid"] for lab in labels} == NODE_A_UIDS
    assert all(lab["pod"] == lab["uid"] and lab["namespace"] == "" and lab["node"] == "no-such-node"
               for lab in labels)
    assert service.index is not None and service.index.pods() == {}
    assert all("spec.nodeName%3Dno-such-node" in c.path or "spec.nodeName=no-such-node" in c.path
               for c in kube.calls if c.resource == "pods")


class _GatedHost:
    """The real host reader, except that a read blocks while the gate is closed (a hung /proc mount)."""

    def __init__(self, inner: HostSource) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.gate.set()
        self.blocked = threading.Event()

    def read(self) -> HostSample:
        if not self.gate.is_set():
            self.blocked.set()
            self.gate.wait(30)
        return self.inner.read()


def test_hung_sampling_fails_healthz_until_samples_flow_again() -> None:
    settings = load(fixture_args(NODE_A, "--liveness-timeout", "1"), {})
    errors = CountingErrors()
    host, cgroups, podstats = default_readers(settings, errors)
    gated = _GatedHost(host)
    service = ExporterService(settings, environ={}, readers=(gated, cgroups, podstats), errors=errors)

    def health() -> tuple[int, dict]:
        with requests.get(f"{service.url}/healthz", headers=CLOSE, timeout=5) as resp:
            return resp.status_code, resp.json()

    service.start()
    try:
        wait_until(lambda: health()[0] == 200, timeout=20, message="healthy once samples flow")
        gated.gate.clear()
        assert gated.blocked.wait(10), "the sampler reached the hung read"
        body = wait_until(lambda: (h := health())[0] == 503 and h[1], timeout=10,
                          message="/healthz fails once the latest sample is older than --liveness-timeout")
        assert body["status"] == "stalled" and body["sample_age_seconds"] > 1
        with requests.get(f"{service.url}/metrics", headers=CLOSE, timeout=5) as resp:
            # the last sample is still served: Prometheus sees the stall through its timestamp
            assert resp.status_code == 200 and "k8smon_pod_cpu_seconds" in resp.text
        gated.gate.set()
        wait_until(lambda: health()[0] == 200, timeout=10, message="healthy again once sampling resumes")
    finally:
        gated.gate.set()
        service.stop()


def test_liveness_timeout_must_exceed_the_interval() -> None:
    expected = r"--liveness-timeout \(0.1s\) must be longer than --interval \(0.2s\)"
    with pytest.raises(ConfigError, match=expected):
        load(fixture_args(NODE_A, "--liveness-timeout", "0.1"), {})
