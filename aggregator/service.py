"""The scrape loop: discovery → scrape every target → store.ingest/mark_down → end_round → federation.

One thread runs one asyncio loop; each round scrapes all targets concurrently and ingests each
result as it arrives. Rounds never overlap: a round that overruns the interval makes the loop skip
the ticks it missed (counted in `rounds_skipped`) instead of starting a second round beside it.
`ScrapeService` is also the API's StatusProvider.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from aggregator.api.app import api_dumps, create_app
from aggregator.api.views import PodDocCache
from aggregator.api.warmer import ListingWarmer
from aggregator.config import DEFAULT_SCRAPE_CONCURRENCY, AggregatorSettings
from aggregator.discovery import Discovery, KubeDiscovery, StaticDiscovery
from aggregator.federation import FederationCache
from aggregator.gcpolicy import ROUNDS, RoundCollector
from aggregator.kube import ServiceEndpointsApi, api_client
from aggregator.metricsapi.service import MetricsApi
from aggregator.model import RoundResult, TargetStatus
from aggregator.scraper import ScrapeOutcome, Scraper
from aggregator.stats import AggregatorStats
from aggregator.store.statefile import Snapshotter, restore
from aggregator.store.store import Store
from k8smon_common import __version__, kube
from k8smon_common.http_server import ServerHandle
from k8smon_common.kubeauth import protect

log = logging.getLogger(__name__)
DEFAULT_WINDOW = 300.0  # seconds of history a timeseries request without ?window= gets
NOT_READY = "not ready in the Service's endpoints (exporter starting or failing /healthz, or node NotReady)"


class ScrapeService:
    """Runs scrape rounds every `interval` seconds in a background thread; implements StatusProvider."""

    def __init__(
        self,
        *,
        discovery: Discovery,
        scraper: Scraper,
        store: Store,
        federation: FederationCache,
        stats: AggregatorStats,
        interval: float,
        clock: Callable[[], float] = time.time,
        max_targets: int | None = None,
        concurrency: int = DEFAULT_SCRAPE_CONCURRENCY,
        collector: RoundCollector = ROUNDS,
    ) -> None:
        self._discovery = discovery
        self._concurrency = concurrency
        self._collector = collector  # garbage collection around rounds (gcpolicy.py)
        self._max_targets = max_targets
        self._skipped: tuple[str, ...] = ()  # targets left out by --max-targets, logged once per change
        self._scraper = scraper
        self._store = store
        self._federation = federation
        self._stats = stats
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._statuses: dict[str, TargetStatus] = {}
        self._last_round: RoundResult | None = None
        self._ready = False
        self._round_id = 0
        self._nodes: dict[str, str] = {}  # target -> node learned from its expositions
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._progress: float | None = None  # time.monotonic() of the loop's start or last round

    # --- StatusProvider ----------------------------------------------------------------------------

    def targets(self) -> Sequence[TargetStatus]:
        with self._lock:
            return sorted(self._statuses.values(), key=lambda s: s.target)

    def ready(self) -> bool:
        return self._ready

    def discovery_mode(self) -> str:
        return self._discovery.mode

    def last_round(self) -> RoundResult | None:
        return self._last_round

    def progress_age(self) -> float | None:
        progress = self._progress
        return None if progress is None else time.monotonic() - progress

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start discovery and the scrape thread."""
        self._discovery.start()
        self._thread = threading.Thread(target=self._run_thread, name="scrape-loop", daemon=True)
        self._thread.start()
        self._started.wait(5)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop scraping (an in-flight round is cancelled) and discovery."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                log.debug("scrape loop already closed")
        if self._thread is not None:
            self._thread.join(timeout)
        self._discovery.stop()

    def _run_thread(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._progress = time.monotonic()
        self._started.set()
        stop_wait = asyncio.ensure_future(self._stop.wait())
        next_tick = time.monotonic()
        try:
            while not self._stop.is_set():
                with self._collector.round(lambda: self._scraper.connections_opened):
                    round_task = asyncio.ensure_future(self.run_round())
                    await asyncio.wait({round_task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if not round_task.done():
                    round_task.cancel()
                    await asyncio.gather(round_task, return_exceptions=True)
                    break
                if round_task.exception() is not None:
                    # A bug in a round must not end collection; count it and go on.
                    self._stats.error("round")
                    log.error("scrape round failed", exc_info=round_task.exception())
                next_tick += self._interval
                now = time.monotonic()
                if now >= next_tick:
                    missed = math.floor((now - next_tick) / self._interval) + 1
                    self._stats.incr("rounds_skipped", missed)
                    log.warning("scrape round overran the %.1fs interval; skipping %d tick(s)",
                                self._interval, missed)
                    next_tick += missed * self._interval
                await asyncio.wait({stop_wait}, timeout=next_tick - time.monotonic())
        finally:
            stop_wait.cancel()
            await asyncio.gather(stop_wait, return_exceptions=True)
            await self._scraper.close()  # the idle keep-alive connections belong to this loop

    # --- one round ---------------------------------------------------------------------------------

    async def run_round(self) -> RoundResult:
        """Scrape every current target once, store the results and publish the round. The scraper keeps
        its connections for the next round: a caller running rounds in their own event loops (tests)
        closes them with `run_round_and_close`."""
        answered = self._discovery.answered()
        targets = self._limit(dict(self._discovery.targets()))
        self._scraper.forget(set(targets))
        self._round_id += 1
        round_id = self._round_id
        started = self._clock()
        t0 = time.perf_counter()
        self._store.begin_round()

        # At most `concurrency` scrapes in flight. Started all at once, 5000 answers arrived faster
        # than the loop parses and ingests them (~1 ms each): the last ones, already sent, stayed unread
        # past the scrape timeout (fewest up 3812/5000 at 15 s, bench target 3; the first round's 5000
        # connects alike). A slot frees when its scrape ends, so answers come as fast as they are used.
        slots = asyncio.Semaphore(self._concurrency)  # per round: it belongs to this round's loop

        async def one(target: str, node: str | None) -> TargetStatus:
            async with slots:
                outcome = await self._scraper.scrape(target, node or self._nodes.get(target))
            self._record(outcome, round_id, started)
            return outcome.status

        statuses = await asyncio.gather(*(one(t, n) for t, n in targets.items()))
        waiting = self._not_ready(targets, round_id, started)
        result = RoundResult(
            round_id=round_id,
            started=started,
            duration_seconds=time.perf_counter() - t0,
            targets=(*statuses, *waiting),
        )
        self._finish(result, answered=answered)
        return result

    async def run_round_and_close(self) -> RoundResult:
        """One round in a loop of its own (`asyncio.run`): its connections end with it."""
        try:
            return await self.run_round()
        finally:
            await self._scraper.close()

    def _not_ready(
        self, ready: Mapping[str, str | None], round_id: int, started: float
    ) -> list[TargetStatus]:
        """Not-ready exporters are not scraped, but a node left with no ready exporter is marked down
        (listed with its last values and the reason) instead of silently leaving the listings."""
        covered = {node or self._nodes.get(target) for target, node in ready.items()}
        out: list[TargetStatus] = []
        for target, known in sorted(self._discovery.not_ready().items()):
            node = known or self._nodes.get(target)
            if target in ready or node is None or node in covered:
                continue
            status = TargetStatus(target, node, up=False, last_error=NOT_READY)
            self._record(ScrapeOutcome(status, None), round_id, started)
            out.append(status)
        return out

    def _limit(self, targets: dict[str, str | None]) -> dict[str, str | None]:
        """At most --max-targets targets (first by address); the rest counted per round, logged on change."""
        limit = self._max_targets
        if limit is None or len(targets) <= limit:
            self._skipped = ()
            return targets
        ordered = sorted(targets)
        skipped = tuple(ordered[limit:])
        self._stats.error("limit_targets", len(skipped))
        if skipped != self._skipped:
            log.warning("%d targets discovered, over --max-targets %d; not scraping %d of them (first: %s)",
                        len(targets), limit, len(skipped), skipped[0])
        self._skipped = skipped
        return {t: targets[t] for t in ordered[:limit]}

    def _record(self, outcome: ScrapeOutcome, round_id: int, started: float) -> None:
        status = outcome.status
        with self._lock:
            self._statuses[status.target] = status
        try:
            if outcome.reading is not None:
                self._nodes[status.target] = outcome.reading.node
                # The round's start is every scraped point's time (one time base, see store.py).
                self._store.ingest(outcome.reading, round_id=round_id, received=started)
            elif status.node:
                self._store.mark_down(status.node, reason=status.last_error or "down",
                                      when=status.last_scrape or self._clock())
        except Exception:
            # The store is another module: a bug there must cost this target's sample, not the round.
            self._stats.error("ingest")
            log.exception("storing the scrape of %s failed", status.target)

    def _step(self, step: str, call: Callable[[RoundResult], None], result: RoundResult) -> None:
        t0 = time.perf_counter()
        try:
            call(result)
        except Exception:
            # The store and the federation cache are other modules: a bug there must not end collection.
            self._stats.error(step)
            log.exception("%s after round %d failed", step, result.round_id)
        self._stats.set(f"{step}_seconds", time.perf_counter() - t0)

    def _finish(self, result: RoundResult, *, answered: bool) -> None:
        current = {s.target for s in result.targets}
        with self._lock:
            left = [self._statuses.pop(t) for t in [t for t in self._statuses if t not in current]]
        for gone in [t for t in self._nodes if t not in current]:
            del self._nodes[gone]
        covered = {s.node for s in result.targets if s.node}
        for status in left:
            if status.node and status.node not in covered:
                # Its target left discovery (Prometheus marks such series stale at once): `gone` now,
                # not `up` with its last values until --stale-after.
                self._store.mark_gone(status.node, when=result.started)
                log.info("target %s of node %s left discovery; node marked gone", status.target, status.node)
        up = sum(1 for s in result.targets if s.up)
        self._stats.set("round_duration_seconds", result.duration_seconds)
        self._stats.set("targets_up", up)
        self._stats.set("targets_down", len(result.targets) - up)
        self._stats.incr("rounds")
        self._stats.set("parser_fallbacks", self._scraper.fallbacks)
        # In the loop, not a worker thread: measured at 1000 nodes on 2 busy cores, a rebuild thread
        # overlapping the next round stole enough of the GIL to time targets out. The federation text
        # is rendered by the first /metrics request after the round (federation.py).
        self._step("end_round", self._store.end_round, result)
        self._step("federation_round", self._federation.round_done, result)
        self._last_round = result
        self._progress = time.monotonic()
        if answered:
            self._ready = True
        log.debug("round %d: %d targets (%d up) in %.3fs", result.round_id, len(result.targets), up,
                  result.duration_seconds)


class Aggregator:
    """One aggregator process: store, federation cache, discovery, scrape loop and HTTP server."""

    def __init__(self, settings: AggregatorSettings, *, environ: Mapping[str, str] | None = None) -> None:
        """Build everything and bind the port, start nothing; KubeError when the API client fails."""
        self.settings = settings
        self.stats = AggregatorStats()
        self.started_at = time.time()
        self.store = Store(retention_points=settings.retention_points, stale_after=settings.stale_after,
                           stats=self.stats, interval=settings.scrape_interval)
        self.snapshotter: Snapshotter | None = None
        if settings.state_file:
            # Restored before anything serves or scrapes, so the first answers already have history.
            restore(self.store, Path(settings.state_file), stats=self.stats)
            self.snapshotter = Snapshotter(store=self.store, path=Path(settings.state_file),
                                           interval=settings.snapshot_interval, stats=self.stats)
        self.federation = FederationCache(store=self.store, stats=self.stats, version=__version__)
        self.discovery = make_discovery(settings, stats=self.stats, environ=environ)
        self.scraper = Scraper(timeout=settings.scrape_timeout,
                               max_response_bytes=settings.max_response_bytes, stats=self.stats,
                               max_series=settings.max_series_per_target,
                               max_label_length=settings.max_label_length,
                               max_labels=settings.max_labels_per_series,
                               scrape_format=settings.scrape_format)
        self.service = ScrapeService(discovery=self.discovery, scraper=self.scraper, store=self.store,
                                     federation=self.federation, stats=self.stats,
                                     interval=settings.scrape_interval, max_targets=settings.max_targets,
                                     concurrency=settings.scrape_concurrency)
        pod_docs = PodDocCache(api_dumps())
        self.warmer = ListingWarmer(self.store, pod_docs)
        app = create_app(store=self.store, status=self.service, federation=self.federation, stats=self.stats,
                         cors_origins=settings.cors_origins, ingest_token=settings.ingest_token,
                         default_window=DEFAULT_WINDOW, started_at=self.started_at, version=__version__,
                         max_body_bytes=settings.max_body_bytes, liveness_timeout=settings.liveness_timeout,
                         max_push_skew=settings.max_push_skew, pod_docs=pod_docs)
        if settings.auth == "kubernetes":
            # POST ingest checks its own token; a CORS preflight never carries credentials.
            app = protect(app, kube.api_client(settings.kubeconfig, environ),
                          bypass=lambda env: env.get("REQUEST_METHOD") in ("POST", "OPTIONS"),
                          on_reject=lambda code: self.stats.error(f"auth_{code}"))
        # waitress buffers a whole request body before the app sees it: cap that too (the app's own
        # JSON 413 covers bodies up to this; past it waitress answers a plain-text 413).
        self.server = ServerHandle(app, host=settings.listen.host, port=settings.listen.port, threads=8,
                                   max_request_body_size=max(4 * settings.max_body_bytes, 1 << 20))
        self.metrics_api = (MetricsApi(settings, store=self.store, stats=self.stats, ready=self.service.ready,
                                       environ=environ) if settings.metrics_api_listen else None)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> Aggregator:
        self.server.start()
        self.service.start()
        if self.metrics_api is not None:
            self.metrics_api.start()
        if self.snapshotter is not None:
            self.snapshotter.start()
        self.warmer.start()
        log.info("aggregator %s listening on %s (discovery: %s)", __version__, self.server.url,
                 self.discovery.mode)
        return self

    def stop(self) -> None:
        """Stop scraping, let in-flight HTTP requests finish, close the server, write the last snapshot."""
        self.service.stop()
        self.warmer.stop()
        if self.metrics_api is not None:
            self.metrics_api.stop()
        self.server.stop()
        if self.snapshotter is not None:
            self.snapshotter.stop()  # after the server: a push that was in flight is in the snapshot

    def __enter__(self) -> Aggregator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_discovery(
    settings: AggregatorSettings, *, stats: AggregatorStats, environ: Mapping[str, str] | None = None
) -> Discovery:
    """Static targets when --targets is set, else a watch on the exporters' Service."""
    if settings.targets:
        return StaticDiscovery(str(t) for t in settings.targets)
    api = ServiceEndpointsApi(api_client(settings.kubeconfig, environ=environ),
                              namespace=settings.discovery_namespace, service=settings.discovery_service)
    return KubeDiscovery(api, mode=settings.discovery_mode, port_name=settings.discovery_port_name,
                         stats=stats)
