"""The exporter's HTTP surface: /metrics (cached per snapshot), /healthz and a small JSON `/`."""

from __future__ import annotations

import gzip
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import falcon
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from exporter.collector import SnapshotCollector, package_version
from exporter.snapshot import Snapshot
from k8smon_common import snapshotdoc
from k8smon_common.contract import NO_SAMPLE_YET
from k8smon_common.http_api import ApiError, add_routes, iso, serialize_error

log = logging.getLogger(__name__)
LatestSnapshot = Callable[[], Snapshot | None]


def accepts_gzip(header: str | None) -> bool:
    """True when Accept-Encoding lists gzip (or *) without q=0."""
    for part in (header or "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() not in {"gzip", "*"}:
            continue
        q = params.strip().replace(" ", "").lower()
        if q.startswith("q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False


class MetricsResource:
    """Renders the registry once per snapshot and serves the cached bytes (gzipped on request).

    Before the first sample there is nothing to serve: 503 with a plain-text NO_SAMPLE_YET body, which
    the aggregator reports as "not ready yet" (a 200 without the sample timestamp read as a parse error).
    """

    def __init__(self, registry: CollectorRegistry, latest: LatestSnapshot) -> None:
        self._registry = registry
        self._latest = latest
        self._lock = threading.Lock()
        self._key: Snapshot | None = None
        # (document?, gzipped?) -> the bytes of the current snapshot, each rendered on first request
        self._bodies: dict[tuple[bool, bool], bytes] = {}

    def _render(self, gzipped: bool, document: bool = False) -> bytes:
        snapshot = self._latest()
        with self._lock:  # concurrent scrapes of a new snapshot render it once, not once each
            if snapshot is None or snapshot is not self._key:
                self._bodies = {}
                self._key = snapshot
            plain = self._bodies.get((document, False))
            if plain is None:
                if document:  # the same samples as the text, grouped per entity (snapshotdoc.py)
                    families = self._registry.collect()
                    samples = ((s.name, s.labels, s.value) for f in families for s in f.samples)
                    plain = snapshotdoc.encode(snapshotdoc.document(samples))
                else:
                    plain = generate_latest(self._registry)
                self._bodies[(document, False)] = plain
            if not gzipped:
                return plain
            packed = self._bodies.get((document, True))
            if packed is None:
                packed = self._bodies[(document, True)] = gzip.compress(plain, compresslevel=6)
            return packed

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._latest() is None:
            resp.status = falcon.HTTP_503
            resp.content_type = falcon.MEDIA_TEXT
            resp.set_header("Retry-After", "1")
            resp.text = f"{NO_SAMPLE_YET}\n"
            return
        gzipped = accepts_gzip(req.get_header("Accept-Encoding"))
        document = snapshotdoc.accepts(req.get_header("Accept"))  # the aggregator's; text for the rest
        resp.data = self._render(gzipped, document)
        resp.content_type = snapshotdoc.CONTENT_TYPE if document else CONTENT_TYPE_LATEST
        resp.vary = ("Accept", "Accept-Encoding")
        if gzipped:
            resp.set_header("Content-Encoding", "gzip")


class HealthResource:
    """200 while samples are fresh; 503 before the first one and once sampling has stalled.

    The liveness probe reads this, so a sampler stuck in a read (a hung mount under /proc or /sys)
    gets the exporter restarted instead of serving the same numbers forever.
    """

    def __init__(
        self,
        latest: LatestSnapshot,
        *,
        liveness_timeout: float | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._latest = latest
        self._liveness_timeout = liveness_timeout
        self._now = now

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        snapshot = self._latest()
        if snapshot is None:
            # The shared error shape (error + description), with `status` kept for existing probes.
            raise ApiError(
                falcon.HTTP_503, error="starting", description="no sample taken yet", status="starting"
            )
        age = round(self._now() - snapshot.timestamp, 3)
        if self._liveness_timeout is not None and age > self._liveness_timeout:
            raise ApiError(
                falcon.HTTP_503,
                error="stalled",
                description=f"no new sample for {age:g}s (--liveness-timeout {self._liveness_timeout:g}s)",
                status="stalled",
                sample_age_seconds=age,
            )
        resp.media = {"status": "ok", "sample_age_seconds": age}


class StatusResource:
    """A small JSON summary for people poking at the exporter with curl."""

    def __init__(self, latest: LatestSnapshot, *, node: str) -> None:
        self._latest = latest
        self._node = node

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        snapshot = self._latest()
        doc: dict[str, Any] = {
            "service": "k8smon-exporter",
            "version": package_version(),
            "node": self._node,
            "routes": ["/metrics", "/healthz"],
            "sample": None,
        }
        if snapshot is not None:
            doc["sample"] = {
                "timestamp": iso(snapshot.timestamp),  # ISO-8601 like every time the aggregator serves
                "duration_seconds": snapshot.duration_seconds,
                "pods": len(snapshot.pods),
                "kube_connected": snapshot.kube_connected,
                "errors": snapshot.errors,
            }
        resp.media = doc


def _internal_error(
    req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict[str, Any]
) -> None:
    """Unexpected failures become a JSON 500 and a log line with the traceback."""
    if isinstance(ex, falcon.HTTPError):
        raise ex
    log.exception("unhandled error serving %s %s", req.method, req.path)
    raise ApiError(
        falcon.HTTP_500,
        error="internal_error",
        description=f"the exporter failed to answer ({type(ex).__name__}); the error is logged",
    ) from ex


def create_app(
    *,
    latest: LatestSnapshot,
    node: str,
    registry: CollectorRegistry | None = None,
    liveness_timeout: float | None = None,
) -> falcon.App:
    """Build the WSGI app over `latest()`; a private registry holding the snapshot collector by default.

    `liveness_timeout`: sample age in seconds past which /healthz fails (None: fails only before the
    first sample).
    """
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(latest))
    app = falcon.App()
    app.add_error_handler(Exception, _internal_error)
    app.set_error_serializer(serialize_error)  # {"error", "description"}, as the aggregator answers
    add_routes(
        app,
        [
            ("/metrics", MetricsResource(registry, latest)),
            ("/healthz", HealthResource(latest, liveness_timeout=liveness_timeout)),
            ("/", StatusResource(latest, node=node)),
        ],
    )
    return app
