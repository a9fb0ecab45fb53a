"""Credentials checked by the API server, for every listener that offers it.

- `KubeReviewer`: TokenReview and SubjectAccessReview through the client (`system:auth-delegator`).
- `TtlCache`: answers kept a few seconds, as the API server's delegating authenticator/authorizer does.
- `TokenAuth`: a WSGI wrapper in the style of kube-rbac-proxy for `--auth kubernetes`: a bearer token
  (kubectl's, a ServiceAccount's) reviewed by TokenReview, then a SubjectAccessReview for `get` on the
  request path as a non-resource URL (`/metrics`, `/api/*`, `/ui/*`); answers cached `ttl` seconds (by the
  token's SHA-256). 401 without a valid token, 403 when denied, 503 when the API server cannot be asked
  (never a pass, never cached). `open_paths` (the probes) and requests `bypass(environ)` accepts (the
  POST ingest routes, which check their own token) pass untouched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from k8smon_common.kube import KubeError, post_json

log = logging.getLogger(__name__)
Environ = dict[str, Any]
StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    uid: str = ""


class Reviewer(Protocol):
    def token_review(self, token: str) -> User | None: ...

    def access_review(self, spec: dict[str, Any]) -> tuple[bool, str]: ...


class KubeReviewer:
    """TokenReview and SubjectAccessReview through the API server."""

    def __init__(self, api: Any) -> None:
        self._api = api

    def token_review(self, token: str) -> User | None:
        doc = post_json(self._api, "/apis/authentication.k8s.io/v1/tokenreviews",
                        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                         "spec": {"token": token}})
        status = doc.get("status") or {}
        if not status.get("authenticated"):
            return None
        user = status.get("user") or {}
        extra = {str(k): tuple(v) for k, v in (user.get("extra") or {}).items() if isinstance(v, list)}
        return User(str(user.get("username", "")), tuple(user.get("groups") or ()), extra,
                    str(user.get("uid", "")))

    def access_review(self, spec: dict[str, Any]) -> tuple[bool, str]:
        doc = post_json(self._api, "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                        {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                         "spec": spec})
        status = doc.get("status") or {}
        return bool(status.get("allowed")) and not status.get("denied"), str(status.get("reason", ""))


class TtlCache:
    """key -> value for `ttl` seconds, at most `size` entries (the oldest go first)."""

    def __init__(self, ttl: float, *, size: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl, self._size, self._clock = ttl, size, clock
        self._lock = threading.Lock()
        self._items: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> tuple[bool, Any]:
        with self._lock:
            hit = self._items.get(key)
            if hit is None or hit[0] <= self._clock():
                return False, None
            return True, hit[1]

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            if len(self._items) >= self._size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = (self._clock() + self._ttl, value)


def review_spec(user: User, attributes: Mapping[str, Any]) -> dict[str, Any]:
    extra = {k: list(v) for k, v in user.extra.items()}
    return {"user": user.name, "groups": list(user.groups), "extra": extra, "uid": user.uid, **attributes}


class ReviewUnavailable(Exception):
    """The API server could not answer a review."""


class Reviews:
    """Cached token and access reviews; ReviewUnavailable when the API server fails (nothing cached)."""

    def __init__(self, reviewer: Reviewer, *, ttl: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self._reviewer = reviewer
        self._tokens = TtlCache(ttl, clock=clock)
        self._access = TtlCache(ttl, clock=clock)

    def user(self, token: str) -> User | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        hit, user = self._tokens.get(key)
        if hit:
            return user
        try:
            user = self._reviewer.token_review(token)
        except KubeError as exc:
            log.warning("TokenReview failed: %s", exc)
            raise ReviewUnavailable("TokenReview") from exc
        self._tokens.put(key, user)
        return user

    def allowed(self, spec: dict[str, Any]) -> tuple[bool, str]:
        key = json.dumps(spec, sort_keys=True)
        hit, answer = self._access.get(key)
        if hit:
            return answer
        try:
            answer = self._reviewer.access_review(spec)
        except KubeError as exc:
            log.warning("SubjectAccessReview failed: %s", exc)
            raise ReviewUnavailable("SubjectAccessReview") from exc
        self._access.put(key, answer)
        return answer


def bearer_token(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def protect(app: Callable[[Environ, StartResponse], Iterable[bytes]], api: Any | None, *,
            bypass: Callable[[Environ], bool] = lambda environ: False,
            on_reject: Callable[[int], None] = lambda code: None) -> TokenAuth:
    """`app` behind `--auth kubernetes`; KubeError when there is no API server to ask."""
    if api is None:
        raise KubeError("--auth kubernetes needs the API server (--kubeconfig or in-cluster config)")
    return TokenAuth(app, Reviews(KubeReviewer(api)), open_paths=("/healthz", "/readyz"), bypass=bypass,
                     on_reject=on_reject)


class TokenAuth:
    """WSGI wrapper: `--auth kubernetes` for a whole listener (see the module docstring)."""

    def __init__(self, app: Callable[[Environ, StartResponse], Iterable[bytes]], reviews: Reviews, *,
                 open_paths: Collection[str] = ("/healthz", "/readyz", "/livez"),
                 bypass: Callable[[Environ], bool] = lambda environ: False,
                 on_reject: Callable[[int], None] = lambda code: None) -> None:
        self._app = app
        self._reviews = reviews
        self._open = frozenset(open_paths)
        self._bypass = bypass
        self._on_reject = on_reject

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path in self._open or self._bypass(environ):
            return self._app(environ, start_response)
        try:
            token = bearer_token(environ.get("HTTP_AUTHORIZATION"))
            user = self._reviews.user(token) if token else None
            if user is None:
                return self._reject(start_response, 401, "unauthorized",
                                    "a bearer token the API server accepts (TokenReview) is required")
            allowed, reason = self._reviews.allowed(review_spec(
                user, {"nonResourceAttributes": {"path": path, "verb": "get"}}))
        except ReviewUnavailable as exc:
            return self._reject(start_response, 503, "unavailable",
                                f"cannot check the credentials: {exc} failed")
        if not allowed:
            why = f": {reason}" if reason else ""
            return self._reject(start_response, 403, "forbidden",
                                f'User "{user.name}" cannot get path "{path}"{why}')
        return self._app(environ, start_response)

    def _reject(self, start_response: StartResponse, code: int, error: str, description: str) -> list[bytes]:
        self._on_reject(code)
        body = json.dumps({"error": error, "description": description}).encode()
        status = {401: "401 Unauthorized", 403: "403 Forbidden", 503: "503 Service Unavailable"}[code]
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        if code == 401:
            headers.append(("WWW-Authenticate", 'Bearer realm="k8s-monitor"'))
        start_response(status, headers)
        return [body]
