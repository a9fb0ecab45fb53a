"""Refused pushes are logged (status, reason, client address), rate-limited per client and overall."""

from __future__ import annotations

import json
import logging

import pytest
import requests

from aggregator.api.push import RejectLog
from k8smon_common.http_server import ServerHandle
from tests.test_api import TOKEN, World, make_world
from tests.test_ingest import node_body

LOGGER = "aggregator.api.push"


@pytest.fixture
def world() -> World:
    return make_world(rounds=1)


def _post(world: World, path: str, body: object, *, token: str | None = TOKEN, client: str = "10.1.2.3",
          query: str = "") -> int:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = world.client.simulate_post(path, body=raw, headers=headers, remote_addr=client, query_string=query)
    return r.status_code


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


@pytest.mark.parametrize(
    ("case", "status", "fragment"),
    [
        ("wrong token", 401, "401 Unauthorized: unauthorized: a valid 'Authorization: Bearer <token>'"),
        ("no token", 401, "401 Unauthorized: unauthorized"),
        ("bad body", 400, "400 Bad Request: invalid_body"),
        ("body contradicts path", 400, "(node_name)"),
        ("not json", 400, "the body is not valid JSON"),
        ("unknown query parameter", 400, "unknown query parameter 'dry_run'"),
    ],
)
def test_each_refusal_is_logged_with_reason_and_client(
    world: World, caplog: pytest.LogCaptureFixture, case: str, status: int, fragment: str
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    body: object = node_body(world, "n1")
    token: str | None = TOKEN
    query = ""
    if case == "wrong token":
        token = "guess"
    elif case == "no token":
        token = None
    elif case == "bad body":
        body = {**node_body(world, "n1"), "cpu_millicores": -5}
    elif case == "body contradicts path":
        body = node_body(world, "other")
    elif case == "not json":
        body = b"{nope"
    elif case == "unknown query parameter":
        query = "dry_run=1"
    assert _post(world, "/api/nodes/n1/metrics", body, token=token, query=query) == status
    (line,) = _lines(caplog)
    assert line.startswith("push refused: POST /api/nodes/n1/metrics from 10.1.2.3, ")
    assert fragment in line


def test_disabled_ingest_refusal_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    world = make_world(rounds=1, token="")
    caplog.set_level(logging.WARNING, logger=LOGGER)
    assert _post(world, "/api/namespaces/shop/pods/p1/metrics", {}, client="10.9.9.9") == 403
    (line,) = _lines(caplog)
    assert "from 10.9.9.9, 403 Forbidden: forbidden: push ingest is disabled" in line


def test_accepted_pushes_and_reads_are_not_logged(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    assert _post(world, "/api/nodes/n1/metrics", node_body(world, "n1")) == 201
    assert world.client.simulate_get("/api/nodes/nope").status_code == 404
    assert _lines(caplog) == []


def test_a_flood_from_one_client_is_one_line_per_interval(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    for _ in range(50):
        assert _post(world, "/api/nodes/n1/metrics", {}, token="guess") == 401
    assert _post(world, "/api/nodes/n1/metrics", {}, token="guess", client="10.7.7.7") == 401
    lines = _lines(caplog)
    assert len(lines) == 2  # one per client within the 10-s interval
    assert "from 10.1.2.3" in lines[0] and "from 10.7.7.7" in lines[1]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_suppressed_refusals_are_counted_into_the_next_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    clock = Clock()
    rejects = RejectLog(interval=10.0, max_lines=20, clock=clock)
    assert rejects.refused("10.0.0.1", "POST /x", "401 Unauthorized", "unauthorized")
    for _ in range(7):
        clock.now += 1
        assert not rejects.refused("10.0.0.1", "POST /x", "401 Unauthorized", "unauthorized")
    clock.now += 3  # 10 s after the first line
    assert rejects.refused("10.0.0.1", "POST /x", "400 Bad Request", "invalid_body")
    lines = _lines(caplog)
    assert len(lines) == 2
    assert "(7 more refused since the last line for this client)" in lines[1]
    assert "more refused" not in lines[0]


def test_many_clients_cannot_flood_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    clock = Clock()
    rejects = RejectLog(interval=10.0, max_lines=20, clock=clock)
    written = sum(rejects.refused(f"10.0.{i // 256}.{i % 256}", "POST /x", "401", "u") for i in range(500))
    assert written == 20 and len(_lines(caplog)) == 20
    clock.now += 10
    assert rejects.refused("10.0.0.200", "POST /x", "401", "u")  # a new interval, a new allowance
    assert "(1 more refused" in _lines(caplog)[-1]


def test_real_server_logs_the_peer_address(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    with ServerHandle(world.app, host="127.0.0.1", port=0) as server:
        r = requests.post(f"{server.url}/api/nodes/n1/metrics", json={}, timeout=10,
                          headers={"Authorization": "Bearer nope", "Connection": "close"})
        assert r.status_code == 401
    (line,) = _lines(caplog)
    assert "from 127.0.0.1, 401 Unauthorized" in line
