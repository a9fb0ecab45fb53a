"""deploy/ renders with kustomize, validates against Kubernetes 1.30+ schemas, and agrees with the code.

Ports, probe paths and env vars are checked against the components themselves (their settings
classes and WSGI apps), so a renamed flag or route breaks this test rather than a rollout.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import falcon.testing
import kubernetes_validate
import pytest

from aggregator.config import AggregatorSettings
from exporter.config import ExporterSettings
from k8smon_common.config import ENV_PREFIX, env_name
from tests.support.deploy import (
    DEPLOY,
    Obj,
    assert_valid,
    container_port,
    containers,
    find,
    literal_env,
    pod_spec,
    render,
)

NAMESPACE = "k8s-monitor"
EXPORTER = "k8s-monitor-exporter"
AGGREGATOR = "k8s-monitor-aggregator"
# The oldest Kubernetes we support and the newest schemas kubernetes-validate ships.
SCHEMA_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
EXPECTED_OBJECTS = {
    ("Namespace", NAMESPACE, None),
    ("ServiceAccount", EXPORTER, NAMESPACE),
    ("ClusterRole", EXPORTER, None),
    ("ClusterRoleBinding", EXPORTER, None),
    ("DaemonSet", EXPORTER, NAMESPACE),
    ("Service", EXPORTER, NAMESPACE),
    ("NetworkPolicy", EXPORTER, NAMESPACE),
    ("ServiceAccount", AGGREGATOR, NAMESPACE),
    ("Role", AGGREGATOR, NAMESPACE),
    ("RoleBinding", AGGREGATOR, NAMESPACE),
    ("Deployment", AGGREGATOR, NAMESPACE),
    ("Service", AGGREGATOR, NAMESPACE),
    ("NetworkPolicy", AGGREGATOR, NAMESPACE),
}


@pytest.fixture(scope="module")
def objs() -> list[Obj]:
    return render()


@pytest.fixture(scope="module")
def exporter_ds(objs: list[Obj]) -> Obj:
    return find(objs, "DaemonSet", EXPORTER)


@pytest.fixture(scope="module")
def aggregator_deploy(objs: list[Obj]) -> Obj:
    return find(objs, "Deployment", AGGREGATOR)


def test_renders_exactly_the_expected_objects(objs: list[Obj]) -> None:
    got = {(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in objs}
    assert got == EXPECTED_OBJECTS
    for o in objs:
        assert o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "k8s-monitor"


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_every_object_validates_against_kubernetes_schemas(objs: list[Obj], version: str) -> None:
    assert_valid(objs, version)


def test_schema_validation_catches_a_bad_field(exporter_ds: Obj) -> None:
    """The validator really is strict: an unknown or mistyped field fails (guards the test above)."""
    bad = {**exporter_ds, "spec": {**exporter_ds["spec"], "replicas": 3}}  # DaemonSets have none
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, SCHEMA_VERSIONS[0], strict=True)


# --- agreement with the components -----------------------------------------------------------------


def test_ports_agree_with_component_defaults(
    objs: list[Obj], exporter_ds: Obj, aggregator_deploy: Obj
) -> None:
    exporter_port = ExporterSettings().listen.port
    aggregator_port = AggregatorSettings().listen.port
    assert container_port(exporter_ds, "metrics") == exporter_port == 9100
    assert container_port(aggregator_deploy, "http") == aggregator_port == 5000

    (exp_svc_port,) = find(objs, "Service", EXPORTER)["spec"]["ports"]
    assert exp_svc_port == {
        "name": "metrics", "port": exporter_port, "targetPort": "metrics", "protocol": "TCP",
    }
    assert find(objs, "Service", EXPORTER)["spec"]["clusterIP"] == "None"  # headless: Endpoints per pod

    agg_svc = find(objs, "Service", AGGREGATOR)["spec"]
    assert agg_svc["type"] == "NodePort"
    (agg_svc_port,) = agg_svc["ports"]
    assert agg_svc_port == {
        "name": "http", "port": aggregator_port, "targetPort": "http", "nodePort": 30500, "protocol": "TCP",
    }


def test_aggregator_discovers_the_exporter_service(objs: list[Obj], aggregator_deploy: Obj) -> None:
    """The discovery settings name the exporter Service and its port name (defaults or env)."""
    env = literal_env(aggregator_deploy)
    defaults = AggregatorSettings()
    service = env.get("K8SMON_DISCOVERY_SERVICE", defaults.discovery_service)
    port_name = env.get("K8SMON_DISCOVERY_PORT_NAME", defaults.discovery_port_name)
    svc = find(objs, "Service", service)
    assert port_name in {p["name"] for p in svc["spec"]["ports"]}
    # The namespace follows wherever the aggregator is installed (kustomize `namespace:` overrides).
    ns_var = _env_entry(aggregator_deploy, "K8SMON_DISCOVERY_NAMESPACE")
    assert ns_var["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert svc["metadata"]["namespace"] == aggregator_deploy["metadata"]["namespace"]
    assert not env.get("K8SMON_TARGETS"), "static targets would switch Kubernetes discovery off"


def _env_entry(workload: Obj, name: str) -> dict[str, Any]:
    (container,) = pod_spec(workload)["containers"]
    (entry,) = [e for e in container.get("env", []) if e["name"] == name]
    return entry


@pytest.mark.parametrize(("kind", "name", "settings_cls"), [
    ("DaemonSet", EXPORTER, ExporterSettings),
    ("Deployment", AGGREGATOR, AggregatorSettings),
])
def test_env_vars_are_real_settings_with_valid_values(
    objs: list[Obj], kind: str, name: str, settings_cls: type
) -> None:
    fields = {f.name: f for f in dataclasses.fields(settings_cls)}
    known = {env_name(n): f for n, f in fields.items()}
    for f in fields.values():
        known.update({alias: f for alias in f.metadata["env_aliases"]})
    (container,) = pod_spec(find(objs, kind, name))["containers"]
    env = container.get("env", [])
    assert env, "expected configuration through env vars"
    mount_paths = [m["mountPath"].rstrip("/") + "/" for m in container.get("volumeMounts", [])]
    for entry in env:
        assert entry["name"] in known, f"{entry['name']} is not a setting of {settings_cls.__name__}"
        value = entry.get("value")
        if value is None:
            continue
        if any((value.rstrip("/") + "/").startswith(m) for m in mount_paths):
            continue  # a directory that exists in the pod, not here (the mounts test checks these)
        known[entry["name"]].metadata["parse"](value)  # raises ValueError on a bad value
    assert all(e["name"].startswith(ENV_PREFIX) or e["name"] == "NODE_NAME" for e in env)


def test_exporter_reads_the_host_through_read_only_mounts(exporter_ds: Obj) -> None:
    spec = pod_spec(exporter_ds)
    host_paths = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    assert host_paths == {"proc": "/proc", "sys": "/sys", "root": "/"}
    (container,) = spec["containers"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    for name in host_paths:
        assert mounts[name]["readOnly"] is True, f"host mount {name} must be read-only"
    mounted_at = {host_paths[n]: mounts[n]["mountPath"] for n in host_paths}
    assert mounted_at == {"/proc": "/host/proc", "/sys": "/host/sys", "/": "/host/root"}
    env = literal_env(exporter_ds)
    assert env["K8SMON_PROC_ROOT"] == "/host/proc"
    assert env["K8SMON_SYS_ROOT"] == "/host/sys"
    assert env["K8SMON_CGROUP_ROOT"] == "/host/sys/fs/cgroup"
    assert env["K8SMON_ROOTFS"] == "/host/root"
    node = _env_entry(exporter_ds, "NODE_NAME")
    assert node["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}


def test_exporter_runs_on_every_node_and_rolls(exporter_ds: Obj) -> None:
    assert pod_spec(exporter_ds)["tolerations"] == [{"operator": "Exists"}]
    assert exporter_ds["spec"]["updateStrategy"]["type"] == "RollingUpdate"
    assert "nodeSelector" not in pod_spec(exporter_ds)


def _probe_paths(workload: Obj) -> dict[str, tuple[str, str]]:
    (container,) = pod_spec(workload)["containers"]
    return {
        kind: (container[kind]["httpGet"]["path"], container[kind]["httpGet"]["port"])
        for kind in ("livenessProbe", "readinessProbe")
    }


def test_exporter_probes_hit_its_health_route(exporter_ds: Obj) -> None:
    """/healthz exists on the exporter's app: 503 before the first snapshot, as the probe expects."""
    from exporter.server import create_app

    probes = _probe_paths(exporter_ds)
    assert probes == {"livenessProbe": ("/healthz", "metrics"), "readinessProbe": ("/healthz", "metrics")}
    client = falcon.testing.TestClient(create_app(latest=lambda: None, node="n1"))
    assert client.simulate_get("/healthz").status_code == 503
    assert client.simulate_get("/no-such-route").status_code == 404  # the check above can fail


