"""The fake API server, driven through the real kubernetes client and the real kubectl binary."""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import time
from collections.abc import Iterator

import kubernetes_validate
import pytest
import urllib3
from kubernetes import client, watch

from tests.kube import FakeKube, objects
from tests.support import require_tool, wait_until


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube(bookmark_interval=0.2) as fake:
        yield fake


@pytest.fixture
def core(kube: FakeKube) -> Iterator[client.CoreV1Api]:
    with kube.api_client() as api:
        yield client.CoreV1Api(api)


def _names(items: list) -> list[str]:
    return [item.metadata.name for item in items]


def test_list_deserializes_into_models_and_pages(kube: FakeKube, core: client.CoreV1Api) -> None:
    for i in range(5):
        kube.create(objects.pod(f"p{i}", "ns1", node="n1"))
    kube.create(objects.pod("other", "ns2", node="n1"))

    first = core.list_namespaced_pod("ns1", limit=2)
    assert isinstance(first, client.V1PodList)
    assert isinstance(first.items[0], client.V1Pod)
    assert _names(first.items) == ["p0", "p1"]
    assert first.metadata.remaining_item_count == 3
    assert int(first.metadata.resource_version) == kube.resource_version
    second = core.list_namespaced_pod("ns1", limit=2, _continue=first.metadata._continue)
    third = core.list_namespaced_pod("ns1", limit=2, _continue=second.metadata._continue)
    assert _names(second.items) + _names(third.items) == ["p2", "p3", "p4"]
    assert not third.metadata._continue
    assert _names(core.list_pod_for_all_namespaces().items) == ["p0", "p1", "p2", "p3", "p4", "other"]


def test_get_and_not_found_status(kube: FakeKube, core: client.CoreV1Api) -> None:
    created = kube.create(objects.pod("p", "ns1", node="n1"))
    pod = core.read_namespaced_pod("p", "ns1")
    assert pod.metadata.uid == created["metadata"]["uid"]
    assert pod.metadata.generation == 1
    assert pod.metadata.creation_timestamp is not None
    with pytest.raises(client.ApiException) as err:
        core.read_namespaced_pod("missing", "ns1")
    assert err.value.status == 404
    body = json.loads(err.value.body)
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "NotFound", 404)
    assert body["message"] == 'pods "missing" not found'


def test_watch_sees_added_modified_deleted_live(kube: FakeKube, core: client.CoreV1Api) -> None:
    rv = core.list_namespaced_pod("ns1").metadata.resource_version

    def writer() -> None:
        wait_until(lambda: any(c.verb == "watch" for c in kube.calls), timeout=10, message="watch opened")
        pod = kube.create(objects.pod("p", "ns1", node="n1"))
        pod["metadata"]["labels"] = {"changed": "yes"}
        kube.update(pod)
        kube.delete("v1", "Pod", "p", "ns1")

    thread = threading.Thread(target=writer)
    thread.start()
    seen = []
    try:
        for event in watch.Watch().stream(core.list_namespaced_pod, "ns1", resource_version=rv,
                                          timeout_seconds=30):
            assert isinstance(event["object"], client.V1Pod)
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                break
    finally:
        thread.join(timeout=10)
    assert seen == [("ADDED", "p"), ("MODIFIED", "p"), ("DELETED", "p")]


def test_concurrent_watchers_see_every_event_in_order(kube: FakeKube, core: client.CoreV1Api) -> None:
    count, watchers = 60, 3
    rv = str(kube.resource_version)
    seen: list[list[tuple[str, int]]] = [[] for _ in range(watchers)]

    def watcher(out: list[tuple[str, int]]) -> None:
        for event in watch.Watch().stream(core.list_namespaced_pod, "ns1", resource_version=rv,
                                          timeout_seconds=30):
            out.append((event["object"].metadata.name, int(event["object"].metadata.resource_version)))
            if len(out) == count:
                return

    threads = [threading.Thread(target=watcher, args=(out,)) for out in seen]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: kube.open_watches == watchers, timeout=10, message="all watches open")
        for i in range(count):
            kube.create(objects.pod(f"p{i:03}", "ns1", node="n1"))
    finally:
        for thread in threads:
            thread.join(timeout=30)
    expected = [(f"p{i:03}", int(rv) + 1 + i) for i in range(count)]
    assert seen == [expected] * watchers


