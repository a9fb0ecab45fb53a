"""The scraper's persistent connections, against real servers on loopback: reused across rounds (counted
where the server accepts them), a connection the server closed while idle retried once without a
failure, `Connection: close` and HTTP/1.0 honoured, any error drops the connection, limits still hold."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from aggregator.scraper import ScrapeOutcome, Scraper
from aggregator.stats import AggregatorStats
from exporter.server import create_app
from k8smon_common.http_server import ServerHandle
from tests.aggregator_fakes import FakeExporters, FakeNode, render_exposition
from tests.test_exporter_collector import golden_snapshot

TIMEOUT = 1.0
SLACK = 0.5  # loop scheduling on a busy 2-core machine
LIMIT = 1 << 20
GOOD = render_exposition("node-keep", pods=3, seq=3, timestamp=1_764_100_000.0)


@dataclass(frozen=True)
class Reply:
    """What the scripted server does with one request: send `data`, then keep the connection open
    (`keep`), close it (`close`) or hold it without a word (`hang`, till the server stops)."""

    data: bytes = b""
    then: str = "keep"


def ok(body: bytes = GOOD, *, extra: bytes = b"", version: bytes = b"HTTP/1.1") -> Reply:
    head = version + b" 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
    return Reply(head + b"Content-Length: %d\r\n%s\r\n%s" % (len(body), extra, body))


def chunked(body: bytes = GOOD) -> Reply:
    pieces = [body[i:i + 5000] for i in range(0, len(body), 5000)]
    parts = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return Reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + parts
                 + b"0\r\nX-Trailer: yes\r\n\r\n")


Script = Callable[[int, int], Reply]  # (connection number, request number on it), both from 0


class ScriptedServer:
    """A raw HTTP server on 127.0.0.1 port 0 that answers each request as `script` says and counts
    the connections it accepts and the requests it reads."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.target = f"127.0.0.1:{self._sock.getsockname()[1]}"
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            number, self.connections = self.connections, self.connections + 1
            thread = threading.Thread(target=self._serve, args=(conn, number), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        conn.settimeout(0.05)
        buffer = b""
        with conn:
            for request in range(1000):
                while b"\r\n\r\n" not in buffer:
                    if self._stop.is_set():
                        return
                    try:
                        data = conn.recv(65536)
                    except TimeoutError:
                        continue
                    except OSError:
                        return
                    if not data:
                        return  # the client closed the connection
                    buffer += data
                buffer = buffer.split(b"\r\n\r\n", 1)[1]
                self.requests.append((number, request))
                reply = self.script(number, request)
                try:
                    conn.sendall(reply.data)
                except OSError:
                    return
                if reply.then == "close":
                    return
                if reply.then == "hang":
                    self._stop.wait()
                    return

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Script], ScriptedServer]]:
    started: list[ScriptedServer] = []

    def start(script: Script) -> ScriptedServer:
        started.append(ScriptedServer(script))
        return started[-1]

    try:
        yield start
    finally:
        for server in started:
            server.close()


def run(body: Callable[[Scraper], Awaitable[Any]], *, timeout: float = TIMEOUT,
        stats: AggregatorStats | None = None, **kw: Any) -> Any:
    """`body(scraper)` in one event loop (connections live as long as the loop), then close them."""
    scraper = Scraper(timeout=timeout, max_response_bytes=LIMIT, stats=stats or AggregatorStats(), **kw)

    async def main() -> Any:
        try:
            return await body(scraper)
        finally:
            await scraper.close()

    return asyncio.run(main())


def rounds(target: str, count: int, **kw: Any) -> list[ScrapeOutcome]:
    async def body(scraper: Scraper) -> list[ScrapeOutcome]:
        return [await scraper.scrape(target, None) for _ in range(count)]

    return run(body, **kw)


def test_one_connection_per_target_serves_every_round() -> None:
    nodes = [FakeNode("127.0.0.1", f"node-{i}", pods=5) for i in range(3)]
    with FakeExporters(nodes, interval=60.0) as fakes:

        async def body(scraper: Scraper) -> list[ScrapeOutcome]:
            outcomes: list[ScrapeOutcome] = []
            for _ in range(4):  # four rounds, the targets scraped concurrently as the service does
                outcomes += await asyncio.gather(*(scraper.scrape(n.target, None) for n in nodes))
            assert scraper.connections_opened == 3
            return outcomes

        outcomes = run(body)
        assert all(o.status.up for o in outcomes), [o.status.last_error for o in outcomes]
        assert (fakes.requests, fakes.connections) == (12, 3)


def test_the_exporters_waitress_server_keeps_the_connection() -> None:
    ports: list[str] = []
    app = create_app(latest=golden_snapshot, node="worker-1")

    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        ports.append(environ["REMOTE_PORT"])  # the client's end: the same port is the same connection
        return app(environ, start_response)

    with ServerHandle(recording, host="127.0.0.1", port=0) as server:
        outcomes = rounds(f"127.0.0.1:{server.port}", 3)
    assert all(o.status.up for o in outcomes), [o.status.last_error for o in outcomes]
    assert len(ports) == 3 and len(set(ports)) == 1, ports


def test_chunked_responses_with_trailers_reuse_the_connection(serve: Any) -> None:
    server = serve(lambda c, r: chunked())
    outcomes = rounds(server.target, 3)
    assert all(o.status.up and o.status.samples == 13 + 13 * 3 for o in outcomes), outcomes
    assert server.connections == 1 and len(server.requests) == 3


