"""podnet's helpers value by value: which pids a pod's cgroup tree yields, whole-file reads, and when
the /proc pid index is rebuilt."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter.model import PodCgroup
from exporter.podnet import PidIndex, PodVanished, pod_pids, read_text

UID = "aaaaaaaa-0000-4111-8222-333344445555"


def cgroup_dir(root: Path, rel: str, pids: str | None) -> Path:
    d = root / rel
    d.mkdir(parents=True, exist_ok=True)
    if pids is not None:
        (d / "cgroup.procs").write_text(pids)
    return d


def pod(**paths: Path) -> PodCgroup:
    return PodCgroup(uid=UID, qos="burstable", version=2, driver="systemd",
                     paths={k: str(v) for k, v in paths.items()})


def test_pids_breadth_first_from_the_pod_then_its_containers_three_levels_deep(tmp_path: Path) -> None:
    top = cgroup_dir(tmp_path, "pod", "0\n")  # outside our PID namespace: listed as 0
    cgroup_dir(tmp_path, "pod/ctr-a", "101\n102\n")
    cgroup_dir(tmp_path, "pod/ctr-b", "201\n")
    cgroup_dir(tmp_path, "pod/ctr-a/inner", "301\n")
    cgroup_dir(tmp_path, "pod/ctr-a/inner/deeper", "401\n")  # a fourth level: not looked at
    cgroup_dir(tmp_path, "pod/crio-conmon-abc.scope", "999\n")  # CRI-O's conmon: host netns, skipped
    cgroup_dir(tmp_path, "elsewhere", "888\n")
    os.symlink(tmp_path / "elsewhere", top / "linked")  # a link is not a child cgroup
    got = list(pod_pids(pod(unified=top)))
    assert got[0] == 0
    assert sorted(got[1:4]) == [101, 102, 201]
    assert got[4:] == [301]


def test_the_first_hierarchy_with_the_pod_is_used(tmp_path: Path) -> None:
    v2 = cgroup_dir(tmp_path, "unified/pod", "7\n")
    v1 = cgroup_dir(tmp_path, "memory/pod", "8\n")
    blkio = cgroup_dir(tmp_path, "blkio/pod", "9\n")
    assert list(pod_pids(pod(memory=v1, unified=v2))) == [7]
    assert list(pod_pids(pod(blkio=blkio, memory=v1))) == [8]
    assert list(pod_pids(pod(blkio=blkio))) == [9]
    assert list(pod_pids(pod())) == []  # no directory at all: no pids, no error


def test_a_pod_whose_cgroup_is_gone_vanished(tmp_path: Path) -> None:
    gone = tmp_path / "pod"
    with pytest.raises(PodVanished) as raised:
        list(pod_pids(pod(unified=gone)))
    assert str(raised.value) == f"{gone} is gone"


def test_containers_removed_meanwhile_hide_none_of_their_siblings(tmp_path: Path) -> None:
    top = cgroup_dir(tmp_path, "pod", "")
    for i in range(6):
        cgroup_dir(tmp_path, f"pod/ctr-{i}", None if i in (1, 4) else f"{100 + i}\n")  # 1, 4: restarting
        cgroup_dir(tmp_path, f"pod/ctr-{i}/inner", f"{200 + i}\n")
    got = list(pod_pids(pod(unified=top)))
    assert sorted(got) == [100, 102, 103, 105, 200, 202, 203, 205]


def test_read_text_reads_a_file_bigger_than_one_chunk(tmp_path: Path) -> None:
    text = "".join(f"{i:07d}\n" for i in range(40_000))  # 320 kB: five 64-KiB reads
    (tmp_path / "big").write_text(text)
    assert read_text(str(tmp_path / "big")) == text
    (tmp_path / "empty").write_text("")
    assert read_text(str(tmp_path / "empty")) == ""


def proc_tree(root: Path, pids: dict[int, str]) -> None:
    for pid, cgroup in pids.items():
        (root / str(pid)).mkdir(parents=True, exist_ok=True)
        (root / str(pid) / "cgroup").write_text(cgroup)


def test_pid_index_is_rebuilt_only_once_older_than_max_age(tmp_path: Path) -> None:
    now = [100.0]
    line = f"0::/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/cri-containerd-1.scope\n"
    proc_tree(tmp_path, {10: line})
    index = PidIndex(proc_root=str(tmp_path), clock=lambda: now[0], max_age=1.0)
    assert index.pids(UID) == [10]
    proc_tree(tmp_path, {11: line})
    now[0] += 1.0  # exactly max_age: still fresh
    assert index.pids(UID) == [10]
    now[0] += 0.5
    assert index.pids(UID) == [10, 11]


def test_pid_index_reclassifies_everything_after_a_minute_by_default(tmp_path: Path) -> None:
    now = [100.0]
    pod_line = f"0::/kubepods/burstable/pod{UID}/ctr\n"
    proc_tree(tmp_path, {10: "0::/system.slice/runc-init\n"})  # not yet moved into the container
    index = PidIndex(proc_root=str(tmp_path), clock=lambda: now[0], max_age=0.25)
    assert index.pids(UID) == []
    proc_tree(tmp_path, {10: pod_line})  # joined its container cgroup after being classified
    now[0] += 60.0  # exactly a minute: known pids are not classified again yet
    assert index.pids(UID) == []
    now[0] += 0.5
    assert index.pids(UID) == [10]


def test_pid_index_without_a_readable_proc_is_empty(tmp_path: Path) -> None:
    index = PidIndex(proc_root=str(tmp_path / "absent"), clock=lambda: 0.0, max_age=1.0)
    assert index.pids(UID) == []
