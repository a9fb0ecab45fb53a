"""List, selector and write-body handling shared by the list, watch and write routes."""

from __future__ import annotations

import base64
import binascii
import copy
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from tests.kube.resources import Resource
from tests.kube.selectors import (
    SelectorError,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from tests.kube.store import StatusError, Store, expired

if TYPE_CHECKING:
    from tests.kube.server import Route


def matcher(route: Route, query: dict[str, str]) -> Callable[[dict], bool]:
    """A predicate for namespace + labelSelector + fieldSelector; bad selectors are 400 BadRequest."""
    try:
        labels = parse_label_selector(query.get("labelSelector"))
        fields = parse_field_selector(query.get("fieldSelector"), allowed=route.resource.field_labels)
    except SelectorError as exc:
        raise StatusError(400, "BadRequest", f"unable to parse requirement: {exc}") from exc
    namespace = route.namespace

    def matches(obj: dict) -> bool:
        if namespace is not None and obj["metadata"].get("namespace") != namespace:
            return False
        return labels_match(labels, obj) and fields_match(fields, obj)

    return matches


def _encode_continue(rv: int, start: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_continue(token: str) -> tuple[int, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise StatusError(400, "BadRequest", f"continue key is not valid: {exc}") from exc


def _sort_key(obj: dict) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def strip_kind(obj: dict) -> dict:
    """List items on the wire carry no kind/apiVersion, as with a real server."""
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


def with_kind(resource: Resource, items: list[dict]) -> list[dict]:
    return [{"kind": resource.kind, "apiVersion": resource.api_version, **item} for item in items]


def list_body(store: Store, route: Route, query: dict[str, str]) -> dict:
    """The <Kind>List for a list request: current state, filtered, paged by limit/continue."""
    res = route.resource
    matches = matcher(route, query)
    items, rv = store.list(res, route.namespace)
    items = [o for o in items if matches(o)]
    token = query.get("continue")
    if token:
        rv, start = _decode_continue(token)
        if rv < store.compacted:
            raise expired("The provided continue parameter is too old to display a consistent list result. "
                          "You can start a new list without the continue parameter.")
        items = [o for o in items if _sort_key(o) > start]
    meta: dict = {"resourceVersion": str(rv)}
    try:
        limit = int(query.get("limit") or 0)
    except ValueError as exc:
        raise StatusError(400, "BadRequest", f"limit must be an integer: {exc}") from exc
    if limit > 0 and len(items) > limit:
        meta["continue"] = _encode_continue(rv, _sort_key(items[limit - 1]))
        meta["remainingItemCount"] = len(items) - limit
        items = items[:limit]
    return {"kind": res.list_kind, "apiVersion": res.api_version, "metadata": meta,
            "items": [strip_kind(o) for o in items]}


def body_for(resource: Resource, route: Route, body: dict) -> dict:
    """Check a POST/PUT body against its URL the way the server does and fill kind/apiVersion."""
    body.setdefault("kind", resource.kind)
    body.setdefault("apiVersion", resource.api_version)
    if (body["kind"], body["apiVersion"]) != (resource.kind, resource.api_version):
        raise StatusError(400, "BadRequest", f"the body is a {body['apiVersion']} {body['kind']}, "
                          f"not a {resource.api_version} {resource.kind}")
    meta = body.setdefault("metadata", {})
    if route.namespace is not None:
        if meta.get("namespace") not in (None, route.namespace):
            raise StatusError(400, "BadRequest", "the namespace of the provided object does not match "
                              "the namespace sent on the request")
        meta["namespace"] = route.namespace
    if route.name is not None and meta.get("name") != route.name:
        raise StatusError(400, "BadRequest", "the name of the object does not match the name on the URL")
    return body


def merge_patch(target: object, patch: object) -> object:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def patch(store: Store, route: Route, body: dict) -> dict:
    """PATCH as a JSON merge patch (strategic merge patches of these fields merge the same way)."""
    current = store.get(route.resource, route.name or "", route.namespace)
    patched = merge_patch(current, body)
    assert isinstance(patched, dict)
    patched["metadata"]["resourceVersion"] = body.get("metadata", {}).get(
        "resourceVersion", current["metadata"]["resourceVersion"])
    return store.update(patched)
