"""Per-container figures proven on containers a real runtime starts (root; strict under K8SMON_STRICT).

The test runs its own containerd (tests/support/containerd.py) and starts a "pod" the way kubelet's
cgroupfs driver asks a runtime to: a sandbox (`pause`) and two containers, each with
`ctr run --cgroup /<test root>/node/kubepods/burstable/pod<uid>/<container id>`, all joining a network
namespace the test made (veth to a peer namespace it also owns). One container burns CPU under a
0.5-core CFS quota, one holds 48 MiB in a tmpfs it wrote. The fake API server serves the pod with
containerStatuses carrying the same ids; a real exporter (its --cgroup-root a view of the test's tree
only, so other engineers' cgroups never meet it) is scraped over HTTP.

The real exporter's exposition, container families included, passes `promtool check metrics`.

At the end the burner restarts as kubelet does it (old container removed, a new id started, then the
status updated): its name's CPU counter never goes back and the new id shows by its short id until named.

The test tree also holds a stale `kubepods` in the unified hierarchy only, shallower than the real one,
as a runtime leaves it on this hybrid host: the finder must still read the pod's unified half.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.cgroups import PodCgroupFinder
from exporter.config import load
from exporter.podstats import stat_value
from exporter.service import ExporterService
from tests.kube import FakeKube, objects
from tests.support import require, require_root, require_tool, wait_until
from tests.support.cgroups import prioritise
from tests.support.containerd import BUSYBOX, Containerd, TestCgroupRoot, is_static
from tests.support.netns import netns_pair

pytestmark = pytest.mark.root
MIB = 1024 * 1024
NODE = "i11-node"
HELD = 48 * MIB
SENT = 2 * MIB
# In the peer namespace: accept one connection, read exactly K bytes, close, print the count.
SINK = """
import socket, sys
srv = socket.socket(); srv.bind((sys.argv[1], 0)); srv.listen(1)
print(srv.getsockname()[1], flush=True)
srv.settimeout(60)
conn, _ = srv.accept()
k, got = int(sys.argv[2]), 0
while got < k and (chunk := conn.recv(65536)):
    got += len(chunk)
