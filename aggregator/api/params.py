"""Path and query parameter validation (400 JSON naming the parameter)."""

from __future__ import annotations

import math
import re

import falcon

from aggregator.api.errors import BadParameter

# Kubernetes object names: DNS-1123 subdomains (nodes, pods, deployments) and labels (namespaces).
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def subdomain(name: str, parameter: str) -> str:
    """A node/pod/deployment name, or 400."""
    if len(name) > 253 or not _SUBDOMAIN.fullmatch(name):
        raise BadParameter(parameter, f"{parameter} must be a Kubernetes object name (DNS-1123 subdomain)")
    return name


def label(name: str, parameter: str) -> str:
    """A namespace name, or 400."""
    if len(name) > 63 or not _LABEL.fullmatch(name):
        raise BadParameter(parameter, f"{parameter} must be a Kubernetes namespace name (DNS-1123 label)")
    return name


def optional_namespace(req: falcon.Request) -> str | None:
    """`?namespace=` when given and not empty."""
    value = req.get_param("namespace")
    return None if value in (None, "") else label(value, "namespace")


def window(req: falcon.Request, *, default: float, maximum: float) -> float:
    """`?window=` seconds: a positive number no larger than the retention span."""
    raw = req.get_param("window")
    if raw is None:
        return min(default, maximum)
    try:
        value = float(raw)
    except ValueError:
        raise BadParameter("window", f"window must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise BadParameter("window", f"window must be a positive number of seconds, got {raw!r}")
    if value > maximum:
        raise BadParameter("window", f"window must be at most the retention span, {maximum:g} seconds")
    return value


class QueryGuard:
    """Middleware: a query parameter the route does not take is a 400 naming it, not silently ignored.

    Each resource lists what it takes in `query_params` (none when absent); CORS preflights pass.
    """

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, object]
    ) -> None:
        if resource is None or req.method == "OPTIONS":
            return
        allowed: frozenset[str] = getattr(resource, "query_params", frozenset())
        unknown = sorted(set(req.params) - allowed)
        if unknown:
            takes = ", ".join(sorted(allowed)) or "no query parameters"
            raise BadParameter(
                unknown[0], f"unknown query parameter {unknown[0]!r}; {req.path} takes {takes}"
            )
