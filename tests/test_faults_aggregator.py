"""Aggregator fault injection through the whole pipeline: scrape round -> store -> API and federation.

Rounds are driven one at a time (`ScrapeService.run_round`) against real loopback servers, so every
assertion is about a known round, not about timing. Faults already proven elsewhere are not
repeated (docs/faults.md maps them): the scraper alone against dead, hung, drip, gzip bomb and endless
chunked servers (test_scraper), killed and SIGSTOPped exporter processes (test_aggregator_e2e),
discovery's 410/dropped watch/500s (test_discovery), the parser on hostile text (test_parser_differential).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psutil
import pytest
import requests
from falcon import testing
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from aggregator.api.app import create_app
from aggregator.config import load
from aggregator.discovery import KubeDiscovery
from aggregator.federation import FederationCache
from aggregator.kube import ServiceEndpointsApi, api_client
from aggregator.model import RoundResult
from aggregator.parser import CACHE_SLACK, FastParser
from aggregator.scraper import Scraper
from aggregator.service import NOT_READY, Aggregator, ScrapeService
from aggregator.stats import AggregatorStats
from aggregator.store.store import Store
from tests.aggregator_fakes import POD_LABELS, FakeExporters, FakeNode, render_exposition
from tests.kube import FakeKube, objects
from tests.support import free_port, wait_until
from tests.support.soak import NodeSnapshot

TIMEOUT = 1.0
SLACK = 1.5  # a loaded 2-core machine schedules late; still far below "one timeout per bad target"
MAX_BYTES = 16 << 20  # the aggregator's default --max-response-bytes
Handler = Callable[[BaseHTTPRequestHandler, "FaultyServer"], None]


# --- exporters that misbehave on demand ---------------------------------------------------------------


class FaultyServer(ThreadingHTTPServer):
    """One fake exporter whose behaviour (`mode`) can change between rounds."""

    daemon_threads = True
    block_on_close = False  # a handler still sleeping or streaming must not hold up teardown

    def __init__(self, node: str, mode: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.node, self.mode = node, mode
        self.custom: Callable[[float], bytes] | None = None
        self.served = itertools.count(1)
        self.stop = threading.Event()
        self._last_ts = 0.0
        self._ts_lock = threading.Lock()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def good_body(self, seq: int) -> bytes:
        """A fresh snapshot per request, stamped now (strictly increasing, so each one is stored)."""
        with self._ts_lock:
            ts = self._last_ts = max(time.time(), self._last_ts + 0.001)
        if self.custom is not None:
            return self.custom(ts)
        return render_exposition(self.node, pods=3, seq=seq, timestamp=ts)


def _send(h: BaseHTTPRequestHandler, body: bytes, *, status: int = 200, length: int | None = None) -> None:
    try:
        h.send_response(status)
        h.send_header("Content-Type", "text/plain; version=0.0.4")
        h.send_header("Content-Length", str(len(body) if length is None else length))
        h.end_headers()
        h.wfile.write(body)
    except OSError:
        h.close_connection = True  # the aggregator gave up on us (the point of the slow mode)


def _stream(h: BaseHTTPRequestHandler, server: FaultyServer, *, length: int | None, total: int) -> None:
    """Write `total` bytes of exposition-looking text in 1 MiB blocks until the client hangs up."""
    try:
        h.send_response(200)
        if length is not None:
            h.send_header("Content-Length", str(length))
        h.send_header("Connection", "close")
        h.end_headers()
    except OSError:
        return
    block = b"k8smon_node_cpu_usage_cores{node=\"x\"} 1\n" * (1 << 20 // 41)
    sent = 0
    while sent < total and not server.stop.is_set():
        try:
            h.wfile.write(block)
        except OSError:
            return
        sent += len(block)
    h.close_connection = True


MODES: dict[str, Handler] = {
    "ok": lambda h, s: _send(h, s.good_body(next(s.served))),
    "500": lambda h, s: _send(h, b"internal error", status=500),
    "slow": lambda h, s: (s.stop.wait(TIMEOUT + 1.0), _send(h, s.good_body(next(s.served)))),
    "garbage": lambda h, s: _send(h, b"\x00\x01 this is { not an exposition\n" * 50),
    # a 100 MB body, announced; and the same without a length (read until the connection closes)
    "100mb": lambda h, s: _stream(h, s, length=100_000_000, total=100_000_000),
    "100mb-unannounced": lambda h, s: _stream(h, s, length=None, total=100_000_000),
    "endless": lambda h, s: _stream(h, s, length=None, total=1 << 40),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultyServer

    def do_GET(self) -> None:
        MODES[self.server.mode](self, self.server)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class MutableDiscovery:
    """Static discovery whose target set the test changes between rounds."""

    mode = "static"

    def __init__(self, targets: dict[str, str | None]) -> None:
        self.current = dict(targets)
        self.waiting: dict[str, str | None] = {}

    def targets(self) -> dict[str, str | None]:
        return dict(self.current)

    def not_ready(self) -> dict[str, str | None]:
        return dict(self.waiting)

    def answered(self) -> bool:
        return True

    def start(self) -> None:
        """Nothing to start."""

    def stop(self) -> None:
        """Nothing to stop."""


@dataclass
class Rig:
    servers: dict[str, FaultyServer]
    store: Store
    stats: AggregatorStats
    scraper: Scraper
    service: ScrapeService
    federation: FederationCache
    client: testing.TestClient
    threads: list[threading.Thread] = field(default_factory=list)

    def round(self) -> RoundResult:
        return asyncio.run(self.service.run_round_and_close())

    def status(self, name: str) -> Any:
        target = self.servers[name].target
        return next(s for s in self.service.targets() if s.target == target)

    def api(self, path: str, status: int = 200) -> Any:
        r = self.client.simulate_get(path)
        assert r.status_code == status, (path, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/json")
        return r.json

    def federated(self) -> dict[str, Any]:
        r = self.client.simulate_get("/metrics")
        assert r.status_code == 200
        return {f.name: f for f in text_string_to_metric_families(r.text)}


@pytest.fixture
def rig_factory() -> Iterator[Callable[[dict[str, str]], Rig]]:
    made: list[Rig] = []

    def make(modes: dict[str, str]) -> Rig:
        servers = {name: FaultyServer(f"node-{name}", mode) for name, mode in modes.items()}
        threads = []
        for s in servers.values():
            t = threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            t.start()
            threads.append(t)
        stats = AggregatorStats()
        store = Store(stats=stats, interval=1.0)
        scraper = Scraper(timeout=TIMEOUT, max_response_bytes=MAX_BYTES, stats=stats)
        federation = FederationCache(store=store, stats=stats, version="test")
        discovery = MutableDiscovery({s.target: None for s in servers.values()})
        service = ScrapeService(discovery=discovery, scraper=scraper, store=store, federation=federation,
                                stats=stats, interval=1.0)
        app = create_app(store=store, status=service, federation=federation, stats=stats,
                         started_at=time.time(), version="test")
        rig = Rig(servers, store, stats, scraper, service, federation, testing.TestClient(app), threads)
        made.append(rig)
        return rig

    try:
        yield make
    finally:
        for rig in made:
            for s in rig.servers.values():
                s.stop.set()
                s.shutdown()
                s.server_close()
            for t in rig.threads:
                t.join(5)


# --- expositions with hostile content -----------------------------------------------------------------


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def exposition(node: str, ts: float, pods: list[tuple[dict[str, str], float]], *,
               node_cpu: float = 0.5, memory_total: float = 16e9) -> bytes:
    """An exporter snapshot written by prometheus_client (so escaping is the library's)."""
    stamp = GaugeMetricFamily("k8smon_exporter_sample_timestamp_seconds", "t", labels=["node"])
    stamp.add_metric([node], ts)
    cpu = GaugeMetricFamily("k8smon_node_cpu_usage_cores", "c", labels=["node"])
    cpu.add_metric([node], node_cpu)
    mem = GaugeMetricFamily("k8smon_node_memory_total_bytes", "m", labels=["node"])
    mem.add_metric([node], memory_total)
    pod = GaugeMetricFamily("k8smon_pod_cpu_usage_cores", "p", labels=POD_LABELS)
    for labels, value in pods:
        pod.add_metric([labels.get(k, "") for k in POD_LABELS], value)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families([stamp, cpu, mem, pod]))  # type: ignore[arg-type]
    return generate_latest(registry)