def test_watch_resumes_after_a_resource_version(kube: FakeKube, core: client.CoreV1Api) -> None:
    first = kube.create(objects.pod("a", "ns1", node="n1"))
    kube.create(objects.pod("b", "ns1", node="n1"))
    first["metadata"]["labels"] = {"v": "2"}
    kube.update(first)
    events = [(e["type"], e["object"].metadata.name)
              for e in watch.Watch().stream(core.list_namespaced_pod, "ns1", timeout_seconds=1,
                                            resource_version=first["metadata"]["resourceVersion"])]
    assert events == [("ADDED", "b"), ("MODIFIED", "a")]
    # Without a version the watch starts with the current state as ADDED events.
    events = [(e["type"], e["object"].metadata.name)
              for e in watch.Watch().stream(core.list_namespaced_pod, "ns1", timeout_seconds=1)]
    assert events == [("ADDED", "a"), ("ADDED", "b")]


def test_watch_sends_bookmarks_and_ends_at_timeout(kube: FakeKube, core: client.CoreV1Api) -> None:
    kube.create(objects.pod("a", "ns1", node="n1"))
    rv = str(kube.resource_version)
    watcher = watch.Watch()
    started = time.monotonic()
    events = list(watcher.stream(core.list_namespaced_pod, "ns1", resource_version=rv,
                                 allow_watch_bookmarks=True, timeout_seconds=1))
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 10, "the server must end the stream itself after timeoutSeconds"
    assert len(events) >= 2
    assert {e["type"] for e in events} == {"BOOKMARK"}
    assert all(e["raw_object"]["metadata"] == {"resourceVersion": rv} for e in events)
    assert events[0]["raw_object"]["kind"] == "Pod"
    assert watcher.resource_version == rv
    # Without allowWatchBookmarks an idle watch stays silent.
    assert list(watch.Watch().stream(core.list_namespaced_pod, "ns1", resource_version=rv,
                                     timeout_seconds=1)) == []


def test_watch_from_compacted_version_is_410_expired(kube: FakeKube, core: client.CoreV1Api) -> None:
    old = core.list_namespaced_pod("ns1").metadata.resource_version
    kube.create(objects.pod("a", "ns1", node="n1"))
    kube.compact()
    # On the wire: HTTP 200, then one ERROR event whose object is a Status 410 Expired.
    resp = core.list_namespaced_pod("ns1", watch=True, resource_version=old, timeout_seconds=5,
                                    _preload_content=False)
    try:
        assert resp.status == 200
        lines = [json.loads(line) for line in resp.data.decode().splitlines()]
    finally:
        resp.release_conn()
    assert len(lines) == 1
    assert lines[0]["type"] == "ERROR"
    assert {k: lines[0]["object"][k] for k in ("kind", "code", "reason")} == {
        "kind": "Status", "code": 410, "reason": "Expired"}
    # The client's Watch turns that into ApiException 410 (with timeout_seconds it does not retry;
    # without it, it retries once from the same version, gets 410 again and raises the same way).
    for kwargs in ({"timeout_seconds": 5}, {}):
        with pytest.raises(client.ApiException) as err:
            list(watch.Watch().stream(core.list_namespaced_pod, "ns1", resource_version=old, **kwargs))
        assert err.value.status == 410
    # The current version still works.
    current = core.list_namespaced_pod("ns1").metadata.resource_version
    assert list(watch.Watch().stream(core.list_namespaced_pod, "ns1", resource_version=current,
                                     timeout_seconds=1)) == []


