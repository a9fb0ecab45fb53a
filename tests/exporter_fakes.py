"""Fake readers, clocks and a pod lookup for the exporter's tests (plain classes, no MagicMock)."""

from __future__ import annotations

from dataclasses import replace

from exporter.containers import ContainerCgroup, ContainerUsage
from exporter.model import (
    CpuTimes,
    DiskCounters,
    ErrorSink,
    FilesystemUsage,
    HostSample,
    NetCounters,
    PodCgroup,
    PodUsage,
)
from exporter.snapshot import ContainerMeta, PodMeta


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FakeHost:
    """HostReader stand-in returning whatever `sample` currently is."""

    def __init__(self, sample: HostSample) -> None:
        self.sample = sample
        self.reads = 0

    def read(self) -> HostSample:
        self.reads += 1
        return self.sample


class FakeCgroups:
    """PodCgroupFinder stand-in: the pods present are the keys of `usages` of the paired FakePodStats."""

    def __init__(self, stats: FakePodStats) -> None:
        self._stats = stats

    def find(self) -> list[PodCgroup]:
        return [
            PodCgroup(uid=uid, qos="burstable", version=2, driver="systemd",
                      paths={"unified": f"/fake/{uid}"})
            for uid in self._stats.usages
        ]


class FakePodStats:
    """PodStatsReader stand-in; a uid mapped to None vanished mid-read (reported to the sink)."""

    def __init__(self, errors: ErrorSink, usages: dict[str, PodUsage | None] | None = None) -> None:
        self.errors = errors
        self.usages: dict[str, PodUsage | None] = dict(usages or {})

    def read(self, cgroup: PodCgroup) -> PodUsage | None:
        usage = self.usages.get(cgroup.uid)
        if usage is None:
            self.errors.record("cgroup", f"pod {cgroup.uid} vanished")
        return usage

    def set_cpu(self, uid: str, seconds: float) -> None:
        usage = self.usages[uid]
        assert usage is not None
        self.usages[uid] = replace(usage, cpu_seconds=seconds)


class FakeContainers:
    """ContainerReader stand-in: `usages[uid]` are the pod's containers; ids in `sandboxes` are sandboxes,
    ids in `undecided` have no visible process (is_sandbox None), any other id is a workload container."""

    def __init__(self, usages: dict[str, list[ContainerUsage]] | None = None, *,
                 sandboxes: set[str] | None = None, undecided: set[str] | None = None) -> None:
        self.usages = dict(usages or {})
        self.sandboxes = set(sandboxes or ())
        self.undecided = set(undecided or ())
        self.checked: list[str] = []

    def read(self, cgroup: PodCgroup) -> list[ContainerUsage]:
        return list(self.usages.get(cgroup.uid, []))

    def is_sandbox(self, container: ContainerCgroup) -> bool | None:
        self.checked.append(container.id)
        if container.id in self.undecided:
            return None
        return container.id in self.sandboxes

    def set_cpu(self, uid: str, cid: str, seconds: float) -> None:
        self.usages[uid] = [replace(c, cpu_seconds=seconds) if c.id == cid else c for c in self.usages[uid]]


def container_usage(cid: str, *, cpu: float = 1.0, working_set: int = 10 * 2**20) -> ContainerUsage:
    """One container's reading (its paths are never read by the fakes)."""
    return ContainerUsage(cgroup=ContainerCgroup(id=cid, paths={"unified": f"/fake/{cid}"}), cpu_seconds=cpu,
                          memory_usage_bytes=working_set + 2**20, memory_working_set_bytes=working_set)


class FakeLookup:
    """The pod index as the sampler sees it."""

    def __init__(self, pods: dict[str, PodMeta] | None = None, *, connected: bool = True) -> None:
        self.pods = dict(pods or {})
        self.connected = connected

    def get(self, uid: str) -> PodMeta | None:
        return self.pods.get(uid)


def host_sample(*, busy: float = 1000.0, total: float = 4000.0, cpus: int = 4) -> HostSample:
    """A complete host reading."""
    return HostSample(
        cpu=CpuTimes(busy_seconds=busy, total_seconds=total),
        cpu_count=cpus,
        memory_total_bytes=16 * 2**30,
        memory_available_bytes=10 * 2**30,
        disk=DiskCounters(read_bytes=123_456_768, written_bytes=987_654_144),
        network=NetCounters(receive_bytes=5_000_000, transmit_bytes=2_500_000),
        filesystem=FilesystemUsage(mountpoint='/host/root/mnt/"data" \\ disk', size_bytes=100 * 2**30,
                                   avail_bytes=40 * 2**30),
    )