WEIRD_PODS = {
    'quote"pod': "shop",
    "back\\slash": "shop",
    "new\nline": "shop",
    "ünïcødé-пóд-ポッド-🚀": "shop",
    "x" * 300: "shop",
}


def weird_pod(name: str, ns: str, i: int) -> dict[str, str]:
    return {"node": "node-weird", "namespace": ns, "pod": name, "uid": f"u-{i}", "owner_kind": "Deployment",
            "owner_name": 'dep"\n\\', "deployment": 'dep"\n\\'}


def test_one_round_with_every_bad_exporter_beside_good_ones(
    rig_factory: Callable[[dict[str, str]], Rig]
) -> None:
    rig = rig_factory({"good1": "ok", "good2": "ok", "slow": "slow", "500": "500", "garbage": "garbage",
                       "100mb": "100mb", "100mb-unannounced": "100mb-unannounced", "endless": "endless"})
    rss = psutil.Process().memory_info().rss
    durations = []
    for expected in (1, 2, 3):
        result = rig.round()
        durations.append(result.duration_seconds)
        for good in ("good1", "good2"):
            assert rig.status(good).up
            assert len(rig.api(f"/api/nodes/node-{good}/timeseries?window=600")["points"]) == expected
    grown = (psutil.Process().memory_info().rss - rss) / 2**20
    reasons = {name: rig.status(name).last_error for name in rig.servers if not rig.status(name).up}
    assert set(reasons) == {"slow", "500", "garbage", "100mb", "100mb-unannounced", "endless"}
    assert reasons["slow"] == f"timeout after {TIMEOUT:g}s"
    assert reasons["500"] == "HTTP 500"
    assert reasons["garbage"].startswith("parse error")
    assert reasons["100mb"] == f"response too large (Content-Length 100000000 > {MAX_BYTES} bytes)"
    # read up to the limit, then dropped (or the deadline came first on a slow machine)
    for name in ("100mb-unannounced", "endless"):
        assert reasons[name] in {f"response too large (over {MAX_BYTES} bytes)",
                                 f"timeout after {TIMEOUT:g}s"}
    # concurrency: a round costs about one timeout, not one per bad target
    assert max(durations) < TIMEOUT + SLACK, durations
    errors = rig.stats.snapshot()["errors"]
    assert errors.get("scrape", 0) == 3 * 5 and errors.get("parse", 0) == 3, errors
    assert {k for k, v in errors.items() if v} <= {"scrape", "parse"}, errors
    # 100 MB bodies were never held: memory grew by far less than one of them
    assert grown < 64, f"RSS grew {grown:.0f} MiB"
    nodes = {n["node_name"] for n in rig.api("/api/nodes")["nodes"]}
    assert nodes == {"node-good1", "node-good2"}  # down targets had no node name to list
    fed = rig.federated()
    ups = {s.labels["target"]: s.value for s in fed["k8smon_target_up"].samples}
    assert sum(ups.values()) == 2 and len(ups) == 8
    print(f"\nround durations {[round(d, 2) for d in durations]} s; RSS +{grown:.1f} MiB")


