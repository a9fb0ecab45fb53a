"""API clients for the aggregator benchmark: K processes polling every GET route, timing each answer.

Each client is its own process (no client shares a GIL with another or with the aggregator) with one
keep-alive connection; it goes through every route in turn, each time for a random node, pod,
namespace or deployment of the simulated cluster, and times from sending the request to the last
byte of the body. The one-entity routes a dashboard polls most (one node or pod document and its
300-s timeseries) come DOC_WEIGHT times per turn so their p99 rests on enough answers.

A client polls like a dashboard refreshing every `period` seconds: one turn of every route per
period, its requests spread evenly over it (a late answer delays the next request, never bunches
them). `period` 0: back to back, as fast as the server answers (a saturation test, not polling).
The first turn's answers are kept apart (`cold`): the first whole listing after nobody asked for one
builds every pod's document (~1-3 s at 30k pods), which a polling dashboard pays once; the
latencies are those of the turns after it, as the rounds' figures come after warm-up rounds.

    latencies, cold, errors = poll(url, nodes=1000, pods=30, seconds=30, clients=4, period=5.0)
"""

from __future__ import annotations

import http.client
import json
import os
import random
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC_WEIGHT = 5
# The one-entity routes with their 300-s timeseries (target: p99 <= 20 ms), then the full pod listing.
DOC_ROUTES = (
    "/api/nodes/{node}",
    "/api/nodes/{node}/timeseries?window=300",
    "/api/pods/{pod}?namespace={ns}",
    "/api/pods/{pod}/timeseries?namespace={ns}&window=300",
)
LISTING_ROUTE = "/api/pods"
OTHER_ROUTES = (
    "/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/api/nodes",
    "/api/nodes/{node}/pods",
    "/api/pods?sort=-cpu&limit=50",
    "/api/namespaces",
    "/api/namespaces/{ns}",
    "/api/namespaces/{ns}/pods",
    "/api/namespaces/{ns}/timeseries?window=300",
    "/api/namespaces/{ns}/deployments",
    "/api/namespaces/{ns}/deployments/{deployment}",
    "/api/namespaces/{ns}/deployments/{deployment}/pods",
    "/api/deployments/{deployment}/timeseries?namespace={ns}&window=300",
)
ROUTES = (*DOC_ROUTES, LISTING_ROUTE, *OTHER_ROUTES)


def _turn(rng: random.Random) -> list[str]:
    routes = [*ROUTES, *[r for r in DOC_ROUTES for _ in range(DOC_WEIGHT - 1)]]
    rng.shuffle(routes)
    return routes


def entity(rng: random.Random, nodes: int, pods: int) -> dict[str, str]:
    from bench.cluster import node_name
    from tests.aggregator_fakes import pod_identity

    node = node_name(rng.randrange(nodes))
    ids = [pod_identity(node, i) for i in range(pods)]
    _n, ns, pod, *_rest = rng.choice(ids)
    with_deployment = [i for i in ids if i[6]] or ids
    _n, dns, _p, *_r, deployment = rng.choice(with_deployment)
    # Deployment routes take the namespace of a pod that has the deployment.
    return {"node": node, "ns": ns, "pod": pod, "deployment": deployment or "none", "dns": dns}


def url_path(route: str, e: dict[str, str]) -> str:
    """`route` for the entity `e` (from `entity`)."""
    ns = e["dns"] if "{deployment}" in route else e["ns"]
    return route.format(node=e["node"], ns=ns, pod=e["pod"], deployment=e["deployment"])


def client(
    url: str, *, nodes: int, pods: int, seconds: float, seed: int, period: float, min_turns: int = 0
) -> dict[str, object]:
    """Poll until `seconds` pass and at least `min_turns` whole turns are done (a short run on a slow
    machine still measures every route after the first turn); {route template: [seconds...]} and the
    first errors."""
    rng = random.Random(seed)
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    times: dict[str, list[float]] = {r: [] for r in ROUTES}
    cold: dict[str, list[float]] = {r: [] for r in ROUTES}
    turns = 0
    errors: list[str] = []
    stop = time.monotonic() + seconds
    due = time.monotonic() + rng.uniform(0, period)  # the clients' turns do not start in step
    while time.monotonic() < stop or turns < min_turns:
        turn = _turn(rng)
        kept = cold if turns == 0 else times
        for route in turn:
            time.sleep(max(0.0, due - time.monotonic()))
            due = max(due, time.monotonic()) + period / len(turn)
            if time.monotonic() >= stop and turns >= min_turns:
                break
            target = url_path(route, entity(rng, nodes, pods))
            t0 = time.perf_counter()
            try:
                conn.request("GET", target)
                resp = conn.getresponse()
                resp.read()
            except (OSError, http.client.HTTPException) as exc:
                errors.append(f"{target}: {exc!r}")
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
                continue
            elapsed = time.perf_counter() - t0
            if resp.status != 200:
                errors.append(f"{target}: HTTP {resp.status}")
            else:
                kept[route].append(elapsed)
            if resp.will_close:
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        turns += 1
    conn.close()
    return {"times": times, "cold": cold, "errors": errors[:20], "error_count": len(errors)}


def poll(
    url: str, *, nodes: int, pods: int, seconds: float, clients: int = 4, period: float = 5.0,
    min_turns: int = 0,
) -> tuple[dict[str, list[float]], dict[str, list[float]], list[str]]:
    """Run `clients` client processes at once; every route's latencies after each client's first
    turn, those of the first turns, and the first errors."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-m", "bench.api_load", url, str(nodes), str(pods),
                               str(seconds), str(k), str(period), str(min_turns)],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
             for k in range(clients)]
    merged: dict[str, list[float]] = {r: [] for r in ROUTES}
    cold: dict[str, list[float]] = {r: [] for r in ROUTES}
    errors: list[str] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 300)
        doc = json.loads(out)
        for route, values in doc["times"].items():
            merged[route].extend(values)
        for route, values in doc["cold"].items():
            cold[route].extend(values)
        if doc["error_count"]:
            errors.append(f"{doc['error_count']} errors, first: {doc['errors'][0]}")
    return merged, cold, errors


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    url_, nodes_, pods_, seconds_, seed_, period_, min_turns_ = sys.argv[1:8]
    doc = client(url_, nodes=int(nodes_), pods=int(pods_), seconds=float(seconds_), seed=int(seed_),
                 period=float(period_), min_turns=int(min_turns_))
    print(json.dumps(doc))