def test_history_is_bounded_per_resource() -> None:
    with FakeKube(history=3) as small:
        old = str(small.resource_version)
        for i in range(5):
            small.create(objects.pod(f"p{i}", "ns1", node="n1"))
        with small.api_client() as api, pytest.raises(client.ApiException) as err:
            list(watch.Watch().stream(client.CoreV1Api(api).list_namespaced_pod, "ns1", resource_version=old,
                                      timeout_seconds=1))
        assert err.value.status == 410
        with small.api_client() as api:
            # Pod churn does not expire a node watcher's version (one watch cache per resource).
            assert list(watch.Watch().stream(client.CoreV1Api(api).list_node, resource_version=old,
                                             timeout_seconds=1)) == []


def test_field_selectors(kube: FakeKube, core: client.CoreV1Api) -> None:
    kube.create(objects.pod("a", "ns1", node="n1"))
    kube.create(objects.pod("b", "ns1", node="n2"))
    kube.create(objects.pod("c", "ns2", node="n1", phase="Pending"))
    kube.create(objects.pod("d", "ns2", node=None, phase="Pending"))

    def names(selector: str) -> list[str]:
        return _names(core.list_pod_for_all_namespaces(field_selector=selector).items)

    assert names("spec.nodeName=n1") == ["a", "c"]
    assert names("spec.nodeName==n2") == ["b"]
    assert names("spec.nodeName!=n1") == ["b", "d"]
    assert names("spec.nodeName=") == ["d"]
    assert names("spec.nodeName=n1,metadata.namespace=ns2") == ["c"]
    assert names("metadata.name=b") == ["b"]
    assert names("status.phase=Pending,spec.nodeName!=n1") == ["d"]
    with pytest.raises(client.ApiException) as err:
        names("spec.bogus=1")
    assert err.value.status == 400
    events = [(e["type"], e["object"].metadata.name)
              for e in watch.Watch().stream(core.list_pod_for_all_namespaces,
                                            field_selector="spec.nodeName=n2", timeout_seconds=1)]
    assert events == [("ADDED", "b")]


def test_label_selectors_equality_and_set_based(kube: FakeKube, core: client.CoreV1Api) -> None:
    kube.create(objects.pod("a", "ns1", node="n1", labels={"app": "web", "tier": "front"}))
    kube.create(objects.pod("b", "ns1", node="n1", labels={"app": "db"}))
    kube.create(objects.pod("c", "ns1", node="n1", labels={"app": "cache", "tier": "back"}))
    kube.create(objects.pod("d", "ns1", node="n1"))

    def names(selector: str) -> list[str]:
        return _names(core.list_namespaced_pod("ns1", label_selector=selector).items)

    assert names("app=web") == ["a"]
    assert names("app==db") == ["b"]
    assert names("app!=web") == ["b", "c", "d"]
    assert names("app in (web, db)") == ["a", "b"]
    assert names("app notin (web)") == ["b", "c", "d"]
    assert names("tier") == ["a", "c"]
    assert names("!tier") == ["b", "d"]
    assert names("app in (web,cache),tier=back") == ["c"]
    with pytest.raises(client.ApiException) as err:
        names("app in ()")
    assert err.value.status == 400


def test_selector_watch_reports_objects_entering_and_leaving(kube: FakeKube, core: client.CoreV1Api) -> None:
    rv = str(kube.resource_version)
    pod = kube.create(objects.pod("p", "ns1", node="n1", labels={"app": "other"}))
    pod["metadata"]["labels"] = {"app": "web"}
    pod = kube.update(pod)
    pod["metadata"]["labels"] = {"app": "web", "extra": "1"}
    pod = kube.update(pod)
    pod["metadata"]["labels"] = {"app": "other"}
    left = kube.update(pod)
    events = [(e["type"], e["raw_object"]["metadata"]["labels"],
               e["raw_object"]["metadata"]["resourceVersion"])
              for e in watch.Watch().stream(core.list_namespaced_pod, "ns1", label_selector="app=web",
                                            resource_version=rv, timeout_seconds=1)]
    # As the API server's watch cache does: entering is ADDED, leaving is DELETED (previous state,
    # the event's resourceVersion).
    assert [(t, labels) for t, labels, _ in events] == [
        ("ADDED", {"app": "web"}), ("MODIFIED", {"app": "web", "extra": "1"}),
        ("DELETED", {"app": "web", "extra": "1"})]
    assert events[-1][2] == left["metadata"]["resourceVersion"]