def test_aggregator_probes_hit_liveness_and_readiness_routes(aggregator_deploy: Obj) -> None:
    """/healthz answers 200 while serving; /readyz 503 until discovery and a first round are done."""
    from aggregator.api.app import create_app
    from aggregator.federation import FederationCache
    from aggregator.stats import AggregatorStats
    from aggregator.store.store import Store
    from tests.aggregator_fakes import FakeStatus

    probes = _probe_paths(aggregator_deploy)
    assert probes == {"livenessProbe": ("/healthz", "http"), "readinessProbe": ("/readyz", "http")}
    stats = AggregatorStats()
    store = Store(stats=stats)
    app = create_app(
        store=store,
        status=FakeStatus(ready_=False, mode="endpoints"),  # discovery has not answered yet
        federation=FederationCache(store=store, stats=stats, version="test"),
        stats=stats,
        started_at=0.0,
        version="test",
    )
    client = falcon.testing.TestClient(app)
    assert client.simulate_get("/healthz").status_code == 200
    assert client.simulate_get("/readyz").status_code == 503
    assert client.simulate_get("/no-such-route").status_code == 404


def test_service_and_policy_selectors_match_pod_labels(objs: list[Obj]) -> None:
    for workload in (find(objs, "DaemonSet", EXPORTER), find(objs, "Deployment", AGGREGATOR)):
        name = workload["metadata"]["name"]
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == name
        assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert find(objs, "Service", name)["spec"]["selector"].items() <= labels.items()
        policy = find(objs, "NetworkPolicy", name)["spec"]
        assert policy["podSelector"]["matchLabels"].items() <= labels.items()
        (rule,) = policy["ingress"]
        port_names = {p["name"] for c in containers(workload) for p in c.get("ports", [])}
        assert {p["port"] for p in rule["ports"]} <= port_names


