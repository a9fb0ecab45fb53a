"""Container cgroups value by value (exporter/containers.py, exporter/cgroupusage.py): which file each
figure comes from on hybrid pods, a container vanishing between the listing and the read, what a bad
file reports, and how the sandbox check finds a container's processes and keeps its answers.
Hand-made cgroup-like trees under tmp_path; no root, no real cgroups."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from exporter.cgroupusage import cpu_seconds, memory_bytes, stat_value
from exporter.containers import ContainerCgroup, ContainerReader, SandboxCheck
from exporter.model import PodCgroup
from tests.exporter_fakes import FakeClock
from tests.support.cgroups import RecordingErrors

X, Y = "0a" * 32, "0b" * 32
UID = "6b6b6b6b-0000-4000-8000-00000000000c"


def write(directory: Path, files: dict[str, str]) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return str(directory)


class StaleListing(ContainerReader):
    """A reader whose listing was taken just before the containers changed (the race with the runtime)."""

    def __init__(self, listing: list[ContainerCgroup], **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self._listing = listing

    def list(self, cg: PodCgroup) -> list[ContainerCgroup]:  # type: ignore[override]
        return list(self._listing)


def hybrid_pod(tmp_path: Path) -> PodCgroup:
    """A pod on a hybrid node (cgroupfs driver): unified mirror plus the v1 cpuacct and memory hierarchies."""
    paths = {key: write(tmp_path / key / "kubepods/podx", {}) for key in ("unified", "cpuacct", "memory")}
    for cid, usec, ns, usage, inactive in ((X, 2_000_000, 3_000_000_000, 500, 100),
                                           (Y, 4_000_000, 5_000_000_000, 700, 800)):
        # unified holds cpu.stat and, on this node, a memory.current that v1 pods must not use
        write(Path(paths["unified"], cid), {"cpu.stat": f"usage_usec {usec}\n", "memory.current": "999\n",
                                            "cgroup.procs": ""})
        write(Path(paths["cpuacct"], cid), {"cpuacct.usage": f"{ns}\n", "cgroup.procs": ""})
        write(Path(paths["memory"], cid), {"memory.usage_in_bytes": f"{usage}\n", "cgroup.procs": "",
                                           "memory.stat": f"cache 1\ntotal_inactive_file {inactive}\n"})
    return PodCgroup(uid=UID, qos="burstable", version=1, driver="cgroupfs", paths=paths)


def figures(reader: ContainerReader, cg: PodCgroup) -> dict[str, tuple[float | None, int | None, int | None]]:
    return {c.id: (c.cpu_seconds, c.memory_usage_bytes, c.memory_working_set_bytes) for c in reader.read(cg)}


def test_hybrid_pod_cpu_from_unified_memory_from_v1(tmp_path: Path) -> None:
    cg = hybrid_pod(tmp_path)
    errors = RecordingErrors()
    # working set floored at 0 for Y (inactive file above usage)
    assert figures(ContainerReader(proc_root=str(tmp_path), errors=errors), cg) == {
        X: (2.0, 500, 400), Y: (4.0, 700, 0)}
    assert errors.records == []


def test_container_without_its_unified_mirror_reads_cpuacct(tmp_path: Path) -> None:
    cg = hybrid_pod(tmp_path)
    listing = ContainerReader.list(cg)
    shutil.rmtree(listing[0].paths["unified"])  # X's unified mirror went away after the listing
    errors = RecordingErrors()
    assert figures(StaleListing(listing, proc_root=str(tmp_path), errors=errors), cg) == {
        X: (3.0, 500, 400), Y: (4.0, 700, 0)}
    assert errors.records == []


def test_container_gone_after_the_listing_is_left_out_quietly(tmp_path: Path) -> None:
    cg = hybrid_pod(tmp_path)
    listing = ContainerReader.list(cg)
    for directory in listing[0].paths.values():  # X exited: gone from every hierarchy
        shutil.rmtree(directory)
    errors = RecordingErrors()
    assert figures(StaleListing(listing, proc_root=str(tmp_path), errors=errors), cg) == {Y: (4.0, 700, 0)}
    assert errors.records == []  # churn, not an error


def test_a_bad_file_costs_its_figure_and_says_which(tmp_path: Path) -> None:
    pod = write(tmp_path / "pod", {})
    write(Path(pod, f"cri-containerd-{X}.scope"),
          {"memory.current": "300\n", "memory.stat": "inactive_file 100\n"})
    Path(pod, f"cri-containerd-{X}.scope", "cpu.stat").mkdir()  # unreadable, but the container is there
    write(Path(pod, f"cri-containerd-{Y}.scope"),
          {"cpu.stat": "usage_usec 250000\n", "memory.current": "lots\n"})
    cg = PodCgroup(uid=UID, qos="burstable", version=2, driver="systemd", paths={"unified": pod})
    errors = RecordingErrors()
    assert figures(ContainerReader(proc_root=str(tmp_path), errors=errors), cg) == {
        X: (None, 300, 200), Y: (0.25, None, None)}
    assert [(s, d) for s, d, _e in errors.records] == [
        ("cgroup", f"container {X[:12]}: reading cpu failed"),
        ("cgroup", f"container {Y[:12]}: memory file has unexpected content")]
    assert isinstance(errors.records[0][2], IsADirectoryError)
    assert isinstance(errors.records[1][2], ValueError)


def test_container_without_memory_files_has_cpu_only(tmp_path: Path) -> None:
    pod = write(tmp_path / "pod", {})
    write(Path(pod, X), {"cpu.stat": "usage_usec 1\n"})
    cg = PodCgroup(uid=UID, qos="besteffort", version=2, driver="cgroupfs", paths={"unified": pod})
    errors = RecordingErrors()
    assert figures(ContainerReader(proc_root=str(tmp_path), errors=errors), cg) == {X: (1e-6, None, None)}
    assert errors.records == []


def test_listing_skips_links_files_and_pods_without_a_listable_hierarchy(tmp_path: Path) -> None:
    pod = write(tmp_path / "pod", {f"cri-containerd-{Y}.scope": ""})  # a file, not a cgroup
    elsewhere = write(tmp_path / "elsewhere" / X, {})
    os.symlink(elsewhere, Path(pod, f"cri-containerd-{X}.scope"))
    write(Path(pod, "cri-containerd-" + "0c" * 32 + ".scope"), {})
    cg = PodCgroup(uid=UID, qos="besteffort", version=2, driver="systemd", paths={"unified": pod})
    assert [c.id for c in ContainerReader.list(cg)] == ["0c" * 32]
    assert ContainerReader.list(PodCgroup(uid=UID, qos="besteffort", version=1, driver="cgroupfs",
                                          paths={"blkio": pod})) == []
    assert ContainerReader().read(PodCgroup(uid=UID, qos="besteffort", version=2, driver="systemd")) == []


# --- cgroupusage: the rules pods and containers share ----------------------------------------------

def test_cpu_seconds_sources(tmp_path: Path) -> None:
    cpuacct = write(tmp_path / "cpuacct", {"cpuacct.usage": "3000000000\n"})
    gone = str(tmp_path / "gone")
    # a missing unified directory is churn for a pod ...
    with pytest.raises(FileNotFoundError):
        cpu_seconds({"unified": gone, "cpuacct": cpuacct})
    # ... but a container joined by name may have no unified mirror: then v1 cpuacct
    assert cpu_seconds({"unified": gone, "cpuacct": cpuacct}, v1_when_unified_gone=True) == 3.0
    with pytest.raises(FileNotFoundError):  # nothing to fall back to
        cpu_seconds({"unified": gone}, v1_when_unified_gone=True)
    no_file = write(tmp_path / "empty", {})
    assert cpu_seconds({"unified": gone, "cpuacct": no_file}, v1_when_unified_gone=True) is None
    assert cpu_seconds({"cpuacct": no_file}) is None
    assert cpu_seconds({}) is None


def test_memory_without_memory_stat_counts_everything_as_working_set(tmp_path: Path) -> None:
    cg = write(tmp_path / "cg", {"memory.current": "4096\n"})
    assert memory_bytes({"unified": cg}) == (4096, 4096)
    v1 = write(tmp_path / "v1", {"memory.usage_in_bytes": "8192\n"})
    assert memory_bytes({"unified": write(tmp_path / "u", {}), "memory": v1}) == (8192, 8192)
    assert memory_bytes({"memory": v1}, ("unified",)) is None


def test_stat_value_names_the_missing_key() -> None:
    with pytest.raises(KeyError) as missing:
        stat_value("user_usec 1\nsystem_usec 2\n", "usage_usec")
    assert missing.value.args == ("usage_usec",)


# --- SandboxCheck ----------------------------------------------------------------------------------

def proc(tmp_path: Path, pid: int, comm: str, cgroup: str | None = None) -> None:
    files = {"comm": comm + "\n"}
    if cgroup is not None:
        files["cgroup"] = cgroup
    write(tmp_path / "proc" / str(pid), files)


def container(tmp_path: Path, cid: str, procs: dict[str, str]) -> ContainerCgroup:
    """A container with a cgroup.procs per hierarchy key (missing key: no such hierarchy)."""
    return ContainerCgroup(id=cid, paths={key: write(tmp_path / key / cid, {"cgroup.procs": text})
                                          for key, text in procs.items()})


@pytest.mark.parametrize("procs", [
    {"cpuacct": "1009\n", "memory": ""},  # v1 node: no unified directory
    {"memory": "1009\n"},
    {"unified": "0\n", "cpuacct": "1009\n"},  # unified lists no pid of ours
])
def test_sandbox_pids_from_any_hierarchy(tmp_path: Path, procs: dict[str, str]) -> None:
    proc(tmp_path, 1009, "pause")
    check = SandboxCheck(proc_root=str(tmp_path / "proc"), clock=FakeClock())
    assert check.check(container(tmp_path, X, procs)) is True


def test_sandbox_pids_when_the_unified_directory_is_unreadable(tmp_path: Path) -> None:
    proc(tmp_path, 1009, "pause")
    c = container(tmp_path, X, {"cpuacct": "1009\n"})
    c.paths["unified"] = str(tmp_path / "gone")
    assert SandboxCheck(proc_root=str(tmp_path / "proc"), clock=FakeClock()).check(c) is True


def test_sandbox_check_reads_past_exited_processes_and_pid_1(tmp_path: Path) -> None:
    proc(tmp_path, 1, "pause")  # pid 1 of the reader's /proc is a process like any other
    proc(tmp_path, 1009, "pause")
    check = SandboxCheck(proc_root=str(tmp_path / "proc"), clock=FakeClock())
    assert check.check(container(tmp_path, X, {"unified": "1\n"})) is True
    assert check.check(container(tmp_path, Y, {"unified": "1008\n1009\n"})) is True  # 1008 exited


def test_sandbox_answer_is_kept_per_container(tmp_path: Path) -> None:
    proc(tmp_path, 1010, "nginx")
    check = SandboxCheck(proc_root=str(tmp_path / "proc"), clock=FakeClock())
    c = container(tmp_path, X, {"unified": "1010\n"})
    assert check.check(c) is False
    Path(c.paths["unified"], "cgroup.procs").write_text("")  # no process visible any more
    shutil.rmtree(tmp_path / "proc" / "1010")
    assert check.check(c) is False  # an id's answer never changes


def test_sandbox_index_is_rebuilt_at_most_once_a_second(tmp_path: Path) -> None:
    # Outside the host PID namespace cgroup.procs lists 0s: processes come from <proc>/<pid>/cgroup.
    proc(tmp_path, 1, "systemd", "0::/init.scope\n")  # in no container
    clock = FakeClock(100.0)
    check = SandboxCheck(proc_root=str(tmp_path / "proc"), clock=clock)
    c = container(tmp_path, X, {"unified": "0\n"})
    assert check.check(c) is None  # no process of the container yet (index built at 100.0)
    proc(tmp_path, 1009, "pause", f"0::/kubepods/burstable/podx/{X}\n")
    clock.advance(0.5)
    assert check.check(c) is None  # the index of 100.0 is reused ...
    clock.advance(0.5)
    assert check.check(c) is None  # ... for a whole second ...
    clock.advance(0.5)
    assert check.check(c) is True  # ... then rebuilt


def test_sandbox_index_classifies_a_pid_once(tmp_path: Path) -> None:
    # The index reads the cgroup file of new pids only (a node runs thousands of processes): a pid keeps
    # its first container while it lives. A process does not move between container cgroups.
    proc(tmp_path, 1011, "sh", f"0::/kubepods/burstable/podx/{Y}\n")
    clock = FakeClock(100.0)
    check = SandboxCheck(proc_root=str(tmp_path / "proc"), clock=clock)
    assert check.check(container(tmp_path, Y, {"unified": "0\n"})) is False
    Path(tmp_path, "proc/1011/cgroup").write_text(f"0::/kubepods/burstable/podx/{X}\n")
    clock.advance(2.0)
    assert check.check(container(tmp_path, X, {"unified": "0\n"})) is None


def test_sandbox_check_without_a_readable_proc(tmp_path: Path) -> None:
    check = SandboxCheck(proc_root=str(tmp_path / "no-proc"), clock=FakeClock())
    assert check.check(container(tmp_path, X, {"unified": "0\n"})) is None
