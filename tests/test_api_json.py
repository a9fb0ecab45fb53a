"""The JSON codec: orjson when installed (measured faster), stdlib fallback giving the same documents."""

from __future__ import annotations

import json
import time

import falcon
import orjson

from aggregator.api import views
from aggregator.api.app import json_handler
from tests.test_federation import build


def test_orjson_is_chosen_and_agrees_with_stdlib() -> None:
    store, _result, _stats = build(100, 30)
    now = store.now()
    doc = {"pods": [views.pod_doc(p, now=now) for p in store.pods()]}
    handler = json_handler()
    assert handler._dumps is orjson.dumps  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    fast = orjson.dumps(doc)
    t_orjson = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = json.dumps(doc, allow_nan=False).encode()
    t_json = time.perf_counter() - t0
    print(
        f"\n3000-pod listing: orjson {t_orjson * 1000:.1f} ms, json {t_json * 1000:.1f} ms "
        f"({len(fast) / 2**20:.1f} MiB)"
    )
    assert json.loads(fast) == json.loads(slow)


def test_stdlib_fallback_refuses_nan() -> None:
    """Views never emit NaN (unknown is null); the stdlib fallback would fail loudly rather than emit it."""
    store, _result, _stats = build(2, 3)
    text = falcon.media.JSONHandler(dumps=lambda o: json.dumps(o, allow_nan=False))._dumps(
        {"pods": [views.pod_doc(p, now=store.now()) for p in store.pods()]}
    )
    assert "NaN" not in text
