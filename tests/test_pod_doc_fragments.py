"""The whole pod listing joined from cached per-pod JSON (views.PodDocCache.encoded) is the listing the
documents give: same pods, order, values and ages, with either JSON encoder, as pods change."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import orjson
import pytest

from aggregator.api.views import PodDocCache, json_dumps
from aggregator.model import ContainerReading
from aggregator.store.store import Store
from tests.test_api import make_world
from tests.test_store import Clock, node, pod, round_result

ENCODERS: dict[str, Callable[[object], bytes]] = {"json": json_dumps, "orjson": orjson.dumps}


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_joined_json_is_the_documents_as_pods_change(encoder: str) -> None:
    clock = Clock(1_700_000_000.0)
    store = Store(clock=clock)
    cache = PodDocCache(ENCODERS[encoder])
    reference = PodDocCache(ENCODERS[encoder])
    web = pod("web-1", "shop", dep="web", cpu_usage_cores=0.25, memory_working_set_bytes=2e8,
              cpu_request_cores=0.1)
    web = replace(web, containers=(ContainerReading("app", {"cpu_usage_cores": 0.2}),))
    for step in range(4):
        clock.now += 5.0 if step else 0.0
        pods = [web, pod('we"ird\\name', "odd", cpu_usage_cores=0.5 + step)]
        if step == 2:
            pods.append(pod("late", cpu_usage_cores=1.5))
        store.ingest(node("n1", clock.now - 0.25, *pods, cpu_usage_cores=1.0))
        if step == 3:
            clock.now += 1.7  # a request later in the round: every age moves, no document changes
        store.end_round(round_result(step + 1, clock.now))
        views = store.pod_listing().views
        joined = json.loads(b"".join(cache.encoded(views, now=clock.now, full=True)))
        assert joined == reference.docs(views, now=clock.now, full=True), step
        assert [d["pod_name"] for d in joined] == [v.pod for v in views]
        assert [d["age_seconds"] for d in joined] == [round(clock.now - v.sample.timestamp, 3) for v in views]


def test_an_empty_listing_is_an_empty_array() -> None:
    assert b"".join(PodDocCache().encoded([], now=0.0, full=True)) == b"[]"


@pytest.mark.parametrize("query", ["", "?namespace=default", "?limit=2&offset=1&sort=-cpu",
                                   "?namespace=none"])
def test_the_pods_route_answers_what_the_documents_say(query: str) -> None:
    world = make_world()
    got = world.client.simulate_get(f"/api/pods{query}")
    assert got.status_code == 200 and got.headers["content-type"].startswith("application/json")
    body = got.json
    now = world.store.now()
    listing = world.store.pod_listing()
    views = [v for v in listing.views if "namespace=" not in query or v.namespace == query.split("=")[1]]
    if "sort=-cpu" in query:
        views = sorted(views, key=lambda v: (-(v.sample.cpu_millicores or 0), v.namespace, v.pod))[1:3]
    assert body["pods"] == PodDocCache().docs(views, now=now, full=False)
    assert body["count"] == len(body["pods"])