def test_every_container_has_requests_and_limits(objs: list[Obj]) -> None:
    for workload in (find(objs, "DaemonSet", EXPORTER), find(objs, "Deployment", AGGREGATOR)):
        for c in containers(workload):
            res = c["resources"]
            assert {"cpu", "memory"} <= res["requests"].keys(), c["name"]
            assert {"cpu", "memory"} <= res["limits"].keys(), c["name"]
    (exporter,) = pod_spec(find(objs, "DaemonSet", EXPORTER))["containers"]
    assert exporter["resources"]["requests"]["memory"] == "64Mi"  # the seed's figures
    assert exporter["resources"]["limits"]["memory"] == "128Mi"


# --- pod security --------------------------------------------------------------------------------

_RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
    "persistentVolumeClaim", "projected", "secret",
}


def restricted_violations(spec: Obj) -> set[str]:
    """What breaks the Pod Security Standard "restricted" (which includes "baseline"), by rule name."""
    found: set[str] = set()
    pod_sc = spec.get("securityContext", {})
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            found.add(key)
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if "hostPath" in kinds:
            found.add("hostPath volumes")
        elif not kinds <= _RESTRICTED_VOLUMES:
            found.add("volume types")
    if pod_sc.get("seccompProfile", {}).get("type") == "Unconfined":
        found.add("seccomp")
    if pod_sc.get("runAsUser") == 0:
        found.add("runAsUser=0")
    if pod_sc.get("sysctls"):
        found.add("sysctls")
    for c in [*spec.get("initContainers", []), *spec["containers"]]:
        sc = c.get("securityContext", {})
        if sc.get("privileged"):
            found.add("privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.add("allowPrivilegeEscalation")
        if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            found.add("runAsNonRoot")
        if sc.get("runAsUser") == 0:
            found.add("runAsUser=0")
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
        if seccomp not in {"RuntimeDefault", "Localhost"}:
            found.add("seccomp")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []) or not set(caps.get("add", [])) <= {"NET_BIND_SERVICE"}:
            found.add("capabilities")
        if sc.get("procMount", "Default") != "Default":
            found.add("procMount")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            found.add("hostPorts")
    return found


