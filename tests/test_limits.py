"""Every configurable limit through the real aggregator: settings → scraper/service/API → store, counted.

Each test runs an in-process `Aggregator` (real waitress server, real scrape loop) against fake
exporters on 127.0.0.1 and checks three things: the limit holds, the breach is counted in
`k8smon_aggregator_errors_total{source=...}` on /metrics, and everything within the limits still works.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from aggregator.config import load
from aggregator.service import Aggregator
from k8smon_common.http_server import ServerHandle
from tests.aggregator_fakes import FakeExporters, FakeNode, render_exposition
from tests.support import wait_until

FAST = ["--listen", "127.0.0.1:0", "--scrape-interval", "0.3", "--scrape-timeout", "0.25",
        "--stale-after", "2"]
NOWHERE = "127.0.0.1:1"  # a static target that refuses connections: no Kubernetes, nothing scraped
TOKEN = "limits-test-token"


@contextmanager
def running(*args: str) -> Iterator[Aggregator]:
    agg = Aggregator(load([*FAST, *args], {}), environ={})
    agg.start()
    try:
        yield agg
    finally:
        agg.stop()


def get(agg: Aggregator, path: str) -> Any:
    with requests.get(agg.url + path, timeout=10, headers={"Connection": "close"}) as resp:
        assert resp.status_code == 200, (path, resp.status_code, resp.text[:300])
        return resp.json()


def errors(agg: Aggregator) -> dict[str, float]:
    """errors_total by source, read from the federated /metrics as a Prometheus server would."""
    with requests.get(agg.url + "/metrics", timeout=10, headers={"Connection": "close"}) as resp:
        text = resp.text
    out = {}
    for line in text.splitlines():
        if line.startswith("k8smon_aggregator_errors_total{"):
            labels, value = line.rsplit(" ", 1)
            out[labels.split('source="', 1)[1].split('"', 1)[0]] = float(value)
    return out


def counted(agg: Aggregator, source: str, at_least: float) -> float:
    """errors_total{source} once /metrics (rendered per round) shows at least `at_least`."""
    return wait_until(lambda: errors(agg).get(source, 0) >= at_least and errors(agg)[source], timeout=30,
                      message=f"errors_total{{source={source!r}}} >= {at_least}")


def rounds(agg: Aggregator) -> int:
    return int(agg.stats.snapshot()["counters"].get("rounds", 0))


def wait_rounds(agg: Aggregator, n: int) -> None:
    start = rounds(agg)
    wait_until(lambda: rounds(agg) >= start + n, timeout=30, message=f"{n} more scrape rounds")


def targets(agg: Aggregator) -> dict[str, dict[str, Any]]:
    return {t["target"]: t for t in get(agg, "/")["targets"]["items"]}


def test_max_series_per_target_marks_a_big_target_down_with_the_reason() -> None:
    nodes = [FakeNode("127.0.0.1", "small", pods=2), FakeNode("127.0.0.1", "big", pods=40)]
    with FakeExporters(nodes, interval=0.3) as fakes:
        small, big = (n.target for n in fakes.nodes)
        # small: 2 pods x 13 families + 13 node/exporter samples; big: 40 pods -> over 200 series
        with running("--targets", f"{small},{big}", "--max-series-per-target", "200") as agg:
            wait_rounds(agg, 2)
            status = targets(agg)
            assert status[small]["up"] is True
            assert status[big]["up"] is False
            assert status[big]["last_error"].startswith("too many series (")
            assert [n["node_name"] for n in get(agg, "/api/nodes")["nodes"]] == ["small"]
            counted(agg, "limit_series", 2)


class Exposition:
    """A WSGI app serving one fixed exposition text."""

    def __init__(self, text: str) -> None:
        self.body = text.encode()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4")])
        return [self.body]


def _hostile_exposition(node: str) -> str:
    good = render_exposition(node, pods=1, seq=1, timestamp=1_764_000_000.0).decode()
    long_pod = "x" * 300
    extra = ",".join(f'l{i}="v"' for i in range(12))
    return good + (
        f'k8smon_pod_memory_working_set_bytes{{node="{node}",namespace="shop",pod="{long_pod}",uid="u-long",'
        'owner_kind="",owner_name="",deployment=""} 1e6\n'
        f'k8smon_pod_memory_working_set_bytes{{node="{node}",namespace="shop",pod="many",uid="u-many",'
        f'owner_kind="",owner_name="",deployment="",{extra}}} 2e6\n'
    )


@contextmanager
def serving(text: str) -> Iterator[str]:
    with ServerHandle(Exposition(text), host="127.0.0.1", port=0, threads=2) as handle:
        yield f"127.0.0.1:{handle.port}"


def test_label_length_and_count_limits_drop_the_offending_pods_only() -> None:
    text = _hostile_exposition("labels-node")
    with serving(text) as target, running("--targets", target, "--max-label-length", "200",
                                          "--max-labels-per-series", "10") as agg:
        wait_rounds(agg, 2)
        assert targets(agg)[target]["up"] is True
        pods = {p["pod_name"] for p in get(agg, "/api/pods")["pods"]}
        assert "many" not in pods and "x" * 300 not in pods
        assert len(pods) == 1  # the exporter's own well-formed pod is kept
        counted(agg, "limit_labels", 4)  # two pods per round
    # Within the limits (the defaults: 1024 characters, 32 labels) the same pods are accepted.
    with serving(text) as target, running("--targets", target) as agg:
        wait_rounds(agg, 2)
        assert {"many", "x" * 300} <= {p["pod_name"] for p in get(agg, "/api/pods")["pods"]}
        assert "limit_labels" not in errors(agg)


def test_a_node_name_over_the_label_limit_makes_the_target_down() -> None:
    node = "n" * 80
    with serving(render_exposition(node, pods=1, seq=1, timestamp=1_764_000_000.0).decode()) as target, \
            running("--targets", target, "--max-label-length", "64") as agg:
        wait_rounds(agg, 2)
        status = targets(agg)[target]
        assert status["up"] is False and "longer than 64" in status["last_error"]
        assert get(agg, "/api/nodes")["nodes"] == []


def test_max_targets_scrapes_the_first_n_and_logs_the_breach_once(caplog: pytest.LogCaptureFixture) -> None:
    nodes = [FakeNode(f"127.0.0.{i}", f"node-{i}", pods=1) for i in (1, 2, 3)]
    with FakeExporters(nodes, interval=0.3) as fakes, caplog.at_level(logging.WARNING, "aggregator.service"):
        addresses = sorted(n.target for n in fakes.nodes)
        with running("--targets", ",".join(addresses), "--max-targets", "2") as agg:
            wait_rounds(agg, 3)
            assert sorted(targets(agg)) == addresses[:2]
            counted(agg, "limit_targets", 3)  # one skipped target per round
    breaches = [r for r in caplog.records if "--max-targets" in r.getMessage()]
    assert len(breaches) == 1, [r.getMessage() for r in breaches]


def _push(agg: Aggregator, body: bytes) -> requests.Response:
    return requests.post(agg.url + "/api/nodes/push-node/metrics", data=body, timeout=10,
                         headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json",
                                  "Connection": "close"})


def _node_body(pad: int) -> bytes:
    doc = {"node_name": "push-node", "cpu_millicores": 250, "memory_bytes": 1 << 30,
           "disk_io": {"read_bytes": 0, "write_bytes": 0}, "network_io": {"bytes_recv": 0, "bytes_sent": 0},
           # now: a push outside --max-push-skew is 400 (the length stays the same either way)
           "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    text = json.dumps(doc)
    return (text[:-1] + " " * pad + "}").encode()  # whitespace padding keeps it valid JSON


def test_max_body_bytes_answers_413_json_and_counts_it() -> None:
    with running("--targets", NOWHERE, "--ingest-token", TOKEN, "--max-body-bytes", "1KiB") as agg:
        ok = _push(agg, _node_body(1024 - len(_node_body(0))))
        assert len(ok.request.body) == 1024  # type: ignore[arg-type]
        assert ok.status_code == 201, ok.text
        too_big = _push(agg, _node_body(1025 - len(_node_body(0))))
        assert too_big.status_code == 413
        assert too_big.json()["error"] == "too_large" and "1024 bytes" in too_big.json()["description"]
        wait_until(lambda: errors(agg).get("limit_body") == 1, timeout=30,
                   message="the breach counted on /metrics (rendered once per round)")
        # Far past the limit waitress refuses the body before buffering it (1 MiB cap here).
        huge = _push(agg, b"[" + b" " * (2 << 20) + b"]")
        assert huge.status_code == 413
        assert get(agg, "/api/nodes/push-node")["node_name"] == "push-node"  # still serving


def test_query_window_is_bounded_by_the_retention_span() -> None:
    # 10 points x 0.3 s = 3 s of history
    with running("--targets", NOWHERE, "--retention-points", "10") as agg:
        with requests.get(agg.url + "/api/namespaces/shop/timeseries?window=4", timeout=10) as resp:
            assert resp.status_code == 400
            assert resp.json()["parameter"] == "window" and "retention span" in resp.json()["description"]
        with requests.get(agg.url + "/api/namespaces/shop/timeseries?window=3", timeout=10) as resp:
            assert resp.status_code == 404  # a valid window; the namespace just does not exist