def test_writes_conflicts_and_generation(kube: FakeKube, core: client.CoreV1Api) -> None:
    with kube.api_client() as api:
        apps = client.AppsV1Api(api)
        dep = apps.create_namespaced_deployment("shop", objects.deployment("web", "shop"))
        assert dep.metadata.generation == 1
        with pytest.raises(client.ApiException) as err:
            apps.create_namespaced_deployment("shop", objects.deployment("web", "shop"))
        assert (err.value.status, json.loads(err.value.body)["reason"]) == (409, "AlreadyExists")
        dep.metadata.labels = {"only": "metadata"}
        relabelled = apps.replace_namespaced_deployment("web", "shop", dep)
        assert relabelled.metadata.generation == 1
        assert int(relabelled.metadata.resource_version) > int(dep.metadata.resource_version)
        dep.spec.replicas = 5  # dep still carries the old resourceVersion
        with pytest.raises(client.ApiException) as err:
            apps.replace_namespaced_deployment("web", "shop", dep)
        assert (err.value.status, json.loads(err.value.body)["reason"]) == (409, "Conflict")
        relabelled.spec.replicas = 5
        scaled = apps.replace_namespaced_deployment("web", "shop", relabelled)
        assert (scaled.metadata.generation, scaled.spec.replicas) == (2, 5)
        assert scaled.metadata.uid == dep.metadata.uid
        assert scaled.metadata.creation_timestamp == dep.metadata.creation_timestamp
        status = apps.delete_namespaced_deployment("web", "shop")  # v37 types this as a plain object
        assert (status["kind"], status["status"]) == ("Status", "Success")
    with pytest.raises(client.ApiException) as err:
        core.delete_namespaced_pod("missing", "shop")
    assert err.value.status == 404


def test_request_bodies_are_consumed_on_every_answer(kube: FakeKube) -> None:
    body = json.dumps(objects.pod("p", "shop", node="n1"))
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {kube.token}"}
    conn = http.client.HTTPConnection("127.0.0.1", kube.port, timeout=10)
    try:
        kube.fail_next(1, status=503)
        conn.request("POST", "/api/v1/namespaces/shop/pods", body=body, headers=headers)
        answer = conn.getresponse()
        assert (answer.status, json.loads(answer.read())["reason"]) == (503, "ServiceUnavailable")
        # Same keep-alive connection: the rejected body must not be read as the next request.
        conn.request("POST", "/api/v1/namespaces/shop/pods", body=body, headers=headers)
        answer = conn.getresponse()
        assert (answer.status, json.loads(answer.read())["metadata"]["name"]) == (201, "p")
        conn.request("DELETE", "/api/v1/namespaces/shop/pods/p", headers=headers,
                     body=json.dumps({"kind": "DeleteOptions", "apiVersion": "v1",
                                      "propagationPolicy": "Background"}))
        answer = conn.getresponse()
        assert (answer.status, json.loads(answer.read())["kind"]) == (200, "Pod")
        conn.request("GET", "/api/v1/namespaces/shop/pods?limit=x", headers=headers)
        answer = conn.getresponse()
        assert (answer.status, json.loads(answer.read())["reason"]) == (400, "BadRequest")
        conn.request("GET", "/api/v1/namespaces/shop/pods", headers=headers)
        answer = conn.getresponse()
        assert (answer.status, json.loads(answer.read())["items"]) == (200, [])
    finally:
        conn.close()


