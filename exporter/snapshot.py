"""Immutable values the sampler publishes and the collector renders: pod metadata and snapshots."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from exporter.model import HostSample, PodUsage


@dataclass(frozen=True, slots=True)
class ContainerMeta:
    """What the pod object says about one of its containers (spec resources, None where unset)."""

    name: str
    kind: str = "container"  # container | init | ephemeral
    cpu_request_cores: float | None = None
    cpu_limit_cores: float | None = None  # None: unlimited
    memory_request_bytes: float | None = None
    memory_limit_bytes: float | None = None


@dataclass(frozen=True, slots=True)
class PodMeta:
    """What the Kubernetes API says about one pod (requests/limits summed over its containers)."""

    uid: str
    namespace: str
    name: str
    owner_kind: str = ""  # top-level controller: Deployment, StatefulSet, DaemonSet, Job, ReplicaSet, Node
    owner_name: str = ""
    deployment: str = ""  # set only for Pod -> ReplicaSet -> Deployment
    host_network: bool = False
    cpu_request_cores: float | None = None  # None: no container sets it
    cpu_limit_cores: float | None = None  # None: some container is unlimited
    memory_request_bytes: float | None = None
    memory_limit_bytes: float | None = None
    # Current container id (after "<runtime>://") -> its container; ids of containers that ran before
    # a restart (lastState) are only remembered, so a lingering old cgroup is not reported as new.
    containers: Mapping[str, ContainerMeta] = field(default_factory=dict)
    retired_container_ids: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ContainerSample:
    """One container in a snapshot. `cpu_seconds` continues across restarts under the same name."""

    name: str  # from the pod's status, else the id's first 12 digits
    id: str
    cpu_seconds: float | None
    cpu_usage_cores: float | None
    memory_working_set_bytes: int | None
    meta: ContainerMeta | None  # None when unnamed


@dataclass(frozen=True, slots=True)
class PodSample:
    """One pod in a snapshot: its cumulative usage, its CPU rate and its metadata (None if unknown)."""

    usage: PodUsage
    cpu_usage_cores: float | None
    meta: PodMeta | None
    containers: tuple[ContainerSample, ...] = ()  # by name; the sandbox is only in the pod's figures


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one sampling cycle saw; replaced as a whole, never mutated."""

    node: str
    timestamp: float  # wall-clock Unix time of the read
    duration_seconds: float  # wall time the cycle took
    cpu_seconds: float  # CPU time this process spent on the cycle
    sequence: int  # cycles completed, the unpublished baseline cycle included
    host: HostSample
    host_cpu_usage_cores: float | None
    pods: tuple[PodSample, ...]
    errors: dict[str, int] = field(default_factory=dict)  # cumulative errors by source
    kube_connected: bool = False
