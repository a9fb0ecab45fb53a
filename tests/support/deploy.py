"""Rendering deploy/ with kustomize and finding objects in it (used by the deploy, RBAC and Docker tests)."""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support import require_tool

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
Obj = dict[str, Any]


@functools.cache
def _render_text(path: str) -> str:
    kubectl = require_tool("kubectl")
    done = subprocess.run(
        [kubectl, "kustomize", path], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"kubectl kustomize {path} failed:\n{done.stderr}"
    return done.stdout


def render(path: Path | str = DEPLOY) -> list[Obj]:
    """The objects `kubectl kustomize <path>` renders (a fresh copy each call; rendering is cached)."""
    return [doc for doc in yaml.safe_load_all(_render_text(str(path))) if doc]


def render_with_components(user: Path, *components: Path, base: Path = DEPLOY) -> list[Obj]:
    """What an operator gets from a kustomization of their own in directory `user` that takes `base`
    (deploy/, or deploy/prometheus) as its resource and adds `components` (as the docs tell them to)."""
    lines = [f"resources:\n  - {os.path.relpath(base, user)}\n", "components:\n",
             *(f"  - {os.path.relpath(c, user)}\n" for c in components)]
    (user / "kustomization.yaml").write_text("".join(lines))
    return render(user)


def object_key(o: Obj) -> tuple[str, str, str | None]:
    """(kind, name, namespace): how objects of two renders are matched up."""
    return o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")


def assert_valid(objs: list[Obj], version: str) -> None:
    """Every object validates strictly against the Kubernetes `version` schemas (fails naming the bad one)."""
    for o in objs:
        try:
            kubernetes_validate.validate(o, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{o['kind']}/{o['metadata']['name']} invalid for {version}: {exc.message}")


def find(objs: list[Obj], kind: str, name: str) -> Obj:
    """The one object of `kind` named `name`; fails the test if there is not exactly one."""
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_spec(workload: Obj) -> Obj:
    """The pod template spec of a Deployment/DaemonSet."""
    return workload["spec"]["template"]["spec"]


def containers(workload: Obj) -> Iterator[Obj]:
    """Init and regular containers of a workload."""
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def literal_env(workload: Obj) -> dict[str, str]:
    """Literal env values of the workload's (only) container; valueFrom entries left out."""
    (container,) = pod_spec(workload)["containers"]
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def container_port(workload: Obj, name: str) -> int:
    """The containerPort of the named port of the workload's (only) container."""
    (container,) = pod_spec(workload)["containers"]
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    assert name in ports, f"{workload['metadata']['name']} has no port named {name!r}: {ports}"
    return int(ports[name])
