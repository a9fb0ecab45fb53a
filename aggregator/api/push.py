"""The seed's push routes: bearer-token auth, size limit, strict JSON body → the same store."""

from __future__ import annotations

import hmac
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

import falcon

from aggregator.api import params
from aggregator.api.errors import ApiError, BadBody
from aggregator.ingest import MAX_BODY_BYTES, IngestError, PushIngest, StaleTimestamp
from aggregator.stats import AggregatorStats

log = logging.getLogger(__name__)


class PushAuth:
    """`Authorization: Bearer <token>`: 403 when pushing is disabled (no token), 401 when wrong."""

    def __init__(self, token: str, stats: AggregatorStats) -> None:
        self._token = token.encode()
        self._stats = stats

    def check(self, req: falcon.Request) -> None:
        if not self._token:
            raise ApiError(
                falcon.HTTP_403, error="forbidden", description="push ingest is disabled (no token)"
            )
        scheme, _, given = (req.get_header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self._token):
            self._stats.error("ingest_auth")
            raise ApiError(
                falcon.HTTP_401,
                error="unauthorized",
                description="a valid 'Authorization: Bearer <token>' header is required",
                headers={"WWW-Authenticate": 'Bearer realm="k8s-monitor"'},
            )


def _too_large(req: falcon.Request, stats: AggregatorStats, limit: int) -> NoReturn:
    # Counted twice on purpose: "ingest" counts every rejected push, "limit_body" this limit's share.
    stats.error("ingest")
    stats.error("limit_body")  # logged (rate-limited) by RejectLog like every refused push
    raise ApiError(falcon.HTTP_413, error="too_large", description=f"body exceeds {limit} bytes")


def read_json(req: falcon.Request, stats: AggregatorStats, *, limit: int = MAX_BODY_BYTES) -> Any:
    """The body as JSON: 413 past `limit` bytes (--max-body-bytes), 415 unless JSON, 400 when malformed."""
    length = req.content_length
    if length is not None and length > limit:
        _too_large(req, stats, limit)
    if not (req.content_type or "").lower().startswith("application/json"):
        stats.error("ingest")
        raise ApiError(falcon.HTTP_415, error="unsupported_media_type", description="send application/json")
    raw = req.bounded_stream.read(limit + 1)
    if len(raw) > limit:
        _too_large(req, stats, limit)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        stats.error("ingest")
        raise BadBody(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        # 64 KiB of "[" nests deeper than the decoder's recursion limit: a client error, not a 500.
        stats.error("ingest")
        raise BadBody("the body is not valid JSON: nested too deeply") from None


def _stored(resp: falcon.Response, stored: int) -> None:
    resp.status = falcon.HTTP_201
    resp.media = {"status": "stored", "samples": stored}


def _fail(exc: IngestError) -> ApiError:
    if isinstance(exc, StaleTimestamp):
        return ApiError(falcon.HTTP_409, error="stale_timestamp", description=str(exc), field=exc.field)
    return BadBody(str(exc), field=exc.field)


class RejectLog:
    """Middleware: a refused push (any 4xx on a push route) is logged with its status, reason and client.

    Rate-limited per client address: the first refusal in `interval` seconds is logged, later ones are
    counted and the count goes into that client's next line; at most `max_lines` lines per interval
    over all clients (the rest are counted likewise), so a misconfigured fleet or a flood cannot fill
    the log. `k8smon_aggregator_errors_total{source="ingest..."}` still counts every one. The address
    is the peer's (WSGI REMOTE_ADDR); a proxy in front shows as itself.
    """

    def __init__(
        self, *, interval: float = 10.0, max_lines: int = 20, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval, self._max_lines, self._clock = interval, max_lines, clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}  # client -> when its last line was written
        self._suppressed: dict[str, int] = {}  # client -> refusals not logged since
        self._window_start, self._lines = -math.inf, 0

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        if not isinstance(resource, _PushResource) or not str(resp.status).startswith("4"):
            return
        media = resp.media if isinstance(resp.media, dict) else {}
        reason = f"{media.get('error', '?')}: {media.get('description', '')}"
        if media.get("field") or media.get("parameter"):
            reason += f" ({media.get('field') or media.get('parameter')})"
        self.refused(req.remote_addr or "unknown", f"{req.method} {req.path}", str(resp.status), reason)

    def refused(self, client: str, request: str, status: str, reason: str) -> bool:
        """Log one refusal unless rate-limited; True when a line was written."""
        now = self._clock()
        with self._lock:
            if now - self._window_start >= self._interval:
                self._window_start, self._lines = now, 0
                # forget clients quiet for a whole interval, so the map stays small
                self._last = {c: t for c, t in self._last.items() if now - t < self._interval}
            if now - self._last.get(client, -math.inf) < self._interval or self._lines >= self._max_lines:
                self._suppressed[client] = self._suppressed.get(client, 0) + 1
                return False
            self._last[client] = now
            self._lines += 1
            earlier = self._suppressed.pop(client, 0)
        more = f" ({earlier} more refused since the last line for this client)" if earlier else ""
        log.warning("push refused: %s from %s, %s: %s%s", request, client, status, reason, more)
        return True


class _PushResource:
    """Both push routes: auth first, then path names, then a size-limited JSON body."""

    def __init__(
        self,
        ingest: PushIngest,
        auth: PushAuth,
        stats: AggregatorStats,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._ingest, self._auth, self._stats = ingest, auth, stats
        self._max_body = max_body_bytes


class NodePush(_PushResource):
    def on_post(self, req: falcon.Request, resp: falcon.Response, node: str) -> None:
        self._auth.check(req)
        params.subdomain(node, "node")
        doc = read_json(req, self._stats, limit=self._max_body)
        try:
            _stored(resp, self._ingest.push_node(node, doc))
        except IngestError as exc:
            raise _fail(exc) from exc


class PodPush(_PushResource):
    def on_post(self, req: falcon.Request, resp: falcon.Response, namespace: str, pod: str) -> None:
        self._auth.check(req)
        params.label(namespace, "namespace")
        params.subdomain(pod, "pod")
        doc = read_json(req, self._stats, limit=self._max_body)
        try:
            _stored(resp, self._ingest.push_pod(namespace, pod, doc))
        except IngestError as exc:
            raise _fail(exc) from exc
