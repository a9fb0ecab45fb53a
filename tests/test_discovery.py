"""Discovery: target extraction, then the real kubernetes client against the fake API server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from aggregator.discovery import (
    KubeDiscovery,
    StaticDiscovery,
    endpoints_targets,
    is_truncated,
    slice_targets,
)
from aggregator.kube import KubeError, ServiceEndpointsApi, api_client
from aggregator.stats import AggregatorStats
from tests.kube import FakeKube, objects
from tests.support import wait_until

NS, SVC = "k8s-monitor", "k8s-monitor-exporter"


# --- pure extraction -------------------------------------------------------------------------------


def test_endpoints_ready_addresses_with_the_named_port() -> None:
    obj = objects.endpoints(SVC, NS, addresses=[("10.0.0.1", "n1"), ("10.0.0.2", "n2")],
                            not_ready=[("10.0.0.3", "n3")])
    assert endpoints_targets(obj, "metrics") == {"10.0.0.1:9100": "n1", "10.0.0.2:9100": "n2"}
    assert endpoints_targets(obj, "other") == {}
    assert endpoints_targets(obj, "metrics", ready=False) == {"10.0.0.3:9100": "n3"}
    obj["subsets"][0]["ports"] = [{"name": "http", "port": 80}, {"name": "metrics", "port": 9200}]
    assert set(endpoints_targets(obj, "metrics")) == {"10.0.0.1:9200", "10.0.0.2:9200"}
    # A Service with one unnamed port.
    obj["subsets"][0]["ports"] = [{"port": 9300}]
    assert set(endpoints_targets(obj, "metrics")) == {"10.0.0.1:9300", "10.0.0.2:9300"}
    assert endpoints_targets({}, "metrics") == {}
    v6 = {"subsets": [{"ports": [{"name": "metrics", "port": 9100}], "addresses": [{"ip": "fd00::1"}]}]}
    assert endpoints_targets(v6, "metrics") == {"[fd00::1]:9100": None}


def test_slice_ready_null_counts_as_ready() -> None:
    obj = objects.endpointslice("s1", NS, service=SVC,
                                endpoints=[("10.0.0.1", "n1", True), ("10.0.0.2", "n2", False)])
    obj["endpoints"].append({"addresses": ["10.0.0.4"], "nodeName": "n4", "conditions": {"ready": None}})
    obj["endpoints"].append({"addresses": ["10.0.0.5"], "nodeName": "n5"})
    assert slice_targets(obj, "metrics") == {"10.0.0.1:9100": "n1", "10.0.0.4:9100": "n4",
                                             "10.0.0.5:9100": "n5"}
    assert slice_targets(obj, "nope") == {}
    # not ready: ready false and not terminating (a terminating exporter is replaced, not waited for)
    obj["endpoints"].append({"addresses": ["10.0.0.6"], "nodeName": "n6",
                             "conditions": {"ready": False, "serving": False, "terminating": True}})
    assert slice_targets(obj, "metrics", ready=False) == {"10.0.0.2:9100": "n2"}
    assert "10.0.0.6:9100" not in slice_targets(obj, "metrics")


def test_truncation_annotation() -> None:
    assert is_truncated(objects.endpoints(SVC, NS, truncated=True))
    assert not is_truncated(objects.endpoints(SVC, NS))


def test_static_discovery() -> None:
    d = StaticDiscovery(["127.0.0.1:9100", "10.0.0.1:9100"])
    assert d.answered() and d.mode == "static"
    assert d.targets() == {"127.0.0.1:9100": None, "10.0.0.1:9100": None}


def test_api_client_without_config_is_a_project_error() -> None:
    with pytest.raises(KubeError, match="KUBERNETES_SERVICE_HOST"):
        api_client("", environ={})
    with pytest.raises(KubeError, match="cannot configure"):
        api_client("/nonexistent/kubeconfig")


# --- against the fake API server -------------------------------------------------------------------


@contextmanager
def discovering(kube: FakeKube, *, mode: str = "endpoints") -> Iterator[KubeDiscovery]:
    client = api_client(str(kube.kubeconfig))
    api = ServiceEndpointsApi(client, namespace=NS, service=SVC)
    d = KubeDiscovery(api, mode=mode, port_name="metrics", stats=AggregatorStats(), watch_timeout=5,
                      backoff_initial=0.1, backoff_max=0.5)
    d.start()
    try:
        yield d
    finally:
        d.stop(timeout=1)
        client.close()


def wait_targets(d: KubeDiscovery, expected: dict[str, str | None], message: str) -> None:
    wait_until(lambda: dict(d.targets()) == expected, timeout=10, message=f"{message}: want {expected}")


def ep(*ready: tuple[str, str], not_ready: tuple[tuple[str, str], ...] = (), truncated: bool = False) -> dict:
    return objects.endpoints(SVC, NS, addresses=ready, not_ready=not_ready, truncated=truncated)


def test_endpoints_added_removed_moved_and_deleted() -> None:
    with FakeKube() as kube:
        kube.create(objects.namespace(NS))
        kube.create(ep(("10.0.0.1", "n1"), not_ready=(("10.0.0.3", "n3"),)))
        kube.create(objects.endpoints("unrelated", NS, addresses=[("10.9.9.9", "x")]))
        with discovering(kube) as d:
            wait_targets(d, {"10.0.0.1:9100": "n1"}, "initial list")
            assert d.answered()
            kube.update(ep(("10.0.0.1", "n1"), ("10.0.0.2", "n2")))
            wait_targets(d, {"10.0.0.1:9100": "n1", "10.0.0.2:9100": "n2"}, "address added")
            kube.update(ep(("10.0.0.2", "n2"), not_ready=(("10.0.0.1", "n1"),)))
            wait_targets(d, {"10.0.0.2:9100": "n2"}, "address moved to notReady")
            assert dict(d.not_ready()) == {"10.0.0.1:9100": "n1"}
            kube.update(ep(("10.0.0.7", "n2")))
            wait_targets(d, {"10.0.0.7:9100": "n2"}, "pod replaced on the same node")
            kube.delete("v1", "Endpoints", SVC, NS)
            wait_targets(d, {}, "Endpoints deleted")
            kube.create(ep(("10.0.0.8", "n8")))
            wait_targets(d, {"10.0.0.8:9100": "n8"}, "Endpoints created again")


def test_no_endpoints_object_yet_still_answers() -> None:
    with FakeKube() as kube, discovering(kube) as d:
        wait_until(d.answered, timeout=10, message="discovery answered with no object")
        assert dict(d.targets()) == {}
        kube.create(ep(("10.0.0.1", "n1")))
        wait_targets(d, {"10.0.0.1:9100": "n1"}, "object created later")


def test_410_gone_relists() -> None:
    with FakeKube() as kube:
        kube.create(ep(("10.0.0.1", "n1")))
        with discovering(kube) as d:
            wait_targets(d, {"10.0.0.1:9100": "n1"}, "initial list")
            relists = d.relists
            kube.compact()
            kube.update(ep(("10.0.0.2", "n2")))
            kube.compact()
            kube.drop_watches()  # the watch resumes from a compacted version: 410 → relist
            wait_targets(d, {"10.0.0.2:9100": "n2"}, "after 410")
            wait_until(lambda: d.relists > relists, timeout=10, message="a relist after 410")
            kube.update(ep(("10.0.0.3", "n3")))
            wait_targets(d, {"10.0.0.3:9100": "n3"}, "watching again after the relist")


def test_dropped_watch_reconnects() -> None:
    with FakeKube() as kube:
        kube.create(ep(("10.0.0.1", "n1")))
        with discovering(kube) as d:
            wait_targets(d, {"10.0.0.1:9100": "n1"}, "initial list")
            for i in range(3):
                kube.drop_watches()
                kube.update(ep((f"10.0.1.{i}", "n1")))
                wait_targets(d, {f"10.0.1.{i}:9100": "n1"}, f"after dropped watch {i}")


def test_api_server_gone_then_back_keeps_targets_and_recovers() -> None:
    with FakeKube() as kube:
        kube.create(ep(("10.0.0.1", "n1")))
        with discovering(kube) as d:
            wait_targets(d, {"10.0.0.1:9100": "n1"}, "initial list")
            kube.pause()
            kube.update(ep(("10.0.0.2", "n2")))  # changes while discovery cannot see them
            wait_until(lambda: d._stats.snapshot()["errors"].get("discovery", 0) >= 2, timeout=10,
                       message="failed reconnects counted")
            assert dict(d.targets()) == {"10.0.0.1:9100": "n1"}, "last known targets are kept"
            kube.resume()
            wait_targets(d, {"10.0.0.2:9100": "n2"}, "after the API server came back")


def test_server_errors_are_retried() -> None:
    with FakeKube() as kube:
        kube.create(ep(("10.0.0.1", "n1")))
        kube.fail_next(3, status=500, path_contains="endpoints")
        with discovering(kube) as d:
            wait_targets(d, {"10.0.0.1:9100": "n1"}, "after three 500s")
            assert d._stats.snapshot()["errors"]["discovery"] >= 1


def test_truncated_endpoints_switch_to_slices() -> None:
    with FakeKube() as kube:
        kube.create(ep(("10.0.0.1", "n1")))
        kube.create(objects.endpointslice("s-a", NS, service=SVC, endpoints=[("10.0.0.1", "n1", True)]))
        kube.create(objects.endpointslice("s-b", NS, service=SVC,
                                          endpoints=[("10.0.0.2", "n2", True), ("10.0.0.3", "n3", False)]))
        kube.create(objects.endpointslice("other", NS, service="other-svc",
                                          endpoints=[("10.9.9.9", "x", True)]))
        with discovering(kube) as d:
            wait_targets(d, {"10.0.0.1:9100": "n1"}, "endpoints first")
            assert d.mode == "endpoints"
            kube.update(ep(("10.0.0.1", "n1"), truncated=True))
            wait_targets(d, {"10.0.0.1:9100": "n1", "10.0.0.2:9100": "n2"}, "merged slices")
            assert d.mode == "endpointslices"
            assert dict(d.not_ready()) == {"10.0.0.3:9100": "n3"}
            kube.update(objects.endpointslice("s-b", NS, service=SVC,
                                              endpoints=[("10.0.0.2", "n2", True), ("10.0.0.3", "n3", True)]))
            wait_targets(d, {"10.0.0.1:9100": "n1", "10.0.0.2:9100": "n2", "10.0.0.3:9100": "n3"},
                         "slice updated")
            assert dict(d.not_ready()) == {}
            kube.delete("discovery.k8s.io/v1", "EndpointSlice", "s-a", NS)
            wait_targets(d, {"10.0.0.2:9100": "n2", "10.0.0.3:9100": "n3"}, "slice deleted")


def test_endpointslices_mode_from_the_start() -> None:
    with FakeKube() as kube:
        kube.create(objects.endpointslice("s-a", NS, service=SVC, endpoints=[("10.0.0.1", "n1", True)]))
        with discovering(kube, mode="endpointslices") as d:
            wait_targets(d, {"10.0.0.1:9100": "n1"}, "slices listed")
            kube.create(objects.endpointslice("s-b", NS, service=SVC, endpoints=[("10.0.0.2", "n2", True)]))
            wait_targets(d, {"10.0.0.1:9100": "n1", "10.0.0.2:9100": "n2"}, "slice added")


def test_stop_interrupts_an_open_watch() -> None:
    with FakeKube() as kube:
        kube.create(ep(("10.0.0.1", "n1")))
        client = api_client(str(kube.kubeconfig))
        api = ServiceEndpointsApi(client, namespace=NS, service=SVC)
        d = KubeDiscovery(api, mode="endpoints", port_name="metrics", stats=AggregatorStats(),
                          watch_timeout=60)
        d.start()
        try:
            wait_targets(d, {"10.0.0.1:9100": "n1"}, "initial list")
            wait_until(lambda: kube.open_watches >= 1, timeout=10, message="a watch is open")
            t0 = time.monotonic()
            d.stop(timeout=5)
            assert time.monotonic() - t0 < 2, "stop waited for the watch to time out"
            assert d._thread is not None and not d._thread.is_alive()
        finally:
            d.stop(timeout=1)
            client.close()