def test_restricted_checker_finds_violations() -> None:
    """Guards the checker: a deliberately bad pod is caught on every rule this suite relies on."""
    bad = {
        "hostPID": True,
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
        "containers": [{"name": "c", "securityContext": {"privileged": True, "runAsUser": 0}}],
    }
    assert restricted_violations(bad) >= {
        "hostPID", "hostPath volumes", "privileged", "allowPrivilegeEscalation", "runAsNonRoot",
        "runAsUser=0", "seccomp", "capabilities",
    }


def test_aggregator_meets_restricted(aggregator_deploy: Obj) -> None:
    assert restricted_violations(pod_spec(aggregator_deploy)) == set()
    _assert_hardened(aggregator_deploy)


def test_exporter_breaks_restricted_only_by_its_host_mounts(exporter_ds: Obj) -> None:
    assert restricted_violations(pod_spec(exporter_ds)) == {"hostPath volumes"}
    _assert_hardened(exporter_ds)


def _assert_hardened(workload: Obj) -> None:
    spec = pod_spec(workload)
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(key), key
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] > 0
    for c in containers(workload):
        sc = c["securityContext"]
        assert sc["privileged"] is False
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert sc["runAsUser"] == spec["securityContext"]["runAsUser"]
        # waitress spills responses over 1 MiB to temp files: /tmp must be writable.
        tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert tmp and not tmp[0].get("readOnly")


def test_namespace_enforces_privileged_and_warns_restricted(objs: list[Obj]) -> None:
    labels = find(objs, "Namespace", NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"  # hostPath needs it
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert labels["pod-security.kubernetes.io/audit"] == "restricted"


# --- RBAC shape (what the components call is checked in test_rbac_calls.py) ----------------------


def test_rbac_is_read_only_and_bound_to_the_component_accounts(objs: list[Obj]) -> None:
    for kind in ("Role", "ClusterRole"):
        for role in (o for o in objs if o["kind"] == kind):
            for rule in role["rules"]:
                assert set(rule["verbs"]) <= {"get", "list", "watch"}, role["metadata"]["name"]
                assert "*" not in rule["resources"] and "*" not in rule["apiGroups"]
                assert "resourceNames" not in rule and "nonResourceURLs" not in rule
    for kind, role_kind in (("RoleBinding", "Role"), ("ClusterRoleBinding", "ClusterRole")):
        for binding in (o for o in objs if o["kind"] == kind):
            name = binding["metadata"]["name"]
            ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name}
            assert binding["roleRef"] == ref
            find(objs, role_kind, name)
            assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]
            find(objs, "ServiceAccount", name)
    workloads = {"DaemonSet": EXPORTER, "Deployment": AGGREGATOR}
    for kind, name in workloads.items():
        assert pod_spec(find(objs, kind, name))["serviceAccountName"] == name


def test_a_namespace_override_moves_everything(tmp_path: Path) -> None:
    """`namespace:` in an overlay moves objects and binding subjects; discovery follows via fieldRef."""
    base = tmp_path / "base"
    shutil.copytree(DEPLOY, base, ignore=shutil.ignore_patterns("prometheus"))
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "namespace: monitoring\nresources:\n  - ../base\n",
        encoding="utf-8",
    )
    objs = render(overlay)
    for o in objs:
        if o["kind"] not in {"Namespace", "ClusterRole", "ClusterRoleBinding"}:
            assert o["metadata"]["namespace"] == "monitoring", o["kind"]
    assert find(objs, "Namespace", "monitoring")
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        for b in (o for o in objs if o["kind"] == kind):
            assert {s["namespace"] for s in b["subjects"]} == {"monitoring"}