def test_continue_token_expires_after_compaction(kube: FakeKube, core: client.CoreV1Api) -> None:
    for i in range(3):
        kube.create(objects.node(f"n{i}"))
    page = core.list_node(limit=1)
    core.list_node(limit=1, _continue=page.metadata._continue)  # compaction at the list's own version
    kube.compact()  # ... keeps it readable, as etcd does
    core.list_node(limit=1, _continue=page.metadata._continue)
    kube.create(objects.node("later"))
    kube.compact()
    with pytest.raises(client.ApiException) as err:
        core.list_node(limit=1, _continue=page.metadata._continue)
    assert (err.value.status, json.loads(err.value.body)["reason"]) == (410, "Expired")


def test_fail_next_answers_status_then_recovers(kube: FakeKube, core: client.CoreV1Api) -> None:
    kube.create(objects.node("n1"))
    kube.fail_next(2, status=500, path_contains="/pods")
    core.list_node()  # does not match path_contains: unaffected
    for _ in range(2):
        with pytest.raises(client.ApiException) as err:
            core.list_pod_for_all_namespaces()
        assert err.value.status == 500
        assert json.loads(err.value.body)["reason"] == "InternalError"
    assert core.list_pod_for_all_namespaces().items == []
    kube.fail_next(1, status=503)
    with pytest.raises(client.ApiException) as err:
        core.list_node()
    assert err.value.status == 503
    assert _names(core.list_node().items) == ["n1"]


def _watch_in_thread(core: client.CoreV1Api, outcome: dict) -> threading.Thread:
    def run() -> None:
        try:
            for event in watch.Watch().stream(core.list_namespaced_pod, "ns1", resource_version="1000"):
                outcome.setdefault("events", []).append(event["type"])
        except Exception as exc:  # the test asserts on what the client raised
            outcome["error"] = exc
        else:
            outcome["error"] = None

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_drop_watches_breaks_open_streams(kube: FakeKube, core: client.CoreV1Api) -> None:
    outcome: dict = {}
    thread = _watch_in_thread(core, outcome)
    try:
        wait_until(lambda: any(c.verb == "watch" for c in kube.calls), timeout=10, message="watch opened")
        kube.create(objects.pod("a", "ns1", node="n1"))
        wait_until(lambda: outcome.get("events"), timeout=10, message="first event delivered")
        kube.drop_watches()
    finally:
        thread.join(timeout=10)
    assert not thread.is_alive()
    # No terminating chunk: the client sees a broken connection, not a clean end of stream.
    assert isinstance(outcome["error"], urllib3.exceptions.ProtocolError)
    assert outcome["events"] == ["ADDED"]
    # New requests are served normally afterwards.
    assert _names(core.list_namespaced_pod("ns1").items) == ["a"]


def test_pause_refuses_connections_and_resume_keeps_port_and_objects(
        kube: FakeKube, core: client.CoreV1Api) -> None:
    kube.create(objects.pod("a", "ns1", node="n1"))
    url = kube.url
    outcome: dict = {}
    thread = _watch_in_thread(core, outcome)
    try:
        wait_until(lambda: any(c.verb == "watch" for c in kube.calls), timeout=10, message="watch opened")
        kube.pause()
        thread.join(timeout=10)
        assert isinstance(outcome["error"], urllib3.exceptions.ProtocolError)
        with pytest.raises(urllib3.exceptions.MaxRetryError) as err:
            core.list_namespaced_pod("ns1")
        assert isinstance(err.value.reason, urllib3.exceptions.NewConnectionError)
        kube.resume()
    finally:
        thread.join(timeout=10)
    assert kube.url == url
    assert _names(core.list_namespaced_pod("ns1").items) == ["a"]
    kube.create(objects.pod("b", "ns1", node="n1"))
    assert _names(core.list_namespaced_pod("ns1").items) == ["a", "b"]


