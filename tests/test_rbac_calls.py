"""The rendered RBAC is exactly what the components use.

Both components run as real processes (their CLIs, configured like the manifests configure them) with
--kubeconfig pointing at FakeKube, which records every request. Every recorded call must be allowed by
the Roles/ClusterRoles bound to that component's ServiceAccount in deploy/, and every verb those roles
grant must have been called: a missing permission and an unused one both fail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.kube import Call, FakeKube, objects
from tests.support import wait_until
from tests.support.deploy import REPO, Obj, find, literal_env, render

NAMESPACE = "k8s-monitor"
EXPORTER = "k8s-monitor-exporter"
AGGREGATOR = "k8s-monitor-aggregator"
NODE = "n1"
# Non-resource URLs every authenticated user may GET (system:discovery, system:public-info-viewer).
DISCOVERY_PATHS = ("/api", "/apis", "/version", "/healthz", "/livez", "/readyz", "/openapi")


@dataclass(frozen=True)
class Permission:
    verb: str
    group: str
    resource: str
    namespace: str | None  # None: every namespace (granted through a ClusterRoleBinding)


def granted(objs: list[Obj], *, account: str, namespace: str = NAMESPACE) -> set[Permission]:
    """Every (verb, group, resource, scope) the rendered bindings give ServiceAccount `namespace/account`."""
    subject = {"kind": "ServiceAccount", "name": account, "namespace": namespace}
    out: set[Permission] = set()
    for binding in objs:
        if binding["kind"] not in {"RoleBinding", "ClusterRoleBinding"} or subject not in binding["subjects"]:
            continue
        ref = binding["roleRef"]
        role = find(objs, ref["kind"], ref["name"])
        scope = binding["metadata"]["namespace"] if binding["kind"] == "RoleBinding" else None
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], "no wildcards"
            out |= {Permission(v, g, r, scope)
                    for v in rule["verbs"] for g in rule["apiGroups"] for r in rule["resources"]}
    return out


def allows(perms: set[Permission], call: Call) -> bool:
    """What the API server's RBAC authorizer decides for a resource request."""
    return any(p.verb == call.verb and p.group == call.group and p.resource == call.resource
               and (p.namespace is None or p.namespace == call.namespace) for p in perms)


def check(perms: set[Permission], calls: Sequence[Call]) -> tuple[list[str], list[str]]:
    """(calls the roles do not allow, permissions no call used)."""
    resource_calls = [c for c in calls if c.resource]
    for c in calls:
        if not c.resource:
            assert c.path.startswith(DISCOVERY_PATHS), f"non-resource request RBAC would refuse: {c.path}"
    denied = sorted({f"{c.verb} {c.group or 'core'}/{c.resource} in {c.namespace or 'all namespaces'}"
                     for c in resource_calls if not allows(perms, c)})
    unused = sorted(f"{p.verb} {p.group or 'core'}/{p.resource}" for p in perms
                    if not any(allows({p}, c) for c in resource_calls))
    return denied, unused


# --- running the components ------------------------------------------------------------------------


@dataclass
class Component:
    proc: subprocess.Popen[str]
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Callable[..., Component]]:
    """Start `python -m <module> <args>` with `env`; stopped by PID (SIGTERM, then SIGKILL) at teardown."""
    started: list[Component] = []

    def start(module: str, args: Sequence[str], env: dict[str, str]) -> Component:
        log = tmp_path / f"{module}-{len(started)}.log"
        with log.open("w", encoding="utf-8") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", module, *args], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **env}, text=True,
            )
        component = Component(proc, log)
        started.append(component)
        return component

    try:
        yield start
    finally:
        for c in started:
            if c.proc.poll() is None:
                c.proc.send_signal(signal.SIGTERM)
                try:
                    c.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    c.proc.kill()
                    c.proc.wait(timeout=10)


def _called(kube: FakeKube, component: Component, pred: Callable[[Call], bool], what: str) -> None:
    def seen() -> bool:
        assert component.proc.poll() is None, f"{what}: the process exited:\n{component.output()}"
        return any(pred(c) for c in kube.calls)

    wait_until(seen, timeout=30, message=what)


def _stop(component: Component) -> None:
    component.proc.send_signal(signal.SIGTERM)
    assert component.proc.wait(timeout=15) == 0, component.output()


def _replicaset_pod(kube: FakeKube, name: str, namespace: str, *, node: str) -> None:
    """Deployment -> ReplicaSet -> Pod, so the exporter has an owner to look up."""
    deploy = kube.create(objects.deployment(name, namespace))
    rs = kube.create(objects.replicaset(f"{name}-5d4f8", namespace, deployment=deploy))
    kube.create(objects.pod(f"{name}-5d4f8-abcde", namespace, node=node, owner=rs))