def test_nan_inf_duplicates_and_hostile_labels_end_to_end(
    rig_factory: Callable[[dict[str, str]], Rig]
) -> None:
    rig = rig_factory({"nan": "ok", "dup": "ok", "weird": "ok", "good": "ok"})

    def nan_pod(name: str, uid: str) -> dict[str, str]:
        return {"node": "node-nan", "namespace": "shop", "pod": name, "uid": uid}

    nan_pods = [(nan_pod("p-nan", "u1"), float("nan")), (nan_pod("p-inf", "u2"), float("inf")),
                (nan_pod("p-ok", "u3"), 0.25)]
    rig.servers["nan"].custom = lambda ts: exposition("node-nan", ts, nan_pods, node_cpu=float("nan"),
                                                      memory_total=float("-inf"))

    def duplicated(ts: float) -> bytes:
        pod = {"node": "node-dup", "namespace": "shop", "pod": "p1", "uid": "u"}
        text = exposition("node-dup", ts, [(pod, 0.1)]).decode()
        # the same series again with another value, and the node gauge twice
        text += ('k8smon_pod_cpu_usage_cores{node="node-dup",namespace="shop",pod="p1",uid="u",owner_kind="",'
                 'owner_name="",deployment=""} 0.7\nk8smon_node_cpu_usage_cores{node="node-dup"} 3.0\n')
        return text.encode()

    rig.servers["dup"].custom = duplicated
    weird = [(weird_pod(n, ns, i), 0.1 * (i + 1)) for i, (n, ns) in enumerate(WEIRD_PODS.items())]
    rig.servers["weird"].custom = lambda ts: exposition("node-weird", ts, weird)
    for _ in range(2):
        rig.round()
    assert all(rig.status(n).up for n in rig.servers), [s for s in rig.service.targets() if not s.up]
    # NaN/Inf: left out and counted, the finite values of the same exposition kept
    node = rig.api("/api/nodes/node-nan")
    assert node["status"] == "up" and node["cpu_millicores"] is None
    pods = {p["pod_name"]: p for p in rig.api("/api/pods")["pods"] if p["node_name"] == "node-nan"}
    assert pods["p-ok"]["cpu_millicores"] == 250
    assert set(pods) == {"p-ok"}, "a pod whose only samples are NaN/Inf has nothing known to list"
    assert rig.stats.snapshot()["errors"].get("nonfinite", 0) >= 2 * 4
    # duplicate series: the later line wins (as the reference parser reads it), one series stored
    dup = rig.api("/api/pods/p1?namespace=shop")
    assert dup["cpu_millicores"] == 700
    assert rig.api("/api/nodes/node-dup")["cpu_millicores"] == 3000
    # label values with quotes, backslashes, newlines, unicode, 300 characters: stored as sent, listed
    # in the JSON API, and re-exported by the federation so that a parser reads back the same values
    listed = {p["pod_name"] for p in rig.api("/api/nodes/node-weird/pods")["pods"]}
    assert listed == set(WEIRD_PODS)
    fed = rig.federated()
    exported = {s.labels["pod"]: s for s in fed["k8smon_pod_cpu_usage_cores"].samples
                if s.labels.get("node") == "node-weird"}
    assert set(exported) == set(WEIRD_PODS)
    assert all(s.labels["deployment"] == 'dep"\n\\' for s in exported.values())
    assert {round(s.value, 3) for s in exported.values()} == {0.1, 0.2, 0.3, 0.4, 0.5}
    for value in fed["k8smon_node_cpu_usage_cores"].samples:
        assert value.value == value.value, "no NaN is re-exported"
    assert "node-nan" not in {s.labels["node"] for s in fed["k8smon_node_cpu_usage_cores"].samples}
    # the roll-up of the hostile deployment name exists and is addressable by its namespace
    assert rig.api("/api/namespaces/shop")["pod_count"] >= 7