def pod_usage(uid: str, *, cpu: float = 10.0, host_network: bool = False, network: bool = True) -> PodUsage:
    """A complete pod reading."""
    return PodUsage(
        uid=uid,
        cpu_seconds=cpu,
        memory_usage_bytes=300 * 2**20,
        memory_working_set_bytes=200 * 2**20,
        disk=DiskCounters(read_bytes=4096, written_bytes=8192),
        network=(NetCounters(receive_bytes=1000, transmit_bytes=2000)
                 if network and not host_network else None),
        host_network=host_network,
    )


# The golden snapshot's pods: one of each kind the aggregator must handle.
UID_DEPLOY = "0b6e3f4c-1d2a-4e5f-8a9b-000000000001"
UID_STATEFUL = "0b6e3f4c-1d2a-4e5f-8a9b-000000000002"
UID_BARE = "0b6e3f4c-1d2a-4e5f-8a9b-000000000003"
UID_UNNAMED = "0b6e3f4c-1d2a-4e5f-8a9b-000000000004"
UID_HOSTNET = "0b6e3f4c-1d2a-4e5f-8a9b-000000000005"
UID_EXCLUDED = "0b6e3f4c-1d2a-4e5f-8a9b-000000000006"

# Container ids of the golden pods: 64 hex digits as runtimes make them.
CID_WEB, CID_PROXY, CID_WEB_SANDBOX = "a1" * 32, "a2" * 32, "a0" * 32
CID_DB, CID_DB_OLD = "b1" * 32, "b9" * 32
CID_UNNAMED = "c1" * 32

GOLDEN_META = {
    UID_DEPLOY: PodMeta(uid=UID_DEPLOY, namespace="shop", name="web-7d9f8b6c5d-x2x7q",
                        owner_kind="Deployment", owner_name="web", deployment="web",
                        cpu_request_cores=0.25, cpu_limit_cores=0.5,
                        memory_request_bytes=128 * 2**20, memory_limit_bytes=256 * 2**20,
                        containers={
                            CID_WEB: ContainerMeta(name="web", cpu_request_cores=0.2, cpu_limit_cores=0.4,
                                                   memory_request_bytes=96 * 2**20,
                                                   memory_limit_bytes=192 * 2**20),
                            CID_PROXY: ContainerMeta(name="proxy", cpu_request_cores=0.05,
                                                     cpu_limit_cores=0.1, memory_request_bytes=32 * 2**20,
                                                     memory_limit_bytes=64 * 2**20),
                        }),
    UID_STATEFUL: PodMeta(uid=UID_STATEFUL, namespace="shop", name="db-0", owner_kind="StatefulSet",
                          owner_name="db", cpu_request_cores=1.0, memory_request_bytes=2**30,
                          containers={CID_DB: ContainerMeta(name="db", cpu_request_cores=1.0,
                                                            memory_request_bytes=2**30)},
                          retired_container_ids=frozenset({CID_DB_OLD})),
    UID_BARE: PodMeta(uid=UID_BARE, namespace="default", name="debug-shell"),
    UID_HOSTNET: PodMeta(uid=UID_HOSTNET, namespace="monitoring", name="node-agent-5xkqp",
                         owner_kind="DaemonSet", owner_name="node-agent", host_network=True,
                         cpu_request_cores=0.1, cpu_limit_cores=0.2, memory_request_bytes=64 * 2**20,
                         memory_limit_bytes=64 * 2**20),
    UID_EXCLUDED: PodMeta(uid=UID_EXCLUDED, namespace="kube-system", name="coredns-abc",
                          owner_kind="Deployment", owner_name="coredns", deployment="coredns"),
}


def golden_usages() -> dict[str, PodUsage | None]:
    return {
        UID_DEPLOY: pod_usage(UID_DEPLOY, cpu=10.0),
        UID_STATEFUL: pod_usage(UID_STATEFUL, cpu=20.0),
        UID_BARE: pod_usage(UID_BARE, cpu=1.0),
        UID_UNNAMED: pod_usage(UID_UNNAMED, cpu=2.0),
        UID_HOSTNET: pod_usage(UID_HOSTNET, cpu=3.0, host_network=True),
        UID_EXCLUDED: pod_usage(UID_EXCLUDED, cpu=4.0),
    }


def golden_containers() -> FakeContainers:
    """Named containers with and without limits, a sandbox, a lingering pre-restart container and an
    unnamed container in an unnamed pod."""
    return FakeContainers({
        UID_DEPLOY: [container_usage(CID_WEB_SANDBOX, cpu=0.01, working_set=300_000),
                     container_usage(CID_WEB, cpu=8.0, working_set=150 * 2**20),
                     container_usage(CID_PROXY, cpu=1.5, working_set=40 * 2**20)],
        UID_STATEFUL: [container_usage(CID_DB, cpu=19.0, working_set=180 * 2**20),
                       container_usage(CID_DB_OLD, cpu=0.5, working_set=4096)],
        UID_UNNAMED: [container_usage(CID_UNNAMED, cpu=2.0, working_set=64 * 2**20)],
    }, sandboxes={CID_WEB_SANDBOX})
