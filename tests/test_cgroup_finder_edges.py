"""PodCgroupFinder at its edges: symlinks are not cgroups, one unlistable directory hides nothing else,
the search budget is exact, the default rescan interval, and what each failure reports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter import cgroups
from exporter.cgroups import PodCgroupFinder
from tests.support.cgroups import RecordingErrors

UIDS = [f"{i:08x}-0000-4111-8222-333344445555" for i in range(1, 6)]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def v2_root(tmp_path: Path) -> Path:
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu memory io\n")
    return root


def test_every_pod_is_found_among_many_unrelated_cgroups(tmp_path: Path) -> None:
    root = v2_root(tmp_path)
    kp = root / "kubepods"
    for i in range(12):  # unrelated names in the kubepods and QoS directories, before and after the pods
        (kp / f"unrelated-{i}").mkdir(parents=True)
        (kp / "burstable" / f"not-a-pod-{i}").mkdir(parents=True)
    (kp / f"pod{UIDS[0]}").mkdir()
    (kp / "besteffort" / f"pod{UIDS[1]}").mkdir(parents=True)
    for uid in UIDS[2:]:
        (kp / "burstable" / f"pod{uid}").mkdir()
    found = {p.uid: p.qos for p in PodCgroupFinder(cgroup_root=str(root)).find()}
    assert found == {UIDS[0]: "guaranteed", UIDS[1]: "besteffort", **dict.fromkeys(UIDS[2:], "burstable")}


def test_symlinks_are_not_cgroups(tmp_path: Path) -> None:
    root = v2_root(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "kubepods" / "burstable").mkdir(parents=True)
    (elsewhere / "pod-dir").mkdir()
    kp = root / "kubepods"
    (kp / "burstable").mkdir(parents=True)
    (kp / f"pod{UIDS[0]}").mkdir()
    os.symlink(elsewhere / "pod-dir", kp / f"pod{UIDS[1]}")  # guaranteed-level link
    os.symlink(elsewhere / "pod-dir", kp / "burstable" / f"pod{UIDS[2]}")  # QoS-level link
    os.symlink(elsewhere / "kubepods", root / "linked")  # a link to another kubepods tree
    assert [p.uid for p in PodCgroupFinder(cgroup_root=str(root)).find()] == [UIDS[0]]


def test_one_unlistable_qos_directory_costs_only_its_own_pods(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    root = v2_root(tmp_path)
    kp = root / "kubepods"
    (kp / "besteffort" / f"pod{UIDS[0]}").mkdir(parents=True)
    (kp / "burstable" / f"pod{UIDS[1]}").mkdir(parents=True)
    (kp / f"pod{UIDS[2]}").mkdir(parents=True)
    real = os.scandir
    denied = str(kp / "besteffort")

    def scandir(path: str) -> os.ScandirIterator:  # type: ignore[type-arg]
        if str(path) == denied:
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(cgroups.os, "scandir", scandir)
    errors = RecordingErrors()
    assert [p.uid for p in PodCgroupFinder(cgroup_root=str(root), errors=errors).find()] == UIDS[1:3]
    assert len(errors.records) == 1
    source, detail, exc = errors.records[0]
    assert (source, detail) == ("cgroup", f"listing {denied} failed")
    assert isinstance(exc, PermissionError)


def test_a_qos_directory_removed_between_listings_is_skipped_quietly(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = v2_root(tmp_path)
    kp = root / "kubepods"
    (kp / "besteffort" / f"pod{UIDS[0]}").mkdir(parents=True)
    (kp / "burstable" / f"pod{UIDS[1]}").mkdir(parents=True)
    real = os.scandir
    gone = str(kp / "besteffort")

    def scandir(path: str) -> os.ScandirIterator:  # type: ignore[type-arg]
        if str(path) == gone:
            raise FileNotFoundError(2, "No such file or directory", path)
        return real(path)

    monkeypatch.setattr(cgroups.os, "scandir", scandir)
    errors = RecordingErrors()
    assert [p.uid for p in PodCgroupFinder(cgroup_root=str(root), errors=errors).find()] == [UIDS[1]]
    assert errors.records == []


def test_an_unlistable_kubepods_directory_is_reported_and_kept(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    root = v2_root(tmp_path)
    kp = root / "kubepods"
    (kp / f"pod{UIDS[0]}").mkdir(parents=True)
    errors = RecordingErrors()
    clock = Clock()
    finder = PodCgroupFinder(cgroup_root=str(root), errors=errors, clock=clock)
    assert len(finder.find()) == 1
    real = os.scandir

    def scandir(path: str) -> os.ScandirIterator:  # type: ignore[type-arg]
        if str(path) == str(kp):
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(cgroups.os, "scandir", scandir)
    assert finder.find() == []
    source, detail, exc = errors.records[0]
    assert (source, detail, type(exc)) == ("cgroup", f"listing {kp} failed", PermissionError)
    monkeypatch.setattr(cgroups.os, "scandir", real)
    assert len(finder.find()) == 1  # not a vanished kubepods: no new search needed, the same one lists


def test_a_vanished_kubepods_directory_is_reported_with_its_path(tmp_path: Path) -> None:
    root = v2_root(tmp_path)
    (root / "kubepods" / f"pod{UIDS[0]}").mkdir(parents=True)
    errors = RecordingErrors()
    finder = PodCgroupFinder(cgroup_root=str(root), errors=errors, clock=Clock())
    assert len(finder.find()) == 1
    os.rename(root / "kubepods", root / "moved")
    assert finder.find() == []
    source, detail, exc = errors.records[0]
    assert (source, detail, type(exc)) == ("cgroup", f"{root / 'kubepods'} vanished", FileNotFoundError)


def test_the_default_rescan_interval_is_a_minute(tmp_path: Path) -> None:
    root = v2_root(tmp_path)
    (root / "kubepods" / f"pod{UIDS[0]}").mkdir(parents=True)
    clock = Clock()
    finder = PodCgroupFinder(cgroup_root=str(root), clock=clock)
    assert len(finder.find()) == 1
    (root / "kubepods.slice" / f"kubepods-pod{UIDS[1].replace('-', '_')}.slice").mkdir(parents=True)
    clock.now += 59.5
    assert [p.uid for p in finder.find()] == [UIDS[0]]  # the new kubepods cgroup is not searched for yet
    clock.now += 0.5
    assert [p.uid for p in finder.find()] == UIDS[:2]


def test_the_default_root_is_the_hosts_cgroup_mount() -> None:
    assert PodCgroupFinder()._root == "/sys/fs/cgroup"


@pytest.mark.parametrize(("budget", "found"), [(2, True), (1, False)])
def test_the_search_lists_at_most_the_budgeted_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           budget: int, found: bool) -> None:
    top = tmp_path / "top"
    (top / "a" / "kubepods").mkdir(parents=True)  # found by listing the second directory, a
    monkeypatch.setattr(cgroups, "_SEARCH_BUDGET", budget)
    assert cgroups._search_kubepods(str(top)) == ([str(top / "a" / "kubepods")] if found else [])


def test_the_search_goes_on_past_a_directory_removed_meanwhile(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    top = tmp_path / "top"
    for name in "abcdefgh":
        (top / name).mkdir(parents=True)
    (top / "e" / "kubepods").mkdir()
    real = os.scandir

    def scandir(path: str) -> os.ScandirIterator:  # type: ignore[type-arg]
        if os.path.basename(str(path)) in "abcdfgh":
            raise FileNotFoundError(2, "No such file or directory", path)
        return real(path)

    monkeypatch.setattr(cgroups.os, "scandir", scandir)
    assert cgroups._search_kubepods(str(top)) == [str(top / "e" / "kubepods")]


def test_a_unified_directory_that_is_not_a_cgroup2_mount_is_not_a_hierarchy(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    for ctrl in ("cpu,cpuacct", "memory", "unified"):  # unified: a plain directory, no cgroup.controllers
        (root / ctrl / "kubepods" / f"pod{UIDS[0]}").mkdir(parents=True)
    (pod,) = PodCgroupFinder(cgroup_root=str(root)).find()
    assert sorted(pod.paths) == ["cpuacct", "memory"]
    assert pod.version == 1
    (root / "unified" / "cgroup.controllers").write_text("\n")  # now it is one (hybrid node)
    (pod,) = PodCgroupFinder(cgroup_root=str(root)).find()
    assert sorted(pod.paths) == ["cpuacct", "memory", "unified"]


def test_a_hierarchy_that_cannot_be_searched_is_reported(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root = v2_root(tmp_path)
    real = os.scandir

    def scandir(path: str) -> os.ScandirIterator:  # type: ignore[type-arg]
        if str(path) == str(root):
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(cgroups.os, "scandir", scandir)
    errors = RecordingErrors()
    assert PodCgroupFinder(cgroup_root=str(root), errors=errors).find() == []
    source, detail, exc = errors.records[0]
    assert (source, detail, type(exc)) == ("cgroup", f"searching {root} for kubepods failed", PermissionError)


def test_a_link_named_like_kubepods_is_not_followed(tmp_path: Path) -> None:
    root = v2_root(tmp_path)
    (root / "system.slice" / "kubepods" / f"pod{UIDS[0]}").mkdir(parents=True)  # the real one, deeper
    (tmp_path / "other" / f"pod{UIDS[1]}").mkdir(parents=True)
    os.symlink(tmp_path / "other", root / "kubepods.slice")  # shallower, but a link
    assert [p.uid for p in PodCgroupFinder(cgroup_root=str(root)).find()] == [UIDS[0]]


def test_no_hierarchy_is_reported_with_the_root(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    errors = RecordingErrors()
    assert PodCgroupFinder(cgroup_root=str(tmp_path / "empty"), errors=errors).find() == []
    assert errors.records == [("cgroup", f"no cgroup hierarchy under {tmp_path / 'empty'}", None)]


def test_a_v1_hierarchy_without_kubepods_adds_nothing_and_reports_nothing(tmp_path: Path) -> None:
    # kubelet uses cpuacct and memory; the blkio hierarchy is mounted but holds no kubepods: the pods
    # are found in the other two, and no missing kubepods directory is listed (and reported) every cycle.
    root = tmp_path / "cgroup"
    for hierarchy in ("cpu,cpuacct", "memory"):
        (root / hierarchy / "kubepods" / "burstable" / f"pod{UIDS[0]}").mkdir(parents=True)
    (root / "blkio" / "system.slice").mkdir(parents=True)
    errors = RecordingErrors()
    (pod,) = PodCgroupFinder(cgroup_root=str(root), errors=errors).find()
    rel = f"kubepods/burstable/pod{UIDS[0]}"
    assert pod.paths == {"cpuacct": str(root / "cpu,cpuacct" / rel), "memory": str(root / "memory" / rel)}
    assert errors.records == []