def test_target_flapping_every_round(rig_factory: Callable[[dict[str, str]], Rig]) -> None:
    rig = rig_factory({"flap": "ok", "steady": "ok"})
    flap = rig.servers["flap"]
    rounds = 8
    for i in range(rounds):
        flap.mode = "ok" if i % 2 == 0 else "500"
        rig.round()
        status = rig.status("flap")
        assert status.up == (i % 2 == 0)
        node = rig.api("/api/nodes/node-flap")
        assert node["status"] == ("up" if i % 2 == 0 else "down")
        if i % 2:
            assert node["last_error"] == "HTTP 500" and node["cpu_millicores"] is not None  # last values kept
        listed = {n["node_name"] for n in rig.api("/api/nodes")["nodes"]}
        assert listed == {"node-flap", "node-steady"}, "a flapping node never leaves the listing"
    assert len(rig.api("/api/nodes/node-flap/timeseries?window=600")["points"]) == rounds // 2
    assert len(rig.api("/api/nodes/node-steady/timeseries?window=600")["points"]) == rounds
    errors = rig.stats.snapshot()["errors"]
    assert errors.get("scrape") == rounds // 2 and {k for k, v in errors.items() if v} == {"scrape"}
    # its pods stay listed while down for less than stale_after
    assert {p["node_name"] for p in rig.api("/api/pods")["pods"]} == {"node-flap", "node-steady"}


