"""deploy/overlays/auth: `--auth kubernetes` on both components, auth-delegator for both ServiceAccounts,
reader and scraper ClusterRoles; rendered, validated, and the settings the workloads get accept it."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.config import load as load_aggregator
from exporter.config import load as load_exporter
from tests.support.deploy import (
    DEPLOY,
    Obj,
    assert_valid,
    find,
    literal_env,
    object_key,
    render,
    render_with_components,
)
from tests.test_deploy_manifests import AGGREGATOR, EXPORTER, NAMESPACE, SCHEMA_VERSIONS

COMPONENT = DEPLOY / "overlays" / "auth"


@pytest.fixture(scope="module")
def objs(tmp_path_factory: pytest.TempPathFactory) -> list[Obj]:
    return render_with_components(tmp_path_factory.mktemp("my-monitor"), COMPONENT)


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_every_object_validates(objs: list[Obj], version: str) -> None:
    assert_valid(objs, version)


def test_both_components_run_with_auth_and_may_review(objs: list[Obj]) -> None:
    aggregator = load_aggregator([], {**literal_env(find(objs, "Deployment", AGGREGATOR)), "NODE_NAME": "n"})
    env = {k: v for k, v in literal_env(find(objs, "DaemonSet", EXPORTER)).items()
           if not k.endswith(("_ROOT", "_ROOTFS"))}  # in-pod host paths this machine does not have
    exporter = load_exporter([], {**env, "NODE_NAME": "n"})
    assert aggregator.auth == exporter.auth == "kubernetes"
    binding = find(objs, "ClusterRoleBinding", "k8s-monitor:system:auth-delegator")
    assert binding["roleRef"]["name"] == "system:auth-delegator"
    assert {(s["name"], s["namespace"]) for s in binding["subjects"]} == {(AGGREGATOR, NAMESPACE),
                                                                         (EXPORTER, NAMESPACE)}
    reader = find(objs, "ClusterRole", "k8s-monitor-reader")["rules"][0]
    assert reader["verbs"] == ["get"] and {"/api/*", "/metrics", "/ui/*"} <= set(reader["nonResourceURLs"])
    assert find(objs, "ClusterRole", "k8s-monitor-metrics-scraper")["rules"] == [
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    base = {(o["kind"], o["metadata"]["name"]) for o in render(DEPLOY)}
    assert {(o["kind"], o["metadata"]["name"]) for o in objs} - base == {
        ("ClusterRoleBinding", "k8s-monitor:system:auth-delegator"), ("ClusterRole", "k8s-monitor-reader"),
        ("ClusterRole", "k8s-monitor-metrics-scraper")}


def test_servicemonitors_send_the_service_account_token_with_the_prometheus_component(
    tmp_path: Path,
) -> None:
    """deploy/prometheus/auth: each ServiceMonitor endpoint gains the pod's token file; nothing else moves."""
    prometheus = DEPLOY / "prometheus"
    plain = render(prometheus)
    with_auth = render_with_components(tmp_path, prometheus / "auth", base=prometheus)
    assert sorted(map(object_key, with_auth)) == sorted(map(object_key, plain))
    monitors = [o for o in with_auth if o["kind"] == "ServiceMonitor"]
    assert {o["metadata"]["name"] for o in monitors} == {AGGREGATOR, EXPORTER}
    token = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    for monitor in monitors:
        assert [e.get("bearerTokenFile") for e in monitor["spec"]["endpoints"]] == [token]
        monitor["spec"]["endpoints"][0].pop("bearerTokenFile")
    assert sorted(with_auth, key=object_key) == sorted(plain, key=object_key)