def test_calls_are_recorded_with_kubernetes_verbs(kube: FakeKube, core: client.CoreV1Api) -> None:
    kube.create(objects.deployment("web", "shop"))
    kube.reset_calls()
    with kube.api_client() as api:
        apps = client.AppsV1Api(api)
        apps.read_namespaced_deployment("web", "shop")
        apps.list_replica_set_for_all_namespaces()
    created = core.create_namespaced_pod("shop", objects.pod("p", "shop", node="n1"))
    assert created.metadata.resource_version
    created.metadata.labels = {"x": "y"}
    core.replace_namespaced_pod("p", "shop", created)
    core.patch_namespaced_pod("p", "shop", {"metadata": {"labels": {"z": "1"}}})
    list(watch.Watch().stream(core.list_namespaced_pod, "shop", timeout_seconds=1))
    core.delete_namespaced_pod("p", "shop")
    with pytest.raises(client.ApiException):
        core.read_namespaced_pod("p", "shop")
    # Resources the fake does not serve are 404 but still recorded as what RBAC would see.
    with pytest.raises(client.ApiException) as err:
        core.list_namespaced_secret("shop")
    assert err.value.status == 404
    with pytest.raises(client.ApiException):
        core.read_namespaced_pod_log("p", "shop")
    got = [(c.verb, c.group, c.resource, c.namespace, c.name, c.status) for c in kube.calls]
    assert got == [
        ("get", "apps", "deployments", "shop", "web", 200),
        ("list", "apps", "replicasets", None, None, 200),
        ("create", "", "pods", "shop", None, 201),
        ("update", "", "pods", "shop", "p", 200),
        ("patch", "", "pods", "shop", "p", 200),
        ("watch", "", "pods", "shop", None, 200),
        ("delete", "", "pods", "shop", "p", 200),
        ("get", "", "pods", "shop", "p", 404),
        ("list", "", "secrets", "shop", None, 404),
        ("get", "", "pods/log", "shop", "p", 404),
    ]
    assert all(c.user_agent.startswith("OpenAPI-Generator/") and c.user == "tester" for c in kube.calls)
    assert kube.get("v1", "Pod", "p", "shop") is None


def test_wrong_token_is_unauthorized(kube: FakeKube) -> None:
    configuration = client.Configuration(host=kube.url, api_key={"authorization": "Bearer nope"})
    with client.ApiClient(configuration) as api, pytest.raises(client.ApiException) as err:
        client.CoreV1Api(api).list_node()
    assert err.value.status == 401
    with FakeKube(require_auth=True) as strict:
        with client.ApiClient(client.Configuration(host=strict.url)) as api, \
                pytest.raises(client.ApiException) as err:
            client.CoreV1Api(api).list_node()
        assert err.value.status == 401
        with strict.api_client() as api:
            assert client.CoreV1Api(api).list_node().items == []


def test_discovery_documents(kube: FakeKube) -> None:
    with kube.api_client() as api:
        assert client.VersionApi(api).get_code().git_version.startswith("v1.32")
        assert client.CoreApi(api).get_api_versions().versions == ["v1"]
        groups = {g.name: g.preferred_version.version for g in client.ApisApi(api).get_api_versions().groups}
        assert groups == {"apps": "v1", "discovery.k8s.io": "v1", "apiregistration.k8s.io": "v1"}
        core_resources = {r.name: r for r in client.CoreV1Api(api).get_api_resources().resources}
        assert {name: r.short_names for name, r in core_resources.items()} == {
            "namespaces": ["ns"], "nodes": ["no"], "pods": ["po"], "endpoints": ["ep"], "services": ["svc"],
            "configmaps": ["cm"]}
        assert core_resources["pods"].namespaced and not core_resources["nodes"].namespaced
        apps = {r.name: r.short_names for r in client.AppsV1Api(api).get_api_resources().resources}
        assert apps == {"replicasets": ["rs"], "deployments": ["deploy"]}
        slices = client.DiscoveryV1Api(api).get_api_resources().resources
        assert [(r.name, r.kind, "watch" in r.verbs) for r in slices] == [
            ("endpointslices", "EndpointSlice", True)]


