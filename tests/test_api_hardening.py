"""API hardening over every route: 405 with Allow, 404 JSON, bad names 400, token checks, no stack trace.

The route table comes from `aggregator.api.app.routes`, so a route added later is covered without
editing this file. Internal errors are forced with a Store whose methods fail (a fake, not a patch)
and observed through a real waitress server, exactly as a client would see them.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import falcon
import falcon.testing
import pytest

from aggregator.api.app import create_app, routes
from aggregator.api.context import ApiContext
from aggregator.api.errors import INTERNAL_ERROR
from aggregator.api.push import PushAuth
from aggregator.federation import FederationCache
from aggregator.ingest import PushIngest
from aggregator.stats import AggregatorStats
from aggregator.store.listing import PodListing
from aggregator.store.store import Store
from aggregator.store.views import NodeView, PodView
from k8smon_common.http_server import ServerHandle
from tests.aggregator_fakes import FakeStatus

TOKEN = "s3cret-token-value"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
BAD_SUBDOMAINS = ("Bad_Name", "a..b", "-leading", "trailing-", "UPPER", "x" * 254, "sp ace", "é")
BAD_LABELS = ("has.dot", "Bad_Name", "-x", "x" * 64)
PARAM = re.compile(r"\{(\w+)\}")


def make_app(store: Store | None = None, *, token: str = TOKEN) -> tuple[falcon.App, AggregatorStats]:
    stats = AggregatorStats()
    store = store if store is not None else Store()
    federation = FederationCache(store=store, stats=stats, version="t")
    app = create_app(store=store, status=FakeStatus(), federation=federation, stats=stats, ingest_token=token,
                     started_at=time.time(), version="t")
    return app, stats


def _templates() -> list[tuple[str, set[str]]]:
    """Every route template with the methods its resource answers (besides OPTIONS)."""
    store, stats = Store(), AggregatorStats()
    federation = FederationCache(store=store, stats=stats, version="t")
    ctx = ApiContext(store=store, status=FakeStatus(), federation=federation, stats=stats, default_window=300,
                     started_at=0, version="t")
    out = []
    ingest = PushIngest(store=store, stats=stats)
    for template, resource in routes(ctx, ingest=ingest, auth=PushAuth("", stats)):
        out.append((template, {m for m in METHODS if hasattr(resource, f"on_{m.lower()}")}))
    return out


TEMPLATES = _templates()


def _fill(template: str, **values: str) -> str:
    return PARAM.sub(lambda m: values.get(m.group(1), "ok-name"), template)


def _assert_json_error(resp: falcon.testing.Result, status: int, error: str) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    assert resp.headers["content-type"].startswith("application/json")
    doc = json.loads(resp.content)
    assert doc["error"] == error, doc
    assert isinstance(doc["description"], str) and doc["description"]
    return doc


@pytest.mark.parametrize(("template", "allowed"), TEMPLATES, ids=[t for t, _ in TEMPLATES])
def test_wrong_methods_are_405_json_with_allow(template: str, allowed: set[str]) -> None:
    app, _ = make_app()
    client = falcon.testing.TestClient(app)
    path = _fill(template)
    for method in set(METHODS) - allowed:
        resp = client.simulate_request(method, path)
        doc = _assert_json_error(resp, 405, "method_not_allowed")
        allow = {m.strip() for m in resp.headers["allow"].split(",")}
        head = {"HEAD"} if "GET" in allowed else set()  # HEAD is answered wherever GET is
        assert allow == allowed | head | {"OPTIONS"}, (method, path, allow)
        assert set(doc["allowed"]) == allow and method in doc["description"]


@pytest.mark.parametrize("path", ["/nope", "/api", "/api/node", "/API/nodes", "/api/nodes/a/b/c",
                                  "/api/pods/p/timeseries/extra", "/metrics/x", "/%00",
                                  "/api/nodes/a/%2e%2e/x"])
def test_unknown_routes_are_404_json(path: str) -> None:
    app, _ = make_app()
    for method in ("GET", "POST", "DELETE"):
        _assert_json_error(falcon.testing.TestClient(app).simulate_request(method, path), 404, "not_found")


@pytest.mark.parametrize(("template", "allowed"), [t for t in TEMPLATES if PARAM.search(t[0])],
                         ids=[t for t, _ in TEMPLATES if PARAM.search(t)])
def test_path_parameters_that_are_not_kubernetes_names_are_400(template: str, allowed: set[str]) -> None:
    app, _ = make_app()
    client = falcon.testing.TestClient(app)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    for name in PARAM.findall(template):
        for bad in BAD_LABELS if name == "namespace" else BAD_SUBDOMAINS:
            path = _fill(template, **{name: bad})
            for method in allowed:
                resp = client.simulate_request(method, path, headers=headers, body=b"{}")
                doc = _assert_json_error(resp, 400, "invalid_parameter")
                assert doc["parameter"] == name, (path, doc)


@pytest.mark.parametrize("query", ["namespace=Bad_Name", "namespace=x.y", "window=abc", "window=-5",
                                   "window=nan", "window=inf", "window=1e999", "window=0"])
def test_bad_query_parameters_are_400(query: str) -> None:
    app, _ = make_app()
    resp = falcon.testing.TestClient(app).simulate_get("/api/pods/web/timeseries", query_string=query)
    doc = _assert_json_error(resp, 400, "invalid_parameter")
    assert doc["parameter"] == query.split("=", maxsplit=1)[0]


def test_ingest_token_checks() -> None:
    body = b"{}"
    app, stats = make_app()
    client = falcon.testing.TestClient(app)
    path = "/api/nodes/node-a/metrics"

    def post(authorization: str | None) -> falcon.testing.Result:
        headers = {"Content-Type": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        return client.simulate_post(path, body=body, headers=headers)

    wrong = [None, "", "Bearer", f"Basic {TOKEN}", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x",
             f"Bearer x{TOKEN}", f"Bearer {TOKEN.upper()}", "Bearer " + "é" * 20, f"Token {TOKEN}",
             "Bearer " + TOKEN * 100]
    for auth in wrong:
        resp = post(auth)
        _assert_json_error(resp, 401, "unauthorized")
        assert resp.headers["www-authenticate"].startswith("Bearer")
    assert stats.snapshot()["errors"]["ingest_auth"] == len(wrong)
    # The right token passes authentication (the empty body then fails validation: 400, not 401).
    _assert_json_error(post(f"Bearer {TOKEN}"), 400, "invalid_body")
    _assert_json_error(post(f"bearer {TOKEN}"), 400, "invalid_body")  # the scheme is case-insensitive
    # Without a configured token pushing is disabled, whatever the client sends.
    disabled, _ = make_app(token="")
    for auth in (None, "Bearer ", f"Bearer {TOKEN}"):
        headers = {"Content-Type": "application/json", **({"Authorization": auth} if auth else {})}
        resp = falcon.testing.TestClient(disabled).simulate_post(path, body=body, headers=headers)
        _assert_json_error(resp, 403, "forbidden")


class FailingStore(Store):
    """A store whose listings fail the two ways a bug could: raising, and returning what JSON cannot hold."""

    def pods(self, **kw: Any) -> list[PodView]:
        raise RuntimeError("secret detail in /srv/aggregator/store/store.py line 42")

    def pod_listing(self) -> PodListing:  # what the pod listings read
        raise RuntimeError("secret detail in /srv/aggregator/store/store.py line 42")

    def nodes(self, *, pod_counts: bool = True) -> list[NodeView]:
        return [NodeView(name=object(), status="up", last_error=None, source="scrape",  # type: ignore[arg-type]
                         last_seen=0.0, down_since=None, sample=None, pod_count=0)]


@contextmanager
def serving(app: falcon.App) -> Iterator[ServerHandle]:
    with ServerHandle(app, host="127.0.0.1", port=0, threads=2) as handle:
        yield handle


def _raw(
    handle: ServerHandle,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    chunked: bool = False,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", handle.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Connection": "close", **(headers or {})},
                     encode_chunked=chunked)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_internal_errors_are_a_plain_500_json_without_a_stack_trace(caplog: pytest.LogCaptureFixture) -> None:
    app, stats = make_app(FailingStore())
    with serving(app) as handle, caplog.at_level(logging.ERROR, logger="aggregator.api.errors"):
        for path in ("/api/pods", "/api/nodes", "/api/pods?namespace=shop"):
            status, headers, body = _raw(handle, "GET", path)
            assert status == 500, (path, body)
            assert headers["content-type"].startswith("application/json")
            assert json.loads(body) == INTERNAL_ERROR, (path, body)
            for leak in (b"Traceback", b"secret", b"/srv/", b".py", b"object at 0x", b"RuntimeError"):
                assert leak not in body, (path, leak)
    assert stats.snapshot()["errors"]["api"] == 3
    assert "secret detail" in caplog.text and "Traceback" in caplog.text  # the operator gets the details


def test_bodies_over_the_wire_oversized_chunked_non_json() -> None:
    app, _ = make_app()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with serving(app) as handle:
        path = "/api/nodes/node-a/metrics"
        # Chunked, no Content-Length: the limit is enforced on what arrives.
        chunks = iter([b"[" * 40_000, b" " * 40_000, b"]" * 10])
        status, _, body = _raw(handle, "POST", path, body=chunks,  # type: ignore[arg-type]
                               headers={**auth, "Content-Type": "application/json"}, chunked=True)
        assert status == 413 and json.loads(body)["error"] == "too_large"
        status, _, body = _raw(handle, "POST", path, body=b"node_name=a",
                               headers={**auth, "Content-Type": "application/x-www-form-urlencoded"})
        assert status == 415 and json.loads(body)["error"] == "unsupported_media_type"
        status, _, body = _raw(handle, "POST", path, body=b'{"node_name": ',
                               headers={**auth, "Content-Type": "application/json"})
        assert status == 400 and json.loads(body)["error"] == "invalid_body"
