"""Every API error as JSON (`{"error": ..., "description": ..., details}`), mapped in one place.

The shape, `ApiError` and the serializer are shared with the exporter (`k8smon_common.http_api`).

Resources raise the `ApiError` subclasses below (or falcon's own HTTP errors, which the same
serializer renders); anything else is logged with its traceback and answered with a plain 500 JSON
body, so a client never sees an HTML page or a stack trace.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import falcon

from aggregator.stats import AggregatorStats
from k8smon_common.http_api import ApiError, serialize_error

__all__ = ["Ambiguous", "ApiError", "BadBody", "BadParameter", "NotFound", "RenderGuard", "install"]

log = logging.getLogger(__name__)


class NotFound(ApiError):
    def __init__(self, kind: str, name: str, **details: Any) -> None:
        super().__init__(
            falcon.HTTP_404,
            error="not_found",
            description=f"unknown {kind} {name!r}",
            kind=kind,
            name=name,
            **details,
        )


class BadParameter(ApiError):
    def __init__(self, parameter: str, description: str) -> None:
        super().__init__(
            falcon.HTTP_400, error="invalid_parameter", description=description, parameter=parameter
        )


class Ambiguous(ApiError):
    def __init__(self, kind: str, name: str, namespaces: Sequence[str]) -> None:
        super().__init__(
            falcon.HTTP_409,
            error="ambiguous",
            description=f"{kind} {name!r} exists in several namespaces; add ?namespace= to choose one",
            kind=kind,
            name=name,
            candidates=list(namespaces),
        )


class BadBody(ApiError):
    def __init__(self, description: str, *, field: str | None = None) -> None:
        super().__init__(falcon.HTTP_400, error="invalid_body", description=description, field=field)


INTERNAL_ERROR = {
    "error": "internal_error",
    "description": "the server failed to answer; the error is logged",
}


class RenderGuard:
    """Middleware: encodes `resp.media` itself, so a document that cannot be encoded is a JSON 500.

    falcon encodes media after the responder and its error handlers have run; an encoding failure
    there reaches the error handler too late to change the body, and the client gets a 500 with an
    empty body. Encoding here (once, with the app's own handler) keeps every answer JSON.
    """

    def __init__(self, handler: falcon.media.BaseHandler, stats: AggregatorStats) -> None:
        self._handler = handler
        self._stats = stats

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        media = resp.media
        if media is None or resp.text is not None or resp.data is not None:
            return
        try:
            resp.data = self._handler.serialize(media, falcon.MEDIA_JSON)
        except (TypeError, ValueError, OverflowError, RecursionError):
            self._stats.error("api")
            log.exception("cannot encode the answer to %s %s", req.method, req.path)
            resp.status = falcon.HTTP_500
            resp.data = json.dumps(INTERNAL_ERROR).encode()
        resp.content_type = falcon.MEDIA_JSON
        resp.media = None


def install(app: falcon.App, *, stats: AggregatorStats) -> None:
    """Register the serializer and the catch-all handler."""

    def unexpected(
        req: falcon.Request, resp: falcon.Response, exc: Exception, params: dict[str, Any]
    ) -> None:
        stats.error("api")
        log.exception("unhandled error on %s %s", req.method, req.path)
        raise falcon.HTTPInternalServerError(
            title=INTERNAL_ERROR["error"], description=INTERNAL_ERROR["description"]
        ) from exc

    app.set_error_serializer(serialize_error)
    app.add_error_handler(Exception, unexpected)
