"""deploy/overlays/metrics-api: the Component renders, validates, wires the listener to the Service and
the APIServices, and its RBAC is exactly what the aggregator uses with it (a real aggregator against the
fake API server, configured by the rendered Deployment's env)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from aggregator.config import load
from aggregator.service import Aggregator
from tests.kube import FakeKube, objects
from tests.support import wait_until
from tests.support.deploy import (
    DEPLOY,
    Obj,
    assert_valid,
    container_port,
    find,
    literal_env,
    object_key,
    render,
    render_with_components,
)
from tests.test_deploy_manifests import AGGREGATOR, NAMESPACE, SCHEMA_VERSIONS
from tests.test_rbac_calls import Permission, allows

COMPONENT = DEPLOY / "overlays" / "metrics-api"
ACCOUNT = {"kind": "ServiceAccount", "name": AGGREGATOR, "namespace": NAMESPACE}
# The built-in roles the Component binds (as kube-apiserver's bootstrap policy defines them).
BUILTIN = {
    ("ClusterRole", "system:auth-delegator"): [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
        {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]}],
    ("Role", "extension-apiserver-authentication-reader"): [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"],
         "resourceNames": ["extension-apiserver-authentication"]}],
}


@pytest.fixture(scope="module")
def objs(tmp_path_factory: pytest.TempPathFactory) -> list[Obj]:
    return render_with_components(tmp_path_factory.mktemp("my-monitor"), COMPONENT)


def test_component_adds_the_api_objects_and_changes_only_the_aggregator(objs: list[Obj]) -> None:
    base = {object_key(o): o for o in render(DEPLOY)}
    got = {object_key(o): o for o in objs}
    assert set(got) - set(base) == {
        ("APIService", "v1beta1.metrics.k8s.io", None), ("APIService", "v1.metrics.k8s.io", None),
        ("Service", "k8s-monitor-metrics-api", NAMESPACE),
        ("ClusterRole", "k8s-monitor-metrics-api", None),
        ("ClusterRoleBinding", "k8s-monitor-metrics-api", None),
        ("ClusterRoleBinding", "k8s-monitor-metrics-api:system:auth-delegator", None),
        ("RoleBinding", "k8s-monitor-metrics-api-auth-reader", "kube-system"),
        ("ClusterRole", "system:aggregated-metrics-reader", None)}
    assert not set(base) - set(got)
    assert {k for k in base if base[k] != got[k]} == {("Deployment", AGGREGATOR, NAMESPACE),
                                                      ("NetworkPolicy", AGGREGATOR, NAMESPACE)}
    reader = find(objs, "ClusterRole", "system:aggregated-metrics-reader")
    assert {k for k, v in reader["metadata"]["labels"].items() if v == "true"} == {
        f"rbac.authorization.k8s.io/aggregate-to-{r}" for r in ("view", "edit", "admin")}


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_every_object_validates_against_kubernetes_schemas(objs: list[Obj], version: str) -> None:
    assert_valid(objs, version)


def test_apiservices_reach_the_listener_the_settings_open(objs: list[Obj]) -> None:
    deployment = find(objs, "Deployment", AGGREGATOR)
    settings = load([], literal_env(deployment))
    assert settings.metrics_api_listen is not None and settings.metrics_api_auth == "delegated"
    assert container_port(deployment, "https") == settings.metrics_api_listen.port == 4443
    service = find(objs, "Service", "k8s-monitor-metrics-api")
    (port,) = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (443, "https")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    for version in ("v1beta1", "v1"):
        spec = find(objs, "APIService", f"{version}.metrics.k8s.io")["spec"]
        assert (spec["group"], spec["version"]) == ("metrics.k8s.io", version)
        assert spec["insecureSkipTLSVerify"] is True
        assert spec["service"] == {"name": "k8s-monitor-metrics-api", "namespace": NAMESPACE, "port": 443}
    policy = find(objs, "NetworkPolicy", AGGREGATOR)
    ports = [p for rule in policy["spec"]["ingress"] for p in rule["ports"]]
    assert {"port": "https", "protocol": "TCP"} in ports


def _grants(objs: list[Obj]) -> dict[tuple[str, str], set[Permission]]:
    """(role kind, role name) -> what it gives the aggregator's ServiceAccount."""
    out: dict[tuple[str, str], set[Permission]] = {}
    for binding in objs:
        if binding["kind"] not in {"RoleBinding", "ClusterRoleBinding"} or ACCOUNT not in binding["subjects"]:
            continue
        ref = (binding["roleRef"]["kind"], binding["roleRef"]["name"])
        rules = BUILTIN.get(ref) or find(objs, *ref)["rules"]
        scope = binding["metadata"]["namespace"] if binding["kind"] == "RoleBinding" else None
        out[ref] = {Permission(v, g, r, scope) for rule in rules for v in rule["verbs"]
                    for g in rule["apiGroups"] for r in rule["resources"]}
    return out


def test_rbac_is_what_the_aggregator_uses(objs: list[Obj], tmp_path: Path) -> None:
    deployment = find(objs, "Deployment", AGGREGATOR)
    env = {**literal_env(deployment), "K8SMON_DISCOVERY_NAMESPACE": NAMESPACE,
           "K8SMON_METRICS_API_LISTEN": "127.0.0.1:0"}  # the manifest's 0.0.0.0:4443, on loopback
    with FakeKube(aggregation=True, bookmark_interval=0.2) as kube:
        kube.create(objects.namespace(NAMESPACE))
        kube.create(kube.aggregation.authentication_configmap())
        kube.create(objects.node("n1"))
        kube.aggregation.token_users["hpa"] = {"username": "system:serviceaccount:kube-system:hpa"}
        settings = load(["--kubeconfig", str(kube.kubeconfig), "--listen", "127.0.0.1:0"], env)
        with Aggregator(settings, environ={}) as aggregator:
            assert aggregator.metrics_api is not None
            served = tmp_path / "served.crt"
            served.write_bytes(aggregator.metrics_api.server.certificate)
            wait_until(lambda: {c.resource for c in kube.calls if c.verb == "watch"} >= {"pods", "nodes"},
                       timeout=30, message="the aggregator watches pods and nodes")
            resp = requests.get(f"{aggregator.metrics_api.url}/apis/metrics.k8s.io/v1beta1/pods",
                                headers={"Authorization": "Bearer hpa"}, verify=str(served), timeout=10)
            assert resp.status_code == 200, resp.text
            time.sleep(0.2)
        calls = [c for c in kube.calls if c.resource and c.user == "tester"]
    grants = _grants(objs)
    perms = set().union(*grants.values())
    denied = sorted({f"{c.verb} {c.resource} in {c.namespace}" for c in calls if not allows(perms, c)})
    assert not denied, f"calls the rendered RBAC does not allow: {denied}"
    for ref, given in grants.items():
        used = {p for p in given if any(allows({p}, c) for c in calls)}
        if ref == ("Role", AGGREGATOR):
            continue  # the base's discovery Role: tests/test_rbac_calls.py checks it per discovery mode
        if ref in BUILTIN:  # a built-in role cannot be trimmed: each binding must be needed at all
            assert used, f"{ref} is bound but never used"
        else:
            assert used == given, f"{ref} grants what the aggregator never uses: {sorted(given - used)}"
    configmap = [c for c in calls if c.resource == "configmaps"]
    assert {(c.verb, c.namespace, c.name) for c in configmap} == {
        ("get", "kube-system", "extension-apiserver-authentication")}
