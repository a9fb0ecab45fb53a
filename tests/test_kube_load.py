"""The load both components put on a misbehaving API server is bounded (issue 10, item 9).

The exporter's pod index and the aggregator's discovery share one list+watch loop
(k8smon_common.kube.ListWatch). Against the fake API server (tests/kube/) with the product's default
backoff (0.5 s initial, doubling, 30 s cap), each of four faults runs for WINDOW seconds with both
components watching, all four scenarios at once on their own fake servers:
- every watch ends at once with no events (before: the aggregator re-watched with no delay, 113 watch
  requests in 5 s);
- every watch request answers 500 while lists succeed (before: the aggregator's backoff reset after each
  successful list, so it listed and watched again every 0.25-0.5 s);
- every request answers 429, or 500, or 429 with `Retry-After: 2` (then no request comes sooner).
The schedule allows at most MAX_REQUESTS per component in the window: the list, then one request after
each backoff delay of at least 0.25, 0.5, 1 and 2 s (3.75 s in all; the next comes after 7.75 s).
A loaded machine can only make fewer. The figures are printed (`pytest -s`).
"""

from __future__ import annotations

import ast
import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path

from aggregator.discovery import KubeDiscovery
from aggregator.kube import ServiceEndpointsApi, api_client
from aggregator.stats import AggregatorStats
from exporter.podindex import PodIndex, api_client_from
from exporter.sampler import CountingErrors
from k8smon_common.kube import KubeError, ListWatch
from tests.kube import FakeKube, objects
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[1]
NS, SVC, NODE = "monitoring", "k8smon-exporter", "n1"
WINDOW = 5.0
MAX_REQUESTS = 6

FAULTS: dict[str, Callable[[FakeKube], None]] = {
    "watch ends at once": lambda kube: kube.limit_watches(0),
    "watch answers 500 forever": lambda kube: kube.fail_next(10**9, 500, path_contains="watch=true"),
    "every request 429": lambda kube: kube.fail_next(10**9, 429),
    "every request 500": lambda kube: kube.fail_next(10**9, 500),
    "every request 429, Retry-After 2": lambda kube: kube.fail_next(10**9, 429, retry_after=2),
}


def run_scenario(name: str, fault: Callable[[FakeKube], None], out: dict[str, dict[str, object]]) -> None:
    with FakeKube() as kube:
        kube.create(objects.namespace(NS))
        kube.create(objects.endpoints(SVC, NS, addresses=[("10.0.0.1", NODE)]))
        kube.create(objects.pod("app-0", "default", node=NODE))
        fault(kube)
        aggregator_client = api_client(str(kube.kubeconfig))
        exporter_client = api_client_from(str(kube.kubeconfig), {})
        stats = AggregatorStats()
        discovery = KubeDiscovery(ServiceEndpointsApi(aggregator_client, namespace=NS, service=SVC),
                                  mode="endpoints", port_name="metrics", stats=stats)
        index = PodIndex(node=NODE, api_client=exporter_client, errors=CountingErrors())
        kube.reset_calls()
        started = time.monotonic()
        discovery.start()
        index.start()
        try:
            time.sleep(WINDOW)  # the measurement window itself: requests are counted over it
            calls = [c for c in kube.calls if c.at - started <= WINDOW]
        finally:
            discovery.stop(timeout=5)
            index.stop(timeout=5)
            aggregator_client.close()
            exporter_client.close()
        out[name] = {
            "aggregator": [c.verb for c in calls if c.resource == "endpoints"],
            "exporter": [c.verb for c in calls if c.resource == "pods"],
            "aggregator_at": [c.at for c in calls if c.resource == "endpoints"],
            "exporter_at": [c.at for c in calls if c.resource == "pods"],
            "targets": dict(discovery.targets()),
            "pods": len(index.pods()),
        }


