"""Immutable values the sampler publishes and the collector renders: pod metadata and snapshots."""

from __future__ import annotations

from dataclasses import dataclass, field

from exporter.model import HostSample, PodUsage


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


@dataclass(frozen=True, slots=True)
class PodSample:
    """One pod in a snapshot: its cumulative usage, its CPU rate and its metadata (None if unknown)."""

    usage: PodUsage
    cpu_usage_cores: float | None
    meta: PodMeta | None


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
