"""Pod documents made in the helper process (aggregator/api/docworker.py): the same bytes as made
in-process, whole listings made there, and every way the child can fail (cannot start, dies, hangs,
answers garbage or an error) ending in a log line, a counted error and the documents made in-process,
so a listing is never lost or different."""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import signal
import struct
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace

import pytest

from aggregator.api import docworker, views
from aggregator.api.app import api_dumps
from aggregator.api.docworker import DocWorker, pod_fields, pod_view
from aggregator.api.views import PodDocCache, pod_doc
from aggregator.model import ContainerReading
from aggregator.stats import AggregatorStats
from aggregator.store.store import Store
from aggregator.store.views import PodView
from bench.round_bench import readings, round_result
from tests.test_store import Clock, node, pod
from tests.test_store import round_result as one_round


def _in_process(pods: list[PodView]) -> list[bytes]:
    dumps = api_dumps()
    out = []
    for p in pods:
        doc = pod_doc(p, now=p.last_seen)
        del doc["age_seconds"]
        out.append(dumps(doc)[1:])
    return out


def _odd_pods() -> list[PodView]:
    """Pods that exercise every branch of a document: containers, escapes, a first reading (no rates),
    host network, unnamed pods, no requests."""
    clock = Clock(1_700_000_000.0)
    store = Store(clock=clock)
    web = replace(pod("web-1", "shop", dep="web", cpu_usage_cores=0.25, memory_working_set_bytes=2e8,
                      cpu_request_cores=0.1, memory_limit_bytes=5e8, host_network=1.0),
                  containers=(ContainerReading("app", {"cpu_usage_cores": 0.2, "memory_request_bytes": 1e8}),
                              ContainerReading("side", {})))
    for step in range(2):
        clock.now += 5.0 * step
        store.ingest(node("n1", clock.now, web,
                          pod('we"ird\\näme', "odd", cpu_usage_cores=0.5 + step,
                              network_receive_bytes_total=9e3 * step),
                          pod("", "", uid="0b7e-uid", memory_usage_bytes=12345.5)))
        if step:
            store.ingest(node("n2", clock.now, pod("new", "fresh", cpu_seconds_total=3.0)))
        store.end_round(one_round(step + 1, clock.now))
    return list(store.pod_listing().views)


def _many_pods(nodes: int = 40, pods: int = 30) -> list[PodView]:
    store = Store(clock=lambda: 1_700_000_020.0, interval=5.0)
    for seq in (1, 2):
        for r in readings(nodes, pods, seq, containers=2):
            store.ingest(r)  # type: ignore[arg-type]
        store.end_round(round_result(nodes, seq, samples=0))
    return list(store.pod_listing().views)


@pytest.fixture
def worker() -> Iterator[DocWorker]:
    w = DocWorker(stats=AggregatorStats(), retry_after=0.0)
    yield w
    w.close()


def test_fields_rebuild_the_same_pod() -> None:
    for p in _odd_pods():
        assert pod_view(pickle.loads(pickle.dumps(pod_fields(p)))) == p


def test_the_child_makes_the_bytes_made_in_process(worker: DocWorker) -> None:
    pods = _odd_pods() + _many_pods()  # 1200+ pods: three batches, the last one short
    assert len(pods) > 2 * docworker.BATCH
    assert worker.encode(pods) == _in_process(pods)
    assert (worker.started, worker.pods_encoded) == (1, len(pods))
    assert worker.encode(pods[:3]) == _in_process(pods[:3])  # the same child, again
    assert worker.started == 1
    assert worker.encode([]) == []


def test_a_whole_listing_is_made_in_the_child_and_small_ones_here(worker: DocWorker) -> None:
    pods = _many_pods()
    with_worker = PodDocCache(api_dumps(), worker=worker)
    alone = PodDocCache(api_dumps())
    assert with_worker.encoded(pods, now=1_700_000_030.0, full=True) == alone.encoded(
        pods, now=1_700_000_030.0, full=True)
    assert worker.pods_encoded == len(pods) >= views.WORKER_MIN
    # Cached now: the same listing again makes nothing; a part smaller than WORKER_MIN never asks it.
    with_worker.encoded(pods, now=1_700_000_031.0, full=True)
    fresh = PodDocCache(api_dumps(), worker=worker)
    part = pods[: views.WORKER_MIN - 1]
    assert fresh.encoded(part, now=1_700_000_031.0, full=False) == alone.encoded(
        part, now=1_700_000_031.0, full=False)
    assert worker.pods_encoded == len(pods)


def _errors(w: DocWorker) -> float:
    assert w._stats is not None
    return w._stats.snapshot()["errors"].get("listing_worker", 0)


def test_a_killed_child_means_documents_made_here_then_a_new_child(
    worker: DocWorker, caplog: pytest.LogCaptureFixture
) -> None:
    pods = _many_pods(nodes=2)
    assert worker.encode(pods) is not None
    pid = worker.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while worker._proc is not None and worker._proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    cache = PodDocCache(api_dumps(), worker=worker)
    with caplog.at_level(logging.WARNING, logger="aggregator.api.docworker"):
        listing = cache.encoded(pods * 20, now=1_700_000_030.0, full=False)  # 1200 pods: asks the child
    assert listing == PodDocCache(api_dumps()).encoded(pods * 20, now=1_700_000_030.0, full=False)
    assert "listing worker: the worker exited with status -9" in caplog.text
    assert _errors(worker) == 1
    # retry_after=0: the next call starts a new child, which answers.
    assert worker.encode(pods) == _in_process(pods)
    assert worker.started == 2 and worker.pid not in (None, pid)