def test_server_notices_a_watch_client_hanging_up(kube: FakeKube, core: client.CoreV1Api) -> None:
    kube.create(objects.pod("a", "ns1", node="n1"))
    for event in watch.Watch().stream(core.list_namespaced_pod, "ns1"):
        assert kube.open_watches == 1
        assert event["type"] == "ADDED"
        break  # closes the response: the client hangs up while the server has nothing to send
    wait_until(lambda: kube.open_watches == 0, timeout=10, message="server-side watch ended after hang-up")


def test_stop_joins_threads_even_with_open_watch() -> None:
    before = set(threading.enumerate())
    fake = FakeKube().start()
    kubeconfig = fake.kubeconfig
    outcome: dict = {}
    try:
        with fake.api_client() as api:
            thread = _watch_in_thread(client.CoreV1Api(api), outcome)
            wait_until(lambda: any(c.verb == "watch" for c in fake.calls), timeout=10, message="watch opened")
            fake.stop()
            thread.join(timeout=10)
    finally:
        fake.stop()
    assert isinstance(outcome["error"], urllib3.exceptions.ProtocolError)
    assert set(threading.enumerate()) <= before
    assert not kubeconfig.exists()


def _every_builder() -> list[dict]:
    dep = objects.deployment("web", "shop", replicas=2)
    rs = objects.replicaset("web-1", "shop", deployment=dep)
    return [
        objects.namespace("shop"),
        objects.node("n1", cpu="8", memory="32Gi"),
        objects.pod("p", "shop", node="n1", owner=rs, labels={"app": "web"}, pod_ip="10.244.0.9",
                    containers=[objects.container("app", requests={"cpu": "250m", "memory": "64Mi"},
                                                  limits={"memory": "128Mi"})]),
        objects.pod("pending", "shop", node=None, phase="Pending", host_network=True),
        objects.pod("short", "shop", node="n1",
                    containers=[{"requests": {"cpu": "1"}, "limits": {"cpu": "2"}},
                                {"name": "side", "limits": {"memory": "1Gi"}}]),
        dep, rs,
        objects.service("k8s-monitor-exporter", "k8s-monitor"),
        objects.service("k8s-monitor-aggregator", "k8s-monitor", port=5000, port_name="http", headless=False,
                        node_port=30500),
        objects.endpoints("k8s-monitor-exporter", "k8s-monitor", addresses=[("10.0.0.1", "n1")],
                          not_ready=[("10.0.0.2", "n2")], truncated=True),
        objects.endpoints("empty", "k8s-monitor"),
        objects.endpointslice("k8s-monitor-exporter-abc", "k8s-monitor", service="k8s-monitor-exporter",
                              endpoints=[("10.0.0.1", "n1", True), ("10.0.0.2", "n2", False)]),
    ]


