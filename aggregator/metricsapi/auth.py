"""Delegated authentication and authorization, as an aggregated API server does it (metrics-server too).

Authentication, in this order:
1. Request headers: when the connection's client certificate chains to the request-header CA of
   `kube-system/extension-apiserver-authentication` (the TLS handshake checks the chain: that CA is the
   only one the listener trusts) and its common name is one of `requestheader-allowed-names` (any, when
   the list is empty), the user is `X-Remote-User`, the groups every `X-Remote-Group` (WSGI joins repeated
   headers with commas), extras `X-Remote-Extra-<key>` (header names from the ConfigMap). Without such a
   certificate these headers are ignored: anyone can send them.
2. `Authorization: Bearer <token>`: a TokenReview; answers cached `ttl` seconds by the token's SHA-256.
Nothing: 401. Then authorization: a SubjectAccessReview for the resource (`get`/`list` on
`pods`/`nodes` in `metrics.k8s.io`) or non-resource path (`get` on `/apis/...`); answers cached `ttl`
seconds. Denied: 403. `/healthz`, `/readyz` and `/livez` need nothing. An API server that cannot be asked
is a 503 Status (never cached, never a pass).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import falcon
from cryptography import x509
from cryptography.x509.oid import NameOID

from aggregator.metricsapi.status import StatusError
from aggregator.stats import AggregatorStats
from k8smon_common.kube import KubeError, get_json
from k8smon_common.kubeauth import (
    KubeReviewer,
    Reviewer,
    Reviews,
    ReviewUnavailable,
    User,
    bearer_token,
    review_spec,
)

__all__ = ["DelegatedAuth", "KubeReviewer", "RequestHeaderConfig", "User", "load_requestheader"]

log = logging.getLogger(__name__)
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/livez"})
CONFIGMAP = "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"
GROUP = "metrics.k8s.io"


@dataclass(frozen=True)
class RequestHeaderConfig:
    client_ca: str  # PEM of requestheader-client-ca-file
    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = ("X-Remote-User",)
    group_headers: tuple[str, ...] = ("X-Remote-Group",)
    extra_prefixes: tuple[str, ...] = ("X-Remote-Extra-",)


def _json_list(data: Mapping[str, str], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = data.get(key)
    if raw is None:
        return default
    value = json.loads(raw)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key} is not a JSON list of strings")
    return tuple(value)


def parse_configmap(doc: Mapping[str, Any]) -> RequestHeaderConfig:
    """The request-header settings from the ConfigMap; ValueError when it has no request-header CA."""
    data = doc.get("data") or {}
    ca = data.get("requestheader-client-ca-file", "")
    if "BEGIN CERTIFICATE" not in ca:
        raise ValueError("extension-apiserver-authentication has no requestheader-client-ca-file")
    return RequestHeaderConfig(
        client_ca=ca,
        allowed_names=_json_list(data, "requestheader-allowed-names", ()),
        username_headers=_json_list(data, "requestheader-username-headers", ("X-Remote-User",)),
        group_headers=_json_list(data, "requestheader-group-headers", ("X-Remote-Group",)),
        extra_prefixes=_json_list(data, "requestheader-extra-headers-prefix", ("X-Remote-Extra-",)),
    )


def load_requestheader(api: Any) -> RequestHeaderConfig:
    """Read the ConfigMap (the `extension-apiserver-authentication-reader` Role allows it); KubeError."""
    doc = get_json(api, CONFIGMAP, [])
    try:
        return parse_configmap(doc)
    except ValueError as exc:
        raise KubeError(f"kube-system/extension-apiserver-authentication: {exc}") from exc


def attributes(path: str) -> dict[str, Any]:
    """The SubjectAccessReview attributes of a GET: resourceAttributes for nodes/pods, else non-resource."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 4 and parts[:2] == ["apis", GROUP]:
        version, rest = parts[2], parts[3:]
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        if rest[0] in ("nodes", "pods") and len(rest) <= 2:
            attrs: dict[str, Any] = {"verb": "get" if len(rest) == 2 else "list", "group": GROUP,
                                     "version": version, "resource": rest[0]}
            if namespace is not None:
                attrs["namespace"] = namespace
            if len(rest) == 2:
                attrs["name"] = rest[1]
            return {"resourceAttributes": attrs}
    return {"nonResourceAttributes": {"path": path, "verb": "get"}}


def forbidden_message(user: User, attrs: dict[str, Any]) -> str:
    """The API server's wording for a denied request."""
    res = attrs.get("resourceAttributes")
    if res is None:
        return f'forbidden: User "{user.name}" cannot get path "{attrs["nonResourceAttributes"]["path"]}"'
    what = f'{res["resource"]}.{GROUP}' + (f' "{res["name"]}"' if "name" in res else "")
    where = f' in the namespace "{res["namespace"]}"' if "namespace" in res else " at the cluster scope"
    return (f'{what} is forbidden: User "{user.name}" cannot {res["verb"]} resource "{res["resource"]}" '
            f'in API group "{GROUP}"{where}')


def _common_name(pem: str) -> str | None:
    try:
        subject = x509.load_pem_x509_certificate(pem.encode()).subject
        names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return None
    return str(names[0].value) if names else None


class DelegatedAuth:
    """Falcon middleware: authenticate, then authorize, every request but the probes."""

    def __init__(self, config: RequestHeaderConfig, reviewer: Reviewer, *, stats: AggregatorStats,
                 ttl: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._reviews = Reviews(reviewer, ttl=ttl, clock=clock)
        self._stats = stats

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.path in OPEN_PATHS:
            return
        try:
            user = self.authenticate(req)
            if user is None:
                self._stats.error("metrics_api_unauthorized")
                raise StatusError(401, "Unauthorized",
                                  headers={"WWW-Authenticate": 'Bearer realm="k8s-monitor"'})
            attrs = attributes(req.path)
            allowed, reason = self._reviews.allowed(review_spec(user, attrs))
        except ReviewUnavailable as exc:
            self._stats.error("metrics_api_review")
            raise StatusError(503, f"cannot check the request's credentials: {exc} failed") from exc
        if not allowed:
            self._stats.error("metrics_api_forbidden")
            message = forbidden_message(user, attrs) + (f": {reason}" if reason else "")
            raise StatusError(403, message)
        req.context.user = user

    def authenticate(self, req: falcon.Request) -> User | None:
        user = self._from_headers(req)
        if user is not None:
            return user
        token = bearer_token(req.get_header("Authorization"))
        return self._reviews.user(token) if token else None

    def _from_headers(self, req: falcon.Request) -> User | None:
        env = req.env
        if env.get("SSL_CLIENT_VERIFY") != "SUCCESS":
            return None  # no certificate chaining to the request-header CA: the headers are anyone's
        name = _common_name(env.get("SSL_CLIENT_CERT", ""))
        if name is None or (self.config.allowed_names and name not in self.config.allowed_names):
            log.debug("client certificate %r is not an allowed request-header name", name)
            return None
        username = next((v for h in self.config.username_headers if (v := req.get_header(h))), None)
        if not username:
            return None
        groups = tuple(g.strip() for h in self.config.group_headers
                       for g in (req.get_header(h) or "").split(",") if g.strip())
        extra: dict[str, tuple[str, ...]] = {}
        for header, value in req.headers.items():
            for prefix in self.config.extra_prefixes:
                if header.upper().startswith(prefix.upper()):
                    key = urllib.parse.unquote(header[len(prefix):]).lower()
                    extra[key] = tuple(v.strip() for v in value.split(","))
        return User(username, groups, extra)
