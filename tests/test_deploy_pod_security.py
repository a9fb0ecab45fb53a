"""The exporter under the confinement deploy/ gives it, emulated on this machine (root needed to set it up).

The DaemonSet runs the exporter as UID/GID 65534 with every capability dropped, in its own PID and mount
namespaces (no hostPID), with the host's /proc and /sys mounted read-only. Here the readers run exactly
so: `unshare --pid --mount`, the host's /proc and /sys bind-mounted read-only under a private tmpfs,
a fresh /proc for the new PID namespace, then `setpriv` to the manifest's UID/GID with no capabilities
and no_new_privs. They must still read the host and a kubelet-style pod (cgroups and network namespace).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import require, require_root, require_tool
from tests.support.cgroups import FakeKubelet, cgroups_writable
from tests.support.deploy import REPO, find, pod_spec, render
from tests.support.netns import netns_pair

pytestmark = pytest.mark.root

POD_ROOT = "/mnt"  # a private tmpfs is mounted over it inside the test's own mount namespace
# Runs confined: the exporter's readers, pointed at the host mounts, report what they could read.
READERS = """
import json, sys
from exporter.cgroups import PodCgroupFinder
from exporter.host import HostReader
from exporter.podstats import PodStatsReader

proc_root, sys_root, cgroup_root, *uids = sys.argv[1:]
errors = []

class Errors:
    def record(self, source, detail, exc=None):
        errors.append(f"{source}: {detail}: {exc}")

host = HostReader(proc_root=proc_root, sys_root=sys_root, rootfs="/", errors=Errors()).read()
found = {cg.uid: cg for cg in PodCgroupFinder(cgroup_root=cgroup_root, errors=Errors()).find()}
reader = PodStatsReader(proc_root=proc_root, errors=Errors())
pods = {}
for uid in uids:
    usage = reader.read(found[uid]) if uid in found else None
    pods[uid] = None if usage is None else {
        "cpu_seconds": usage.cpu_seconds, "memory_usage_bytes": usage.memory_usage_bytes,
        "network": None if usage.network is None else usage.network.receive_bytes,
        "host_network": usage.host_network,
    }
print(json.dumps({
    "host": {"cpu": host.cpu is not None, "memory": host.memory_total_bytes, "disk": host.disk is not None,
             "network": host.network is not None},
    "pods": pods, "errors": errors,
}))
"""
# As root in the new namespaces: build the pod's view of the host, then drop to the pod's identity.
CONFINE = """
set -eu
mount -t tmpfs -o mode=0755,size=1m k8smon-pod "$POD_ROOT"
mkdir -p "$POD_ROOT/host/proc" "$POD_ROOT/host/sys"
mount --rbind /proc "$POD_ROOT/host/proc"
mount -o remount,bind,ro "$POD_ROOT/host/proc"
mount --rbind /sys "$POD_ROOT/host/sys"
mount -o remount,bind,ro "$POD_ROOT/host/sys"
mount -t proc proc /proc
exec setpriv --reuid="$POD_UID" --regid="$POD_GID" --clear-groups --inh-caps=-all --bounding-set=-all \
    --no-new-privs "$@"
"""


@pytest.fixture(scope="module")
def confined() -> Iterator[dict[str, Any]]:
    """What the readers saw, confined like the DaemonSet's pod, of a netns pod and a host-network pod."""
    require_root()
    ok, why = cgroups_writable()
    require(ok, f"cgroups not writable here: {why}")
    for tool in ("unshare", "setpriv", "ip"):
        require_tool(tool)
    sc = pod_spec(find(render(), "DaemonSet", "k8s-monitor-exporter"))["securityContext"]
    with FakeKubelet() as kubelet, netns_pair() as pair:
        wait_line = [sys.executable, "-c", "import sys; print('in', flush=True); sys.stdin.readline()"]
        pods = {}
        for name, argv in (("netns", ["ip", "netns", "exec", pair.a, *wait_line]), ("hostnet", wait_line)):
            pod = kubelet.create_pod("burstable")
            proc = kubelet.start(argv, pod=pod)
            assert proc.stdout is not None and proc.stdout.readline().strip() == b"in"  # past setns
            pods[name] = pod.uid
        cgroup_root = f"{POD_ROOT}/host/sys/fs/cgroup"
        done = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount", "--propagation", "private", "--",
             "sh", "-c", CONFINE, "confine", sys.executable, "-c", READERS,
             f"{POD_ROOT}/host/proc", f"{POD_ROOT}/host/sys", cgroup_root, *pods.values()],
            capture_output=True, text=True, timeout=60, check=False, cwd=REPO,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(REPO), "POD_ROOT": POD_ROOT,
                 "POD_UID": str(sc["runAsUser"]), "POD_GID": str(sc["runAsGroup"])},
        )
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout)
        yield {"host": seen["host"], "errors": seen["errors"],
               **{name: seen["pods"][uid] for name, uid in pods.items()}}


def test_confinement_is_what_the_manifest_says() -> None:
    sc = pod_spec(find(render(), "DaemonSet", "k8s-monitor-exporter"))
    assert not sc.get("hostPID") and not sc.get("hostNetwork")
    assert (sc["securityContext"]["runAsUser"], sc["securityContext"]["runAsGroup"]) == (65534, 65534)
    (container,) = sc["containers"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_host_figures_are_readable_as_deployed(confined: dict[str, Any]) -> None:
    host = confined["host"]
    assert host["cpu"] and host["memory"] and host["disk"], confined
    assert host["network"], f"host network via <proc>/1/net/dev unreadable: {confined['errors']}"


def test_pod_cgroups_are_readable_as_deployed(confined: dict[str, Any]) -> None:
    for name in ("netns", "hostnet"):
        pod = confined[name]
        assert pod is not None, f"{name} pod not found or vanished: {confined['errors']}"
        assert pod["cpu_seconds"] is not None and pod["memory_usage_bytes"] is not None, confined
    assert not [e for e in confined["errors"] if "Permission denied" in e], confined["errors"]


def test_pod_network_is_readable_as_deployed(confined: dict[str, Any]) -> None:
    assert confined["netns"]["network"] is not None, confined["errors"]
    assert confined["netns"]["host_network"] is False
    assert confined["hostnet"]["host_network"] is True
