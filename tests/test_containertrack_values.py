"""ContainerTracker value by value: whole ContainerSamples, an idle container's counter, restarts (also
when the new container already used more CPU than the old one had), a name claimed twice, and a reader
that fails. Fake readers and clocks; no cgroups."""

from __future__ import annotations

from exporter.containers import ContainerCgroup, ContainerUsage
from exporter.containertrack import ContainerTracker
from exporter.model import PodCgroup
from exporter.snapshot import ContainerMeta, ContainerSample, PodMeta
from tests.exporter_fakes import FakeClock, FakeContainers, container_usage
from tests.support.cgroups import RecordingErrors

UID = "7c7c7c7c-0000-4000-8000-00000000000d"
CG = PodCgroup(uid=UID, qos="burstable", version=2, driver="systemd", paths={})
A1, A2, A3, SIDE = "a1" * 32, "a2" * 32, "a3" * 32, "c3" * 32
MiB = 2**20


def named(**ids: str) -> PodMeta:
    return PodMeta(uid=UID, namespace="ns", name="p",
                   containers={cid: ContainerMeta(name=n) for n, cid in ids.items()})


class Node:
    """A tracker over fake readings, one sampling cycle per step (5 s apart)."""

    def __init__(self) -> None:
        self.reader = FakeContainers()
        self.clock = FakeClock(0.0)
        self.errors = RecordingErrors()
        self.tracker = ContainerTracker(self.reader, self.errors, monotonic=self.clock)

    def step(self, meta: PodMeta, cpu: dict[str, float]) -> dict[str, tuple[str, float | None, float | None]]:
        self.clock.advance(5.0)
        self.reader.usages[UID] = [container_usage(cid, cpu=v) for cid, v in cpu.items()]
        samples = self.tracker.read(CG, meta)
        self.tracker.end_cycle({UID})
        return {s.name: (s.id, s.cpu_seconds, s.cpu_usage_cores) for s in samples}


def test_samples_whole_and_a_name_claimed_twice_keeps_the_first() -> None:
    node = Node()
    meta = named(app=A1, side=SIDE)
    meta = PodMeta(uid=UID, namespace="ns", name="p",
                   containers={**meta.containers, A2: ContainerMeta(name="app")})  # A2 also says "app"
    node.reader.usages[UID] = [container_usage(A1, cpu=1.0, working_set=10 * MiB),
                               container_usage(A2, cpu=2.0, working_set=20 * MiB),
                               container_usage(SIDE, cpu=3.0, working_set=30 * MiB)]
    assert node.tracker.read(CG, meta) == (
        ContainerSample(name="app", id=A1, cpu_seconds=1.0, cpu_usage_cores=None,
                        memory_working_set_bytes=10 * MiB, meta=ContainerMeta(name="app")),
        ContainerSample(name="side", id=SIDE, cpu_seconds=3.0, cpu_usage_cores=None,
                        memory_working_set_bytes=30 * MiB, meta=ContainerMeta(name="side")),
    )


def test_idle_container_counter_stands_still() -> None:
    node = Node()
    meta = named(app=A1)
    assert node.step(meta, {A1: 3.0}) == {"app": (A1, 3.0, None)}
    assert node.step(meta, {A1: 3.0}) == {"app": (A1, 3.0, 0.0)}
    assert node.step(meta, {A1: 3.0}) == {"app": (A1, 3.0, 0.0)}


def test_restarts_continue_the_counter_whatever_the_new_containers_cpu() -> None:
    node = Node()
    assert node.step(named(app=A1), {A1: 0.25}) == {"app": (A1, 0.25, None)}
    # crashed after 0.25 s; the new container already used 5 s by the next reading: still a restart
    assert node.step(named(app=A2), {A2: 5.0}) == {"app": (A2, 5.25, None)}
    assert node.step(named(app=A2), {A2: 6.0}) == {"app": (A2, 6.25, 0.2)}
    # a second restart adds the second container's last reading to the offset
    assert node.step(named(app=A3), {A3: 0.5}) == {"app": (A3, 6.75, None)}
    assert node.step(named(app=A3), {A3: 1.5}) == {"app": (A3, 7.75, 0.2)}


class FailingReader:
    def __init__(self) -> None:
        self.error = PermissionError(13, "Permission denied", "/sys/fs/cgroup/x")

    def read(self, cgroup: PodCgroup) -> list[ContainerUsage]:
        raise self.error

    def is_sandbox(self, container: ContainerCgroup) -> bool | None:
        return False


def test_a_failing_reader_costs_the_pods_containers_and_is_reported() -> None:
    reader, errors = FailingReader(), RecordingErrors()
    assert ContainerTracker(reader, errors).read(CG, named(app=A1)) == ()
    assert errors.records == [("cgroup", f"reading the containers of pod {UID}", reader.error)]
