"""deploy/grafana/: the committed dashboards are the generator's output, follow the conventions of the
field (datasource variable, label_values variables, stable uids, units, refresh at the scrape
interval), query only documented or recorded series, and ship through the kustomize Component as
ConfigMaps the Grafana sidecar picks up. tests/test_grafana_queries.py runs the queries themselves.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.support import require
from tests.support.deploy import DEPLOY, REPO, Obj, assert_valid, object_key, render, render_with_components
from tests.test_deploy_manifests import NAMESPACE, SCHEMA_VERSIONS

GRAFANA = DEPLOY / "grafana"
FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
UIDS = {"k8smon-cluster", "k8smon-node", "k8smon-namespace", "k8smon-deployment", "k8smon-pod"}
UNITS = {"cores", "bytes", "Bps", "percentunit", "none", "bool_yes_no"}
# Current as of Grafana 11.6 / 12 (the dashboard JSON schema version, not the Grafana version).
MIN_SCHEMA_VERSION = 41


def _generator() -> ModuleType:
    require(importlib.util.find_spec("grafana_foundation_sdk") is not None,
            "grafana-foundation-sdk is not installed (pip install -e '.[test]', or make venv)")
    spec = importlib.util.spec_from_file_location("k8smon_grafana_generate", GRAFANA / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def _dashboards() -> dict[str, dict[str, Any]]:
    return {f.name: json.loads(f.read_text(encoding="utf-8")) for f in FILES}


def _exprs(dash: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def test_committed_dashboards_are_the_generators_output() -> None:
    rendered = _generator().render()
    committed = {f.name: f.read_text(encoding="utf-8") for f in FILES}
    assert set(committed) == set(rendered), "run: python deploy/grafana/generate.py"
    for name, text in rendered.items():
        assert committed[name] == text, f"{name} is stale: run python deploy/grafana/generate.py"


def test_identity_tags_refresh_and_schema() -> None:
    dashes = _dashboards()
    assert {d["uid"] for d in dashes.values()} == UIDS
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    monitors = yaml.safe_load_all((DEPLOY / "prometheus" / "servicemonitor.yaml").read_text(encoding="utf-8"))
    intervals = {prometheus["global"]["scrape_interval"]} | {
        e["interval"] for m in monitors for e in m["spec"]["endpoints"]}
    assert len(intervals) == 1
    for name, d in dashes.items():
        assert name == f"k8s-monitor-{d['uid'].removeprefix('k8smon-')}.json"
        assert d["title"].startswith("k8s-monitor / ")
        assert d["schemaVersion"] >= MIN_SCHEMA_VERSION, name
        assert "k8s-monitor" in d["tags"], name
        assert {d["refresh"]} == intervals, f"{name} refreshes at {d['refresh']}, scrapes are {intervals}"
        assert d.get("id") is None, f"{name}: a fixed dashboard id clashes on import; the uid identifies it"


def test_datasource_variable_first_then_label_values_variables() -> None:
    for name, d in _dashboards().items():
        variables = d["templating"]["list"]
        first, rest = variables[0], variables[1:]
        assert (first["type"], first["name"], first["query"]) == ("datasource", "datasource", "prometheus")
        for v in rest:
            assert v["type"] == "query", (name, v["name"])
            assert v["name"] in {"namespace", "node", "deployment", "pod"}, (name, v["name"])
            assert v["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (name, v["name"])
            pattern = r"label_values\(k8smon_\w+(\{[^}]*\})?, " + v["name"] + r"\)"
            assert re.fullmatch(pattern, v["query"]), v["query"]
            assert not v.get("multi") and not v.get("includeAll"), "selectors match one value with ="
        # Every variable a query uses is defined, and every defined one is used.
        names = {v["name"] for v in variables} | {"__rate_interval"}
        texts = _exprs(d) + [v["query"] for v in rest]
        used = {m for e in texts for m in re.findall(r"\$\{?(\w+)", e)}
        assert used <= names, f"{name} uses undefined variables {used - names}"
        assert {v["name"] for v in rest} <= used, f"{name} defines unused variables"


def test_panels_use_the_datasource_variable_units_and_a_tidy_grid() -> None:
    for name, d in _dashboards().items():
        ids = [p["id"] for p in d["panels"]]
        assert ids == list(range(1, len(ids) + 1)), name
        cells: set[tuple[int, int]] = set()
        for p in d["panels"]:
            where = f"{name} / {p['title']}"
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
            assert p["type"] in {"timeseries", "stat"}, where
            assert p["description"], where
            assert p["targets"], where
            for t in p["targets"]:
                assert t["datasource"] == p["datasource"], where
            refs = [t["refId"] for t in p["targets"]]
            assert len(set(refs)) == len(refs), where
            unit = p["fieldConfig"]["defaults"]["unit"]
            assert unit in UNITS, where
            exprs = " ".join(t["expr"] for t in p["targets"])
            # The unit follows the series: a rate is bytes per second, a *_cores figure is cores.
            if "count(" in exprs or ":count" in exprs:
                assert unit == "none", where
            elif "rate(" in exprs or ":rate1m" in exprs:
                assert unit == "Bps", where
            elif re.search(r"_cores\b|_cores:", exprs) and "/" not in exprs:
                assert unit == "cores", where
            elif re.search(r"_bytes\b|_bytes:", exprs) and "/" not in exprs and "count(" not in exprs:
                assert unit == "bytes", where
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24, where
            mine = {(g["x"] + dx, g["y"] + dy) for dx in range(g["w"]) for dy in range(g["h"])}
            assert not cells & mine, f"{where} overlaps another panel"
            cells |= mine


def _documented() -> set[str]:
    text = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\| `(k8smon_[a-z_]+)`", text, flags=re.MULTILINE))


def _recorded() -> set[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text(encoding="utf-8"))
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def test_queries_use_documented_or_recorded_series_and_no_job_selector() -> None:
    documented, recorded = _documented(), _recorded()
    assert "k8smon_pod_cpu_usage_cores" in documented and recorded
    used_records: set[str] = set()
    for name, d in _dashboards().items():
        for expr in _exprs(d):
            series = set(re.findall(r"[a-z_:]*k8smon_[a-z_]+(?::[a-z0-9_]+)?", expr))
            records = {s for s in series if ":" in s}
            assert records <= recorded, f"{name}: {records - recorded} are not recorded by rules.yml"
            used_records |= records
            assert series - records <= documented, f"{name}: {series - records - documented} undocumented"
            # Selectors hold for both scrape modes: nothing that names how a series was scraped.
            assert not re.search(r"\b(job|instance)\s*=", expr), f"{name}: {expr}"
    # The recording rules exist for the dashboards: each is used by one.
    assert used_records == recorded, f"recorded but unused: {recorded - used_records}"


def test_pod_figures_are_deduplicated_across_scrape_jobs() -> None:
    """A pod or node family read raw would show twice when Prometheus scrapes both ways; every raw
    k8smon_pod_/k8smon_node_ selector sits inside max(...) or max by (...)."""
    for name, d in _dashboards().items():
        for expr in _exprs(d):
            for m in re.finditer(r"(?<![:\w])k8smon_(?:pod|node|container)_\w+", expr):
                before = expr[: m.start()]
                assert re.search(r"max(?: by \([^)]*\) )?\((?:rate\()?$", before), f"{name}: {expr}"


@pytest.fixture(scope="module")
def objs(tmp_path_factory: pytest.TempPathFactory) -> list[Obj]:
    """deploy/ plus the Component, rendered from a kustomization of the operator's own, as documented."""
    return render_with_components(tmp_path_factory.mktemp("my-monitor"), GRAFANA)