@pytest.mark.parametrize("how", ["closed after the answer", "closed on the next request"])
def test_a_connection_the_server_closed_while_idle_is_retried_without_a_failure(serve: Any, how: str) -> None:
    if how == "closed after the answer":  # an idle timeout: the end-of-stream is there before the next round
        server = serve(lambda c, r: Reply(ok().data, then="close"))
    else:  # the close crosses the next request: not a byte comes back on the reused connection
        server = serve(lambda c, r: ok() if r == 0 else Reply(then="close"))
    stats = AggregatorStats()
    outcomes = rounds(server.target, 3, stats=stats)
    assert all(o.status.up for o in outcomes), [o.status.last_error for o in outcomes]
    assert stats.snapshot()["errors"] == {}
    assert server.connections == 3
    if how == "closed on the next request":
        assert server.requests == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]


def test_the_retry_on_a_fresh_connection_happens_once(serve: Any) -> None:
    # Answers the first request ever, then closes every connection without a word.
    server = serve(lambda c, r: ok() if (c, r) == (0, 0) else Reply(then="close"))
    stats = AggregatorStats()
    first, second = rounds(server.target, 2, stats=stats)
    assert first.status.up
    assert not second.status.up
    assert second.status.last_error == "connection closed before the response headers"
    assert stats.snapshot()["errors"] == {"scrape": 1}
    assert server.requests == [(0, 0), (0, 1), (1, 0)]


@pytest.mark.parametrize(
    "reply",
    [
        ok(extra=b"Connection: close\r\n"),  # said, though the socket stays open
        ok(extra=b"Connection: Close\r\n"),
        ok(version=b"HTTP/1.0"),  # no keep-alive without asking for it
        Reply(b"HTTP/1.1 200 OK\r\n\r\n" + GOOD, then="close"),  # body delimited by the end of the stream
    ],
    ids=["connection-close", "connection-Close", "http-1.0", "read-until-close"],
)
def test_a_response_that_does_not_allow_reuse_is_not_reused(serve: Any, reply: Reply) -> None:
    server = serve(lambda c, r: reply)
    outcomes = rounds(server.target, 3)
    assert all(o.status.up for o in outcomes), [o.status.last_error for o in outcomes]
    assert server.connections == 3
    assert server.requests == [(0, 0), (1, 0), (2, 0)]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (ok(b"<html>Bad Gateway</html>\n"), "parse error"),  # well framed, but not an exposition
        (Reply(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops"), "HTTP 500"),
        (Reply(b"SSH-2.0-OpenSSH_9.2\r\n\r\n"), "not an HTTP response"),
        (ok(b"x" * (LIMIT + 1)), "response too large"),
        (Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"), "timeout after 1s"),
    ],
    ids=["garbage", "500", "not-http", "oversized", "short-body"],
)
def test_a_bad_response_drops_the_connection_and_the_next_scrape_opens_a_new_one(
    serve: Any, bad: Reply, reason: str
) -> None:
    # Good, bad, good: the bad answer arrives on the reused connection; the third scrape needs a new one.
    server = serve(lambda c, r: bad if (c, r) == (0, 1) else ok())
    stats = AggregatorStats()
    t0 = time.monotonic()
    first, second, third = rounds(server.target, 3, stats=stats)
    assert first.status.up and third.status.up, (first.status.last_error, third.status.last_error)
    assert not second.status.up
    assert reason in (second.status.last_error or ""), second.status.last_error
    assert second.status.duration_seconds is not None and second.status.duration_seconds <= TIMEOUT + SLACK
    assert time.monotonic() - t0 <= TIMEOUT + 3 * SLACK
    assert sum(stats.snapshot()["errors"].values()) == 1
    assert server.connections == 2
    assert server.requests == [(0, 0), (0, 1), (1, 0)]


def test_the_deadline_holds_on_a_reused_connection(serve: Any) -> None:
    server = serve(lambda c, r: ok() if r == 0 else Reply(then="hang"))
    first, second, third = rounds(server.target, 3)
    assert first.status.up and third.status.up
    assert second.status.last_error == "timeout after 1s"
    assert second.status.duration_seconds is not None and second.status.duration_seconds <= TIMEOUT + SLACK
    assert server.connections == 2


def test_a_target_that_leaves_discovery_loses_its_idle_connection(serve: Any) -> None:
    server = serve(lambda c, r: ok())
    kept = serve(lambda c, r: ok())

    async def body(scraper: Scraper) -> None:
        for _ in range(2):
            for target in (server.target, kept.target):
                assert (await scraper.scrape(target, None)).status.up
            scraper.forget({kept.target})
        assert scraper.connections_opened == 3

    run(body)
    assert server.connections == 2 and kept.connections == 1


def test_a_request_without_keep_alive_gets_connection_close_from_the_fakes() -> None:
    # The fakes honour the client's `Connection: close` (Prometheus never sends it; curl can).
    with FakeExporters([FakeNode("127.0.0.1", "node-0", pods=2)], interval=60.0) as fakes, \
            socket.create_connection(("127.0.0.1", fakes.nodes[0].port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while data := sock.recv(65536):
            answer += data
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"Connection: close\r\n" in answer
