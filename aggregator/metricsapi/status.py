"""Errors as Kubernetes `Status` objects (`kind: Status`, `reason`, `code`): kubectl and client-go parse them.

Every error on the metrics listener goes out in this shape, falcon's own (unknown route, wrong
method) included, and an unexpected exception is logged and answered as InternalError.
"""

from __future__ import annotations

import logging
from typing import Any

import falcon

from aggregator.stats import AggregatorStats

log = logging.getLogger(__name__)
GROUP = "metrics.k8s.io"

_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            405: "MethodNotAllowed", 406: "NotAcceptable", 500: "InternalError", 503: "ServiceUnavailable"}


def status_doc(code: int, message: str, *, reason: str | None = None,
               details: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": message, "reason": reason or _REASONS.get(code, "Unknown")}
    if details:
        doc["details"] = details
    doc["code"] = code
    return doc


class StatusError(falcon.HTTPError):
    """An error answered as a Status object."""

    def __init__(self, code: int, message: str, *, reason: str | None = None,
                 details: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code} {_REASONS.get(code, 'Error')}", headers=headers)
        self.doc = status_doc(code, message, reason=reason, details=details)

    def to_dict(self, obj_type: type = dict) -> Any:
        return obj_type(self.doc)


class NotFound(StatusError):
    """What apimachinery's NewNotFound says for `nodemetrics`/`podmetrics`."""

    def __init__(self, resource: str, name: str) -> None:
        super().__init__(404, f'{resource}.{GROUP} "{name}" not found',
                         details={"name": name, "group": GROUP, "kind": resource})


class BadRequest(StatusError):
    def __init__(self, message: str) -> None:
        super().__init__(400, message)


def serialize(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    """Any falcon error as a Status object."""
    if isinstance(exc, StatusError):
        doc = exc.doc
    else:
        code = int(str(exc.status).split(" ", 1)[0])
        message = exc.description or str(exc.title or exc.status)
        if code == 404:
            message = f"the server could not find the requested resource ({req.path})"
        doc = status_doc(code, message)
    resp.media = doc
    resp.content_type = falcon.MEDIA_JSON


def install(app: falcon.App, stats: AggregatorStats) -> None:
    def unexpected(req: falcon.Request, resp: falcon.Response, exc: Exception,
                   params: dict[str, Any]) -> None:
        stats.error("metrics_api")
        log.exception("unhandled error on %s %s", req.method, req.path)
        raise StatusError(500, "the server failed to answer; the error is logged") from exc

    app.set_error_serializer(serialize)
    app.add_error_handler(Exception, unexpected)
