"""What the exporter's and the aggregator's HTTP servers share: one error shape, one time format, HEAD.

- Errors: `{"error": <snake_case code>, "description": <sentence>, ...details}` with the right status,
  for our own `ApiError`s and falcon's (unknown route, wrong method, bad header) alike.
- Times: ISO-8601 UTC ending in `Z`, millisecond precision (the seed's `timestamp` form).
- `HEAD` on a GET route answers as GET would, headers and Content-Length included, without the body
  (falcon drops the body of a HEAD answer); without it falcon answers 405.
"""

from __future__ import annotations

import functools
import io
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import falcon


class ApiError(falcon.HTTPError):
    """An HTTP error with a machine-readable `error` code and extra detail fields."""

    def __init__(
        self,
        status: str,
        /,
        *,
        error: str,
        description: str,
        headers: dict[str, str] | None = None,
        **details: Any,
    ) -> None:
        super().__init__(status, title=error, description=description, headers=headers)
        self.details = details

    def to_dict(self, obj_type: type = dict) -> Any:
        doc = obj_type()
        doc["error"] = self.title
        doc["description"] = self.description
        doc.update(self.details)
        return doc


def serialize_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    """Render any falcon HTTP error (ours or falcon's own 404/405/413...) as the shared JSON shape."""
    doc = dict(exc.to_dict())
    if not isinstance(exc, ApiError):
        # falcon's own errors (unknown route, wrong method, bad header...): title is "404 Not Found".
        title = str(doc.pop("title", exc.status))
        doc["error"] = re.sub(r"[^a-z]+", "_", title.split(" ", 1)[-1].lower()).strip("_") or "error"
        doc["description"] = doc.get("description") or title
    if isinstance(exc, falcon.HTTPMethodNotAllowed):
        allowed = [m.strip() for m in (exc.headers or {}).get("Allow", "").split(",") if m.strip()]
        doc["description"] = f"{req.method} is not allowed on {req.path}; allowed: {', '.join(allowed)}"
        doc["allowed"] = allowed
    resp.media = {"error": doc.pop("error"), **doc}
    resp.content_type = falcon.MEDIA_JSON


@functools.lru_cache(maxsize=4096)
def iso(ts: float | None) -> str | None:
    """Unix seconds as ISO-8601 UTC with `Z`, millisecond precision; None for unknown.

    Cached: the pods of one round share their timestamp, and formatting it 30k times was ~10 % of
    building the pod documents (bench/profiles/2026-12-02-api-under-load.txt)."""
    if ts is None or not math.isfinite(ts):
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class StreamLargeBodies:
    """Hands an answer body over `threshold` bytes to the WSGI server as a file (`wsgi.file_wrapper`).

    waitress copies a bytes body into its output buffer, and past 1 MB (`outbuf_overflow`) into a
    temporary file and back: at 1000 x 30 the whole pod listing (~35 MB) and the federated
    `/metrics` (72 MB; 3.7 MB gzipped) spent 13 % of the aggregator's CPU there under 4 polling
    clients. A file wrapper over the same bytes is sent from in place (io.BytesIO shares them), a
    socket buffer at a time. Put first in the middleware list, so that it runs after every other
    process_response (errors.RenderGuard serialises media into `resp.data` there).
    """

    def __init__(self, threshold: int = 1 << 20) -> None:
        self._threshold = threshold

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        data = resp.data
        if data is not None and len(data) > self._threshold:
            resp.data = None
            resp.stream = io.BytesIO(data)
            resp.content_length = len(data)


def add_routes(app: falcon.App, routes: Iterable[tuple[str, object]]) -> None:
    """Add each (template, resource); a resource with `on_get` and no `on_head` answers HEAD as GET."""
    for template, resource in routes:
        if hasattr(resource, "on_get") and not hasattr(resource, "on_head"):
            resource.on_head = resource.on_get  # type: ignore[attr-defined]
        app.add_route(template, resource)