# A child that takes one request as the real one does, then answers something else.
READ = ("import sys, struct, time; n = struct.unpack('>Q', sys.stdin.buffer.read(8))[0]; "
        "sys.stdin.buffer.read(n); ")
FRAME = "struct.pack('>Q', len(d)) + d"
SEND = "sys.stdout.buffer.write({}); sys.stdout.flush(); time.sleep(30)"


@pytest.mark.parametrize(
    ("script", "why"),
    [
        ("import time; time.sleep(30)", "the worker stopped reading"),  # the request fills the pipe
        (READ + "time.sleep(30)", "no answer in time"),
        (READ + "sys.exit(0)", "the worker closed its output|Broken pipe"),
        (READ + SEND.format("struct.pack('>Q', 5) + b'junk!'"),
         "an answer that is not a pickle (UnpicklingError"),
        (READ + "import pickle; d = pickle.dumps(('ok', [b'x'])); " + SEND.format(FRAME),
         "an answer of the wrong shape"),
        (READ + "import pickle; d = pickle.dumps(('no', 'why')); " + SEND.format(FRAME),
         "it failed: why"),
        (READ + SEND.format("struct.pack('>Q', 1 << 40)"), "a frame of 1099511627776 bytes announced"),
    ],
    ids=["never-reads", "never-answers", "exits", "garbage", "wrong-length", "error", "huge-frame"],
)
def test_a_child_that_misbehaves_is_ended_and_the_documents_made_here(
    script: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    w = DocWorker(stats=AggregatorStats(), timeout=1.0, retry_after=60.0,
                  command=[sys.executable, "-c", script])
    try:
        pods = _many_pods(nodes=40, pods=30)
        cache = PodDocCache(api_dumps(), worker=w)
        with caplog.at_level(logging.WARNING, logger="aggregator.api.docworker"):
            got = cache.encoded(pods, now=1_700_000_030.0, full=True)
        assert got == PodDocCache(api_dumps()).encoded(pods, now=1_700_000_030.0, full=True)
        assert any(part in caplog.text for part in why.split("|")), caplog.text
        assert _errors(w) == 1 and w.pid is None  # ended, not left running
        # Within retry_after nothing is started again: the next listing is made here at once.
        assert w.encode(pods) is None and w.started == 1
    finally:
        w.close()


def test_a_child_that_cannot_start_is_an_error_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    w = DocWorker(stats=AggregatorStats(), command=["/nonexistent/python"])
    with caplog.at_level(logging.WARNING, logger="aggregator.api.docworker"):
        assert w.encode(_odd_pods()) is None
    assert "cannot start it" in caplog.text and _errors(w) == 1 and w.started == 0


def _frame_from(stream: io.BytesIO) -> object:
    (length,) = struct.unpack(">Q", stream.read(8))
    return pickle.loads(stream.read(length))


def test_a_batch_the_child_cannot_make_is_answered_as_an_error_and_the_next_one_made() -> None:
    good = [pod_fields(p) for p in _odd_pods()]
    bad = [(*good[0][:9], {"cpu_usage_cores": "not a number"}, *good[0][10:])]
    src = io.BytesIO(docworker._frame(bad) + docworker._frame(good))
    out = io.BytesIO()
    docworker.serve(src, out)  # returns at the end of its input
    answers = io.BytesIO(out.getvalue())
    first, second = (_frame_from(answers) for _ in range(2))
    assert first[0] == "error" and "TypeError" in first[1]
    assert second == ("ok", _in_process(_odd_pods()))


def test_close_ends_the_child_and_nothing_starts_after(worker: DocWorker) -> None:
    assert worker.encode(_odd_pods()) is not None
    proc = worker._proc
    assert proc is not None
    worker.close()
    assert proc.poll() == 0  # its stdin closed: it left its loop
    assert worker.encode(_odd_pods()) is None and worker.started == 1


@pytest.mark.parametrize("enabled", [True, False], ids=["listing-worker", "in-process"])
def test_the_aggregator_makes_whole_listings_in_its_child_and_ends_it(
    enabled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service's wiring: a whole listing of at least WORKER_MIN pods (lowered to this cluster's
    120) starts the child, the listing served is every pod's document, and stopping ends the child;
    `--listing-worker false` starts none."""
    from aggregator.config import load
    from aggregator.service import Aggregator
    from bench.cluster import FakeCluster
    from tests.support import wait_until

    monkeypatch.setattr(views, "WORKER_MIN", 100)
    with FakeCluster(4, 30, interval=0.5, processes=1) as cluster:
        settings = load(["--listen", "127.0.0.1:0", "--kubeconfig", cluster.kubeconfig, "--scrape-interval",
                         "0.5", "--listing-worker", str(enabled).lower()], {})
        agg = Aggregator(settings).start()
        try:
            def listed() -> bool:
                with urllib.request.urlopen(f"{agg.url}/api/pods", timeout=10) as resp:
                    body = json.load(resp)
                return body["count"] == 120 and agg.warmer.prepared >= 2

            wait_until(listed, timeout=30, message="a whole listing of 120 pods, prepared twice")
            with urllib.request.urlopen(f"{agg.url}/api/pods", timeout=10) as resp:
                pods = json.load(resp)["pods"]
            assert len({(p["namespace"], p["pod_name"]) for p in pods}) == 120
            assert all(p["cpu_millicores"] is not None and p["human"]["cpu"] for p in pods)
            worker = agg.doc_worker
            if enabled:
                assert worker is not None and worker.pods_encoded >= 120 and worker.started == 1
                pid = worker.pid
                assert pid is not None
            else:
                assert worker is None
        finally:
            agg.stop()
        if enabled:
            with pytest.raises(ProcessLookupError):  # ended and reaped
                os.kill(pid, 0)