def test_exporter_moved_to_not_ready_leaves_its_node_listed_as_down(
    rig_factory: Callable[[dict[str, str]], Rig],
) -> None:
    """Kubernetes moves a failing exporter's address to notReadyAddresses. Its node must show as down
    with the reason and last values, not drop out of the listings once --stale-after passes."""
    rig = rig_factory({"sick": "ok", "well": "ok"})
    discovery = rig.service._discovery
    assert isinstance(discovery, MutableDiscovery)
    sick = rig.servers["sick"].target
    rig.round()
    rig.servers["sick"].mode = "500"  # were it scraped, the reason would read "HTTP 500"
    discovery.waiting[sick] = discovery.current.pop(sick)  # no nodeName: learned from its expositions
    discovery.waiting["127.0.0.1:1"] = "node-well"  # a not-ready pod beside a ready one: ignored
    discovery.waiting["127.0.0.1:2"] = None  # never scraped, node unknown: nothing to show
    skew = [0.0]
    rig.store._clock = lambda: time.time() + skew[0]  # type: ignore[method-assign]
    for _ in range(4):
        skew[0] += 10.0  # 40 s in all: well past --stale-after (15 s)
        rig.round()
    status = rig.status("sick")
    assert (status.up, status.node, status.last_error) == (False, "node-sick", NOT_READY)
    assert {s.target for s in rig.service.targets()} == {sick, rig.servers["well"].target}
    node = rig.api("/api/nodes/node-sick")
    assert node["status"] == "down" and node["last_error"] == NOT_READY and node["cpu_millicores"] is not None
    assert {n["node_name"] for n in rig.api("/api/nodes")["nodes"]} == {"node-sick", "node-well"}
    up = {s.labels["target"]: s.value for s in rig.federated()["k8smon_target_up"].samples}
    assert up == {sick: 0.0, rig.servers["well"].target: 1.0}
    listed = {t["target"]: t for t in rig.api("/")["targets"]["items"]}
    assert listed[sick]["last_error"] == NOT_READY and listed[sick]["last_scrape"] is None
    # ready again: scraped again
    rig.servers["sick"].mode = "ok"
    discovery.current[sick] = discovery.waiting.pop(sick)
    rig.round()
    assert rig.status("sick").up and rig.api("/api/nodes/node-sick")["status"] == "up"


# --- endpoints churn and the API server away, through FakeKube ----------------------------------------

NS, SVC = "k8s-monitor", "k8s-monitor-exporter"
REAL = 12  # real fake exporters on 127.0.1.1..12
GHOSTS = 400  # addresses nobody listens on (127.0.2.x, 127.0.3.x): connection refused at once