def test_exporter_calls_match_its_rbac(run: Callable[..., Component]) -> None:
    objs = render()
    env = literal_env(find(objs, "DaemonSet", EXPORTER))
    with FakeKube(bookmark_interval=0.2) as kube:
        _replicaset_pod(kube, "web", "shop", node=NODE)
        kube.create(objects.pod("db-0", "shop", node=NODE))
        kube.create(objects.pod("other-node", "shop", node="n2"))
        exporter = run("exporter", [
            "--kubeconfig", str(kube.kubeconfig), "--listen", "127.0.0.1:0", "--interval", "0.5",
            "--proc-root", "/proc", "--sys-root", "/sys", "--cgroup-root", "/sys/fs/cgroup", "--rootfs", "/",
        ], {**env, "NODE_NAME": NODE})  # the flags above override the manifest's in-pod paths
        _called(kube, exporter, lambda c: c.verb == "watch" and c.resource == "pods", "exporter watches pods")
        _called(kube, exporter, lambda c: c.verb == "get" and c.name == "web-5d4f8", "owner lookup on list")
        # A pod that arrives through the watch: its ReplicaSet is looked up as well.
        _replicaset_pod(kube, "api", "shop", node=NODE)
        _called(kube, exporter, lambda c: c.verb == "get" and c.name == "api-5d4f8", "owner lookup on watch")
        _stop(exporter)
        calls = kube.calls

    denied, unused = check(granted(objs, account=EXPORTER), calls)
    assert not denied, f"the exporter makes calls its RBAC does not allow: {denied}"
    assert not unused, f"the exporter's RBAC grants what it never uses: {unused}"
    pod_calls = [c for c in calls if c.resource == "pods"]
    assert all(c.namespace is None for c in pod_calls)  # all namespaces: hence a ClusterRole


@pytest.mark.parametrize("mode", ["endpoints", "endpointslices"])
def test_aggregator_calls_match_its_rbac(run: Callable[..., Component], mode: str) -> None:
    objs = render()
    env = literal_env(find(objs, "Deployment", AGGREGATOR))
    env["K8SMON_DISCOVERY_NAMESPACE"] = NAMESPACE  # the manifest's fieldRef metadata.namespace
    service = env["K8SMON_DISCOVERY_SERVICE"]
    port_name = env["K8SMON_DISCOVERY_PORT_NAME"]
    resource = "endpoints" if mode == "endpoints" else "endpointslices"
    with FakeKube(bookmark_interval=0.2) as kube:
        kube.create(objects.namespace(NAMESPACE))
        kube.create(objects.service(service, NAMESPACE, port_name=port_name))
        # Exporter addresses that refuse connections: discovery is under test, not scraping.
        first = [("127.0.0.1", NODE)]
        kube.create(objects.endpoints(service, NAMESPACE, addresses=first, port=9, port_name=port_name))
        kube.create(objects.endpointslice(f"{service}-abc", NAMESPACE, service=service,
                                          endpoints=[("127.0.0.1", NODE, True)], port=9, port_name=port_name))
        aggregator = run("aggregator", [
            "--kubeconfig", str(kube.kubeconfig), "--listen", "127.0.0.1:0", "--discovery-mode", mode,
        ], env)
        _called(kube, aggregator, lambda c: c.verb == "watch" and c.resource == resource, f"watch {resource}")
        # Reconnects after the server drops its watches: the same calls again, nothing new.
        watches = sum(1 for c in kube.calls if c.verb == "watch")
        kube.drop_watches()
        _called(kube, aggregator, lambda c: c.verb == "watch" and sum(
            1 for x in kube.calls if x.verb == "watch") > watches, "watch resumed")
        _stop(aggregator)
        calls = kube.calls

    perms = granted(objs, account=AGGREGATOR)
    denied, unused = check(perms, calls)
    assert not denied, f"the aggregator makes calls its RBAC does not allow: {denied}"
    # One mode uses half of the grant and the other mode the other half: between the two parametrized
    # runs every granted verb is used.
    other = "endpointslices" if mode == "endpoints" else "endpoints"
    assert unused and all(u.endswith(f"/{other}") for u in unused), unused
    assert all(c.namespace == NAMESPACE for c in calls if c.resource)


def test_checker_flags_missing_and_unused_permissions() -> None:
    """Guards the checker: a call outside the grant and a grant never called are both reported."""
    perms = {Permission("list", "", "pods", None), Permission("get", "apps", "replicasets", None)}
    calls = [Call("list", "", "v1", "pods", None, None, "ua", 200),
             Call("list", "", "v1", "nodes", None, None, "ua", 200)]
    denied, unused = check(perms, calls)
    assert denied == ["list core/nodes in all namespaces"]
    assert unused == ["get apps/replicasets"]
    namespaced = {Permission("watch", "", "endpoints", "k8s-monitor")}
    elsewhere = [Call("watch", "", "v1", "endpoints", "default", None, "ua", 200)]
    assert check(namespaced, elsewhere)[0] == ["watch core/endpoints in default"]
