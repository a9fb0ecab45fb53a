"""Both images built from Dockerfiles/ as the README tells users, then run the way deploy/ runs them.

Building: the README's `docker build` lines, run by `buildah bud` (no Docker engine here) with Docker's
behaviour spelled out: `--layers` (docker's build cache: the second image reuses the identical build
stage), `--format docker` (docker's image format, which keeps HEALTHCHECK), `--isolation chroot`.
The ONE stand-in: no image registry is reachable, so the base image python:3.11-slim-bookworm is a
Debian bookworm rootfs with python3 3.11 and pip made by mmdebstrap and cached on this machine
(tests/support/images.py); `--pull-never` keeps buildah from looking for the real one. RUN steps get
this machine's pip configuration and CA bundle mounted read-only so pip reaches the package index the
way the host's pip does.

Running: our own containerd (own root, state and socket), images imported as kubelet would find them
(`k8s-monitor-exporter:0.1.0`), each container started by `ctr run` with the options its rendered
manifest asks for (user, no capabilities, seccomp, no_new_privs, read-only root, hostPath and emptyDir
mounts, env, CPU and memory limits), in its own network namespace (veth between the two pods) and in a
kubelet-style pod cgroup, beside a hand-made pod with a real process holding 64 MiB. Then the exporter
must report node and pod figures, the aggregator (static --targets: there is no API server) must serve
them through the JSON API and /metrics, and both must exit 0 on SIGTERM within their grace period.
Every image, container, snapshot, mount, cgroup and namespace is removed afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import require, require_root, require_tool, wait_until
from tests.support.cgroups import HOLDER, FakeKubelet, FakePod, cgroups_writable
from tests.support.containerd import Containerd
from tests.support.deploy import REPO, container_port, find, pod_spec, render
from tests.support.images import (
    ALL_CAPS,
    BASE_CONFIG,
    BASE_NAME,
    Buildah,
    archive_layer_sizes,
    base_rootfs,
    ctr_args_for,
    host_pip_mounts,
    image_containerd,
    mount_options,
    process_status,
    proxy_build_args,
    remove_cgroup_trees,
    stopped_on_exit,
)
from tests.support.netns import netns_pair

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(900)]

TAG = "i16"  # in every cgroup, namespace and directory name, so parallel runs tell theirs apart
MIB = 1 << 20
HELD = 64 * MIB
NODE = "k8smon-image-node"
WORKLOADS = {  # component: (kind, name, probe port name)
    "exporter": ("DaemonSet", "k8s-monitor-exporter", "metrics"),
    "aggregator": ("Deployment", "k8s-monitor-aggregator", "http"),
}
# Run inside an image: what the installed distribution holds, and what else the image has.
PROBE = r"""
import importlib.metadata as md, importlib.util, json, re, shutil, sys, sysconfig
canon = lambda n: re.sub(r"[-_.]+", "-", n).lower()
dist = md.distribution("k8s-monitor")
site = str(dist.locate_file(""))
need, todo = set(), ["k8s-monitor"]
while todo:
    name = todo.pop()
    if name in need:
        continue
    need.add(name)
    try:
        requires = md.distribution(name).requires or []
    except md.PackageNotFoundError:
        continue
    todo += [canon(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", r).group()) for r in requires
             if not re.search(r"extra\s*==", r)]
tops = (dist.read_text("top_level.txt") or "").split()
print(json.dumps({
    "site": site,
    "files": {str(f): f.hash.value if f.hash else None for f in dist.files},
    "direct_url": dist.read_text("direct_url.json"),
    "origins": {t: importlib.util.find_spec(t).origin for t in tops},
    "installed": sorted({canon(d.metadata["Name"]) for d in md.distributions(path=[site])}),
    "required": sorted(need),
    "scripts": {s: shutil.which(s) for s in ("k8smon-exporter", "k8smon-aggregator")},
    "compilers": {t: shutil.which(t) for t in ("gcc", "cc", "c++", "g++", "clang", "make", "ld", "as")},
    "python_h": __import__("os").path.exists(sysconfig.get_paths()["include"] + "/Python.h"),
    "python": sys.version.split()[0],
}))
"""


def say(request: pytest.FixtureRequest, line: str) -> None:
    """A figure for the CI log: written past pytest's capture."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\n[images] {line}", flush=True)


def readme_builds() -> dict[str, list[str]]:
    """component -> the README's `docker build` arguments for it (after `docker build`), $REG filled in."""
    out = {}
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        if not line.startswith("docker build "):
            continue
        args = shlex.split(line)[2:]
        if "-t" not in args or not args[args.index("-t") + 1].startswith("$REG/"):
            continue  # the digest-pinning example, not a command to copy as is
        dockerfile = Path(args[args.index("-f") + 1]).name
        component = dockerfile.removesuffix(".Dockerfile")
        out[component] = [a.replace("$REG/", f"localhost/k8smon-test-{TAG}/") for a in args]
    assert set(out) == set(WORKLOADS), f"README builds {sorted(out)}, manifests run {sorted(WORKLOADS)}"
    return out


def image_ref(name: str) -> str:
    """The reference containerd resolves a manifest's `image:` to (what kubelet looks up)."""
    return name if "/" in name.split(":", maxsplit=1)[0] else f"docker.io/library/{name}"


@dataclass
class Images:
    containerd: Containerd
    buildah: Buildah
    workdir: Path
    cgroup_prefix: str
    refs: dict[str, str] = field(default_factory=dict)  # component -> containerd image ref
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # component -> image config
    figures: dict[str, float] = field(default_factory=dict)


@pytest.fixture(scope="module")
def images(request: pytest.FixtureRequest) -> Iterator[Images]:
    require_root()
    for tool in ("mmdebstrap", "buildah", "containerd", "ctr", "runc", "ip", "curl"):
        require_tool(tool)
    ok, why = cgroups_writable()
    require(ok, f"cgroups not writable here: {why}")
    workdir = Path(tempfile.mkdtemp(prefix=f"k8smon-test-{TAG}-"))
    built = Images(containerd=image_containerd(workdir, namespace=f"k8smon-test-{TAG}"),
                   buildah=Buildah(workdir), workdir=workdir,
                   cgroup_prefix=f"k8smon-test-{TAG}-{uuid.uuid4().hex[:8]}")
    problems: list[str] = []
    try:
        f = built.figures
        t = time.monotonic()
        tarball, cold = base_rootfs()
        f["base_rootfs_s"], f["base_cold"] = time.monotonic() - t, float(cold)
        t = time.monotonic()
        built.buildah.commit_rootfs(tarball, BASE_NAME, BASE_CONFIG)
        f["base_commit_s"] = time.monotonic() - t
        built.containerd.start()
        manifests = render()
        for component, args in sorted(readme_builds().items(), key=lambda kv: kv[0] != "exporter"):
            tag = args[args.index("-t") + 1]
            t = time.monotonic()
            built.buildah.bud(["--isolation", "chroot", "--layers", "--format", "docker", "--pull-never",
                               *host_pip_mounts(), *proxy_build_args(), *args], context=REPO)
            f[f"{component}_build_s"] = time.monotonic() - t
            built.configs[component] = built.buildah.inspect(tag)["Docker"]["config"]
            kind, name, _port = WORKLOADS[component]
            (container,) = pod_spec(find(manifests, kind, name))["containers"]
            ref = image_ref(container["image"])
            assert tag.endswith("/" + container["image"]), f"README tags {tag}, manifest runs {ref}"
            archive = workdir / f"{component}.tar"
            t = time.monotonic()
            built.buildah.push_archive(tag, archive, container["image"])
            layers = archive_layer_sizes(archive)
            f[f"{component}_size"], f["base_size"] = sum(layers), layers[0]  # the stand-in base: 1 layer
            built.containerd.import_archive(archive)
            archive.unlink()
            f[f"{component}_import_s"] = time.monotonic() - t
            built.refs[component] = ref
        for line in (
            f"base rootfs {'built (cold)' if cold else 'cached'} in {f['base_rootfs_s']:.1f} s, committed "
            f"as {BASE_NAME} in {f['base_commit_s']:.1f} s; stand-in base {f['base_size'] / 1e6:.0f} MB",
            *(f"{c}: built in {f[f'{c}_build_s']:.1f} s, image {f[f'{c}_size'] / 1e6:.0f} MB "
              f"({(f[f'{c}_size'] - f['base_size']) / 1e6:.0f} MB above the base), imported into "
              f"containerd in {f[f'{c}_import_s']:.1f} s" for c in sorted(built.refs)),
        ):
            say(request, line)
        yield built
    finally:
        problems += built.containerd.close()
        problems += [f"buildah mount {m}" for m in built.buildah.close()]
        problems += remove_cgroup_trees(built.cgroup_prefix)
        left = sorted(p.name for p in workdir.iterdir())
        if left:
            problems.append(f"left in {workdir}: {left}")
        else:
            workdir.rmdir()
        assert not problems, f"cleanup had to force or left things behind: {problems}"


def _remove_cgroups(prefix: str) -> None:
    left = remove_cgroup_trees(prefix)
    assert not left, f"cgroups left behind: {left}"


def _b64_sha256(path: Path) -> str:
    """A file's hash as a wheel's RECORD writes it."""
    return base64.urlsafe_b64encode(hashlib.sha256(path.read_bytes()).digest()).rstrip(b"=").decode()


def _package_files(tops: list[str]) -> list[str]:
    """Files of the given top-level packages in the tree (tracked or new, not ignored), as repo paths."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *tops],
                         cwd=REPO, capture_output=True, text=True, check=True, timeout=30).stdout.split()
    return [p for p in out if (REPO / p).is_file() and "__pycache__" not in p and not p.endswith(".pyc")]


def _run_in_image(images: Images, component: str, argv: list[str]) -> str:
    """Run `argv` in the component's image, confined (read-only root, no capabilities, no network)."""
    cid = f"probe-{component}-{uuid.uuid4().hex[:6]}"
    log = images.workdir / f"{cid}.log"
    caps = [a for c in ALL_CAPS for a in ("--cap-drop", f"CAP_{c}")]
    opts = ["--read-only", "--seccomp", "--cgroup", f"/{images.cgroup_prefix}/{cid}", *caps]
    proc = images.containerd.run_foreground(images.refs[component], cid, opts, argv, log=log)
    with stopped_on_exit(images.containerd, cid, proc):
        rc = proc.wait(timeout=120)
    out = log.read_text(errors="replace")
    log.unlink()
    assert rc == 0, f"{argv[:2]} in the {component} image exited {rc}:\n{out[-3000:]}"
    return out


@pytest.mark.parametrize("component", sorted(WORKLOADS))
def test_image_holds_the_built_wheel_and_nothing_else(images: Images, component: str,
                                                      request: pytest.FixtureRequest) -> None:
    seen = json.loads(_run_in_image(images, component, ["python", "-c", PROBE]).strip().splitlines()[-1])
    # The installed distribution, not the working tree: a regular (non-editable) install in the image's
    # site directory, every package module loaded from there.
    assert seen["direct_url"] is None or '"editable": true' not in seen["direct_url"], seen["direct_url"]
    assert all(str(o).startswith(seen["site"]) for o in seen["origins"].values()), seen["origins"]
    assert seen["scripts"]["k8smon-exporter"] and seen["scripts"]["k8smon-aggregator"], seen["scripts"]
    # Every file the tree's packages hold is in the wheel with the tree's content: a new static file
    # or a subpackage that package data / find_packages misses fails here, not in a user's cluster.
    tops = sorted(seen["origins"])
    assert {"exporter", "aggregator", "k8smon_common"} <= set(tops), tops
    missing, differing = [], []
    for path in _package_files(tops):
        recorded = seen["files"].get(path, "absent")
        if recorded == "absent":
            missing.append(path)
        elif recorded != _b64_sha256(REPO / path):  # a wheel's RECORD hashes every file but itself
            differing.append(path)
    assert not missing, f"in the tree but not in the {component} image's wheel (package data?): {missing}"
    assert not differing, f"the {component} image's wheel holds other content for: {differing}"
    # Small: nothing installed beyond the runtime dependency closure (pip/setuptools/wheel come with the
    # base), so no test extras; no compiler and no Python headers.
    extra = set(seen["installed"]) - set(seen["required"]) - {"pip", "setuptools", "wheel"}
    assert not extra, f"installed in the {component} image beyond the runtime dependencies: {sorted(extra)}"
    assert not any(seen["compilers"].values()), seen["compilers"]
    assert not seen["python_h"]
    assert seen["python"].startswith("3.11."), seen["python"]
    say(request, f"{component}: Python {seen['python']}, {len(seen['installed'])} distributions in "
                 f"{seen['site']}, {len(_package_files(tops))} package files checked against the tree")


def _http(netns: str, url: str, timeout: float = 5) -> tuple[int, bytes]:
    """GET `url` from inside network namespace `netns` (where the pods' addresses are)."""
    done = subprocess.run(["ip", "netns", "exec", netns, "curl", "-sS", "--max-time", str(timeout),
                           "-o", "-", "-w", "\n%{http_code}", url],
                          capture_output=True, timeout=timeout + 10, check=False)
    body, _, code = done.stdout.rpartition(b"\n")
    return int(code or b"0"), body


def _samples(text: bytes) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def _one(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float | None:
    found = [v for lab, v in samples.get(name, []) if all(lab.get(k) == w for k, w in labels.items())]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def _meminfo_total() -> int:
    for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal")


@dataclass
class Running:
    component: str
    cid: str
    proc: subprocess.Popen[bytes]
    pid: int
    log: Path
    started: float
    ready_s: float = 0.0


def _start(images: Images, component: str, *, kubelet: FakeKubelet, pod: FakePod, netns: str,
           probe_ns: str, address: str, env: dict[str, str], stack: contextlib.ExitStack) -> Running:
    """Start the component's container as its manifest says, in `pod`'s cgroup; wait for readiness."""
    kind, name, port_name = WORKLOADS[component]
    workload = find(render(), kind, name)
    cid = f"{component}-{uuid.uuid4().hex[:6]}"
    container_id = hashlib.sha256(cid.encode()).hexdigest()  # 64 hex like a CRI container ID
    pid_file = images.workdir / f"{cid}.pid"
    opts = ctr_args_for(workload, node_name=NODE, env=env, empty_dirs=images.workdir / "empty" / cid,
                        netns=netns, pid_file=pid_file,
                        cgroup=f"/{kubelet.prefix}/kubepods/{pod.qos}/pod{pod.uid}/{container_id}")
    log = images.workdir / f"{cid}.log"
    started = time.monotonic()
    proc = images.containerd.run_foreground(images.refs[component], cid, opts, log=log)
    stack.enter_context(stopped_on_exit(images.containerd, cid, proc))
    stack.callback(lambda: log.unlink(missing_ok=True))
    (container,) = pod_spec(workload)["containers"]
    probe = container["readinessProbe"]["httpGet"]
    url = f"http://{address}:{container_port(workload, port_name)}{probe['path']}"

    def ready() -> bool:
        assert proc.poll() is None, f"{component} exited {proc.returncode}:\n{log.read_text()[-3000:]}"
        return _http(probe_ns, url, timeout=2)[0] == 200

    wait_until(ready, timeout=90, interval=0.1, message=f"{component} readiness probe {url}")
    running = Running(component, cid, proc, int(pid_file.read_text()), log, started,
                      ready_s=time.monotonic() - started)
    stack.callback(lambda: pid_file.unlink(missing_ok=True))
    return running


def _assert_confined_as_deployed(images: Images, run: Running) -> None:
    kind, name, _port = WORKLOADS[run.component]
    workload = find(render(), kind, name)
    (container,) = pod_spec(workload)["containers"]
    sc = {**pod_spec(workload)["securityContext"], **container["securityContext"]}
    user = f"{sc['runAsUser']}:{sc['runAsGroup']}"
    assert images.configs[run.component]["User"] == user, "the image's USER is not the manifest's runAsUser"
    status = process_status(run.pid)
    assert status["Uid"].split() == [str(sc["runAsUser"])] * 4, status["Uid"]
    assert status["Gid"].split() == [str(sc["runAsGroup"])] * 4, status["Gid"]
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[caps], 16) == 0, f"{caps} {status[caps]}"
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2", status
    mounts = mount_options(run.pid)
    assert "ro" in mounts["/"], mounts["/"]  # readOnlyRootFilesystem
    for mount in container.get("volumeMounts", []):
        assert ("ro" if mount.get("readOnly") else "rw") in mounts[mount["mountPath"]], mount


class _Refs(HTMLParser):
    """Relative URLs a page loads or links to (src= and href=)."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value and not urlsplit(value).scheme \
                    and not value.startswith(("//", "#")):
                self.refs.append(value)


def _assert_dashboard_served(netns: str, base: str) -> str:
    """When the tree's aggregator package ships a page (an .html file), /ui/ must serve it from the image,
    and every asset it refers to must answer 200: static files left out of package data fail here."""
    pages = sorted((REPO / "aggregator").rglob("*.html"))
    if not pages:
        return "dashboard: the tree has no page yet (no .html under aggregator/), /ui/ not checked"
    code, body = _http(netns, f"{base}/ui/")
    assert code == 200, f"/ui/ answered {code} though the tree ships {pages}: {body[:300]!r}"
    parser = _Refs()
    parser.feed(body.decode())
    for ref in parser.refs:
        url = urljoin(f"{base}/ui/", ref)
        assert _http(netns, url)[0] == 200, f"{url} (referred to by /ui/) does not answer 200"
    return f"dashboard: /ui/ and the {len(parser.refs)} assets it refers to served from the image"


def _cgroup_report(pod: FakePod, pid: int) -> str:
    """Where a container's process sits and what its pod's cgroups hold (for a failure message)."""
    lines = [f"/proc/{pid}/cgroup:", Path(f"/proc/{pid}/cgroup").read_text()]
    for key, path in pod.dirs.items():
        files = {}
        for name in ("memory.current", "memory.usage_in_bytes", "memory.stat", "cpuacct.usage",
                     "cgroup.procs"):
            with contextlib.suppress(OSError):
                text = Path(path, name).read_text().splitlines()
                files[name] = " ".join(line for line in text if not line.startswith(("total_", "hier"))
                                       or "inactive" in line or "rss " in line)[:600]
        lines.append(f"{key} {path}: {files} children {sorted(os.listdir(path))}")
    return "\n".join(lines)


def _stop(images: Images, run: Running, grace: float) -> float:
    """SIGTERM as kubelet sends it; the container must exit 0 within the pod's grace period."""
    t = time.monotonic()
    images.containerd.kill(run.cid, "SIGTERM")
    try:
        rc = run.proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{run.component} still running {grace} s after SIGTERM:\n{run.log.read_text()[-3000:]}")
    took = time.monotonic() - t
    assert rc == 0, f"{run.component} exited {rc} on SIGTERM:\n{run.log.read_text()[-3000:]}"
    return took


def test_exporter_and_aggregator_run_as_deployed(images: Images, request: pytest.FixtureRequest) -> None:
    manifests = render()
    mem_total, cpus, root = _meminfo_total(), os.cpu_count(), os.statvfs("/")
    with contextlib.ExitStack() as stack:
        # Unwound in reverse: containers stop, namespaces go, the hand-made pods go, then what runc made.
        kubelet = FakeKubelet(tag=TAG)
        stack.callback(_remove_cgroups, kubelet.prefix)
        stack.enter_context(kubelet)
        stack.callback(shutil.rmtree, images.workdir / "empty", ignore_errors=True)
        net = stack.enter_context(netns_pair(owner=TAG))
        held_pod = kubelet.create_pod("burstable")
        holder = kubelet.start([sys.executable, "-c", HOLDER, str(HELD)], pod=held_pod)
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.write(b"go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == b"held"
        exporter_pod, aggregator_pod = kubelet.create_pod("burstable"), kubelet.create_pod("burstable")

        exporter = _start(images, "exporter", kubelet=kubelet, pod=exporter_pod, netns=net.a, probe_ns=net.b,
                          address=net.addr_a, env={}, stack=stack)
        port = container_port(find(manifests, *WORKLOADS["exporter"][:2]), "metrics")
        target = f"{net.addr_a}:{port}"
        aggregator = _start(images, "aggregator", kubelet=kubelet, pod=aggregator_pod, netns=net.b,
                            probe_ns=net.b, address="127.0.0.1", env={"K8SMON_TARGETS": target}, stack=stack)
        agg_port = container_port(find(manifests, *WORKLOADS["aggregator"][:2]), "http")
        agg = f"http://127.0.0.1:{agg_port}"
        both_ready = time.time()
        for run in (exporter, aggregator):
            _assert_confined_as_deployed(images, run)

        # The exporter, as the aggregator's pod reaches it: the host through its read-only mounts,
        # and the pods, including both containers' own pod cgroups as runc made them.
        def exporter_samples() -> dict[str, list[tuple[dict[str, str], float]]] | None:
            code, body = _http(net.b, f"http://{target}/metrics")
            assert code == 200, body[:500]
            s = _samples(body)
            # A sample taken while a container was still starting shows its pod nearly empty.
            return s if (_one(s, "k8smon_exporter_sample_timestamp_seconds", node=NODE) or 0) > both_ready \
                else None

        s = wait_until(exporter_samples, timeout=30, interval=0.5, message="a sample after both started")
        assert _one(s, "k8smon_node_memory_total_bytes", node=NODE) == mem_total
        assert _one(s, "k8smon_node_cpu_capacity_cores", node=NODE) == cpus
        assert _one(s, "k8smon_node_filesystem_size_bytes", node=NODE, mountpoint="/") == \
            root.f_blocks * root.f_frsize
        assert (_one(s, "k8smon_node_cpu_seconds_total", node=NODE) or 0) > 0
        # host traffic, read from /host/proc/1/net/dev in the exporter's own network namespace
        assert _one(s, "k8smon_node_network_receive_bytes_total", node=NODE) is not None
        held = _one(s, "k8smon_pod_memory_working_set_bytes", uid=held_pod.uid)
        assert held is not None and HELD <= held <= HELD + 32 * MIB, held
        assert (_one(s, "k8smon_pod_cpu_seconds_total", uid=held_pod.uid) or 0) > 0
        for pod, run in ((exporter_pod, exporter), (aggregator_pod, aggregator)):  # Python: tens of MiB
            why = _cgroup_report(pod, run.pid) + f"\nexporter at {time.time():.1f}: " + "\n".join(
                f"{name}{labels} {v}" for name, found in s.items() for labels, v in found
                if labels.get("uid") == pod.uid or name.startswith("k8smon_exporter_sample"))
            assert (_one(s, "k8smon_pod_memory_working_set_bytes", uid=pod.uid) or 0) > 10 * MIB, why
            assert (_one(s, "k8smon_pod_cpu_seconds_total", uid=pod.uid) or 0) > 0, why

        # The aggregator's JSON API and federated /metrics carry the same node and pod.
        def aggregated() -> tuple[dict[str, Any], dict[str, Any]] | None:
            nodes = json.loads(_http(net.b, f"{agg}/api/nodes")[1])["nodes"]
            pods = json.loads(_http(net.b, f"{agg}/api/pods")[1])["pods"]
            node = [n for n in nodes if n["node_name"] == NODE]
            pod = [p for p in pods if p["uid"] == held_pod.uid]
            return (node[0], pod[0]) if node and pod else None

        node, pod = wait_until(aggregated, timeout=30, interval=0.5, message="node and pod in the JSON API")
        assert node["status"] == "up" and node["memory_total_bytes"] == mem_total, node
        assert node["cpu_capacity_millicores"] == cpus * 1000, node
        assert pod["node_name"] == NODE and HELD <= pod["memory_bytes"] <= HELD + 32 * MIB, pod
        code, body = _http(net.b, f"{agg}/metrics")
        assert code == 200
        fed = _samples(body)
        assert _one(fed, "k8smon_target_up", target=target) == 1
        assert _one(fed, "k8smon_node_memory_total_bytes", node=NODE) == mem_total
        assert (_one(fed, "k8smon_pod_memory_working_set_bytes", uid=held_pod.uid) or 0) >= HELD
        # Package data served from the image: the OpenAPI document is the repository's.
        code, body = _http(net.b, f"{agg}/openapi.json")
        assert code == 200
        assert json.loads(body) == json.loads((REPO / "aggregator" / "openapi.json").read_text())

        ui = _assert_dashboard_served(net.b, agg)

        grace = {c: pod_spec(find(manifests, *WORKLOADS[c][:2]))["terminationGracePeriodSeconds"]
                 for c in WORKLOADS}
        stops = {r.component: _stop(images, r, grace[r.component]) for r in (aggregator, exporter)}
        for run in (exporter, aggregator):
            text = run.log.read_text(errors="replace")
            for bad in ("Traceback", "Permission denied", "Read-only file system"):
                assert bad not in text, f"{run.component} log:\n{text[-3000:]}"
        say(request, ui)
        for run in (exporter, aggregator):
            say(request, f"{run.component}: ready {run.ready_s:.1f} s after `ctr run` (readiness probe "
                         f"answered 200), stopped {stops[run.component]:.2f} s after SIGTERM "
                         f"(grace {grace[run.component]} s), exit 0")
