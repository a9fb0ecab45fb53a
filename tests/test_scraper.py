"""Scraper against real loopback servers: good, dead, hung, drip, 500, garbage, oversized, gzip, gzip bomb."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aggregator.discovery import StaticDiscovery
from aggregator.federation import FederationCache
from aggregator.scraper import ScrapeOutcome, Scraper
from aggregator.service import ScrapeService
from aggregator.stats import AggregatorStats
from aggregator.store.store import Store
from tests.aggregator_fakes import FakeExporters, FakeNode, render_exposition
from tests.support import wait_until

TIMEOUT = 1.0
SLACK = 0.5  # loop scheduling on a busy 2-core machine
LIMIT = 1 << 20
GOOD = render_exposition("node-good", pods=30, seq=3, timestamp=1_764_100_000.0)
Behaviour = Callable[[BaseHTTPRequestHandler], None]


def _reply(body: bytes, *, status: int = 200, headers: dict[str, str] | None = None) -> Behaviour:
    def run(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return run


def _drip(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Length", str(len(GOOD)))
    h.end_headers()
    for i in range(100):  # bounded: 10 s at most, the client gives up after TIMEOUT
        try:
            h.wfile.write(GOOD[i:i + 1])
            h.wfile.flush()
        except OSError:
            return
        time.sleep(0.1)


def _chunked(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    for start in range(0, len(GOOD), 7000):
        part = GOOD[start:start + 7000]
        h.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
    h.wfile.write(b"0\r\n\r\n")


def _endless_chunks(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    block = b"x" * 65536
    try:
        for _ in range(200):  # 13 MB at most
            h.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
    except OSError:
        return


BOMB = gzip.compress(b"\0" * (64 << 20), compresslevel=9)

BEHAVIOURS: dict[str, Behaviour] = {
    "good": _reply(GOOD),
    "gzip": _reply(gzip.compress(GOOD), headers={"Content-Encoding": "gzip"}),
    "chunked": _chunked,
    "500": _reply(b"boom", status=500),
    "garbage": _reply(b"<html><body>Bad Gateway</body></html>\n"),
    "binary": _reply(bytes(range(256)) * 10),
    "oversized": _reply(b"x" * (LIMIT + 1)),
    "endless": _endless_chunks,
    "bomb": _reply(BOMB, headers={"Content-Encoding": "gzip"}),
    "truncated-gzip": _reply(gzip.compress(GOOD)[:-200], headers={"Content-Encoding": "gzip"}),
    "no-snapshot": _reply(b"# HELP k8smon_exporter_build_info x\nk8smon_exporter_build_info 1\n"),
    "drip": _drip,
    # a timestamp beyond float range: parse() once raised a bare OverflowError out of scrape()
    "huge-timestamp": _reply(b"k8smon_exporter_sample_timestamp_seconds 1 " + b"9" * 400 + b"\n"),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        BEHAVIOURS[self.server.behaviour](self)  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """The scraper hangs up on oversized and slow answers on purpose: a broken pipe is expected."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    """One real HTTP server per behaviour, plus `dead` (a closed port) and `hung` (accepts, never answers)."""
    running: list[ThreadingHTTPServer] = []
    threads: list[threading.Thread] = []
    targets: dict[str, str] = {}
    hung = socket.socket()
    try:
        for name in BEHAVIOURS:
            server = _Server(("127.0.0.1", 0), _Handler)
            server.behaviour = name  # type: ignore[attr-defined]
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                      daemon=True)
            thread.start()
            running.append(server)
            threads.append(thread)
            targets[name] = f"127.0.0.1:{server.server_address[1]}"
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            targets["dead"] = f"127.0.0.1:{closed.getsockname()[1]}"
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)  # the kernel completes the handshake; nobody ever reads or answers
        targets["hung"] = f"127.0.0.1:{hung.getsockname()[1]}"
        yield targets
    finally:
        hung.close()
        for server in running:
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(5)


def scrape(target: str, *, timeout: float = TIMEOUT) -> ScrapeOutcome:
    scraper = Scraper(timeout=timeout, max_response_bytes=LIMIT, stats=AggregatorStats())

    async def once() -> ScrapeOutcome:
        try:
            return await scraper.scrape(target, None)
        finally:
            await scraper.close()

    return asyncio.run(once())


@pytest.mark.parametrize("name", ["good", "gzip", "chunked"])
def test_good_exporters_give_a_reading(servers: dict[str, str], name: str) -> None:
    outcome = scrape(servers[name])
    assert outcome.status.up, outcome.status.last_error
    assert outcome.reading is not None
    assert outcome.reading.node == "node-good"
    assert outcome.reading.timestamp == 1_764_100_000.0
    assert len(outcome.reading.pods) == 30
    assert outcome.status.samples == 403
    assert outcome.status.node == "node-good"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("dead", "connection refused"),
        ("hung", "timeout after 1s"),
        ("drip", "timeout after 1s"),
        ("500", "HTTP 500"),
        ("garbage", "parse error: invalid exposition"),
        ("binary", "parse error: body is not UTF-8"),
        ("oversized", "response too large"),
        ("endless", "response too large"),
        ("bomb", "once decompressed"),
        ("truncated-gzip", "bad gzip body"),
        ("no-snapshot", "parse error: no k8smon_exporter_sample_timestamp_seconds"),
        ("huge-timestamp", "parse error: invalid exposition: OverflowError"),
    ],
)
def test_bad_exporters_are_down_with_a_reason_within_the_timeout(
    servers: dict[str, str], name: str, reason: str
) -> None:
    t0 = time.monotonic()
    outcome = scrape(servers[name])
    elapsed = time.monotonic() - t0
    assert not outcome.status.up
    assert outcome.reading is None
    assert reason in (outcome.status.last_error or ""), outcome.status.last_error
    assert elapsed <= TIMEOUT + SLACK, f"{name} cost {elapsed:.2f}s"
    assert outcome.status.duration_seconds is not None and outcome.status.duration_seconds <= TIMEOUT + SLACK


def test_one_round_with_every_bad_exporter_costs_one_timeout(servers: dict[str, str]) -> None:
    stats = AggregatorStats()
    scraper = Scraper(timeout=TIMEOUT, max_response_bytes=LIMIT, stats=stats)

    async def round_() -> list[ScrapeOutcome]:
        try:
            return await asyncio.gather(*(scraper.scrape(t, None) for t in servers.values()))
        finally:
            await scraper.close()

    t0 = time.monotonic()
    outcomes = asyncio.run(round_())
    elapsed = time.monotonic() - t0
    assert elapsed <= TIMEOUT + SLACK
    up = {o.status.target for o in outcomes if o.status.up}
    assert up == {servers["good"], servers["gzip"], servers["chunked"]}
    errors = stats.snapshot()["errors"]
    assert errors["scrape"] >= 7 and errors["parse"] >= 3


def _service(
    targets: list[str], *, interval: float, timeout: float, concurrency: int = 256
) -> tuple[ScrapeService, Store, AggregatorStats]:
    stats = AggregatorStats()
    store = Store(retention_points=50, stale_after=interval * 3, stats=stats, interval=interval)
    service = ScrapeService(
        discovery=StaticDiscovery(targets),
        scraper=Scraper(timeout=timeout, max_response_bytes=LIMIT, stats=stats),
        store=store,
        federation=FederationCache(store=store, stats=stats, version="test"),
        stats=stats,
        interval=interval,
        concurrency=concurrency,
    )
    return service, store, stats


def test_good_target_keeps_its_cadence_beside_hung_and_dripping_ones(servers: dict[str, str]) -> None:
    interval, timeout = 0.6, 0.4
    with FakeExporters([FakeNode("127.0.0.1", "cadence-node", pods=5)], interval=0.3) as fakes:
        good = fakes.nodes[0].target
        service, store, _stats = _service([good, servers["hung"], servers["drip"], servers["dead"]],
                                          interval=interval, timeout=timeout)
        seen: list[float] = []

        def rounds() -> int:
            last = service.last_round()
            if last is not None and (not seen or seen[-1] != last.started):
                seen.append(last.started)
            return len(seen)

        service.start()
        try:
            wait_until(lambda: rounds() >= 5, timeout=15, message="five scrape rounds", interval=0.02)
            assert service.ready()
            by_target = {s.target: s for s in service.targets()}
        finally:
            service.stop()
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    assert all(interval * 0.8 <= g <= interval * 1.5 for g in gaps), gaps
    assert by_target[good].up
    assert by_target[servers["hung"]].last_error == "timeout after 0.4s"
    assert by_target[servers["drip"]].last_error == "timeout after 0.4s"
    assert by_target[servers["dead"]].last_error == "connection refused"
    node = store.node("cadence-node")
    assert node is not None and node.status == "up"


def test_rounds_never_overlap_when_one_overruns(servers: dict[str, str]) -> None:
    # A timeout longer than the interval (config forbids it; built by hand here) forces overruns.
    service, _store, stats = _service([servers["hung"]], interval=0.2, timeout=0.5)
    starts: list[tuple[int, float, float]] = []

    def rounds() -> int:
        last = service.last_round()
        if last is not None and (not starts or starts[-1][0] != last.round_id):
            starts.append((last.round_id, last.started, last.duration_seconds))
        return len(starts)

    service.start()
    try:
        wait_until(lambda: rounds() >= 3, timeout=15, message="three overrunning rounds", interval=0.02)
    finally:
        service.stop()
    ids = [r[0] for r in starts]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    for (_, a, duration), (_, b, _) in itertools.pairwise(starts):
        assert b >= a + duration - 0.01, "a round started before the previous one finished"
    assert stats.snapshot()["counters"]["rounds_skipped"] >= 2


class _Slow(_Server):
    """Answers GOOD after 0.2 s, counting the requests it holds at once."""

    def __init__(self, counter: dict[str, int], lock: threading.Lock) -> None:
        super().__init__(("127.0.0.1", 0), _SlowHandler)
        self.counter, self.lock = counter, lock


class _SlowHandler(_Handler):
    def do_GET(self) -> None:
        server: _Slow = self.server  # type: ignore[assignment]
        with server.lock:
            server.counter["now"] += 1
            server.counter["most"] = max(server.counter["most"], server.counter["now"])
        try:
            time.sleep(0.2)
            _reply(GOOD)(self)
        finally:
            with server.lock:
                server.counter["now"] -= 1


@pytest.mark.parametrize(("concurrency", "most"), [(3, 3), (12, 12)])
def test_a_round_keeps_at_most_scrape_concurrency_scrapes_in_flight(concurrency: int, most: int) -> None:
    """Thousands of scrapes started at once left the last answers unread past the timeout while the
    first were parsed (bench target 3); --scrape-concurrency bounds the scrapes in flight and every
    target is still scraped in the round."""
    counter, lock = {"now": 0, "most": 0}, threading.Lock()
    slow = [_Slow(counter, lock) for _ in range(12)]
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
               for s in slow]
    for t in threads:
        t.start()
    try:
        targets = [f"127.0.0.1:{s.server_address[1]}" for s in slow]
        service, store, _stats = _service(targets, interval=5.0, timeout=3.0, concurrency=concurrency)
        result = asyncio.run(service.run_round_and_close())
    finally:
        for s in slow:
            s.shutdown()
            s.server_close()
        for t in threads:
            t.join(5)
    assert all(t.up for t in result.targets), [t.last_error for t in result.targets]
    assert len(store.nodes()) == 1  # all twelve serve node-good
    assert counter["most"] == most  # 12 at once when allowed: the count does see concurrency
    assert result.duration_seconds >= 0.2 * (12 // concurrency) - 0.05  # 4 waves of 3, or one of 12