def _endpoints(kube: FakeKube, addresses: list[tuple[str, str]], port: int) -> None:
    obj = objects.endpoints(SVC, NS, addresses=addresses, port=port)
    if kube.get("v1", "Endpoints", SVC, NS) is None:
        kube.create(obj)
    else:
        kube.update(obj)


def test_endpoints_churn_and_api_server_away_converge_without_leaks() -> None:
    """Hundreds of Endpoints updates within a few rounds; then the API server gone for 3 s (the issue says a
    minute: the suite uses a shorter gap, the behaviour does not depend on its length) and back."""
    port = free_port("127.0.1.1")
    real = [(f"127.0.1.{i}", f"real-{i}") for i in range(1, REAL + 1)]
    ghosts = [(f"127.0.{2 + i // 250}.{1 + i % 250}", f"ghost-{i}") for i in range(GHOSTS)]
    rng = random.Random(6)
    interval = 0.3
    nodes = [FakeNode(host=h, node=n, pods=5, port=port) for h, n in real]
    with FakeExporters(nodes, interval=interval) as _fakes, FakeKube() as kube:
        kube.create(objects.namespace(NS))
        _endpoints(kube, real, port)
        client = api_client(str(kube.kubeconfig))
        stats = AggregatorStats()
        store = Store(stats=stats, retention_points=6, stale_after=1.0, interval=interval)  # 1.8 s span
        discovery = KubeDiscovery(ServiceEndpointsApi(client, namespace=NS, service=SVC), mode="endpoints",
                                  port_name="metrics", stats=stats, watch_timeout=5, backoff_initial=0.1,
                                  backoff_max=0.5)
        scraper = Scraper(timeout=0.25, max_response_bytes=MAX_BYTES, stats=stats)
        federation = FederationCache(store=store, stats=stats, version="test")
        service = ScrapeService(discovery=discovery, scraper=scraper, store=store, federation=federation,
                                stats=stats, interval=interval)
        service.start()
        try:
            want = {f"{h}:{port}" for h, _n in real}
            wait_until(lambda: {s.target for s in service.targets() if s.up} == want, timeout=20,
                       message="every real exporter up")
            rounds_before = stats.snapshot()["counters"].get("rounds", 0)
            t0 = time.monotonic()
            for _ in range(300):  # ~300 updates: adds and removes of ghosts and real exporters
                chosen = rng.sample(real, rng.randint(1, REAL)) + rng.sample(ghosts, rng.randint(0, 60))
                _endpoints(kube, chosen, port)
            churn_seconds = time.monotonic() - t0
            final = real[: REAL // 2]
            _endpoints(kube, final, port)
            want = {f"{h}:{port}" for h, _n in final}

            def converged() -> bool:
                seen = service.targets()
                return {s.target for s in seen} == want and all(s.up for s in seen)

            wait_until(converged, timeout=20, message="targets converge on the final Endpoints")
            # no leak: per-target records are those of the current targets only, and the ghosts' down
            # nodes leave the listing after stale_after and the store after the retention span
            assert set(scraper._parsers) <= want  # per-target parser caches (internal: the leak to watch)
            final_nodes = {n for _h, n in final}
            wait_until(lambda: {v.name for v in store.nodes()} == final_nodes, timeout=20,
                       message="only the final nodes are listed")
            wait_until(lambda: store.series_counts()["node"] == len(final_nodes), timeout=20,
                       message="churned nodes' series expire with retention")
            assert store.series_counts()["pod"] <= len(final_nodes) * 5 + REAL * 5
            # the API server goes away: the known targets keep being scraped; changes made meanwhile
            # arrive once it is back
            kube.pause()
            last = service.last_round()
            away_from = last.round_id if last is not None else 0
            changed = real[REAL // 2:]
            _endpoints(kube, changed, port)  # written to the store while nobody can watch it
            # the outage lasts 10 rounds (3 s)
            def ten_rounds_later() -> RoundResult | None:
                r = service.last_round()
                return r if r is not None and r.round_id >= away_from + 10 else None

            during = wait_until(ten_rounds_later, timeout=20, message="rounds go on while the API is away")
            assert {s.target for s in during.targets} == want and all(s.up for s in during.targets)
            assert stats.snapshot()["errors"].get("discovery", 0) >= 1
            kube.resume()
            want = {f"{h}:{port}" for h, _n in changed}
            wait_until(converged, timeout=20, message="the changes made while the API was away arrive")
        finally:
            service.stop()
            client.close()
    print(f"\n300 Endpoints updates in {churn_seconds:.2f}s; rounds before churn: {rounds_before}")


def test_pod_churn_does_not_grow_the_parser_head_cache() -> None:
    """Found by the soak: each deleted pod's label heads stayed cached until 100,000 per target (~1 KiB
    each), so churn grew the aggregator by megabytes per round for hours. Now bounded by the document."""
    parser = FastParser()
    sizes = []
    for seq in range(400):  # 400 snapshots, 3 pods replaced in each: 1,200 pods x 4 families seen
        doc = NodeSnapshot(node="n1", seq=seq, timestamp=1e9 + seq, pods=20, churn=3).render().decode()
        samples = parser.parse(doc)
        sizes.append(len(parser._heads))  # the cache under test is internal
    assert max(sizes) <= 2 * len(samples) + CACHE_SLACK, max(sizes)
    assert parser.fallbacks == 0


def test_scrape_loop_stuck_in_a_round_fails_healthz_until_it_moves_again() -> None:
    """A round that never finishes (here end_round blocks) turns /healthz 503 after --liveness-timeout,
    so the liveness probe restarts the aggregator; the API keeps answering meanwhile."""
    agg = Aggregator(load(["--listen", "127.0.0.1:0", "--targets", "127.0.0.1:1", "--scrape-interval", "0.2",
                           "--scrape-timeout", "0.1", "--liveness-timeout", "1"], {}), environ={})
    gate = threading.Event()
    gate.set()
    stuck = threading.Event()
    end_round = agg.store.end_round

    def blocking_end_round(result: RoundResult) -> None:
        if not gate.is_set():
            stuck.set()
            gate.wait(30)
        end_round(result)

    agg.store.end_round = blocking_end_round  # type: ignore[method-assign]

    def health() -> tuple[int, dict]:
        with requests.get(f"{agg.url}/healthz", headers={"Connection": "close"}, timeout=5) as resp:
            return resp.status_code, resp.json()

    agg.start()
    try:
        wait_until(lambda: agg.service.last_round() is not None, timeout=10, message="a first round")
        code, body = health()
        assert code == 200 and body["last_progress_seconds"] < 1
        gate.clear()
        assert stuck.wait(10), "a round reached the blocked end_round"
        body = wait_until(lambda: (h := health())[0] == 503 and h[1], timeout=10,
                          message="/healthz fails once no round has completed for --liveness-timeout")
        assert body["error"] == "stalled" and body["last_progress_seconds"] >= 1  # rounded to ms
        with requests.get(f"{agg.url}/api/nodes", headers={"Connection": "close"}, timeout=5) as resp:
            assert resp.status_code == 200  # the API still answers from what is stored
        gate.set()
        wait_until(lambda: health()[0] == 200, timeout=10, message="healthy again once rounds complete")
    finally:
        gate.set()
        agg.stop()


def test_liveness_timeout_must_exceed_the_scrape_interval() -> None:
    with pytest.raises(ValueError, match=r"--liveness-timeout \(5s\) must be longer than --scrape-interval"):
        load(["--targets", "127.0.0.1:1", "--liveness-timeout", "5"], {})
