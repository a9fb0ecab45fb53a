"""PodCgroupFinder on recorded v1/v2 trees and synthetic hybrid/--cgroup-root layouts; pods come and go."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from exporter.cgroups import PodCgroupFinder
from exporter.model import PodCgroup
from tests.support.cgroups import RecordingErrors, copy_node_tree

A_G = "1f3a9c2e-5b7d-4e21-9a0b-6c8d7e5f4a31"
A_B = "2b4c6d8e-0f1a-4b3c-8d5e-7f9a0b1c2d43"
A_H = "3c5d7e9f-1a2b-4c3d-9e5f-8a0b1c2d3e55"
A_E = "4d6e8f0a-2b3c-4d4e-af60-9b1c2d3e4f67"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def by_uid(pods: list[PodCgroup]) -> dict[str, PodCgroup]:
    return {p.uid: p for p in pods}


def test_v2_systemd_containerd(tmp_path: Path) -> None:
    tree = copy_node_tree("node-a", tmp_path)
    errors = RecordingErrors()
    pods = PodCgroupFinder(cgroup_root=str(tree / "cgroup"), errors=errors).find()
    assert [p.uid for p in pods] == sorted([A_G, A_B, A_H, A_E])
    kp = tree / "cgroup/kubepods.slice"
    assert by_uid(pods)[A_G] == PodCgroup(
        uid=A_G, qos="guaranteed", version=2, driver="systemd",
        paths={"unified": str(kp / "kubepods-pod1f3a9c2e_5b7d_4e21_9a0b_6c8d7e5f4a31.slice")})
    assert by_uid(pods)[A_B].paths == {"unified": str(
        kp / "kubepods-burstable.slice/kubepods-burstable-pod2b4c6d8e_0f1a_4b3c_8d5e_7f9a0b1c2d43.slice")}
    assert {p.uid: p.qos for p in pods} == {A_G: "guaranteed", A_B: "burstable", A_H: "burstable",
                                            A_E: "besteffort"}
    assert errors.records == []


def test_v2_systemd_under_kubelet_cgroup_root(tmp_path: Path) -> None:
    tree = copy_node_tree("node-b", tmp_path)
    pods = PodCgroupFinder(cgroup_root=str(tree / "cgroup")).find()
    assert {p.uid: (p.qos, p.driver, p.version) for p in pods} == {
        "5e7f9a1b-3c4d-4e5f-b071-0c2d3e4f5a79": ("guaranteed", "systemd", 2),
        "6f8a0b2c-4d5e-4f6a-8182-1d3e4f5a6b8c": ("burstable", "systemd", 2),
        "7a9b1c3d-5e6f-4a7b-9293-2e4f5a6b7c9d": ("besteffort", "systemd", 2),
        "8b0c2d4e-6f7a-4b8c-a3a4-3f5a6b7c8d0e": ("besteffort", "systemd", 2),
    }
    assert all("/kubelet.slice/kubelet-kubepods.slice/" in p.paths["unified"] for p in pods)


def test_v1_cgroupfs_docker_combined_cpu_cpuacct(tmp_path: Path) -> None:
    tree = copy_node_tree("node-c", tmp_path)
    pods = by_uid(PodCgroupFinder(cgroup_root=str(tree / "cgroup")).find())
    g = pods["9c1d3e5f-7a8b-4c9d-b4b5-4a6b7c8d9e0f"]
    cg = tree / "cgroup"
    rel = "kubepods/pod9c1d3e5f-7a8b-4c9d-b4b5-4a6b7c8d9e0f"
    assert g == PodCgroup(uid=g.uid, qos="guaranteed", version=1, driver="cgroupfs",
                          paths={"cpuacct": str(cg / "cpu,cpuacct" / rel), "memory": str(cg / "memory" / rel),
                                 "blkio": str(cg / "blkio" / rel)})
    assert sorted(p.qos for p in pods.values()) == ["besteffort", "besteffort", "burstable", "guaranteed"]


def test_hybrid_prefers_per_controller_paths(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    (root / "unified").mkdir(parents=True)
    (root / "unified/cgroup.controllers").write_text("\n")
    uid_both, uid_v2 = "0a0b0c0d-1111-4222-8333-444455556666", "0f0e0d0c-1111-4222-8333-444455556666"
    for ctl in ("unified", "cpuacct", "memory"):
        (root / ctl / f"kubepods/burstable/pod{uid_both}/abc").mkdir(parents=True)
    (root / f"unified/kubepods/pod{uid_v2}").mkdir(parents=True)
    pods = by_uid(PodCgroupFinder(cgroup_root=str(root)).find())
    assert set(pods[uid_both].paths) == {"unified", "cpuacct", "memory"}
    assert pods[uid_both].version == 1  # hybrid: memory and blkio data come from v1
    assert pods[uid_v2] == PodCgroup(uid=uid_v2, qos="guaranteed", version=2, driver="cgroupfs",
                                     paths={"unified": str(root / f"unified/kubepods/pod{uid_v2}")})


def test_pods_come_and_go_between_finds(tmp_path: Path) -> None:
    tree = copy_node_tree("node-a", tmp_path)
    finder = PodCgroupFinder(cgroup_root=str(tree / "cgroup"))
    first = finder.find()
    assert len(first) == 4
    shutil.rmtree(by_uid(first)[A_B].paths["unified"])
    new_uid = "9f9e9d9c-0000-4111-8222-333344445555"
    besteffort = tree / "cgroup/kubepods.slice/kubepods-besteffort.slice"
    (besteffort / f"kubepods-besteffort-pod{new_uid.replace('-', '_')}.slice").mkdir()
    second = by_uid(finder.find())
    assert set(second) == {A_G, A_H, A_E, new_uid}
    assert second[new_uid].qos == "besteffort"


def test_moved_kubepods_is_found_after_rescan_interval_or_when_it_vanishes(tmp_path: Path) -> None:
    tree = copy_node_tree("node-a", tmp_path)
    clock = FakeClock()
    errors = RecordingErrors()
    finder = PodCgroupFinder(cgroup_root=str(tree / "cgroup"), errors=errors, clock=clock, rescan_seconds=60)
    assert len(finder.find()) == 4
    # kubelet restarted with --cgroup-root=/kubelet: the old kubepods cgroup goes away, a new one appears
    cg = tree / "cgroup"
    (cg / "kubelet.slice").mkdir()
    os.rename(cg / "kubepods.slice", cg / "kubelet.slice/kubelet-kubepods.slice")
    assert finder.find() == []  # the cached directory vanished: reported, searched again next call
    assert errors.sources() == ["cgroup"]
    assert len(finder.find()) == 4
    # a kubepods tree appearing elsewhere is noticed once the rescan interval passed; the shallowest
    # kubepods cgroups win (a kubelet nested deeper, e.g. kind's inside a container, is another node's)
    (cg / "kubepods").mkdir()
    (cg / "kubepods/pod77777777-0000-4111-8222-333344445555").mkdir()
    assert len(finder.find()) == 4
    clock.now += 59
    assert len(finder.find()) == 4
    clock.now += 2
    assert [p.uid for p in finder.find()] == ["77777777-0000-4111-8222-333344445555"]


def test_unrelated_and_malformed_names_are_ignored(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu memory\n")
    kp = root / "kubepods.slice"
    for name in ("kubepods-podXYZ.slice", "kubepods-burstable.slice/not-a-pod.slice",
                 "kubepods-burstable.slice/kubepods-burstable-pod.slice", "system.slice/pod1234abcd.slice",
                 "kubepods-guaranteed.slice"):
        (kp / name).mkdir(parents=True)
    (kp / "kubepods-pod12345678_aaaa.slice").write_text("a file, not a cgroup")
    assert PodCgroupFinder(cgroup_root=str(root)).find() == []


def test_missing_root_reports_and_returns_empty(tmp_path: Path) -> None:
    errors = RecordingErrors()
    assert PodCgroupFinder(cgroup_root=str(tmp_path / "absent"), errors=errors).find() == []
    assert errors.sources() == ["cgroup"]


def test_a_node_without_kubepods_yet_is_searched_again_after_a_few_seconds(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu memory\n")
    clock = FakeClock()
    finder = PodCgroupFinder(cgroup_root=str(root), clock=clock, rescan_seconds=60)
    assert finder.find() == []
    (root / "kubepods/podabcdef01-0000-4111-8222-333344445555").mkdir(parents=True)  # kubelet started
    assert finder.find() == []  # not searched again every cycle
    clock.now += 5
    assert [p.uid for p in finder.find()] == ["abcdef01-0000-4111-8222-333344445555"]


def test_hybrid_stale_unified_kubepods_does_not_hide_the_real_one(tmp_path: Path) -> None:
    # As seen on this machine: a runtime run with `--cgroup /kubepods/...` left a `kubepods` tree in the
    # unified hierarchy only, shallower than kubelet's (here under --cgroup-root=/node). The v1
    # controllers say where kubepods is; the stale tree's pod is not reported.
    root = tmp_path / "cgroup"
    (root / "unified").mkdir(parents=True)
    (root / "unified/cgroup.controllers").write_text("\n")
    uid, stale = "0a0b0c0d-1111-4222-8333-444455556666", "5a5b5c5d-1111-4222-8333-444455556666"
    for ctl in ("unified", "cpuacct", "memory", "blkio"):
        (root / ctl / f"node/kubepods/burstable/pod{uid}").mkdir(parents=True)
    (root / f"unified/kubepods/burstable/pod{stale}").mkdir(parents=True)
    pods = by_uid(PodCgroupFinder(cgroup_root=str(root)).find())
    assert set(pods) == {uid}
    assert pods[uid].paths == {ctl: str(root / ctl / f"node/kubepods/burstable/pod{uid}")
                               for ctl in ("unified", "cpuacct", "memory", "blkio")}
