"""deploy/overlays/persistence: the base plus a state volume for `--state-file`, rendered and validated.

The overlay is a kustomize Component (kustomize refuses an overlay inside deploy/ that includes
deploy/), so the test renders it the way the docs tell an operator to: from a kustomization of
its own outside deploy/ that names deploy/ as a resource and the component.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.config import load
from tests.support.deploy import (
    DEPLOY,
    Obj,
    assert_valid,
    find,
    object_key,
    pod_spec,
    render,
    render_with_components,
)
from tests.test_deploy_manifests import AGGREGATOR, NAMESPACE, SCHEMA_VERSIONS

OVERLAY = DEPLOY / "overlays" / "persistence"
CLAIM = "k8s-monitor-aggregator-state"


@pytest.fixture(scope="module")
def objs(tmp_path_factory: pytest.TempPathFactory) -> list[Obj]:
    return render_with_components(tmp_path_factory.mktemp("my-monitor"), OVERLAY)


def test_overlay_adds_only_the_claim_and_changes_only_the_aggregator(objs: list[Obj]) -> None:
    base = {object_key(o): o for o in render(DEPLOY)}
    got = {object_key(o): o for o in objs}
    assert set(got) - set(base) == {("PersistentVolumeClaim", CLAIM, NAMESPACE)}
    assert set(base) - set(got) == set()
    changed = {k for k in base if base[k] != got[k]}
    assert changed == {("Deployment", AGGREGATOR, NAMESPACE)}
    claim = got[("PersistentVolumeClaim", CLAIM, NAMESPACE)]
    assert claim["metadata"]["labels"]["app.kubernetes.io/part-of"] == "k8s-monitor"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_every_object_validates_against_kubernetes_schemas(objs: list[Obj], version: str) -> None:
    assert_valid(objs, version)


def test_state_file_lives_on_the_claim_and_the_settings_accept_it(objs: list[Obj]) -> None:
    deployment = find(objs, "Deployment", AGGREGATOR)
    spec = pod_spec(deployment)
    (container,) = spec["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    state_file = Path(env["K8SMON_STATE_FILE"])
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    (state_mount,) = [m for m in mounts.values() if state_file.parent == Path(m["mountPath"])]
    assert not state_mount.get("readOnly", False)
    assert volumes[state_mount["name"]] == {"name": state_mount["name"],
                                            "persistentVolumeClaim": {"claimName": CLAIM}}
    assert "tmp" in mounts  # the base's mounts are kept
    settings = load([], env)  # every literal env value is a valid setting
    assert settings.state_file == str(state_file) and settings.snapshot_interval == 60
    # The root filesystem stays read-only; the non-root UID can write the volume through fsGroup.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsUser"] == 10001


def test_rollout_never_runs_two_aggregators_on_one_state_file(objs: list[Obj]) -> None:
    deployment = find(objs, "Deployment", AGGREGATOR)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    # Time for the final snapshot after scraping stops (about 5 s for 1 GiB, bench/persistence_bench.py).
    assert pod_spec(deployment)["terminationGracePeriodSeconds"] >= 30