def test_a_misbehaving_api_server_sees_a_bounded_request_rate() -> None:
    out: dict[str, dict[str, object]] = {}
    threads = [threading.Thread(target=run_scenario, args=(name, fault, out), name=name)
               for name, fault in FAULTS.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WINDOW + 30)
    assert set(out) == set(FAULTS), "a scenario did not finish"
    for name, got in out.items():
        for component in ("aggregator", "exporter"):
            verbs = got[component]
            assert isinstance(verbs, list)
            print(f"{name:34} {component:10} {len(verbs):3} requests in {WINDOW:.0f} s "
                  f"({len(verbs) / WINDOW:.1f}/s): {', '.join(verbs)}")
            assert 1 <= len(verbs) <= MAX_REQUESTS, f"{name}: {component} sent {verbs}"
    # Retry-After is honoured: never sooner than the server asked (the first request is the first list).
    for component in ("aggregator", "exporter"):
        at = out["every request 429, Retry-After 2"][f"{component}_at"]
        assert isinstance(at, list) and len(at) <= 3
        assert min(b - a for a, b in itertools.pairwise(at)) >= 1.95, at
    # Where lists succeed, both still did their job.
    for name in ("watch ends at once", "watch answers 500 forever"):
        assert out[name]["targets"] == {"10.0.0.1:9100": NODE}
        assert out[name]["pods"] == 1
        # Once listed, a failing watch is retried from its resourceVersion: no relist.
        assert out[name]["aggregator"].count("list") == 1  # type: ignore[union-attr]
        assert out[name]["exporter"].count("list") == 1  # type: ignore[union-attr]


def test_a_long_healthy_watch_is_followed_at_once_and_a_410_relists_at_once() -> None:
    """The guard must not slow the normal cases: a watch that ends after its timeout is renewed at once,
    and a 410 after it relists at once."""
    with FakeKube(bookmark_interval=0.2) as kube:
        kube.create(objects.namespace(NS))
        kube.create(objects.endpoints(SVC, NS, addresses=[("10.0.0.1", NODE)]))
        client = api_client(str(kube.kubeconfig))
        discovery = KubeDiscovery(ServiceEndpointsApi(client, namespace=NS, service=SVC), mode="endpoints",
                                  port_name="metrics", stats=AggregatorStats(), watch_timeout=2,
                                  backoff_initial=5.0)  # any backoff would show as a 2.5-5 s pause
        discovery.start()
        try:
            wait_until(lambda: kube.open_watches == 1, timeout=10, message="watching")
            kube.reset_calls()
            time.sleep(4)  # watches asking timeoutSeconds=1 end after 1 s each and are renewed at once
            watches = [c.at for c in kube.calls if c.verb == "watch"]
            assert len(watches) >= 3, watches
            assert max(b - a for a, b in itertools.pairwise(watches)) < 2.0
            kube.fail_next(1, 410, path_contains="watch=true")  # the next watch: resourceVersion expired
            wait_until(lambda: any(c.verb == "list" for c in kube.calls), timeout=4, message="relisted")
            gone = next(c.at for c in kube.calls if c.status == 410)
            relist = next(c.at for c in kube.calls if c.verb == "list")
            assert 0 <= relist - gone < 1.0
        finally:
            discovery.stop(timeout=5)
            client.close()


def test_a_callback_that_raises_is_reported_and_the_loop_lists_again() -> None:
    with FakeKube() as kube:
        kube.create(objects.endpoints(SVC, NS, addresses=[("10.0.0.1", NODE)]))
        client = api_client(str(kube.kubeconfig))
        errors: list[KubeError] = []
        lists: list[int] = []

        def on_list(items: list[dict]) -> None:
            lists.append(len(items))
            if len(lists) == 1:
                raise RuntimeError("bug in the caller")

        loop = ListWatch(client, what="endpoints", request=lambda: (f"/api/v1/namespaces/{NS}/endpoints", []),
                         on_list=on_list, on_event=lambda kind, obj: None, on_error=errors.append,
                         backoff_initial=0.05)
        thread = threading.Thread(target=loop.run, daemon=True)
        thread.start()
        try:
            wait_until(lambda: len(lists) >= 2 and kube.open_watches == 1, timeout=10,
                       message="listed again and watching after the callback failed")
            assert [str(e) for e in errors] == [
                "endpoints: callback failed: RuntimeError('bug in the caller')"]
        finally:
            loop.stop()
            thread.join(5)
            client.close()
        assert not thread.is_alive()


def test_only_the_shared_module_imports_kubernetes() -> None:
    importers = []
    for package in ("exporter", "aggregator", "k8smon_common"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(n == "kubernetes" or n.startswith("kubernetes.") for n in names):
                    importers.append(str(path.relative_to(ROOT)))
    assert sorted(set(importers)) == ["k8smon_common/kube.py"]
