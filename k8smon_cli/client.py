"""GET JSON from the aggregator; every failure becomes a `CliError` with its own exit code.

Exception tree (each carries `exit_code`):

    CliError
    ├── UsageError    (2)  a bad option value (argparse exits 2 for its own errors too)
    ├── Unreachable   (3)  connection refused, DNS failure, timeout
    ├── ServerError   (4)  a 5xx, a non-JSON answer, or a 4xx other than 404
    └── NotFound      (5)  the name asked for is unknown to the server (404)
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

EXIT_USAGE = 2  # argparse's own


class CliError(Exception):
    exit_code = 1


class UsageError(CliError):
    exit_code = EXIT_USAGE


class Unreachable(CliError):
    exit_code = 3


class ServerError(CliError):
    exit_code = 4


class NotFound(CliError):
    exit_code = 5


class Client:
    """The aggregator at `server` (http://host:port); `get` answers the decoded JSON document."""

    def __init__(self, server: str, *, timeout: float = 10.0) -> None:
        self.server = server.rstrip("/")
        self.timeout = timeout
        parts = urllib.parse.urlsplit(self.server)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"--server {server!r}: expected http://host:port or host:port")

    def url(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        q = {k: v for k, v in (query or {}).items() if v is not None}
        return self.server + path + (f"?{urllib.parse.urlencode(q)}" if q else "")

    def get(self, path: str, query: Mapping[str, Any] | None = None) -> Any:
        url = self.url(path, query)
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:  # noqa: S310 (http/https only)
                body = resp.read()
        except urllib.error.HTTPError as exc:
            doc = _json_or_none(exc.read())
            reason = (doc or {}).get("description") if isinstance(doc, dict) else None
            if exc.code == 404 and isinstance(doc, dict) and doc.get("error") == "not_found":
                raise NotFound(reason or f"not found: {path}") from None
            why = reason or exc.reason
            raise ServerError(f"the server answered {exc.code} to GET {url}: {why}") from None
        except OSError as exc:  # URLError (refused, DNS), timeouts, resets
            why = getattr(exc, "reason", exc)
            raise Unreachable(f"cannot reach the aggregator at {self.server}: {why}") from None
        doc = _json_or_none(body)
        if doc is None:
            raise ServerError(f"the answer to GET {url} is not JSON; is {self.server} an aggregator?")
        return doc


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None
