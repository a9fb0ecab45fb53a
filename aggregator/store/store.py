"""The aggregator's in-memory store: bounded series per node, pod, namespace and deployment.

Writers (scraper, push ingest) call `ingest`/`mark_down`; the scrape service calls `end_round` once
per round, which builds the namespace/deployment roll-ups from the pods that reported in that round
and drops expired history. Readers (API, federation) get immutable copies (`views.py`); the current
pods are one shared `PodListing` (`listing.py`), built by the first reader after a write, and while
the API asks for them, the pods as the last round left them (`round_pod_listing`). One lock guards
everything; critical sections do arithmetic on a handful of values, never I/O.

Time: one time base for everything served. Every point, listing timestamp and age is on the
aggregator's clock: a scraped point carries its round's start time (when its scrape was started, as
Prometheus stamps scraped samples), a pushed one the time it was received, a roll-up its round's
start. The exporter's (or pusher's) own sample time is used only to time counter rates and to tell a
new snapshot from one already stored, so an exporter whose clock is minutes off still lands in every
window and on the same time axis as the rest. `clock()` also decides staleness and expiry.

Roll-ups: a pod counts in a round's namespace/deployment point when it was reported in that round.
A pod whose snapshot was scraped again unchanged keeps its gauges (CPU, memory) in the sums but adds
no interval I/O: its bytes were counted with the snapshot that brought them, so a roll-up's I/O
equals the sum of its pods' I/O points over any drift between the two schedules.

Node status: `up` (fresh sample), `down` (its exporter could not be scraped or is not ready),
`gone` (its target left discovery; its pods leave the current listings with it), `stale` (nothing
reported for --stale-after: a pusher that stopped; such a node has left the listings and only
`node()` still shows it). While rounds overrun the interval, --stale-after is stretched by as much
(`stale_window`): staleness follows scrapes, so an overloaded aggregator keeps its pods.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

from aggregator.model import NodeReading, PodReading, RoundResult
from aggregator.stats import AggregatorStats
from aggregator.store import snapshot as state_records
from aggregator.store.listing import PodListing
from aggregator.store.live import GroupState, NodeState, PodKey, PodState, finite_values
from aggregator.store.rollup import GroupKey, PodContribution, group_counts, roll_up
from aggregator.store.series import ChunkedSeries
from aggregator.store.views import (
    IO_COLUMNS,
    GroupView,
    NodeView,
    PodView,
    Point,
    make_sample,
    series_row,
)

log = logging.getLogger(__name__)

NODE_MEMORY = "memory_used_bytes"
POD_MEMORY = "memory_working_set_bytes"
GONE_REASON = "target left discovery"
# end_round keeps the round's pod listing while listings were asked for within this many intervals.
ROUND_LISTING_DEMAND = 3
# Passes over every pod or node that others wait for take the lock a batch at a time: a hold of a few
# ms of CPU lasts several times that while other threads share the GIL, and every request for one node
# or pod waits it out (bench/profiles/2026-12-03d-lock-waits.txt).
LABEL_BATCH = 500  # pods per hold in pod_label_values (the federation hand-over)
LISTING_BATCH = 2000  # pods per hold when end_round builds the round's listing
NODE_BATCH = 250  # nodes per hold in nodes()
# --stale-after stretches with rounds that overrun the interval, up to this many times: a scrape loop
# that hangs mid-round still lets everything go stale (at 15 s: after 150 s; /healthz fails sooner).
MAX_STALE_STRETCH = 10.0
_T = TypeVar("_T")


class _Pending:
    """A pod reported since the last end_round, with the interval I/O its new samples brought.

    Keeps the pod's sample, row and deployment as of its last report (`mark`), so that end_round
    reads them after handing the pending set over, outside the store lock (30k pods at 1000 x 30:
    35-80 ms that requests for one node or pod would otherwise wait for)."""

    __slots__ = ("deltas", "deployment", "row", "sample")

    def __init__(self, pod: PodState) -> None:
        self.deltas: Mapping[str, float] | None = None  # counter -> sum over new samples; None: re-scraped
        self.mark(pod)

    def mark(self, pod: PodState) -> None:
        self.sample, self.row = pod.sample, pod.row
        self.deployment = pod.reading.deployment if pod.reading else ""

    def add(self, deltas: Mapping[str, float]) -> None:
        if self.deltas is None:
            self.deltas = deltas  # the usual single sample: shared, never copied (samples are immutable)
            return
        merged = dict(self.deltas)
        for k, v in deltas.items():
            merged[k] = merged.get(k, 0.0) + v
        self.deltas = merged


class Store:
    """Thread-safe bounded store with a latest-value cache and per-round roll-ups."""

    def __init__(
        self,
        *,
        retention_points: int = 1000,
        stale_after: float = 15.0,
        stats: AggregatorStats | None = None,
        clock: Callable[[], float] = time.time,
        interval: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if retention_points <= 0 or stale_after <= 0 or interval <= 0:
            raise ValueError("retention_points, stale_after and interval must be positive")
        self.retention_points = retention_points
        self.stale_after = stale_after
        # The scrape loop's real pace (see stale_window): when the last round began, and how long after
        # the one before it, on `monotonic` (the loop's own time, whatever `clock` says).
        self._monotonic = monotonic
        self._round_began: float | None = None
        self._round_period = 0.0
        self.interval = interval  # expected sampling interval: retention span = points x interval
        self._stats = stats if stats is not None else AggregatorStats()
        self._clock = clock
        self._lock = threading.Lock()
        self._nodes: dict[str, NodeState] = {}
        self._pods: dict[PodKey, PodState] = {}
        self._groups: dict[GroupKey, GroupState] = {}
        self._pending: dict[PodKey, _Pending] = {}  # pods reported since the last end_round
        self._gone: set[str] = set()  # nodes whose target left discovery: their pods leave listings too
        # The current pods, shared by every reader until the next write (see listing.py).
        self._listing: PodListing | None = None
        self._writes = 0  # counts `_changed`: a listing built a batch at a time is the live one if none came
        self._pod_order: list[PodKey] | None = None  # the keys of _pods, sorted (None: pods came or went)
        # The pods as the last round left them (what the API's pod listings serve), kept only while
        # someone asks for them; `_round_published` wakes whoever prepares their documents.
        self._round_listing: PodListing | None = None
        self._round_wanted_until = -math.inf
        self._round_published = threading.Condition()

    @property
    def retention_span(self) -> float:
        """Seconds of history kept: retention points x the expected interval."""
        return self.retention_points * self.interval

    # --- writers -----------------------------------------------------------------------------------

    def ingest(
        self, reading: NodeReading, *, round_id: int | None = None, received: float | None = None
    ) -> int:
        """Store one exporter snapshot; returns samples stored (0 for a snapshot already stored).

        `received`: the point's time on the aggregator's clock (the scrape round's start; default now).
        """
        del round_id  # roll-ups take every pod reported since the previous end_round
        ts = reading.timestamp
        if not (isinstance(ts, int | float) and math.isfinite(ts) and ts > 0):
            self._stats.error("ingest")
            log.warning("ingest: node %r: bad timestamp %r, reading dropped", reading.node, ts)
            return 0
        node_values = finite_values(reading.values)
        pod_values = [finite_values(p.values) for p in reading.pods]
        now = self._clock()
        at = now if received is None else received
        with self._lock:
            self._changed()
            node = self._nodes.get(reading.node)
            if node is None:
                node = self._nodes[reading.node] = NodeState(reading.node, self.retention_points)
            node.status, node.last_error, node.down_since = "up", None, None
            self._gone.discard(node.name)
            node.source = reading.source
            node.last_seen = node.last_report = now
            if node.sample is not None and ts <= node.sample_time:
                # The same exporter snapshot again: nothing new. Its pods are still there and keep
                # their gauges in this round's roll-up, but bring no interval I/O (counted already).
                eager = self._listings_wanted(now)
                for key in node.pod_keys:
                    pod = self._pods.get(key)
                    if pod is not None and pod.node == node.name:
                        pod.last_seen = now
                        pod.view = self._pod_view(key, pod) if eager else None
                        if key not in self._pending:
                            self._pending[key] = _Pending(pod)
                return 0
            node.sample = make_sample(node_values, at, *node.tracker.update(node_values, ts))
            node.sample_time = ts
            node.series.append(at, series_row(node.sample, memory_key=NODE_MEMORY))
            stored = len(node_values)
            keys: list[PodKey] = []
            for pr, values in zip(reading.pods, pod_values, strict=True):
                key = (pr.namespace, pr.pod)
                pod = self._pods.get(key)
                if pod is None:
                    pod = self._pods[key] = PodState(self.retention_points)
                    self._pod_order = None
                self._store_pod(key, pod, pr, values, node=node.name, timestamp=ts, received=at, now=now)
                self._mark_pending(key, pod)
                keys.append(key)
                stored += len(values)
            node.pod_keys = tuple(keys)
        self._stats.incr("samples_ingested", stored)
        return stored

    def ingest_pod(self, node: str, reading: PodReading, *, timestamp: float) -> int:
        """Store one pushed pod reading; returns samples stored (0 when `timestamp` is not newer)."""
        values = finite_values(reading.values)
        now = self._clock()
        key = (reading.namespace, reading.pod)
        with self._lock:
            pod = self._pods.get(key)
            if pod is None:
                pod = self._pods[key] = PodState(self.retention_points)
                self._pod_order = None
            elif pod.sample is not None and timestamp <= pod.sample_time:
                return 0
            self._changed()
            self._store_pod(key, pod, reading, values, node=node, timestamp=timestamp, received=now, now=now)
            self._mark_pending(key, pod)
        self._stats.incr("samples_ingested", len(values))
        return len(values)

    def _mark_pending(self, key: PodKey, pod: PodState) -> None:
        """A new sample of `pod` belongs to the next roll-up with its interval I/O (summed when a pod
        pushes twice between rounds, so no bytes are lost either)."""
        entry = self._pending.get(key)
        if entry is None:
            entry = self._pending[key] = _Pending(pod)
        else:
            entry.mark(pod)
        assert pod.sample is not None
        entry.add(pod.sample.deltas)

    def _store_pod(
        self,
        key: PodKey,
        pod: PodState,
        reading: PodReading,
        values: dict[str, float],
        *,
        node: str,
        timestamp: float,
        received: float,
        now: float,
    ) -> None:
        if pod.reading is not None and pod.reading.uid != reading.uid:
            pod.tracker.reset()  # same name, new pod object: its counters start over
        pod.reading, pod.node, pod.last_seen = reading, node, now
        pod.sample = make_sample(values, received, *pod.tracker.update(values, timestamp))
        pod.sample_time = timestamp
        pod.row = series_row(pod.sample, memory_key=POD_MEMORY)
        pod.series.append(received, pod.row)
        # While pod listings are asked for, the view is made here, in this node's short hold of the
        # lock, not for every pod at once when end_round builds the round's listing under it (30k
        # views: 75-200 ms that every request for one node or pod would wait for).
        pod.view = self._pod_view(key, pod) if self._listings_wanted(now) else None

    def mark_down(self, node: str, *, reason: str, when: float) -> None:
        """The node's exporter could not be scraped: keep it listed as down with its last values."""
        self._mark(node, "down", reason=reason, when=when)

    def mark_gone(self, node: str, *, when: float, reason: str = GONE_REASON) -> None:
        """The node's target left discovery: `gone` at once (never `up` again until it reports), listed
        with its last values until --stale-after, and out of the federated node families."""
        self._mark(node, "gone", reason=reason, when=when)

    def _mark(self, node: str, status: str, *, reason: str, when: float) -> None:
        now = self._clock()
        with self._lock:
            self._changed()
            state = self._nodes.get(node)
            if state is None:
                if status == "gone":
                    return  # never seen: nothing to list
                state = self._nodes[node] = NodeState(node, self.retention_points)
            if state.status == "up" or state.down_since is None:
                state.down_since = when
            state.status, state.last_error, state.last_report = status, reason, now
            if status == "gone":
                self._gone.add(node)
                if self._round_listing is not None:  # its pods leave the listings at once
                    self._round_listing = self._round_listing.keeping(lambda v: v.node != node, now=now)
            else:
                self._gone.discard(node)

    def end_round(self, result: RoundResult) -> None:
        """Roll up the pods reported since the previous round; drop expired history."""
        with self._lock:
            pending, self._pending = self._pending, {}
        # The entries are this round's own from here: later reports go to the new pending set.
        contributions = [_contribution(k, e) for k, e in pending.items() if e.sample is not None]
        groups = roll_up(contributions, round_id=result.round_id, timestamp=result.started)
        now = self._clock()
        with self._lock:
            for key, (view, row) in groups.items():
                group = self._groups.get(key)
                if group is None:
                    group = self._groups[key] = GroupState(view, self.retention_points)
                group.view, group.last_seen = view, now
                group.series.append(result.started, row)
            self._expire(now)
            self._changed()
            namespaces, deployments = group_counts(self._groups)
            counts = {"node": len(self._nodes), "pod": len(self._pods)}
            # The round's listing, if wanted, is of the pods as this hold leaves them.
            order = self._sorted_pod_keys() if self._listings_wanted(now) else None
            writes = self._writes
            if order is None:
                self._round_listing = None
        if order is not None:
            self._keep_round_listing(order, writes, now)
        self._stats.set("series_node", counts["node"])
        self._stats.set("series_pod", counts["pod"])
        self._stats.set("series_namespace", namespaces)
        self._stats.set("series_deployment", deployments)

    def begin_round(self) -> None:
        """The scrape loop begins a round (see `stale_window`)."""
        began = self._monotonic()
        previous, self._round_began = self._round_began, began
        if previous is None:
            return
        period, was = began - previous, self._round_period
        self._round_period = period
        # Rounds keep to ticks of the interval, so an overrun shows as a period of 2 intervals or more.
        if (period >= 2 * self.interval) != (was >= 2 * self.interval):
            if period >= 2 * self.interval:
                log.warning("rounds are %.1fs apart, over the %gs interval: --stale-after %gs is stretched "
                            "as much (%.0fs) until they keep time", period, self.interval, self.stale_after,
                            self.stale_window())
            else:
                log.info("rounds keep time again: staleness back to --stale-after %gs", self.stale_after)

    def stale_window(self) -> float:
        """Seconds without a report after which a pod or node is stale now: --stale-after,
        stretched by as much as the scrape loop runs behind its interval (the time between the last two
        rounds' beginnings, or since the last one began once that is longer), at most MAX_STALE_STRETCH
        times.

        A scraped pod is seen once a round. Rounds longer than the interval (an overloaded aggregator:
        6-20 s at 1000 x 30 under 4 clients fetching every listing every 5 s, on 2 busy cores; the
        loop then skips ticks) left pods older than --stale-after between two scrapes of their node,
        and they dropped out of the listings because the aggregator was slow, not because they went
        away. Prometheus's staleness follows scrapes, not the clock; this keeps the clock (a pusher
        that stops still goes stale) but counts --stale-after in rounds as long as the current ones.
        The pace is measured on the loop's own monotonic time, so a test's settable clock is judged by
        --stale-after alone. Read without the lock: two floats, each written whole.
        """
        period, began = self._round_period, self._round_began
        if began is not None:
            period = max(period, self._monotonic() - began)
        if not period > self.interval:
            return self.stale_after
        return self.stale_after * min(MAX_STALE_STRETCH, period / self.interval)

    def _listings_wanted(self, now: float) -> bool:
        """Pod listings were asked for within ROUND_LISTING_DEMAND intervals (lock held): end_round
        keeps the round's listing, and pods' views are made as the pods are stored."""
        return now <= self._round_wanted_until

    def _changed(self) -> None:
        """Something a listing shows changed (lock held): the next reader builds a new one."""
        self._listing = None
        self._writes += 1

    def _expire(self, now: float) -> None:
        """Drop series whose newest point is older than the retention span (bounded memory with churn)."""
        horizon = now - self.retention_span
        for pod_key in [k for k, p in self._pods.items() if p.last_seen < horizon]:
            del self._pods[pod_key]
            self._pod_order = None
        for name in [n for n, s in self._nodes.items() if max(s.last_seen, s.last_report) < horizon]:
            del self._nodes[name]
            self._gone.discard(name)
        for group_key in [k for k, g in self._groups.items() if g.last_seen < horizon]:
            del self._groups[group_key]

    # --- readers -----------------------------------------------------------------------------------

    def now(self) -> float:
        """The store's clock (time windows are measured against it)."""
        return self._clock()

    def _node_view(self, node: NodeState, pod_count: int, now: float, stale: float) -> NodeView:
        status, last_error = node.status, node.last_error
        silent = now - node.last_report
        if silent > stale and status == "up":
            # Nothing reported for --stale-after (a pusher that stopped): never `up` any more.
            status = "stale"
            window = f"--stale-after {self.stale_after:g}s"
            if stale > self.stale_after:
                window += f", stretched to {stale:.0f}s: rounds overran the interval"
            last_error = f"nothing reported for {silent:.0f}s ({window})"
        return NodeView(
            name=node.name,
            status=status,
            last_error=last_error,
            source=node.source,
            last_seen=node.last_seen,
            down_since=node.down_since,
            sample=node.sample,
            pod_count=pod_count,
            sample_time=node.sample_time if node.sample is not None else None,
        )

    def pod_listing(self) -> PodListing:
        """The current pods (seen within the staleness period) as a shared listing, by namespace/name.

        Built at most once per write: the listing is kept until the next write or until its first pod
        goes stale, whichever comes first; a pod's view is kept until that pod changes, and the name
        order until pods come or go, so a rebuild after one node's scrape renews only its pods' views.
        """
        now = self._clock()
        with self._lock:
            listing = self._listing
            if listing is not None and listing.current(now):
                return listing
            return self._build_listing(now)

    def round_pod_listing(self) -> PodListing:
        """The current pods as the last round left them: the pod listings the API serves.

        As metrics-server serves its last completed scrape: a listing then never mixes two rounds, its
        pods add up to the round's roll-ups, and its documents are prepared once a round (between
        rounds, by the API's warmer) instead of by the requests that race the next round's scrapes.
        Pods scraped or pushed since join at the next round's end; a node that left discovery takes
        its pods out at once, and pods that go stale (their node down, or rounds stopped) leave it
        as they would the live listing. Before a round has ended since someone asked (asking keeps
        end_round building one for a few intervals), or when the clock went back, it is the live
        `pod_listing()`. Falling back to the live listing when a pod went stale, as a first version
        did, made every request under load build one and prepare its 30k documents again.
        """
        now = self._clock()
        with self._lock:
            listing = self._kept_round_listing(now)
            if listing is not None:
                return listing
        return self.pod_listing()

    def _kept_round_listing(self, now: float) -> PodListing | None:
        """The round's listing kept by end_round, less pods gone stale since; None before a round
        kept one (lock held). Asks for one: end_round keeps the listings of the next rounds."""
        self._round_wanted_until = now + ROUND_LISTING_DEMAND * self.interval
        listing = self._round_listing
        if listing is not None and not listing.current(now):
            if listing.built_at <= now:
                stale = self.stale_window()
                listing = listing.keeping(lambda v: now - v.last_seen <= stale, now=now)
            else:
                listing = None
            self._round_listing = listing
        return listing

    def next_round_listing(self, previous: PodListing | None, *, timeout: float) -> PodListing | None:
        """The round listing once it is not `previous`, waiting up to `timeout`; None when none came."""
        def new() -> bool:
            current = self._round_listing
            return current is not None and current is not previous

        with self._round_published:
            self._round_published.wait_for(new, timeout)
            current = self._round_listing
        return current if current is not previous else None

    def _build_listing(self, now: float) -> PodListing:
        """A listing of the pods current at `now` (lock held); it becomes the shared one."""
        views = self._current_views(self._sorted_pod_keys(), now, self.stale_window())
        listing = self._listing = self._listing_of(views, now)
        return listing

    def _keep_round_listing(self, order: list[PodKey], writes: int, now: float) -> None:
        """end_round's listing of the pods current at `now`, built LISTING_BATCH pods per hold of the
        lock (one hold: 30-200 ms that requests for one node or pod waited for). The scrape loop, which
        ends the round, scrapes nothing meanwhile: only a push may land between two batches (a pod
        not passed yet is then listed with its pushed values, as if it had landed before the end)."""
        stale = self.stale_window()
        views: list[PodView] = []
        for batch in self._locked_batches(order, LISTING_BATCH):
            views += self._current_views(batch, now, stale)
        listing = self._listing_of(views, now)
        # Counted here, before anyone reads it: the first node document of each round otherwise
        # counted 30k pods (5-9 ms in process, several times that under load) in its request.
        listing.node_counts()
        with self._lock:
            if self._writes == writes:  # nothing stored meanwhile: it is the live listing too
                self._listing = listing
            self._round_listing = listing
        with self._round_published:
            self._round_published.notify_all()

    def _locked_batches(self, items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
        """`items` `size` at a time, each batch handed over with the lock held and the lock released
        between batches (and when the caller stops early): for passes over every pod or node that
        requests for one node or pod would otherwise wait out whole."""
        for start in range(0, len(items), size):
            with self._lock:
                yield items[start:start + size]

    def _current_views(self, keys: Sequence[PodKey], now: float, stale: float) -> list[PodView]:
        """The views of the pods among `keys` that are current at `now` (lock held)."""
        pods, gone = self._pods, self._gone
        views: list[PodView] = []
        for key in keys:  # the test of _is_current_pod, inlined (30k pods)
            pod = pods.get(key)
            if pod is None or pod.sample is None or not now - pod.last_seen <= stale:
                continue
            if gone and pod.node in gone:
                continue
            view = pod.view
            if view is None:
                view = pod.view = self._pod_view(key, pod)
            views.append(view)
        return views

    def _listing_of(self, views: list[PodView], now: float) -> PodListing:
        oldest = min((v.last_seen for v in views), default=math.inf)
        return PodListing(views, built_at=now, oldest_seen=oldest, window=self.stale_window)

    def _sorted_pod_keys(self) -> list[PodKey]:
        """The keys of the pods, sorted (lock held): kept while no pod comes or goes, since sorting 30k
        keys was half of a listing's or the federation hand-over's work."""
        order = self._pod_order
        if order is None:
            order = self._pod_order = sorted(self._pods)
        return order

    def _is_current_pod(self, pod: PodState | None, now: float, stale: float) -> bool:
        return (
            pod is not None
            and pod.sample is not None
            and now - pod.last_seen <= stale
            and pod.node not in self._gone
        )

    @staticmethod
    def _pod_view(key: PodKey, pod: PodState) -> PodView:
        r = pod.reading
        assert r is not None and pod.sample is not None
        return PodView(
            namespace=key[0],
            pod=key[1],
            uid=r.uid,
            node=pod.node,
            deployment=r.deployment,
            owner_kind=r.owner_kind,
            owner_name=r.owner_name,
            last_seen=pod.last_seen,
            sample=pod.sample,
            containers=r.containers,
        )

    def nodes(self, *, pod_counts: bool = True) -> list[NodeView]:
        """Nodes reported (up or down) within the staleness period, by name; `pod_counts=False` leaves
        every `pod_count` 0 (the federation render and the Resource Metrics API need no counts).
        Their views are made NODE_BATCH nodes per hold of the lock, each node's as it is then."""
        counts = self._listed_pod_counts() if pod_counts else Counter[str]()
        now = self._clock()
        stale = self.stale_window()
        with self._lock:
            names = sorted(self._nodes)
        views: list[NodeView] = []
        for batch in self._locked_batches(names, NODE_BATCH):
            nodes = self._nodes
            for name in batch:
                n = nodes.get(name)
                if n is not None and now - n.last_report <= stale:
                    views.append(self._node_view(n, counts[name], now, stale))
        return views

    def node(self, name: str, *, pod_count: bool = True) -> NodeView | None:
        """One node, listed or not yet expired; None when unknown. `pod_count=False` leaves its
        `pod_count` 0 (a push checking the node's last sample needs none)."""
        count = self._listed_pod_counts()[name] if pod_count else 0
        now = self._clock()
        stale = self.stale_window()
        with self._lock:
            n = self._nodes.get(name)
            return None if n is None else self._node_view(n, count, now, stale)

    def _listed_pod_counts(self) -> Counter[str]:
        """Pods per node as the pod listings list them (`round_pod_listing`), so that a node's
        `pod_count` is the length of its pod listing and the counts add up to the whole listing's.

        Counted once per listing and outside the store lock: counting the live pods of every node
        for each nodes request (a 30k-pod listing built under the lock, ~60 ms, during a round) or
        for each node document (a 30k-pod pass) was what requests for one node or pod waited for.
        Before a round kept its listing the listings are the live one: its counts when it is current,
        else one pass over the pods (~5 ms at 30k) rather than building it (~50 ms; every scrape
        replaces it during a round).
        """
        now = self._clock()
        with self._lock:
            listing = self._kept_round_listing(now)
            if listing is None:
                listing = self._listing
                if listing is None or not listing.current(now):
                    stale = self.stale_window()
                    return Counter(p.node for p in self._pods.values() if self._is_current_pod(p, now, stale))
        return listing.node_counts()

    def pods(
        self, *, node: str | None = None, namespace: str | None = None, deployment: str | None = None
    ) -> list[PodView]:
        """Current pods (seen within the staleness period), optionally filtered, by namespace/name."""
        return list(self.pod_listing().select(node=node, namespace=namespace, deployment=deployment))

    def pod_label_values(
        self,
    ) -> tuple[list[PodKey], list[str], list[PodReading], list[Mapping[str, float]]]:
        """The pods `pods()` lists, by namespace/name, as parallel lists: key, node, reading, values.

        For the federation render, which needs only label values and values. At 30k pods `pods()`
        (a PodView each, sorted by a Python key) measured 0.2-0.36 s a round; parallel lists of
        existing objects allocate nothing per pod, so they add no garbage collections either.

        The lock is taken for LABEL_BATCH pods at a time: the whole pass held it 40-44 ms at 30k pods,
        once a round, in front of every request for one node or pod. Between two batches a push may
        land (a pod not passed yet is then taken with its pushed values, as if it had landed before)
        or a pod may go (skipped); the scrape loop, which calls this, stores nothing meanwhile.
        """
        now = self._clock()
        stale = self.stale_window()
        keys: list[PodKey] = []
        nodes: list[str] = []
        readings: list[PodReading] = []
        values: list[Mapping[str, float]] = []
        with self._lock:
            order = self._sorted_pod_keys()  # never changed in place: a new pod makes a new list
        for batch in self._locked_batches(order, LABEL_BATCH):
            pods, gone = self._pods, self._gone
            for key in batch:
                p = pods.get(key)
                if p is None:
                    continue
                sample, reading = p.sample, p.reading
                if sample is None or reading is None or not now - p.last_seen <= stale:
                    continue
                if gone and p.node in gone:
                    continue
                keys.append(key)
                nodes.append(p.node)
                readings.append(reading)
                values.append(sample.values)
        return keys, nodes, readings, values

    def find_pods(self, name: str, *, namespace: str | None = None, current: bool = True) -> list[PodView]:
        """Pods called `name` (in `namespace` if given); `current=False` adds stale ones with history."""
        now = self._clock()
        stale = self.stale_window()
        with self._lock:
            if namespace is not None:
                candidates = [((namespace, name), self._pods.get((namespace, name)))]
            else:
                candidates = [(k, p) for k, p in self._pods.items() if k[1] == name]
            return sorted(
                (
                    self._pod_view(k, p)
                    for k, p in candidates
                    if p is not None
                    and p.sample is not None
                    and (not current or self._is_current_pod(p, now, stale))
                ),
                key=lambda v: v.namespace,
            )

    def groups(self, *, namespace: str | None = None, deployments: bool = False) -> list[GroupView]:
        """Current namespace roll-ups, or deployment roll-ups (of `namespace` when given)."""
        now = self._clock()
        stale = self.stale_window()
        with self._lock:
            out = [
                g.view
                for (ns, dep), g in self._groups.items()
                if now - g.last_seen <= stale
                and bool(dep) == deployments
                and (namespace is None or ns == namespace)
            ]
        out.sort(key=lambda v: (v.namespace, v.deployment))
        return out

    def group(self, namespace: str, deployment: str = "") -> GroupView | None:
        """One namespace (deployment "") or deployment roll-up with history; None when unknown."""
        with self._lock:
            g = self._groups.get((namespace, deployment))
            return None if g is None else g.view

    def deployment_namespaces(self, deployment: str) -> list[str]:
        """Namespaces holding a deployment called `deployment` (with history), sorted."""
        with self._lock:
            return sorted(ns for ns, dep in self._groups if dep == deployment)

    def namespace_known(self, namespace: str) -> bool:
        """True when the namespace has a roll-up or any pod with history."""
        with self._lock:
            return (namespace, "") in self._groups or any(k[0] == namespace for k in self._pods)

    def node_series(self, name: str, *, since: float, previous: bool = False) -> list[Point] | None:
        """Points from `since` (plus the one before it with `previous`); None for an unknown node."""
        with self._lock:
            n = self._nodes.get(name)
            return None if n is None else _points(n.series, since, previous)

    def pod_series(
        self, namespace: str, pod: str, *, since: float, previous: bool = False
    ) -> list[Point] | None:
        with self._lock:
            p = self._pods.get((namespace, pod))
            return None if p is None else _points(p.series, since, previous)

    def group_series(
        self, namespace: str, deployment: str = "", *, since: float, previous: bool = False
    ) -> list[Point] | None:
        with self._lock:
            g = self._groups.get((namespace, deployment))
            return None if g is None else _points(g.series, since, previous)

    def series_counts(self) -> dict[str, int]:
        """Series held in memory by kind (node, pod, namespace, deployment)."""
        with self._lock:
            namespaces, deployments = group_counts(self._groups)
            return {
                "node": len(self._nodes),
                "pod": len(self._pods),
                "namespace": namespaces,
                "deployment": deployments,
            }

    def buffer_bytes(self) -> tuple[int, int]:
        """(bytes held by point buffers, points stored) over every series: the bytes-per-sample figure."""
        with self._lock:
            series = [n.series for n in self._nodes.values()] + [p.series for p in self._pods.values()]
            series += [g.series for g in self._groups.values()]
            return sum(s.nbytes() for s in series), sum(len(s) for s in series)

    # --- snapshots (persistence.py writes and reads the files) ---------------------------------------

    def export_state(self, *, batch: int = 64) -> Iterator[list[state_records.EntityRecord]]:
        """Every entity as records, in batches copied under the lock one at a time.

        Copying a batch is a few memcpys per series; releasing the lock between batches keeps a
        30k-pod snapshot from holding up ingest for the whole copy. Entities gone meanwhile are skipped.
        """
        with self._lock:
            tables = [
                (self._nodes, lambda _k, n: state_records.node_record(n), list(self._nodes)),
                (self._pods, state_records.pod_record, list(self._pods)),
                (self._groups, lambda _k, g: state_records.group_record(g), list(self._groups)),
            ]
        for table, to_record, keys in tables:
            for i in range(0, len(keys), batch):
                with self._lock:
                    out = [to_record(k, v) for k in keys[i : i + batch] if (v := table.get(k)) is not None]
                yield out

    def import_state(self, records: Iterable[state_records.EntityRecord]) -> dict[str, int]:
        """Replace the contents with restored entities, dropping those older than the retention span.

        Raises StateError on a malformed record, leaving the store untouched. Returns counts by kind.
        """
        horizon = self._clock() - self.retention_span
        nodes: dict[str, NodeState] = {}
        pods: dict[PodKey, PodState] = {}
        groups: dict[GroupKey, GroupState] = {}
        cap = self.retention_points
        for record in records:
            if record.kind == state_records.NODE:
                node = state_records.node_state(record, capacity=cap)
                if max(node.last_seen, node.last_report) >= horizon:
                    nodes[node.name] = node
            elif record.kind == state_records.POD:
                key, pod = state_records.pod_state(record, capacity=cap)
                if pod.last_seen >= horizon:
                    pods[key] = pod
            elif record.kind == state_records.GROUP:
                gkey, group = state_records.group_state(record, capacity=cap)
                if group.last_seen >= horizon:
                    groups[gkey] = group
            else:
                raise state_records.StateError(f"unknown record kind {record.kind!r}")
        with self._lock:
            self._nodes, self._pods, self._groups, self._pending = nodes, pods, groups, {}
            self._pod_order = None
            self._changed()
            self._gone = {name for name, n in nodes.items() if n.status == "gone"}
            namespaces, deployments = group_counts(groups)
        return {"node": len(nodes), "pod": len(pods), "namespace": namespaces, "deployment": deployments}


def _contribution(key: PodKey, entry: _Pending) -> PodContribution:
    """What a pending pod adds to its groups: its gauges, and only the I/O of its new samples."""
    sample, row, deltas = entry.sample, entry.row, entry.deltas
    assert sample is not None
    if row and deltas is not sample.deltas:  # re-scraped (no new I/O), or several pushes since the last round
        counted = deltas or {}
        sample = replace(sample, deltas=counted)
        io = [
            counted.get(c, 0.0) if v is not None else None
            for c, v in zip(IO_COLUMNS, row[2:], strict=True)
        ]
        row = (*row[:2], *io)
    return PodContribution(namespace=key[0], deployment=entry.deployment, sample=sample, row=row)


def _points(series: ChunkedSeries, since: float, previous: bool) -> list[Point]:
    return [Point(t, r) for t, r in series.points(since, previous=previous)]
