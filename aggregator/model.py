"""Values passed between the aggregator's layers: scraper/ingest → store → API and federation.

`values` dicts are keyed by the exporter family name without its `k8smon_node_`/`k8smon_pod_`
prefix (see docs/metrics.md), e.g. `cpu_usage_cores`, `cpu_seconds_total`,
`memory_working_set_bytes`, `network_receive_bytes_total`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


# ContainerReading and PodReading are read-only by convention, never mutated once built, but not
# `frozen=True`: a frozen dataclass's __init__ sets each field through object.__setattr__, 3-4 times
# the cost of plain slot stores, and the scrape loop builds 30,000 of each a round at 1000 x 30
# (bench/profiles/2026-12-03-ingest-cpu.txt). Their dicts made them unhashable either way.
@dataclass(slots=True)
class ContainerReading:
    """One container of a pod: the exporter's `k8smon_container_*` values by family name without prefix
    (`cpu_usage_cores`, `cpu_seconds_total`, `memory_working_set_bytes`, requests/limits)."""

    name: str
    values: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class PodReading:
    namespace: str  # "" when the exporter could not name the pod
    pod: str  # the pod's UID when unnamed
    uid: str
    owner_kind: str = ""
    owner_name: str = ""
    deployment: str = ""
    values: dict[str, float] = field(default_factory=dict)
    containers: tuple[ContainerReading, ...] = ()  # latest only: pod history stays per pod


@dataclass(frozen=True, slots=True)
class NodeReading:
    """One exporter snapshot (scraped or pushed)."""

    node: str
    timestamp: float  # unix seconds the exporter took the snapshot (k8smon_exporter_sample_timestamp_seconds)
    values: dict[str, float] = field(default_factory=dict)  # root filesystem only for filesystem_*
    pods: tuple[PodReading, ...] = ()
    source: str = "scrape"  # scrape | push


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """The scraper's record of one exporter."""

    target: str  # host:port
    node: str | None  # from discovery or from the exposition's node label
    up: bool
    last_error: str | None = None
    last_scrape: float | None = None  # unix seconds the last attempt started
    duration_seconds: float | None = None
    samples: int = 0


@dataclass(frozen=True, slots=True)
class RoundResult:
    """What one scrape round produced; round listeners (store roll-ups, federation cache) receive it."""

    round_id: int
    started: float  # unix seconds
    duration_seconds: float
    targets: tuple[TargetStatus, ...]


class StatusProvider(Protocol):
    """What the API needs to know about collection (implemented by the scrape service)."""

    def targets(self) -> Sequence[TargetStatus]: ...

    def ready(self) -> bool:
        """True once discovery has answered and a first scrape round completed."""
        ...

    def discovery_mode(self) -> str:
        """`static`, `endpoints` or `endpointslices`."""
        ...

    def last_round(self) -> RoundResult | None: ...

    def progress_age(self) -> float | None:
        """Seconds since the scrape loop started or last completed a round; None before it starts."""
        ...
