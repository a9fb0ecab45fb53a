"""deploy/prometheus/: promtool checks the scrape config and rules and runs the alert unit tests;
the operator variants agree with the plain files and with the rendered manifests."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import require_tool
from tests.support.deploy import DEPLOY, REPO, find, render

PROM = DEPLOY / "prometheus"
RULES = PROM / "rules.yml"
RULES_TEST = PROM / "rules_test.yml"
CONFIG = PROM / "prometheus.yml"
EXPORTER_JOB = "k8s-monitor-exporter"
AGGREGATOR_JOB = "k8s-monitor-aggregator"


def _promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *map(str, args)], capture_output=True, text=True, timeout=60,
        check=False, cwd=cwd,
    )


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _alerts(rules: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}


def _records(rules: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["record"]: r for g in rules["groups"] for r in g["rules"] if "record" in r}


def test_promtool_check_rules() -> None:
    done = _promtool("check", "rules", RULES)
    assert done.returncode == 0, done.stdout + done.stderr
    rules = _load(RULES)
    assert f"SUCCESS: {len(_alerts(rules)) + len(_records(rules))} rules found" in done.stdout


def test_promtool_alert_unit_tests_pass() -> None:
    done = _promtool("test", "rules", RULES_TEST)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.parametrize(("old", "new"), [
    ("> 0.9\n        for: 15m", "> 0.99\n        for: 15m"),  # saturation thresholds
    ('up{job="k8s-monitor-exporter"} == 0', 'up{job="k8s-monitor-exporter"} == 2'),
    ("absent(up{job=\"k8s-monitor-aggregator\"} == 1)", "absent(up{job=\"k8s-monitor-aggregator\"})"),
    # Recording rules: a pod seen through both jobs counted twice; unnamed pods summed under "";
    # the pod sum preferred over the aggregator's roll-up.
    ("(max by (node, namespace, pod) (k8smon_pod_cpu_usage_cores{namespace!=\"\"}))",
     "(k8smon_pod_cpu_usage_cores{namespace!=\"\"})"),
    ("(k8smon_pod_memory_working_set_bytes{namespace!=\"\"}))\n",
     "(k8smon_pod_memory_working_set_bytes))\n"),
    ("max by (namespace, deployment) (k8smon_deployment_cpu_usage_cores)\n            or",
     "max by (namespace, deployment) (k8smon_deployment_cpu_usage_cores)\n            and"),
])
def test_alert_unit_tests_fail_when_a_rule_is_wrong(tmp_path: Path, old: str, new: str) -> None:
    """Mutating a rule makes `promtool test rules` fail, so the unit tests really pin the rules."""
    text = RULES.read_text(encoding="utf-8")
    assert old in text
    (tmp_path / "rules.yml").write_text(text.replace(old, new), encoding="utf-8")
    shutil.copy(RULES_TEST, tmp_path / "rules_test.yml")
    done = _promtool("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert done.returncode != 0, f"mutation {old!r} -> {new!r} went unnoticed:\n{done.stdout}"


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for case in _load(RULES_TEST)["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    alerts = set(_alerts(_load(RULES)))
    assert firing == alerts, f"alerts without a firing case: {alerts - firing}"
    assert silent == alerts, f"alerts without a silent case: {alerts - silent}"


def test_every_recording_rule_has_a_unit_test_and_a_conventional_name() -> None:
    cases = _load(RULES_TEST)["tests"]
    tested = {check["expr"] for case in cases for check in case.get("promql_expr_test", [])}
    records = _records(_load(RULES))
    assert len(records) >= 20
    assert set(records) <= tested, f"recording rules without a promql_expr_test: {set(records) - tested}"
    for name in records:  # level:metric:operations, as Prometheus' naming practice has it
        assert re.fullmatch(r"[a-z_]+:k8smon_[a-z_]+:[a-z0-9_]+", name), name


def test_alerts_have_severity_summary_and_description() -> None:
    for name, rule in _alerts(_load(RULES)).items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert {"summary", "description"} <= rule["annotations"].keys(), name


def _documented_metrics() -> set[str]:
    text = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\| `(k8smon_[a-z_]+)`", text, flags=re.MULTILINE))


def test_rules_use_documented_metrics_and_existing_jobs() -> None:
    documented = _documented_metrics()
    assert "k8smon_node_cpu_usage_cores" in documented  # the doc parser works
    jobs = {sc["job_name"] for sc in _load(CONFIG)["scrape_configs"]}
    rules = _load(RULES)
    records = _records(rules)
    for name, rule in {**_alerts(rules), **records}.items():
        expr = rule["expr"]
        for recorded in records:  # recorded series are checked through their own rule
            expr = expr.replace(recorded, "")
        used = set(re.findall(r"\bk8smon_[a-z_]+", expr))
        assert used <= documented, f"{name} uses undocumented metrics {used - documented}"
        for job in re.findall(r'job="([^"]+)"', rule["expr"]):
            assert job in jobs, f"{name} selects job {job!r}, which prometheus.yml does not define"


def test_prometheus_rule_matches_the_plain_rule_file() -> None:
    rule = _load(PROM / "prometheusrule.yaml")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"] == _load(RULES)


def _without_kubernetes_sd(config: dict[str, Any]) -> dict[str, Any]:
    """The same config with kubernetes_sd_configs swapped for file_sd_configs (see the test below)."""
    for sc in config["scrape_configs"]:
        if sc.pop("kubernetes_sd_configs", None) is not None:
            sc["file_sd_configs"] = [{"files": ["targets/*.json"]}]
    return config


def test_promtool_check_config(tmp_path: Path) -> None:
    """promtool accepts prometheus.yml (and the rule file it loads).

    Debian builds Prometheus without Kubernetes service discovery, and its promtool rejects the
    `kubernetes_sd_configs` key itself. With such a promtool the rest of the file is still checked by
    promtool (those blocks swapped for file_sd_configs) and the kubernetes_sd blocks are checked here
    against the fields Prometheus documents.
    """
    done = _promtool("check", "config", CONFIG)
    if done.returncode == 0:
        return
    output = done.stdout + done.stderr
    assert "field kubernetes_sd_configs not found" in output, output
    config = _load(CONFIG)
    for sc in config["scrape_configs"]:
        for sd in sc.get("kubernetes_sd_configs", []):
            assert set(sd) <= {"role", "namespaces", "selectors", "api_server", "kubeconfig_file"}, sd
            assert sd["role"] == "endpoints"
            assert set(sd["namespaces"]) == {"names"}
    shutil.copy(RULES, tmp_path / "rules.yml")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(_without_kubernetes_sd(config)), encoding="utf-8")
    done = _promtool("check", "config", tmp_path / "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_scrape_config_selects_the_rendered_services() -> None:
    objs = render()
    config = {sc["job_name"]: sc for sc in _load(CONFIG)["scrape_configs"]}
    assert set(config) == {EXPORTER_JOB, AGGREGATOR_JOB}
    for job, sc in config.items():
        # Federation and exporter metrics carry their own node/namespace/pod labels.
        assert sc["honor_labels"] is True
        (sd,) = sc["kubernetes_sd_configs"]
        svc = find(objs, "Service", job)
        assert sd["namespaces"]["names"] == [svc["metadata"]["namespace"]]
        keep = next(r for r in sc["relabel_configs"] if r["action"] == "keep")
        meta = "__meta_kubernetes_"
        assert keep["source_labels"] == [f"{meta}service_name", f"{meta}endpoint_port_name"]
        service, port = keep["regex"].split(";")
        assert service == job
        assert port in {p["name"] for p in svc["spec"]["ports"]}


def test_service_monitors_select_the_rendered_services() -> None:
    objs = render()
    monitors = [o for o in render(PROM) if o["kind"] == "ServiceMonitor"]
    assert {m["metadata"]["name"] for m in monitors} == {EXPORTER_JOB, AGGREGATOR_JOB}
    for m in monitors:
        svc = find(objs, "Service", m["metadata"]["name"])  # job label = Service name, as in prometheus.yml
        assert m["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
        assert m["spec"]["namespaceSelector"]["matchNames"] == [svc["metadata"]["namespace"]]
        (endpoint,) = m["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}
        assert endpoint["honorLabels"] is True
        drop = endpoint["relabelings"][0]
        assert drop["action"] == "labeldrop"
        assert re.fullmatch(drop["regex"], "namespace") and re.fullmatch(drop["regex"], "pod")
    assert find(render(PROM), "PrometheusRule", "k8s-monitor")
