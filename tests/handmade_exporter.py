"""A hand-made exporter whose snapshot the test sets, and a scrape service the test drives round by round.

The exporter is a real HTTP server on 127.0.0.1 (port 0) serving golden-format expositions
(`tests.aggregator_fakes.render_exposition`: snapshot `seq` with sample time `timestamp`), so the
aggregator's real scraper, parser and store handle it; the test decides when the snapshot changes
and what the exporter's clock says, and runs `ScrapeService.run_round` itself on a settable clock.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from falcon import testing

from aggregator.api.app import create_app
from aggregator.discovery import Discovery, StaticDiscovery
from aggregator.federation import FederationCache
from aggregator.model import RoundResult
from aggregator.scraper import Scraper
from aggregator.service import ScrapeService
from aggregator.stats import AggregatorStats
from aggregator.store.store import Store
from tests.aggregator_fakes import render_exposition


class HandmadeExporter:
    """Serves `body` on /metrics (`None`: the exporter's 503 "no sample yet")."""

    def __init__(self, node: str, *, pods: int = 1) -> None:
        self.node = node
        self.pods = pods
        self.body: bytes | None = None
        self.status = 200
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body, status = owner.body, owner.status
                if body is None:
                    from k8smon_common.contract import NO_SAMPLE_YET

                    body, status = f"{NO_SAMPLE_YET}\n".encode(), 503
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def snapshot(self, seq: int, timestamp: float) -> None:
        """Take snapshot `seq` dated `timestamp` on the exporter's own clock."""
        self.body = render_exposition(self.node, pods=self.pods, seq=seq, timestamp=timestamp)

    def __enter__(self) -> HandmadeExporter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class DrivenService:
    """A real ScrapeService over static targets whose rounds the test runs one at a time."""

    def __init__(
        self,
        targets: list[str] | Discovery,
        *,
        clock: Callable[[], float],
        stale_after: float = 60.0,
    ) -> None:
        self.stats = AggregatorStats()
        self.store = Store(clock=clock, stats=self.stats, stale_after=stale_after, interval=1.0)
        self.federation = FederationCache(store=self.store, stats=self.stats, version="test")
        self.service = ScrapeService(
            discovery=StaticDiscovery(targets) if isinstance(targets, list) else targets,
            scraper=Scraper(timeout=5.0, max_response_bytes=1 << 20, stats=self.stats, clock=clock),
            store=self.store,
            federation=self.federation,
            stats=self.stats,
            interval=1.0,
            clock=clock,
        )
        self.client = testing.TestClient(create_app(
            store=self.store, status=self.service, federation=self.federation, stats=self.stats,
            started_at=0.0, version="test", ingest_token="t0ken",
        ))

    def round(self) -> RoundResult:
        return asyncio.run(self.service.run_round_and_close())

    def get(self, path: str, status: int = 200) -> Any:
        """GET a JSON route of the API over this service's store."""
        r = self.client.simulate_get(path)
        assert r.status_code == status, r.text
        return r.json

    def metrics(self) -> str:
        return self.client.simulate_get("/metrics").text