def test_component_adds_one_labelled_configmap_per_dashboard(objs: list[Obj]) -> None:
    base = {object_key(o): o for o in render(DEPLOY)}
    got = {object_key(o): o for o in objs}
    assert {k: v for k, v in got.items() if k in base} == base, "the component changes only what it adds"
    added = [got[k] for k in set(got) - set(base)]
    assert {o["kind"] for o in added} == {"ConfigMap"}
    files = {f.name: f.read_text(encoding="utf-8") for f in FILES}
    shipped: dict[str, str] = {}
    for cm in added:
        meta = cm["metadata"]
        assert meta["namespace"] == NAMESPACE
        assert meta["labels"]["grafana_dashboard"] == "1"  # what kube-prometheus-stack's sidecar selects
        assert meta["labels"]["app.kubernetes.io/part-of"] == "k8s-monitor"
        assert meta["annotations"]["grafana_folder"] == "k8s-monitor"
        (data_key,) = cm["data"]
        shipped[data_key] = cm["data"][data_key]
        # ConfigMaps stop at 1 MiB; client-side apply keeps a copy in a 256 KiB annotation.
        assert len(cm["data"][data_key].encode()) < 256 * 1024
    assert shipped == files
    # No hash suffix: the names stay stable, so an update replaces the ConfigMap instead of adding one.
    assert {cm["metadata"]["name"] for cm in added} == {
        "k8s-monitor-dashboard-" + f.stem.removeprefix("k8s-monitor-") for f in FILES}


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_component_objects_validate_against_kubernetes_schemas(objs: list[Obj], version: str) -> None:
    assert_valid(objs, version)


def test_generator_prunes_and_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gen = _generator()
    monkeypatch.setattr(gen, "OUT", tmp_path)
    (tmp_path / "k8s-monitor-gone.json").write_text("{}")  # a dashboard since removed from generate.py
    assert gen.main() == 0
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [f.name for f in FILES]


def test_readme_lists_every_dashboard_with_its_panel_count() -> None:
    text = (GRAFANA / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `dashboards/([\w.-]+)`[^|]*\| `([\w-]+)` \| (\d+) \|", text, flags=re.MULTILINE)
    listed = {f: (uid, int(n)) for f, uid, n in rows}
    assert listed == {name: (d["uid"], len(d["panels"])) for name, d in _dashboards().items()}


def _expand(pattern: str) -> set[str]:
    """`a_{b,c}_d` -> {a_b_d, a_c_d} (the shorthand of the README's recorded-series table)."""
    m = re.search(r"\{([^{}]*)\}", pattern)
    if m is None:
        return {pattern}
    head, tail = pattern[: m.start()], pattern[m.end():]
    return {s for alt in m.group(1).split(",") for s in _expand(head + alt + tail)}


def test_readme_lists_every_recorded_series() -> None:
    text = (GRAFANA / "README.md").read_text(encoding="utf-8")
    listed = {s for cell in re.findall(r"`([a-z_]+:k8smon_[^`]+)`", text) for s in _expand(cell)}
    assert listed == _recorded()
