"""OpenAPI: the document validates, matches its builder, covers every route; schemathesis on a live server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import falcon.inspect
import jsonschema
import pytest
import schemathesis
import schemathesis.checks
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.definitions import OPENAPI_30

from aggregator.api import openapi_build
from k8smon_common.http_server import ServerHandle
from tests.test_api import TOKEN, make_world

DOC_PATH = Path(__file__).resolve().parent.parent / "aggregator" / "openapi.json"
DOCUMENT = json.loads(DOC_PATH.read_text(encoding="utf-8"))
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)


def test_document_validates_against_the_openapi_30_schema() -> None:
    jsonschema.Draft4Validator(OPENAPI_30).validate(DOCUMENT)


def test_document_is_what_the_builder_writes() -> None:
    assert DOC_PATH.read_text(encoding="utf-8") == openapi_build.render(), (
        "aggregator/openapi.json is stale: run python -m aggregator.api.openapi_build"
    )


def test_every_route_and_method_is_documented() -> None:
    app = make_world(rounds=1).app
    served = {
        (route.path, m.method.lower())
        for route in falcon.inspect.inspect_routes(app)
        for m in route.methods
        if not m.internal and m.method != "OPTIONS" and not route.path.startswith("/ui")  # dashboard files
    }
    documented = {(path, method) for path, item in DOCUMENT["paths"].items() for method in item}
    # HEAD is answered on every GET route (as GET, without the body); the document says so once.
    heads = {(path, "head") for path, method in documented if method == "get"}
    assert heads <= served
    assert served - heads == documented
    assert "HEAD" in DOCUMENT["info"]["description"]


def test_every_error_status_has_the_error_schema() -> None:
    for path, item in DOCUMENT["paths"].items():
        for method, op in item.items():
            for code, resp in op["responses"].items():
                if code.startswith(("4", "5")):
                    ref = resp["$ref"].rsplit("/", 1)[-1]
                    body = DOCUMENT["components"]["responses"][ref]["content"]["application/json"]["schema"]
                    assert body == {"$ref": "#/components/schemas/Error"}, (path, method, code)


@pytest.fixture(scope="module")
def live_url() -> Iterator[str]:
    world = make_world()
    server = ServerHandle(world.app, host="127.0.0.1", port=0).start()
    try:
        yield server.url
    finally:
        server.stop()


@SCHEMA.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_live_api_conforms(case: schemathesis.Case, live_url: str) -> None:
    """No 5xx, and every answer (status, content type, body) matches the document."""
    if case.method == "POST":
        # A schema-valid push can still be refused with 400 for rules a schema cannot state (body
        # node_name equal to the path's node, timestamp not in the future), so only that check is off.
        case.call_and_validate(
            base_url=live_url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            excluded_checks=[schemathesis.checks.positive_data_acceptance],
        )
    else:
        case.call_and_validate(base_url=live_url)


HAPPY = [
    ("/", "/"),
    ("/healthz", "/healthz"),
    ("/readyz", "/readyz"),
    ("/openapi.json", "/openapi.json"),
    ("/api/nodes", "/api/nodes"),
    ("/api/nodes/{node}", "/api/nodes/node-a"),
    ("/api/nodes/{node}", "/api/nodes/node-b"),  # down node
    ("/api/nodes/{node}/pods", "/api/nodes/node-a/pods"),
    ("/api/nodes/{node}/timeseries", "/api/nodes/node-a/timeseries?window=60"),
    ("/api/pods", "/api/pods"),
    ("/api/pods/{pod}", "/api/pods/web-7d9f-abc12"),
    ("/api/pods/{pod}", "/api/pods/db-0"),  # 409
    ("/api/pods/{pod}/timeseries", "/api/pods/db-0/timeseries?namespace=shop"),
    ("/api/namespaces", "/api/namespaces"),
    ("/api/namespaces/{namespace}", "/api/namespaces/shop"),
    ("/api/namespaces/{namespace}/pods", "/api/namespaces/shop/pods"),
    ("/api/namespaces/{namespace}/timeseries", "/api/namespaces/shop/timeseries"),
    ("/api/namespaces/{namespace}/deployments", "/api/namespaces/shop/deployments"),
    ("/api/namespaces/{namespace}/deployments/{deployment}", "/api/namespaces/shop/deployments/web"),
    (
        "/api/namespaces/{namespace}/deployments/{deployment}/pods",
        "/api/namespaces/shop/deployments/web/pods",
    ),
    ("/api/deployments/{deployment}/timeseries", "/api/deployments/web/timeseries"),
    ("/api/nodes/{node}/timeseries", "/api/nodes/node-a/timeseries?window=abc"),  # 400
]


@pytest.mark.parametrize(("template", "url"), HAPPY, ids=[u for _, u in HAPPY])
def test_populated_answers_match_the_document(live_url: str, template: str, url: str) -> None:
    """Schemathesis mostly generates unknown names (404); this checks real, populated answers too."""
    import requests

    response = requests.get(live_url + url, timeout=10)
    assert response.status_code < 500
    SCHEMA[template]["GET"].validate_response(response)
