"""bench/api_load.py's client: a short run on a slow server still measures every route after each
client's first (cold) turn when asked for `min_turns` (the suite's short benchmark relies on it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench import api_load


class _Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40-ms delayed-ACK wait each

    def do_GET(self) -> None:
        time.sleep(0.01)  # each answer takes longer than the whole run's `seconds` allows per route
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def slow_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_min_turns_outlast_the_seconds_so_every_route_has_a_warm_answer(slow_server: str) -> None:
    doc = api_load.client(slow_server, nodes=2, pods=2, seconds=0.05, seed=1, period=0.0, min_turns=2)
    assert doc["error_count"] == 0, doc["errors"]
    for route in api_load.ROUTES:
        assert doc["cold"][route] and doc["times"][route], route  # type: ignore[index]


def test_without_min_turns_the_seconds_end_the_run_mid_turn(slow_server: str) -> None:
    doc = api_load.client(slow_server, nodes=2, pods=2, seconds=0.05, seed=1, period=0.0)
    answered = sum(len(v) for v in doc["cold"].values()) + sum(len(v) for v in doc["times"].values())  # type: ignore[attr-defined]
    assert 0 < answered < len(api_load.ROUTES)  # 10 ms an answer: a few fit in 50 ms, not a turn