def test_builders_and_stored_objects_match_the_kubernetes_schema(kube: FakeKube) -> None:
    for obj in _every_builder():
        kubernetes_validate.validate(obj, "1.32", strict=True)
        stored = kube.create(obj)
        kubernetes_validate.validate(stored, "1.32", strict=True)
    # The validator is not a rubber stamp.
    broken = objects.pod("bad", "shop", node="n1")
    broken["spec"]["bogus"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.32", strict=True)


def test_owner_references_and_endpoint_annotations(kube: FakeKube, core: client.CoreV1Api) -> None:
    dep = kube.create(objects.deployment("web", "shop"))
    rs = kube.create(objects.replicaset("web-1", "shop", deployment=dep))
    kube.create(objects.pod("p", "shop", node="n1", owner=rs))
    kube.create(objects.endpoints("e", "shop", addresses=[("10.0.0.1", "n1")], truncated=True))
    with kube.api_client() as api:
        got_rs = client.AppsV1Api(api).read_namespaced_replica_set("web-1", "shop")
    assert got_rs.metadata.owner_references[0].uid == dep["metadata"]["uid"]
    assert got_rs.metadata.owner_references[0].kind == "Deployment"
    pod = core.read_namespaced_pod("p", "shop")
    assert (pod.metadata.owner_references[0].kind, pod.metadata.owner_references[0].uid) == (
        "ReplicaSet", rs["metadata"]["uid"])
    ep = core.read_namespaced_endpoints("e", "shop")
    assert ep.metadata.annotations == {"endpoints.kubernetes.io/over-capacity": "truncated"}
    assert [(a.ip, a.node_name) for a in ep.subsets[0].addresses] == [("10.0.0.1", "n1")]
    assert ep.subsets[0].ports[0].name == "metrics"


def test_kubectl_get_prints_created_objects(kube: FakeKube, tmp_path) -> None:
    kubectl = require_tool("kubectl")
    kube.create(objects.node("node-a"))
    dep = kube.create(objects.deployment("web", "shop"))
    rs = kube.create(objects.replicaset("web-1", "shop", deployment=dep))
    kube.create(objects.pod("web-1-x", "shop", node="node-a", owner=rs))
    kube.create(objects.endpoints("k8s-monitor-exporter", "k8s-monitor", addresses=[("10.1.2.3", "node-a")]))

    def run(*args: str) -> str:
        result = subprocess.run([kubectl, "--kubeconfig", str(kube.kubeconfig), *args],
                                capture_output=True, text=True, timeout=60, check=False,
                                env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
        assert result.returncode == 0, result.stderr
        return result.stdout

    out = run("get", "nodes,pods,endpoints", "-A")
    for expected in ("node/node-a", "pod/web-1-x", "endpoints/k8s-monitor-exporter", "10.1.2.3:9100"):
        assert expected in out
    assert "web" in run("get", "deployments", "-A")
    assert _names_json(run("get", "pods", "-A", "-o", "json")) == ["web-1-x"]
    # Short names come from the discovery documents.
    out = run("get", "po,rs,deploy,ns,no,svc,ep", "-A")
    for expected in ("pod/web-1-x", "replicaset.apps/web-1", "deployment.apps/web", "node/node-a"):
        assert expected in out
    assert "web-1-x" in run("get", "pod", "web-1-x", "-n", "shop")
    # kubectl asked for aggregated discovery first and fell back to the legacy documents we serve.
    kubectl_paths = {c.path.split("?")[0] for c in kube.calls if c.user_agent.startswith("kubectl/")}
    assert {"/api", "/apis", "/api/v1", "/apis/apps/v1"} <= kubectl_paths
    assert all(c.status == 200 for c in kube.calls if c.user_agent.startswith("kubectl/"))


def test_kubectl_get_watch_prints_table_rows(kube: FakeKube, tmp_path) -> None:
    kubectl = require_tool("kubectl")
    kube.create(objects.pod("first", "shop", node="n1"))
    command = [kubectl, "--kubeconfig", str(kube.kubeconfig), "get", "pods", "-n", "shop", "-w"]
    lines: list[str] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          env={"HOME": str(tmp_path)}) as proc:
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()))
        reader.start()
        try:
            wait_until(lambda: kube.open_watches == 1, timeout=30, message="kubectl opened its watch")
            kube.create(objects.pod("second", "shop", node="n1"))
            wait_until(lambda: any(line.startswith("second ") for line in lines), timeout=30,
                       message=f"kubectl printed the watched pod; output so far {lines}")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            reader.join(timeout=10)
    # Server-side Table rows in watch events: the full pod columns, not kubectl's NAME/AGE fallback.
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert next(line for line in lines if line.startswith("second ")).split()[1:3] == ["1/1", "Running"]


def _names_json(text: str) -> list[str]:
    return [item["metadata"]["name"] for item in json.loads(text)["items"]]
