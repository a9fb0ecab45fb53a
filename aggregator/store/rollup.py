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


class RoundSums:
    """One round's roll-up, summed as its pods report rather than all at once when the round ends.

    A pod's first report in the round is added to its leaf (its deployment, or its namespace's pods
    without one) at once, in the store's short hold of the lock for its node: end_round then only
    merges leaves into namespaces (at 1000 x 30, adding 30k pods was 70 % of end_round, on the loop
    thread between the last scrape and the round's publication). A later report of a pod in the same
    round (pushed twice, a second exporter for its node) changes what it adds: its leaves are summed
    again in `groups` from the round's final reports, in the same order, so the sums are those of
    adding the final reports one by one.
    """

    __slots__ = ("_leaves", "_redo")

    def __init__(self) -> None:
        self._leaves: dict[GroupKey, _Acc] = {}
        self._redo: set[GroupKey] = set()

    def add(self, pod: PodContribution) -> None:
        """A pod's first report this round."""
        if not pod.namespace:
            return
        key = (pod.namespace, pod.deployment)
        acc = self._leaves.get(key)
        if acc is None:
            acc = self._leaves[key] = _Acc()
        acc.add(pod)

    def redo(self, namespace: str, deployment: str) -> None:
        """A pod of this leaf reported again (or moved to it): sum the leaf again from the final reports."""
        if namespace:
            self._redo.add((namespace, deployment))

    def groups(
        self, final: Iterable[PodContribution], *, round_id: int, timestamp: float
    ) -> dict[GroupKey, tuple[GroupView, tuple[float | None, ...]]]:
        """Group views and series rows for every namespace and deployment; `final`: the round's pods as
        they last reported, in the order they first did (read only when a leaf is summed again)."""
        leaves, redo = self._leaves, self._redo
        if redo:
            # Leaves in the order the final reports first name them (a pod that moved to a deployment
            # named by no other pod puts it there), so namespaces merge them as one pass would; a leaf
            # whose only pod moved away is named by none and goes.
            again = {key: _Acc() for key in redo}
            order: dict[GroupKey, None] = {}
            for pod in final:
                if not pod.namespace:
                    continue
                key = (pod.namespace, pod.deployment)
                order[key] = None
                acc = again.get(key)
                if acc is not None:
                    acc.add(pod)
            leaves = {key: again[key] if key in again else leaves[key] for key in order}
        # Namespaces are merged from their few leaves, which halves the per-pod work.
        accs: dict[GroupKey, _Acc] = {}
        for (namespace, deployment), leaf in leaves.items():
            total = accs.get((namespace, ""))
            if total is None:
                total = accs[(namespace, "")] = _Acc()
            total.merge(leaf)
            if deployment:
                accs[(namespace, deployment)] = leaf
        return {key: _finish(key, acc, round_id=round_id, timestamp=timestamp) for key, acc in accs.items()}


def roll_up(
    pods: Iterable[PodContribution], *, round_id: int, timestamp: float
) -> dict[GroupKey, tuple[GroupView, tuple[float | None, ...]]]:
    """Group views and series rows for every namespace and deployment present in `pods`."""
    sums = RoundSums()
    for pod in pods:
        sums.add(pod)
    return sums.groups((), round_id=round_id, timestamp=timestamp)


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