conn.close()
print(got, flush=True)
"""


@dataclass
class RealPod:
    uid: str
    sandbox: str
    burner: str
    holder: str
    rel: str  # the pod's cgroup below the test root, e.g. node/kubepods/burstable/pod<uid>
    root: TestCgroupRoot
    ctd: Containerd
    peer: tuple[str, str]  # (namespace, address) of the veth's other end
    netns: str  # the pod's network namespace (path), which every container joins

    def cgroup(self, hierarchy: str, container: str = "") -> str:
        return self.root.path(hierarchy, f"{self.rel}/{container}" if container else self.rel)

    def pids(self, container: str) -> list[int]:
        return [int(p) for p in Path(self.cgroup("unified", container), "cgroup.procs").read_text().split()]


@pytest.fixture
def real_pod() -> Iterator[RealPod]:
    require_root()
    for tool in ("containerd", "ctr", "runc", "ip"):
        require_tool(tool)
    require(os.path.exists(BUSYBOX) and is_static(BUSYBOX),
            f"{BUSYBOX} missing or not statically linked (Debian package busybox-static)")
    cg = "/sys/fs/cgroup"
    hybrid = os.path.exists(f"{cg}/unified/cgroup.controllers") and os.path.isdir(f"{cg}/memory")
    require(hybrid, "needs the hybrid cgroup layout (v1 controllers + cgroup2 at /sys/fs/cgroup/unified)")
    root = TestCgroupRoot("i11")
    ctd = Containerd(namespace="k8smon-test-i11")
    problems: list[str] = []
    try:
        with netns_pair("i11") as pair:
            # The hierarchies the exporter reads exist before runc fills them; the stale unified-only tree
            # sits at depth 1, kubelet's (--cgroup-root=/node) at depth 2.
            for h in ("unified", "cpu", "cpuacct", "memory", "blkio"):
                root.mkdir(h, "node/kubepods/burstable")
            root.mkdir("unified", f"kubepods/burstable/pod{uuid.uuid4()}")
            ctd.start()
            ctd.import_busybox()
            uid = str(uuid.uuid4())
            pod = RealPod(uid=uid, sandbox=secrets.token_hex(32), burner=secrets.token_hex(32),
                          holder=secrets.token_hex(32), rel=f"node/kubepods/burstable/pod{uid}", root=root,
                          ctd=ctd, peer=(pair.b, pair.addr_b), netns=f"/var/run/netns/{pair.a}")
            netns = pod.netns
            base = f"/{root.name}/{pod.rel}"
            ctd.run(pod.sandbox, ["sh", "-c", "exec -a sleep /pause 1000000"], cgroup=f"{base}/{pod.sandbox}",
                    netns=netns)
            ctd.run(pod.burner, ["sh", "-c", "while :; do :; done"], cgroup=f"{base}/{pod.burner}",
                    netns=netns, extra=["--cpu-quota", "50000", "--cpu-period", "100000"])
            ctd.run(pod.holder, ["sh", "-c", f"dd if=/dev/zero of=/mem/block bs=1M count={HELD // MIB} "
                                             "2>/dev/null; exec sleep 1000000"],
                    cgroup=f"{base}/{pod.holder}", netns=netns,
                    extra=["--mount", "type=tmpfs,src=tmpfs,dst=/mem,options=size=128m"])
            yield pod
            problems += ctd.close()
    finally:
        problems += ctd.close()
        problems += root.close()
        problems += [f"left behind: {p}" for p in root.leftovers()]
    assert problems == []


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube(bookmark_interval=0.2) as fake:
        yield fake


def serve_pod(kube: FakeKube, pod: RealPod) -> None:
    obj = objects.pod("load-7c9d", "work", node=NODE, uid=pod.uid, containers=[
        objects.container("burner", requests={"cpu": "250m"}, limits={"cpu": "500m"}),
        objects.container("holder", requests={"memory": "64Mi"}, limits={"memory": "128Mi"}),
    ])
    for status, cid in zip(obj["status"]["containerStatuses"], (pod.burner, pod.holder), strict=True):
        status["containerID"] = f"containerd://{cid}"
    obj["status"]["qosClass"] = "Burstable"
    kube.create(obj)


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Samples by name and labels; {} while the exporter has no sample yet (503)."""
    response = requests.get(f"{url}/metrics", timeout=10)
    if response.status_code == 503:
        return {}
    assert response.status_code == 200, response.text
    text = response.text
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def one(metrics: dict, name: str, **labels: str) -> float:
    hits = [v for k, v in metrics.get(name, {}).items() if labels.items() <= dict(k).items()]
    assert len(hits) == 1, f"{name}{labels}: {hits}"
    return hits[0]


