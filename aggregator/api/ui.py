"""The built-in dashboard: static files under `/ui/`, and `/` redirecting browsers there.

The files ship inside the package (`aggregator/ui/`, package data) and are read once at start, so a
request can only ever name one of them (no path handling, no traversal) and the page works in an
air-gapped cluster: no CDN, no build step. Every file is answered with a Content-Security-Policy
that allows scripts, styles and API calls from this origin only (no inline scripts, no `eval`).

`GET /` stays the JSON status document for curl and API clients; only a client that prefers
`text/html` over JSON (a browser's address bar) is redirected to `ui/`.
"""

from __future__ import annotations

import hashlib
import mimetypes
from importlib import resources
from importlib.resources.abc import Traversable

import falcon

from aggregator.api.errors import NotFound

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".txt": "text/plain; charset=utf-8",
          ".md": "text/markdown; charset=utf-8"}


class _File:
    __slots__ = ("content_type", "data", "etag")

    def __init__(self, name: str, data: bytes) -> None:
        suffix = name[name.rfind(".") :] if "." in name else ""
        self.content_type = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        self.data = data
        self.etag = hashlib.sha256(data).hexdigest()[:20]


def _walk(node: Traversable, prefix: str = "") -> dict[str, _File]:
    files: dict[str, _File] = {}
    for entry in node.iterdir():
        name = prefix + entry.name
        if entry.is_dir():
            files.update(_walk(entry, name + "/"))
        elif not entry.name.startswith("."):
            files[name] = _File(name, entry.read_bytes())
    return files


def load_files() -> dict[str, _File]:
    """Every file of the packaged `aggregator/ui/` folder by its path below it."""
    return _walk(resources.files("aggregator").joinpath("ui"))


def _security_headers(resp: falcon.Response) -> None:
    resp.set_header("Content-Security-Policy", CSP)
    resp.set_header("X-Content-Type-Options", "nosniff")
    resp.set_header("Referrer-Policy", "no-referrer")


class UiFiles:
    """GET /ui/ (index.html) and /ui/<file>; `/ui` without the slash redirects so relative links resolve."""

    def __init__(self, files: dict[str, _File] | None = None) -> None:
        self._files = load_files() if files is None else files

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str = "") -> None:
        if not name and not req.env.get("PATH_INFO", "").endswith("/"):
            # The app strips trailing slashes from routing; the page's relative URLs need one.
            raise falcon.HTTPMovedPermanently("ui/")
        found = self._files.get(name or "index.html")
        if found is None:
            raise NotFound("file", name)
        _security_headers(resp)
        resp.content_type = found.content_type
        resp.etag = found.etag
        # index.html names the others without versions: revalidate everything (cheap: ETag → 304).
        resp.cache_control = ("no-cache",)
        if req.if_none_match and found.etag in req.if_none_match:
            resp.status = falcon.HTTP_304
            return
        resp.data = found.data

    def on_head(self, req: falcon.Request, resp: falcon.Response, name: str = "") -> None:
        self.on_get(req, resp, name)
        resp.data = None


class BrowserRedirect:
    """Middleware: `GET /` from a client preferring HTML over JSON goes to the dashboard."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.path != "/" or req.method not in ("GET", "HEAD"):
            return
        accept = req.get_header("Accept") or ""
        if "text/html" in accept and req.client_prefers(["application/json", "text/html"]) == "text/html":
            raise falcon.HTTPFound("ui/")
