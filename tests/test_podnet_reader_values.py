"""PodNetworkReader value by value on hand-made /proc trees: whose pids cgroup.procs names (the reader's
PID namespace), the bounded number of processes tried, and how the host's network namespace is told
when links cannot be read. No root, no real namespaces."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter import podnet
from exporter.model import NetCounters, PodCgroup
from exporter.podnet import PodNetworkReader
from tests.exporter_fakes import FakeClock
from tests.support.cgroups import RecordingErrors

UID = "8d8d8d8d-0000-4000-8000-00000000000e"
POD_CGROUP = ("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
              f"{UID.replace('-', '_')}.slice/cri-containerd-{'8e' * 32}.scope\n")
HOST_NS, POD_NS = "net:[4026531840]", "net:[4026532999]"


def process(proc: Path, pid: int, *, netns: str, rx: int, tx: int, cgroup: str | None) -> None:
    d = proc / str(pid)
    (d / "net").mkdir(parents=True)
    (d / "ns").mkdir()
    os.symlink(netns, d / "ns" / "net")
    (d / "net" / "dev").write_text(
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo"
        " colls carrier compressed\n"
        "    lo: 7 0 0 0 0 0 0 0 7 0 0 0 0 0 0 0\n"
        f"  eth0: {rx} 1 0 0 0 0 0 0 {tx} 1 0 0 0 0 0 0\n")
    if cgroup is not None:
        (d / "cgroup").write_text(cgroup)


def node(tmp_path: Path, *, pod_procs: str, self_link: str | None) -> tuple[Path, PodCgroup]:
    """The host's init (pid 1), the pod's process (pid 3000, found by the /proc index), and the pod's
    cgroup whose container lists `pod_procs`."""
    proc = tmp_path / "proc"
    process(proc, 1, netns=HOST_NS, rx=9000, tx=9000, cgroup="0::/init.scope\n")
    process(proc, 3000, netns=POD_NS, rx=500, tx=600, cgroup=POD_CGROUP)
    if self_link is not None:
        os.symlink(self_link, proc / "self")
    pod = tmp_path / "cgroup" / "pod"
    (pod / "ctr").mkdir(parents=True)
    (pod / "cgroup.procs").write_text("")
    (pod / "ctr" / "cgroup.procs").write_text(pod_procs)
    return proc, PodCgroup(uid=UID, qos="burstable", version=2, driver="systemd", paths={"unified": str(pod)})


def read(proc: Path, cg: PodCgroup, errors: RecordingErrors | None = None
         ) -> tuple[dict[str, NetCounters] | None, bool]:
    reader = PodNetworkReader(proc_root=str(proc), errors=errors or RecordingErrors(), clock=FakeClock())
    return reader.read(cg)


POD_TRAFFIC = ({"eth0": NetCounters(500, 600)}, False)


def test_pids_of_our_own_pid_namespace_are_not_looked_up_in_the_hosts_proc(tmp_path: Path) -> None:
    # The exporter pod without hostPID reads its own pod's cgroup.procs: the kernel lists the exporter as
    # pid 1 of its namespace. Pid 1 of the host's /proc is init: taken literally, the exporter's pod looked
    # host-network (k8smon_pod_host_network 1) and its traffic was never reported.
    proc, cg = node(tmp_path, pod_procs="1\n", self_link="4242")  # we are 4242 in the host's numbering
    assert os.getpid() != 4242
    assert read(proc, cg) == POD_TRAFFIC  # found through <proc>/3000/cgroup instead


@pytest.mark.parametrize("with_self", [True, False])
def test_cgroup_procs_pids_are_used_in_our_own_numbering(tmp_path: Path, with_self: bool) -> None:
    # the same namespace (or a recorded tree without `self`): the listed pid is read, no index needed.
    # Our pid is taken when the test runs: mutmut runs each mutant in a forked child.
    proc, cg = node(tmp_path, pod_procs="3000\n", self_link=str(os.getpid()) if with_self else None)
    (proc / "3000" / "cgroup").unlink()  # the index would not find it
    assert read(proc, cg) == POD_TRAFFIC


def test_eight_processes_are_tried_at_most(tmp_path: Path) -> None:
    # eight listed processes exited meanwhile: the ninth is not tried this cycle
    proc, cg = node(tmp_path, pod_procs="".join(f"{p}\n" for p in range(2992, 3001)), self_link=None)
    assert read(proc, cg) == (None, False)
    Path(cg.paths["unified"], "ctr", "cgroup.procs").write_text("".join(f"{p}\n" for p in range(2993, 3001)))
    assert read(proc, cg) == POD_TRAFFIC


def test_zeros_of_other_namespaces_use_up_no_tries(tmp_path: Path) -> None:
    proc, cg = node(tmp_path, pod_procs="0\n" * 12, self_link=None)
    assert read(proc, cg) == POD_TRAFFIC


def test_an_unknown_host_namespace_gives_no_figure_and_is_reported(tmp_path: Path) -> None:
    proc, cg = node(tmp_path, pod_procs="3000\n", self_link=None)
    (proc / "1" / "ns" / "net").unlink()
    (proc / "1" / "net" / "dev").unlink()
    errors = RecordingErrors()
    assert read(proc, cg, errors) == (None, False)  # never the host's traffic, never "host network"
    ((source, detail, exc),) = errors.records
    assert (source, detail) == ("cgroup", f"pod {UID}: cannot tell the host's network namespace")
    assert isinstance(exc, FileNotFoundError) and exc.filename == str(proc / "1" / "net" / "dev")


def test_without_ptrace_access_the_namespace_is_told_by_net_dev_inode(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without CAP_SYS_PTRACE readlink(<proc>/<pid>/ns/net) fails with EACCES (root here bypasses it).
    real = os.readlink

    def readlink(path: str) -> str:
        if str(path).endswith(os.path.join("ns", "net")):
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(podnet.os, "readlink", readlink)
    proc, cg = node(tmp_path, pod_procs="3000\n", self_link=None)
    assert read(proc, cg) == POD_TRAFFIC
    (proc / "3000" / "net" / "dev").unlink()
    os.link(proc / "1" / "net" / "dev", proc / "3000" / "net" / "dev")  # procfs: one namespace, one inode
    assert read(proc, cg) == (None, True)


def test_an_interface_name_with_any_bytes_costs_nothing(tmp_path: Path) -> None:
    proc, cg = node(tmp_path, pod_procs="3000\n", self_link=None)
    with open(proc / "3000" / "net" / "dev", "ab") as f:
        f.write(b"  w\xe9lan0: 10 0 0 0 0 0 0 0 20 0 0 0 0 0 0 0\n")  # any byte but '/', ':', NUL, blanks
    counters, host_network = read(proc, cg)
    assert counters is not None and not host_network
    assert counters["eth0"] == NetCounters(500, 600) and len(counters) == 2
    assert NetCounters.total(counters) == NetCounters(510, 620)
