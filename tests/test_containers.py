"""Container cgroups: found and read on the recorded node trees, named from pod objects, sandbox told apart,
and the sampler's naming and counters across restarts (fake readers, fake clocks)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from exporter.cgroups import PodCgroupFinder
from exporter.containers import ContainerCgroup, ContainerReader, container_id
from exporter.model import PodCgroup
from exporter.podspec import container_metas, pod_meta
from exporter.sampler import CountingErrors, Sampler
from exporter.snapshot import ContainerMeta, PodMeta
from tests.exporter_fakes import (
    FakeCgroups,
    FakeClock,
    FakeContainers,
    FakeHost,
    FakeLookup,
    FakePodStats,
    container_usage,
    host_sample,
    pod_usage,
)
from tests.support.cgroups import RecordingErrors, copy_node_tree

A_G = "1f3a9c2e-5b7d-4e21-9a0b-6c8d7e5f4a31"
B_G = "5e7f9a1b-3c4d-4e5f-b071-0c2d3e4f5a79"
C_G = "9c1d3e5f-7a8b-4c9d-b4b5-4a6b7c8d9e0f"


def pod(tree: Path, uid: str) -> PodCgroup:
    found = {p.uid: p for p in PodCgroupFinder(cgroup_root=str(tree / "cgroup")).find()}
    return found[uid]


def by_id(reader: ContainerReader, cg: PodCgroup) -> dict[str, tuple[float | None, int | None, int | None]]:
    return {c.id: (c.cpu_seconds, c.memory_usage_bytes, c.memory_working_set_bytes) for c in reader.read(cg)}


@pytest.mark.parametrize("name, expected", [
    ("cri-containerd-" + "ab" * 32 + ".scope", "ab" * 32),
    ("crio-" + "cd" * 32 + ".scope", "cd" * 32),
    ("docker-" + "ef" * 32 + ".scope", "ef" * 32),
    ("01" * 32, "01" * 32),  # cgroupfs: containerd, Docker
    ("crio-" + "23" * 32, "23" * 32),  # cgroupfs: CRI-O
    ("crio-conmon-" + "cd" * 32 + ".scope", None),  # CRI-O's monitor, not a container
    ("cri-containerd-abc.scope", None),  # not a runtime id
    ("kubepods-burstable.slice", None),
    ("AB" * 32, None),
])
def test_container_directory_names(name: str, expected: str | None) -> None:
    assert container_id(name) == expected


def test_v2_systemd_containerd_containers(tmp_path: Path) -> None:
    tree = copy_node_tree("node-a", tmp_path)
    errors = RecordingErrors()
    cg = pod(tree, A_G)
    got = by_id(ContainerReader(proc_root=str(tree / "proc"), errors=errors), cg)
    # 1/3 of the pod's 12.5 s and 300 MB (100 MB inactive file) each: see make_trees.py
    each = (4.166666, 100_000_000, 66_666_667)
    assert got == {"1a" * 32: each, "1b" * 32: each}
    assert errors.records == []


def test_v2_crio_conmon_is_not_a_container(tmp_path: Path) -> None:
    tree = copy_node_tree("node-b", tmp_path)
    got = by_id(ContainerReader(proc_root=str(tree / "proc")), pod(tree, B_G))
    assert got == {"4d" * 32: (3.5, 100_000_000, 90_000_000)}


def test_v1_cgroupfs_docker_containers(tmp_path: Path) -> None:
    tree = copy_node_tree("node-c", tmp_path)
    cg = pod(tree, C_G)
    got = by_id(ContainerReader(proc_root=str(tree / "proc")), cg)
    # cpuacct.usage in ns, memory from the v1 controller: 1/3 of 42 s, 500 MB, 200 MB inactive
    assert got == {"9a" * 32: (14.0, 166_666_666, 100_000_000), "9b" * 32: (14.0, 166_666_666, 100_000_000)}
    (container,) = [c for c in ContainerReader.list(cg) if c.id == "9a" * 32]
    rel = f"kubepods/pod{C_G}/{'9a' * 32}"
    assert container.paths == {"cpuacct": str(tree / "cgroup/cpu,cpuacct" / rel),
                               "memory": str(tree / "cgroup/memory" / rel),
                               "blkio": str(tree / "cgroup/blkio" / rel)}


def test_a_container_gone_mid_read_is_left_out_quietly_bad_content_costs_its_figure(tmp_path: Path) -> None:
    tree = copy_node_tree("node-a", tmp_path)
    cg = pod(tree, A_G)
    errors = RecordingErrors()
    reader = ContainerReader(proc_root=str(tree / "proc"), errors=errors)
    containers = ContainerReader.list(cg)
    shutil.rmtree(containers[0].paths["unified"])  # exited after the listing
    (Path(containers[1].paths["unified"]) / "cpu.stat").write_text("usage_usec lots\n")
    got = {c.id: c for c in reader.read(cg)}
    assert set(got) == {"1b" * 32}
    assert got["1b" * 32].cpu_seconds is None and got["1b" * 32].memory_working_set_bytes == 66_666_667
    assert [r[0] for r in errors.records] == ["cgroup"]
    assert reader.read(PodCgroup(uid="x", qos="besteffort", version=2, driver="systemd",
                                 paths={"unified": str(tmp_path / "gone")})) == []


def test_sandbox_is_told_apart_by_its_pause_process(tmp_path: Path) -> None:
    tree = copy_node_tree("node-a", tmp_path)
    cg = pod(tree, A_G)
    sandbox = Path(cg.paths["unified"]) / f"cri-containerd-{'0a' * 32}.scope"
    sandbox.mkdir()
    (sandbox / "cgroup.procs").write_text("1009\n")
    (tree / "proc/1009").mkdir()
    (tree / "proc/1009/comm").write_text("pause\n")
    empty = Path(cg.paths["unified"]) / f"cri-containerd-{'0e' * 32}.scope"
    empty.mkdir()
    (empty / "cgroup.procs").write_text("")
    reader = ContainerReader(proc_root=str(tree / "proc"))
    kinds = {c.id: reader.is_sandbox(c) for c in ContainerReader.list(cg)}
    assert kinds == {"0a" * 32: True, "0e" * 32: None, "1a" * 32: False, "1b" * 32: False}


def test_sandbox_check_without_our_pids_uses_proc_cgroup(tmp_path: Path) -> None:
    # An exporter pod without hostPID reads cgroup.procs as 0s: the pids come from <proc>/<pid>/cgroup.
    tree = copy_node_tree("node-a", tmp_path)
    cg = pod(tree, A_G)
    for procs in (tree / "cgroup").rglob("cgroup.procs"):
        procs.write_text("0\n" if procs.read_text() else "")
    name = f"cri-containerd-{'0a' * 32}.scope"
    (Path(cg.paths["unified"]) / name).mkdir()
    (Path(cg.paths["unified"]) / name / "cgroup.procs").write_text("0\n")
    (tree / "proc/1009").mkdir()
    (tree / "proc/1009/comm").write_text("pause\n")
    rel = Path(cg.paths["unified"]).relative_to(tree / "cgroup") / name
    (tree / "proc/1009/cgroup").write_text(f"0::/{rel}\n")
    clock = FakeClock(100.0)
    reader = ContainerReader(proc_root=str(tree / "proc"), clock=clock)
    kinds = {c.id: reader.is_sandbox(c) for c in ContainerReader.list(cg)}
    assert kinds == {"0a" * 32: True, "1a" * 32: False, "1b" * 32: False}


POD = {
    "metadata": {"uid": "u-1", "namespace": "shop", "name": "web-1"},
    "spec": {
        "initContainers": [{"name": "migrate", "resources": {"requests": {"cpu": "100m"}}}],
        "containers": [
            {"name": "web", "resources": {"requests": {"cpu": "250m", "memory": "128Mi"},
                                          "limits": {"cpu": "1", "memory": "256Mi"}}},
            {"name": "proxy"},
            {"name": "late", "resources": {"requests": {"cpu": "a lot"}}},
        ],
    },
    "status": {
        "initContainerStatuses": [{"name": "migrate", "containerID": "containerd://" + "11" * 32}],
        "containerStatuses": [
            {"name": "web", "containerID": "containerd://" + "22" * 32,
             "lastState": {"terminated": {"containerID": "containerd://" + "20" * 32}}},
            {"name": "proxy", "containerID": "cri-o://" + "33" * 32},
            {"name": "late", "containerID": "containerd://" + "44" * 32},
            {"name": "waiting", "state": {"waiting": {"reason": "ContainerCreating"}}},
        ],
        "ephemeralContainerStatuses": [{"name": "debugger", "containerID": "docker://" + "55" * 32}],
    },
}


def test_container_metas_from_a_pod_object() -> None:
    errors = RecordingErrors()
    current, retired = container_metas(POD, errors)
    assert current == {
        "11" * 32: ContainerMeta(name="migrate", kind="init", cpu_request_cores=0.1),
        "22" * 32: ContainerMeta(name="web", cpu_request_cores=0.25, cpu_limit_cores=1.0,
                                 memory_request_bytes=128 * 2**20, memory_limit_bytes=256 * 2**20),
        "33" * 32: ContainerMeta(name="proxy"),
        "44" * 32: ContainerMeta(name="late"),  # its bad quantity costs its resources only
        "55" * 32: ContainerMeta(name="debugger", kind="ephemeral"),
    }
    assert retired == frozenset({"20" * 32})
    assert [r[0] for r in errors.records] == ["kube"]
    meta = pod_meta(POD, resolve_replicaset=lambda *a: None, errors=errors)
    assert meta is not None and meta.containers == current and meta.retired_container_ids == retired


UID = "0b6e3f4c-1d2a-4e5f-8a9b-0000000000aa"
OLD, NEW = "a0" * 32, "b0" * 32


def test_restart_continues_the_name_and_never_goes_negative() -> None:
    errors = CountingErrors()
    stats = FakePodStats(errors, {UID: pod_usage(UID, cpu=50.0)})
    containers = FakeContainers({UID: [container_usage(OLD, cpu=10.0)]})
    lookup = FakeLookup({UID: PodMeta(uid=UID, namespace="ns", name="p",
                                      containers={OLD: ContainerMeta(name="app")})})
    mono = FakeClock(0.0)
    sampler = Sampler(node="n", host_reader=FakeHost(host_sample()), cgroup_finder=FakeCgroups(stats),
                      pod_reader=stats, errors=errors, pods=lookup, container_reader=containers,
                      monotonic=mono, now=FakeClock(1e9), cpu_clock=FakeClock())

    def step(cpu: dict[str, float]) -> dict[str, tuple[str, float | None, float | None]]:
        mono.advance(5.0)
        containers.usages[UID] = [container_usage(cid, cpu=v) for cid, v in cpu.items()]
        (p,) = sampler.cycle().pods
        return {c.name: (c.id, c.cpu_seconds, c.cpu_usage_cores) for c in p.containers}

    assert step({OLD: 10.0}) == {"app": (OLD, 10.0, None)}
    assert step({OLD: 12.0}) == {"app": (OLD, 12.0, pytest.approx(0.4))}
    # restarted: the old cgroup lingers (its id now in lastState), the new one is not in the index yet
    lookup.pods[UID] = PodMeta(uid=UID, namespace="ns", name="p", retired_container_ids=frozenset({OLD}))
    assert step({OLD: 12.1, NEW: 0.5}) == {NEW[:12]: (NEW, 0.5, None)}
    # the status names it: the counter continues from the last value served under the name (12.0; the
    # lingering old cgroup is not the name's any more), the rate is the new container's own (never negative)
    lookup.pods[UID] = PodMeta(uid=UID, namespace="ns", name="p", retired_container_ids=frozenset({OLD}),
                               containers={NEW: ContainerMeta(name="app")})
    assert step({NEW: 1.0}) == {"app": (NEW, pytest.approx(12.0 + 1.0), pytest.approx(0.1))}
    assert step({NEW: 2.0}) == {"app": (NEW, pytest.approx(12.0 + 2.0), pytest.approx(0.2))}
    assert containers.checked == [NEW]  # only the unnamed container needed the sandbox check


def test_unnamed_sandbox_and_undecided_containers_are_not_reported() -> None:
    errors = CountingErrors()
    stats = FakePodStats(errors, {UID: pod_usage(UID)})
    sandbox, undecided, unnamed = "5a" * 32, "5b" * 32, "5c" * 32
    containers = FakeContainers({UID: [container_usage(c) for c in (sandbox, undecided, unnamed)]},
                                sandboxes={sandbox}, undecided={undecided})
    sampler = Sampler(node="n", host_reader=FakeHost(host_sample()), cgroup_finder=FakeCgroups(stats),
                      pod_reader=stats, errors=errors, container_reader=containers)
    (p,) = sampler.cycle().pods
    assert [(c.name, c.meta) for c in p.containers] == [(unnamed[:12], None)]
    assert isinstance(containers.usages[UID][0].cgroup, ContainerCgroup)
