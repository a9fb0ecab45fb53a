"""The seed's push routes: bearer-token auth, size limit, strict JSON body → the same store."""

from __future__ import annotations

import hmac
import json
import logging
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
    stats.error("limit_body")
    log.warning("push to %s refused: body over --max-body-bytes %d", req.path, limit)
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
