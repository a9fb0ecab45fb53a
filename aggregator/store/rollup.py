"""Namespace and deployment roll-ups: sums over the pods ingested in one scrape round.

Only pods that reported in the round are summed, so a roll-up point is a true sum at one moment,
never a mix of rounds. Unnamed pods (namespace "", the exporter could not reach the API server) are
kept out: they have no namespace to belong to, and summing them under "" would invent one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from aggregator.store.series import COLUMNS
from aggregator.store.views import GroupView, Sample, sum_rows

GroupKey = tuple[str, str]  # (namespace, deployment); deployment "" = the namespace itself


class PodContribution(NamedTuple):
    """What one pod adds to its groups in a round."""

    namespace: str
    deployment: str
    sample: Sample
    row: tuple[float | None, ...]


class _Acc:
    __slots__ = ("cpu", "deltas", "pods", "rates", "rows", "values")

    def __init__(self) -> None:
        self.cpu: float | None = None
        self.values: dict[str, float] = {}
        self.deltas: dict[str, float] = {}
        self.rates: dict[str, float] = {}
        self.rows: list[tuple[float | None, ...]] = []
        self.pods = 0

    def add(self, pod: PodContribution) -> None:
        self.pods += 1
        s = pod.sample
        for target, source in ((self.values, s.values), (self.deltas, s.deltas), (self.rates, s.rates)):
            for k, v in source.items():
                target[k] = target.get(k, 0.0) + v
        cpu = s.cpu_millicores
        if cpu is not None:
            self.cpu = cpu if self.cpu is None else self.cpu + cpu
        self.rows.append(pod.row)

    def merge(self, other: _Acc) -> None:
        self.pods += other.pods
        for target, source in (
            (self.values, other.values),
            (self.deltas, other.deltas),
            (self.rates, other.rates),
        ):
            for k, v in source.items():
                target[k] = target.get(k, 0.0) + v
        if other.cpu is not None:
            self.cpu = other.cpu if self.cpu is None else self.cpu + other.cpu
        self.rows.extend(other.rows)


def roll_up(
    pods: Iterable[PodContribution], *, round_id: int, timestamp: float
) -> dict[GroupKey, tuple[GroupView, tuple[float | None, ...]]]:
    """Group views and series rows for every namespace and deployment present in `pods`."""
    # Each pod is added once, to its leaf (its deployment, or its namespace's pods without one);
    # namespaces are then merged from their few leaves, which halves the per-pod work.
    leaves: dict[GroupKey, _Acc] = {}
    for pod in pods:
        if not pod.namespace:
            continue
        key = (pod.namespace, pod.deployment)
        acc = leaves.get(key)
        if acc is None:
            acc = leaves[key] = _Acc()
        acc.add(pod)
    accs: dict[GroupKey, _Acc] = {}
    for (namespace, deployment), leaf in leaves.items():
        total = accs.get((namespace, ""))
        if total is None:
            total = accs[(namespace, "")] = _Acc()
        total.merge(leaf)
        if deployment:
            accs[(namespace, deployment)] = leaf
    return {key: _finish(key, acc, round_id=round_id, timestamp=timestamp) for key, acc in accs.items()}


def _finish(
    key: GroupKey, acc: _Acc, *, round_id: int, timestamp: float
) -> tuple[GroupView, tuple[float | None, ...]]:
    if acc.cpu is not None:
        # The current CPU as the API shows it per pod (gauge, else counter rate), summed.
        acc.values["cpu_usage_cores"] = acc.cpu / 1000.0
    sample = Sample(
        timestamp=timestamp, values=acc.values, deltas=acc.deltas, rates=acc.rates, interval_seconds=None
    )
    view = GroupView(
        namespace=key[0], deployment=key[1], round_id=round_id, pod_count=acc.pods, sample=sample
    )
    return view, sum_rows(acc.rows, len(COLUMNS))


def group_counts(groups: Mapping[GroupKey, object]) -> tuple[int, int]:
    """(namespaces, deployments) among `groups`."""
    namespaces = sum(1 for _ns, dep in groups if not dep)
    return namespaces, len(groups) - namespaces
