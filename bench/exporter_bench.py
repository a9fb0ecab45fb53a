"""Exporter benchmark: a synthetic node with N pods of C containers plus a sandbox each (kubelet systemd
driver, cgroup v2, containerd).

Measures the CPU time of one sampling cycle (in process, median of N), then runs the exporter as a
process and measures `/metrics` latency (median) and size and its RSS, side by side with Debian's
`prometheus-node-exporter` started in the same run. Both for the pod families only
(`--container-metrics=false`) and with the per-container families, on the same tree. Targets (checked
with 110 pods, kubelet's default maximum, and 3 containers each): sampling <= 100 ms CPU per cycle,
/metrics median latency <= node_exporter's, RSS <= 60 MB, in both modes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from exporter.config import load
from exporter.containers import ContainerReader
from exporter.sampler import CountingErrors, Sampler
from exporter.service import default_readers
from exporter.snapshot import ContainerMeta, PodMeta

REPO = Path(__file__).resolve().parents[1]
QOS = ("guaranteed", "burstable", "besteffort")
NET_HEADER = (
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls"
    " carrier compressed\n"
)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def net_dev(ifaces: dict[str, tuple[int, int]]) -> str:
    rows = [f"{n:>6}: {rx} {rx // 900} 0 0 0 0 0 0 {tx} {tx // 900} 0 0 0 0 0 0\n"
            for n, (rx, tx) in ifaces.items()]
    return NET_HEADER + "".join(rows)


def memory_stat(current: int, inactive_file: int) -> str:
    # The full key set a 6.x kernel writes, so parsing cost is realistic.
    keys = ["anon", "file", "kernel", "kernel_stack", "pagetables", "sec_pagetables", "percpu", "sock",
            "vmalloc", "shmem", "zswap", "zswapped", "file_mapped", "file_dirty", "file_writeback",
            "swapcached", "anon_thp", "file_thp", "shmem_thp", "inactive_anon", "active_anon",
            "inactive_file", "active_file", "unevictable", "slab_reclaimable", "slab_unreclaimable", "slab",
            "workingset_refault_anon", "workingset_refault_file", "workingset_activate_anon",
            "workingset_activate_file", "workingset_restore_anon", "workingset_restore_file",
            "workingset_nodereclaim", "pgscan", "pgsteal", "pgfault", "pgmajfault", "pgrefill",
            "pgactivate", "pgdeactivate", "pglazyfree", "pglazyfreed", "thp_fault_alloc",
            "thp_collapse_alloc"]
    values = {k: 4096 for k in keys}
    values.update(anon=current - inactive_file, file=inactive_file, inactive_file=inactive_file)
    return "".join(f"{k} {v}\n" for k, v in values.items())


def container_id(pod: int, container: int) -> str:
    """The runtime id of container `container` of pod `pod` (-1: the sandbox)."""
    return f"{pod * 16 + container + 1:064x}"


def make_node(root: Path, pods: int, containers: int = 3) -> None:
    """Write a kubelet-style /proc, /sys and cgroup v2 tree with `pods` pods, `containers` containers
    and a sandbox each."""
    cpus = 8
    total = (900000, 1000, 200000, 8000000, 10000, 1000, 3000, 100)
    write(root / "proc/stat", "cpu  " + " ".join(map(str, total)) + "\n"
          + "".join(f"cpu{i} " + " ".join(str(v // cpus) for v in total) + "\n" for i in range(cpus))
          + "intr 1 0\nctxt 2\nbtime 1764000000\nprocesses 3\nprocs_running 1\nprocs_blocked 0\n")
    write(root / "proc/meminfo", "MemTotal:       32768000 kB\nMemFree:         8000000 kB\n"
          "MemAvailable:   20000000 kB\nBuffers:          100000 kB\nCached:         9000000 kB\n")
    write(root / "proc/diskstats", "".join(
        f"{maj} {mi} {name} 1200 30 {sr} 900 800 20 {sw} 700 0 1500 1600 0 0 0 0 10 20\n"
        for maj, mi, name, sr, sw in [(259, 0, "nvme0n1", 5000000, 9000000), (259, 1, "nvme0n1p1", 1, 1),
                                      (7, 0, "loop0", 50, 0)]))
    write(root / "sys/block/nvme0n1/dev", "259:0\n")
    write(root / "sys/block/nvme0n1/nvme0n1p1/partition", "1\n")
    write(root / "sys/block/loop0/dev", "7:0\n")
    write(root / "sys/devices/system/cpu/online", f"0-{cpus - 1}\n")
    host_ifaces = {"lo": (10, 10), "ens5": (9_000_000, 4_000_000)}
    host_ifaces.update({f"cali{i:08x}": (i * 100, i * 50) for i in range(pods)})
    write(root / "proc/1/net/dev", net_dev(host_ifaces))
    (root / "proc/1/ns").mkdir(parents=True)
    os.symlink("net:[4026531840]", root / "proc/1/ns/net")
    cg = root / "cgroup"
    write(cg / "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
    write(cg / "system.slice/containerd.service/cgroup.procs", "300\n")
    for i in range(pods):
        qos = QOS[i % 3]
        uid = pod_uid(i)
        slug = uid.replace("-", "_")
        base = cg / "kubepods.slice"
        pod_dir = (base / f"kubepods-pod{slug}.slice" if qos == "guaranteed"
                   else base / f"kubepods-{qos}.slice" / f"kubepods-{qos}-pod{slug}.slice")
        current = (i + 1) * 10_000_000
        write(pod_dir / "cgroup.procs", "")
        write(pod_dir / "cpu.stat", f"usage_usec {i * 1_000_000 + 5}\nuser_usec {i}\nsystem_usec {i}\n"
                                    "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n")
        write(pod_dir / "memory.current", f"{current}\n")
        write(pod_dir / "memory.stat", memory_stat(current, current // 4))
        write(pod_dir / "io.stat",
              f"259:0 rbytes={i * 4096} wbytes={i * 8192} rios={i} wios={i} dbytes=0 dios=0\n")
        for c in range(-1, containers):  # -1: the sandbox, whose process is `pause`
            pid = 10_000 + i * 16 + c + 1
            scope = pod_dir / f"cri-containerd-{container_id(i, c)}.scope"
            share = (current // (containers + 1)) if c >= 0 else 300_000
            write(scope / "cgroup.procs", f"{pid}\n")
            write(scope / "cpu.stat", f"usage_usec {i * 100_000 + c + 2}\nuser_usec {i}\nsystem_usec {i}\n"
                                      "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n")
            write(scope / "memory.current", f"{share}\n")
            write(scope / "memory.stat", memory_stat(share, share // 4))
            write(root / f"proc/{pid}/net/dev", net_dev({"lo": (5, 5), "eth0": (i * 1000, i * 500)}))
            write(root / f"proc/{pid}/comm", "pause\n" if c < 0 else "app\n")
            (root / f"proc/{pid}/ns").mkdir(parents=True)
            os.symlink(f"net:[{4026532000 + i}]", root / f"proc/{pid}/ns/net")


def pod_uid(i: int) -> str:
    return f"{i:08x}-0000-4000-8000-{i:012x}"


def exporter_args(root: Path, *, interval: float, containers: bool) -> list[str]:
    return ["--listen", "127.0.0.1:0", "--node-name", "bench", "--proc-root", str(root / "proc"),
            "--sys-root", str(root / "sys"), "--cgroup-root", str(root / "cgroup"), "--rootfs", str(root),
            "--interval", str(interval), "--exclude-namespaces", "", "--log-level", "warning",
            "--container-metrics", "true" if containers else "false"]


class _Names:
    """The pod index as the sampler sees it, for the in-process cycles: every container named."""

    connected = True

    def __init__(self, pods: int, containers: int) -> None:
        def named(i: int) -> dict[str, ContainerMeta]:
            return {container_id(i, c): ContainerMeta(name=f"c{c}", cpu_request_cores=0.1)
                    for c in range(containers)}

        self._metas = {pod_uid(i): PodMeta(uid=pod_uid(i), namespace="shop", name=f"web-5d4f8-{i:05d}",
                                           containers=named(i)) for i in range(pods)}

    def get(self, uid: str) -> PodMeta | None:
        return self._metas.get(uid)


def measure_sampling(root: Path, iterations: int, *, pods: int, containers: int | None
                     ) -> tuple[list[float], list[float], int, int]:
    """(CPU seconds per cycle, wall seconds per cycle, pods seen, containers seen) over `iterations` cycles;
    `containers` None: pod families only."""
    settings = load(exporter_args(root, interval=5, containers=containers is not None), {})
    errors = CountingErrors()
    host, cgroups, podstats = default_readers(settings, errors)
    reader = ContainerReader(proc_root=settings.proc_root, errors=errors) if containers is not None else None
    sampler = Sampler(node="bench", host_reader=host, cgroup_finder=cgroups, pod_reader=podstats,
                      errors=errors, container_reader=reader, pods=_Names(pods, containers or 0))
    snapshot = sampler.cycle()  # warm caches (and the baseline)
    cpu, wall = [], []
    for _ in range(iterations):
        c0, w0 = time.thread_time(), time.perf_counter()
        snapshot = sampler.cycle()
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
    if errors.counts():
        print(f"  reader errors during sampling: {errors.counts()}")
    return cpu, wall, len(snapshot.pods), sum(len(p.containers) for p in snapshot.pods)


@dataclass
class Served:
    latencies: list[float]
    size: int
    gzip_size: int
    rss_kb: int
    hwm_kb: int


def rss(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def wait_for(url: str, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with requests.get(url, timeout=2) as r:
                if r.status_code == 200:
                    return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer 200 within {deadline_s}s")
        time.sleep(0.05)


def scrape(url: str, pid: int, scrapes: int) -> Served:
    """Median-friendly latencies of `scrapes` GETs as Prometheus makes them (gzip, keep-alive)."""
    latencies = []
    with requests.Session() as s:
        s.get(url, timeout=10).close()  # warm-up
        for _ in range(scrapes):
            t0 = time.perf_counter()
            r = s.get(url, headers={"Accept-Encoding": "gzip"}, timeout=10, stream=True)
            raw = r.raw.read(decode_content=False)
            latencies.append(time.perf_counter() - t0)
            r.close()
        plain = s.get(url, headers={"Accept-Encoding": "identity"}, timeout=10).content
    now, peak = rss(pid)
    return Served(latencies, len(plain), len(raw), now, peak)


def stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(10)


def fake_api(pods: int, containers: int) -> Any:
    """A started FakeKube (the tests' fake API server) naming every synthetic pod, or None."""
    try:
        from tests.kube import FakeKube, objects
    except ImportError:
        print("  tests.kube not importable: exporter runs standalone (pods labelled by uid)")
        return None
    kube = FakeKube().start()
    deploy = kube.create(objects.deployment("web", "shop"))
    rs = kube.create(objects.replicaset("web-5d4f8", "shop", deployment=deploy))
    for i in range(pods):
        specs = [objects.container(f"c{c}", requests={"cpu": "100m", "memory": "64Mi"},
                                   limits={"cpu": "500m", "memory": "256Mi"}) for c in range(containers)]
        pod = objects.pod(f"web-5d4f8-{i:05d}", "shop", node="bench", uid=pod_uid(i), owner=rs,
                          containers=specs)
        for c, status in enumerate(pod["status"]["containerStatuses"]):
            status["containerID"] = f"containerd://{container_id(i, c)}"
        kube.create(pod)
    return kube


def measure_exporter(root: Path, scrapes: int, kubeconfig: str = "", *,
                     containers: bool) -> tuple[Served, int]:
    """Run `python -m exporter` over the tree; (scrape figures, exit code after SIGTERM)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("K8SMON_")}
    args = (exporter_args(root, interval=1.0, containers=containers)
            + (["--kubeconfig", kubeconfig] if kubeconfig else []))
    proc = subprocess.Popen([sys.executable, "-m", "exporter", *args], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"exporter did not start: {line!r}")
        url = line.split("listening on ", 1)[1].strip()
        wait_for(f"{url}/healthz", 30)
        if kubeconfig:  # wait until the index has named the pods, so labels are full-size
            deadline = time.monotonic() + 30
            while 'k8smon_exporter_kube_connected{node="bench"} 1.0' not in requests.get(
                    f"{url}/metrics", timeout=10).text:
                if time.monotonic() > deadline:
                    raise RuntimeError("exporter never connected to the fake API")
                time.sleep(0.1)
            time.sleep(1.2)  # one more sampling cycle, now with names
        served = scrape(f"{url}/metrics", proc.pid, scrapes)
    finally:
        code = stop(proc)
        if proc.stdout is not None:
            proc.stdout.close()
    return served, code


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure_node_exporter(scrapes: int) -> Served | None:
    binary = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if binary is None:
        print("  prometheus-node-exporter not installed: no comparison")
        return None
    port = free_port()
    proc = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/metrics", 30)
        return scrape(f"http://127.0.0.1:{port}/metrics", proc.pid, scrapes)
    finally:
        stop(proc)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main(argv: list[str] | None = None) -> int:
    """Print the figures; exit 1 when a target is missed at >= 110 pods."""
    parser = argparse.ArgumentParser(prog="python -m bench.exporter_bench", description=__doc__)
    parser.add_argument("--pods", type=int, default=110)
    parser.add_argument("--containers", type=int, default=3, help="containers per pod (plus a sandbox)")
    parser.add_argument("--iterations", type=int, default=30, help="sampling cycles measured")
    parser.add_argument("--scrapes", type=int, default=50, help="/metrics requests per server")
    parser.add_argument("--no-node-exporter", action="store_true")
    parser.add_argument("--standalone", action="store_true",
                        help="no fake API server: pods labelled by uid (default: named by FakeKube)")
    args = parser.parse_args(argv)
    modes = (("pod families only", None), (f"with containers ({args.containers}/pod)", args.containers))
    sampled: dict[str, list[float]] = {}
    served: dict[str, tuple[Served, int]] = {}
    with tempfile.TemporaryDirectory(prefix="k8smon-bench-") as tmp:
        root = Path(tmp)
        make_node(root, args.pods, args.containers)
        for mode, containers in modes:
            cpu, wall, seen, seen_containers = measure_sampling(root, args.iterations, pods=args.pods,
                                                                containers=containers)
            sampled[mode] = cpu
            print(f"sampling cycle ({seen} pods, {seen_containers} containers, {args.iterations} cycles; "
                  f"{mode}): CPU median {ms(statistics.median(cpu))}, max {ms(max(cpu))}; "
                  f"wall median {ms(statistics.median(wall))}")
        kube = None if args.standalone else fake_api(args.pods, args.containers)
        try:
            for mode, containers in modes:
                served[mode] = measure_exporter(root, args.scrapes, str(kube.kubeconfig) if kube else "",
                                                containers=containers is not None)
        finally:
            if kube is not None:
                kube.stop()
        print(f"exporter mode: {'named by a fake API server' if kube else 'standalone (labelled by uid)'}")
        theirs = None if args.no_node_exporter else measure_node_exporter(args.scrapes)
    rows = [(f"k8smon ({'pods' if c is None else 'containers'})", served[m][0]) for m, c in modes]
    rows += [("node_exporter", theirs)] if theirs else []
    print(f"{'server':<20} {'/metrics median':>16} {'p90':>10} {'size':>10} {'gzip':>9} {'RSS':>9} "
          f"{'peak RSS':>9}")
    for name, s in rows:
        p90 = statistics.quantiles(s.latencies, n=10)[-1] if len(s.latencies) > 1 else s.latencies[0]
        print(f"{name:<20} {ms(statistics.median(s.latencies)):>16} {ms(p90):>10} {s.size:>9}B "
              f"{s.gzip_size:>8}B {s.rss_kb / 1024:>7.1f}MB {s.hwm_kb / 1024:>7.1f}MB")
    codes = [code for _served, code in served.values()]
    print(f"exporter exit code after SIGTERM: {max(codes, key=abs)}")
    checks = []
    for mode, _containers in modes:
        ours = served[mode][0]
        checks += [(f"sampling CPU <= 100 ms per cycle ({mode})", statistics.median(sampled[mode]) <= 0.100),
                   (f"exporter RSS <= 60 MB ({mode})", ours.rss_kb <= 60 * 1024)]
        if theirs is not None:
            checks.append((f"/metrics median latency <= node_exporter's ({mode})",
                           statistics.median(ours.latencies) <= statistics.median(theirs.latencies)))
    checks.append(("exporter exits 0 on SIGTERM", all(code == 0 for code in codes)))
    for label, ok in checks:
        print(f"target {'met   ' if ok else 'MISSED'}: {label}")
    return 1 if args.pods >= 110 and not all(ok for _, ok in checks) else 0

if __name__ == "__main__":
    sys.exit(main())