def own_cpu(pids: list[int]) -> float:
    """utime + stime of the processes (fields 14, 15 of /proc/<pid>/stat, after the comm)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def next_snapshot(url: str, after: float) -> tuple[float, dict]:
    """Poll until the exporter serves a snapshot newer than `after`; (its timestamp, its metrics)."""
    deadline = time.monotonic() + 20
    while True:
        m = scrape(url)
        ts = one(m, "k8smon_exporter_sample_timestamp_seconds") if m else 0.0
        if ts > after:
            return ts, m
        if time.monotonic() > deadline:
            pytest.fail(f"no snapshot newer than {after} within 20 s")
        time.sleep(0.01)


def test_real_containers_named_measured_and_summed(real_pod: RealPod, kube: FakeKube) -> None:
    pod = real_pod
    serve_pod(kube, pod)
    # The holder has written its tmpfs block once its cgroup holds it.
    usage = Path(pod.cgroup("memory", pod.holder), "memory.usage_in_bytes")
    wait_until(lambda: int(usage.read_text()) >= HELD, timeout=30, message="the holder wrote its 48 MiB")

    # The finder sees the pod in every hierarchy, the unified one included, despite the stale tree.
    (found,) = PodCgroupFinder(cgroup_root=str(pod.root.view)).find()
    assert found.uid == pod.uid
    assert found.paths["unified"] == str(pod.root.view / "unified" / pod.rel)

    settings = load(["--listen", "127.0.0.1:0", "--node-name", NODE, "--cgroup-root", str(pod.root.view),
                     "--kubeconfig", str(kube.kubeconfig), "--interval", "1", "--liveness-timeout", "30",
                     "--exclude-namespaces", ""], {})
    with ExporterService(settings, environ={}) as service:
        url = service.url
        wait_until(lambda: len(scrape(url).get("k8smon_container_cpu_usage_cores", {})) == 2, timeout=30,
                   message="both containers named with a CPU rate")
        burner_pids = pod.pids(pod.burner)
        for pid in burner_pids:  # CPU-bound neighbours on this shared box must not starve it
            prioritise(pid)
        # CPU: the exporter's counter delta over >= 4 s (and >= 0.5 s of CPU burnt, up to 15 s on a busy
        # box) against the burner's own accounting over the same snapshots (read as soon as each
        # snapshot is served: a few ms late at most).
        ts0, m0 = next_snapshot(url, 0)
        own0 = own_cpu(burner_pids)
        ts1, m1, own1 = ts0, m0, own0
        while ts1 - ts0 < 4 or (own1 - own0 < 0.5 and ts1 - ts0 < 15):
            ts1, m1 = next_snapshot(url, ts1)
            own1 = own_cpu(burner_pids)

        def container(m: dict, name: str, family: str) -> float:
            return one(m, family, container=name, pod="load-7c9d", namespace="work", uid=pod.uid, node=NODE)

        burnt = own1 - own0
        measured = (container(m1, "burner", "k8smon_container_cpu_seconds_total")
                    - container(m0, "burner", "k8smon_container_cpu_seconds_total"))
        assert burnt > 0.5, f"the burner got {burnt} s of CPU in {ts1 - ts0} s"
        assert measured == pytest.approx(burnt, rel=0.15), (measured, burnt)
        # The 0.5-core quota caps it (a rate is over one 1-s interval: allow the accounting jitter).
        assert container(m1, "burner", "k8smon_container_cpu_usage_cores") <= 0.5 * 1.15
        assert container(m1, "burner", "k8smon_container_cpu_limit_cores") == 0.5
        assert container(m1, "holder", "k8smon_container_memory_limit_bytes") == 128 * MIB

        # Memory: the holder's working set is what it touched (tmpfs pages are not inactive file).
        held = container(m1, "holder", "k8smon_container_memory_working_set_bytes")
        assert held == pytest.approx(HELD, rel=0.10), held

        # The sandbox is not reported; the pod is its containers plus the sandbox.
        names = {dict(k)["container"] for k in m1["k8smon_container_cpu_seconds_total"]}
        assert names == {"burner", "holder"}
        assert one(m1, "k8smon_exporter_containers_tracked") == 2
        sandbox_cpu = stat_value(Path(pod.cgroup("unified", pod.sandbox), "cpu.stat").read_text(),
                                 "usage_usec") / 1e6
        pod_cpu = one(m1, "k8smon_pod_cpu_seconds_total", uid=pod.uid)
        containers_cpu = sum(container(m1, n, "k8smon_container_cpu_seconds_total") for n in names)
        # read within one cycle, a few ms apart, while the burner runs at 0.5 core
        assert pod_cpu == pytest.approx(containers_cpu + sandbox_cpu, abs=0.02)
        mem = Path(pod.cgroup("memory", pod.sandbox))
        sandbox_ws = int((mem / "memory.usage_in_bytes").read_text()) - stat_value(
            (mem / "memory.stat").read_text(), "total_inactive_file")
        pod_ws = one(m1, "k8smon_pod_memory_working_set_bytes", uid=pod.uid)
        containers_ws = sum(container(m1, n, "k8smon_container_memory_working_set_bytes") for n in names)
        # v1 usage_in_bytes batches charges per CPU (up to 64 pages each): within 1 MiB
        assert pod_ws == pytest.approx(containers_ws + sandbox_ws, abs=1 * MIB)

        # Network: bytes sent from inside the holder through the veth, counted for the pod.
        peer_ns, peer_addr = pod.peer
        sink = subprocess.Popen(["ip", "netns", "exec", peer_ns, sys.executable, "-c", SINK, peer_addr,
                                 str(SENT)], stdout=subprocess.PIPE, text=True)
        try:
            assert sink.stdout is not None
            port = int(sink.stdout.readline())
            ts2, m2 = next_snapshot(url, ts1)
            send = f"head -c {SENT} /dev/zero | nc {peer_addr} {port} >/dev/null"
            pod.ctd.exec(pod.holder, ["sh", "-c", send])
            assert int(sink.stdout.readline()) == SENT
            assert sink.wait(timeout=30) == 0
        finally:
            if sink.poll() is None:
                sink.kill()
                sink.wait()
            if sink.stdout is not None:
                sink.stdout.close()
        ts3, m3 = next_snapshot(url, ts2)
        tx = (one(m3, "k8smon_pod_network_transmit_bytes_total", uid=pod.uid)
              - one(m2, "k8smon_pod_network_transmit_bytes_total", uid=pod.uid))
        # K payload plus TCP/IP/Ethernet headers (~5% at this MSS), the handshake and ARP
        assert SENT <= tx < SENT * 1.10 + 64 * 1024, f"{tx} bytes counted for {SENT} sent"
        restart_burner(pod, kube, url, ts3)
        body = requests.get(f"{url}/metrics", timeout=10).content
        check = subprocess.run([require_tool("promtool"), "check", "metrics"], input=body,
                               capture_output=True, timeout=60, check=False)
        assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), check
        print(f"figures: cpu {measured:.3f} s measured / {burnt:.3f} s burnt over {ts1 - ts0:.1f} s; "
              f"working set {held / MIB:.2f} MiB for {HELD / MIB:.0f} MiB held; pod cpu {pod_cpu:.3f} = "
              f"{containers_cpu:.3f} + sandbox {sandbox_cpu:.3f}; pod ws {pod_ws / MIB:.2f} MiB = "
              f"{containers_ws / MIB:.2f} + {sandbox_ws / MIB:.2f}; tx {tx} B for {SENT} B sent")


def restart_burner(pod: RealPod, kube: FakeKube, url: str, after: float) -> None:
    """The burner restarts as kubelet would do it: the old container goes, a new id starts in the same pod,
    and only then does the status name the new id (lastState names the old). Its name's counter never
    goes back, the new container shows by its short id until named, and no rate is negative."""
    old, new = pod.burner, secrets.token_hex(32)
    counters: list[float] = []
    seen_short = False

    def observe(m: dict) -> set[str]:
        nonlocal seen_short
        names = {dict(k)["container"]: v for k, v in m["k8smon_container_cpu_seconds_total"].items()
                 if dict(k)["uid"] == pod.uid}
        if "burner" in names:
            counters.append(names["burner"])
        seen_short = seen_short or new[:12] in names
        rates = [v for k, v in m["k8smon_container_cpu_usage_cores"].items() if dict(k)["uid"] == pod.uid]
        assert all(r >= 0 for r in rates), rates
        return set(names)

    ts, m = next_snapshot(url, after)
    observe(m)
    pod.ctd.remove(old)
    pod.ctd.run(new, ["sh", "-c", "while :; do :; done"], cgroup=f"/{pod.root.name}/{pod.rel}/{new}",
                netns=pod.netns, extra=["--cpu-quota", "50000", "--cpu-period", "100000"])
    pod.burner = new
    deadline = time.monotonic() + 20
    while not seen_short:  # the exporter sees the new cgroup before the API names it
        ts, m = next_snapshot(url, ts)
        assert observe(m) <= {"burner", "holder", new[:12]}
        assert time.monotonic() < deadline, "the new container never showed by its short id"
    obj = kube.get("v1", "Pod", "load-7c9d", "work")
    assert obj is not None
    status = next(s for s in obj["status"]["containerStatuses"] if s["name"] == "burner")
    status.update(containerID=f"containerd://{new}", restartCount=1,
                  lastState={"terminated": {"containerID": f"containerd://{old}", "exitCode": 137}})
    kube.update(obj)
    for _ in range(4):
        ts, m = next_snapshot(url, ts)
        names = observe(m)
    assert names == {"burner", "holder"}  # the short id went; the name carries on
    assert counters == sorted(counters) and counters[-1] > counters[0], counters
