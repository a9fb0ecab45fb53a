"""The Grafana dashboards of k8s-monitor, built with grafana-foundation-sdk (Grafana's own builders).

This file is their one source of truth: edit it, then `python deploy/grafana/generate.py` rewrites
deploy/grafana/dashboards/*.json (tests/test_grafana_dashboards.py fails while the two differ, and
tests/test_grafana_queries.py runs every query against a real Prometheus).

Selectors hold whether Prometheus scrapes the exporters directly, the aggregator's federated
/metrics (honor_labels: true), or both: no `job` or `instance` matcher anywhere, node figures
deduplicated with `max by (node)`, pod figures with `max by (..., pod)`, and namespace/deployment
sums and per-pod byte rates from the recording rules in deploy/prometheus/rules.yml, which
deduplicate the same way. Variables are single-valued and matched with `=`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

OUT = Path(__file__).resolve().parent / "dashboards"
TAGS = ["k8s-monitor"]
REFRESH = "15s"  # the scrape interval in deploy/prometheus (prometheus.yml, servicemonitor.yaml)
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
CORES = "cores"  # not a Grafana unit id: Grafana shows an unknown id as a suffix, "0.25 cores"
RATE = "[$__rate_interval]"
# Node figures: one series per node, whichever jobs scrape it.
NODE_ONE = 'max(k8smon_node_{fam}{node="$node"})'
NODE_ALL = "max by (node) (k8smon_node_{fam})"


def fill(template: str, fam: str) -> str:
    """`template` with its `{fam}` replaced (str.format would trip over PromQL's braces)."""
    return template.replace("{fam}", fam)


@dataclass(frozen=True)
class Query:
    """One target: expression and legend."""

    expr: str
    legend: str


def _target(q: Query, ref: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(q.expr).legend_format(q.legend).ref_id(ref).datasource(DATASOURCE)


def _refs(queries: list[Query]) -> list[prometheus.Dataquery]:
    return [_target(q, chr(ord("A") + i)) for i, q in enumerate(queries)]


def series(title: str, unit: str, queries: list[Query], description: str, *, width: int = 12
           ) -> timeseries.Panel:
    """A time series panel: lines from 0, legend as a table with the last and max values."""
    return (
        timeseries.Panel().title(title).description(description).unit(unit).min(0)
        .datasource(DATASOURCE).targets(_refs(queries)).height(8).span(width)
        .fill_opacity(10).line_width(1).show_points(cm.VisibilityMode.NEVER)
        .legend(cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.TABLE)
                .placement(cm.LegendPlacement.BOTTOM).show_legend(True).calcs(["lastNotNull", "max"]))
        .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING))
    )


def single(title: str, unit: str, query: Query, description: str, *, width: int = 4) -> stat.Panel:
    """A stat panel with the last value."""
    return (
        stat.Panel().title(title).description(description).unit(unit)
        .datasource(DATASOURCE).targets(_refs([query])).height(4).span(width)
        .graph_mode(cm.BigValueGraphMode.AREA).color_mode(cm.BigValueColorMode.NONE)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def variable(name: str, label: str, query: str) -> db.QueryVariable:
    """A single-valued variable from `label_values(...)`, refreshed with the time range."""
    return (
        db.QueryVariable(name).label(label).datasource(DATASOURCE).query(query)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC)
    )


def base(uid: str, title: str, description: str) -> db.Dashboard:
    """Shared settings: tags, refresh, time range, the datasource variable, links to the others."""
    return (
        db.Dashboard(title).uid(uid).description(description).tags(TAGS).refresh(REFRESH)
        .time("now-1h", "now").timezone("browser").tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .editable()
        .link(db.DashboardLink("k8s-monitor").type(dm.DashboardLinkType.DASHBOARDS).tags(TAGS)
              .as_dropdown(True).include_vars(True).keep_time(True))
        .with_variable(db.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        # What Grafana itself writes into every dashboard it saves: its built-in annotations.
        .annotation(db.AnnotationQuery().name("Annotations & Alerts").type("dashboard").built_in(1)
                    .datasource(dm.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
                    .enable(True).hide(True).icon_color("rgba(0, 211, 255, 1)"))
    )


def _io(fmt: str, pairs: tuple[tuple[str, str], ...], legend: str) -> list[Query]:
    return [Query(fill(fmt, fam), f"{legend}{word}") for fam, word in pairs]


NET = (("network_receive_bytes", "receive"), ("network_transmit_bytes", "transmit"))
DISK = (("disk_read_bytes", "read"), ("disk_written_bytes", "written"))
WS = "k8smon_pod_memory_working_set_bytes"  # every measured pod has one: the variables list pods by it
PODS_ALL = f"max by (node, namespace, pod) ({WS})"


def cluster() -> db.Dashboard:
    d = base("k8smon-cluster", "k8s-monitor / Cluster",
             "Nodes, namespaces and the whole cluster as k8s-monitor measures them.")
    for title, unit, expr, desc in (
        ("Nodes", "none", f"count({fill(NODE_ALL, 'cpu_capacity_cores')})", "Nodes reporting."),
        ("Pods", "none", f"count({PODS_ALL})", "Pods measured, named or not."),
        ("CPU used", CORES, f"sum({fill(NODE_ALL, 'cpu_usage_cores')})", "Busy CPU over all nodes."),
        ("CPU capacity", CORES, f"sum({fill(NODE_ALL, 'cpu_capacity_cores')})", "Logical CPUs online."),
        ("Memory used", "bytes", f"sum({fill(NODE_ALL, 'memory_used_bytes')})",
         "MemTotal - MemAvailable over all nodes."),
        ("Memory total", "bytes", f"sum({fill(NODE_ALL, 'memory_total_bytes')})", "MemTotal over all nodes."),
    ):
        d = d.with_panel(single(title, unit, Query(expr, ""), desc))
    rate_all = "max by (node) (rate(k8smon_node_{fam}_total" + RATE + "))"
    return (
        d.with_panel(series("CPU usage by node", CORES,
                            [Query(fill(NODE_ALL, "cpu_usage_cores"), "{{node}}")],
                            "CPU in use per node over its last sampling interval."))
        .with_panel(series("Memory used by node", "bytes",
                           [Query(fill(NODE_ALL, "memory_used_bytes"), "{{node}}")],
                           "MemTotal - MemAvailable per node."))
        .with_panel(series("CPU usage by namespace", CORES,
                           [Query("namespace:k8smon_pod_cpu_usage_cores:sum", "{{namespace}}")],
                           "Sum over each namespace's pods (recording rule)."))
        .with_panel(series("Memory working set by namespace", "bytes",
                           [Query("namespace:k8smon_pod_memory_working_set_bytes:sum", "{{namespace}}")],
                           "Working set summed over each namespace's pods (recording rule)."))
        .with_panel(series("Network by node", "Bps", _io(rate_all, NET, "{{node}} "),
                           "Bytes per second on each node's physical interfaces."))
        .with_panel(series("Disk I/O by node", "Bps", _io(rate_all, DISK, "{{node}} "),
                           "Bytes per second to and from each node's whole block devices."))
        .with_panel(series("Network by namespace", "Bps",
                           _io("namespace:k8smon_pod_{fam}:rate1m", NET, "{{namespace}} "),
                           "Pod network bytes per second summed per namespace (host-network pods excluded)."))
        .with_panel(series("Disk I/O by namespace", "Bps",
                           _io("namespace:k8smon_pod_{fam}:rate1m", DISK, "{{namespace}} "),
                           "Pod block I/O bytes per second summed per namespace."))
        .with_panel(series("Root filesystem used by node", "percentunit",
                           [Query("1 - " + fill(NODE_ALL, "filesystem_avail_bytes") + " / "
                                  + fill(NODE_ALL, "filesystem_size_bytes"), "{{node}}")],
                           "Share of the root filesystem not available to unprivileged users."))
    )


def node() -> db.Dashboard:
    d = base("k8smon-node", "k8s-monitor / Node", "One node: host figures and the pods on it.").with_variable(
        variable("node", "Node", "label_values(k8smon_node_cpu_capacity_cores, node)"))
    fs_used = (f"1 - {fill(NODE_ONE, 'filesystem_avail_bytes')}"
               f" / {fill(NODE_ONE, 'filesystem_size_bytes')}")
    on_node = '{node="$node"}'
    for title, unit, expr, desc in (
        ("CPU capacity", CORES, fill(NODE_ONE, "cpu_capacity_cores"), "Logical CPUs online."),
        ("Memory total", "bytes", fill(NODE_ONE, "memory_total_bytes"), "MemTotal."),
        ("Pods", "none", f"count(max by (namespace, pod) (k8smon_pod_memory_working_set_bytes{on_node}))",
         "Pods measured on this node."),
        ("Root filesystem used", "percentunit", fs_used,
         "Share of the root filesystem not available to unprivileged users."),
    ):
        d = d.with_panel(single(title, unit, Query(expr, ""), desc, width=6))
    rate_one = "max(rate(k8smon_node_{fam}_total" + on_node + RATE + "))"
    per_pod = "sum by (namespace, pod) (node_namespace_pod:k8smon_pod_{fam}:rate1m" + on_node + ")"
    return (
        d.with_panel(series("CPU", CORES, [Query(fill(NODE_ONE, "cpu_usage_cores"), "used"),
                                           Query(fill(NODE_ONE, "cpu_capacity_cores"), "capacity")],
                            "CPU in use over the last sampling interval, and the CPUs online."))
        .with_panel(series("Memory", "bytes", [Query(fill(NODE_ONE, f"memory_{f}_bytes"), f)
                                               for f in ("used", "available", "total")],
                           "used = MemTotal - MemAvailable."))
        .with_panel(series("Network", "Bps", _io(rate_one, NET, ""),
                           "Bytes per second on the physical interfaces (lo and pod-side virtual ones "
                           "excluded)."))
        .with_panel(series("Disk I/O", "Bps", _io(rate_one, DISK, ""),
                           "Bytes per second to and from whole block devices."))
        .with_panel(series("CPU usage by pod", CORES,
                           [Query(f"max by (namespace, pod) (k8smon_pod_cpu_usage_cores{on_node})",
                                  "{{namespace}}/{{pod}}")],
                           "CPU per pod over the exporter's last sampling interval."))
        .with_panel(series("Memory working set by pod", "bytes",
                           [Query(f"max by (namespace, pod) (k8smon_pod_memory_working_set_bytes{on_node})",
                                  "{{namespace}}/{{pod}}")],
                           "Usage minus inactive file, the figure the kubelet evicts on."))
        .with_panel(series("Network by pod", "Bps", _io(per_pod, NET, "{{namespace}}/{{pod}} "),
                           "Bytes per second in each pod's network namespace (recording rule)."))
        .with_panel(series("Root filesystem", "bytes",
                           [Query(fill(NODE_ONE, "filesystem_size_bytes"), "size"),
                            Query(fill(NODE_ONE, "filesystem_avail_bytes"), "available")],
                           "Size and space available to unprivileged users."))
    )


def namespace() -> db.Dashboard:
    d = base("k8smon-namespace", "k8s-monitor / Namespace (pods)",
             "One namespace: its sums against requests and limits, and each of its pods.").with_variable(
        variable("namespace", "Namespace", f'label_values({WS}{{namespace!=""}}, namespace)'))
    sel = '{namespace="$namespace"}'
    for title, unit, rec, desc in (
        ("Pods", "none", "k8smon_pods:count", "Pods counted in the namespace's sums."),
        ("CPU usage", CORES, "k8smon_pod_cpu_usage_cores:sum", "CPU summed over the namespace's pods."),
        ("CPU requests", CORES, "k8smon_pod_cpu_request_cores:sum", "Container CPU requests summed."),
        ("CPU limits", CORES, "k8smon_pod_cpu_limit_cores:sum", "CPU limits summed over pods that have one."),
        ("Memory working set", "bytes", "k8smon_pod_memory_working_set_bytes:sum", "Working set summed."),
        ("Memory requests", "bytes", "k8smon_pod_memory_request_bytes:sum", "Memory requests summed."),
    ):
        d = d.with_panel(single(title, unit, Query(f"namespace:{rec}{sel}", ""), desc))
    by_pod = "sum by (pod) (node_namespace_pod:k8smon_pod_{fam}:rate1m" + sel + ")"
    return (
        d.with_panel(series("CPU usage, requests and limits", CORES, [
            Query(f"namespace:k8smon_pod_cpu_usage_cores:sum{sel}", "usage"),
            Query(f"namespace:k8smon_pod_cpu_request_cores:sum{sel}", "requests"),
            Query(f"namespace:k8smon_pod_cpu_limit_cores:sum{sel}", "limits")],
            "Namespace sums (recording rules); limits cover only pods that have one."))
        .with_panel(series("Memory working set, requests and limits", "bytes", [
            Query(f"namespace:k8smon_pod_memory_working_set_bytes:sum{sel}", "working set"),
            Query(f"namespace:k8smon_pod_memory_request_bytes:sum{sel}", "requests"),
            Query(f"namespace:k8smon_pod_memory_limit_bytes:sum{sel}", "limits")],
            "Namespace sums (recording rules); limits cover only pods that have one."))
        .with_panel(series("CPU usage by pod", CORES,
                           [Query(f"max by (pod) (k8smon_pod_cpu_usage_cores{sel})", "{{pod}}")],
                           "CPU per pod over the exporter's last sampling interval."))
        .with_panel(series("Memory working set by pod", "bytes",
                           [Query(f"max by (pod) (k8smon_pod_memory_working_set_bytes{sel})", "{{pod}}")],
                           "Usage minus inactive file, per pod."))
        .with_panel(series("Network receive by pod", "Bps",
                           [Query(fill(by_pod, "network_receive_bytes"), "{{pod}}")],
                           "Bytes per second received in each pod's network namespace."))
        .with_panel(series("Network transmit by pod", "Bps",
                           [Query(fill(by_pod, "network_transmit_bytes"), "{{pod}}")],
                           "Bytes per second transmitted from each pod's network namespace."))
        .with_panel(series("Disk read by pod", "Bps", [Query(fill(by_pod, "disk_read_bytes"), "{{pod}}")],
                           "Block I/O bytes per second read by each pod's cgroup."))
        .with_panel(series("Disk written by pod", "Bps",
                           [Query(fill(by_pod, "disk_written_bytes"), "{{pod}}")],
                           "Block I/O bytes per second written by each pod's cgroup."))
    )


def deployment() -> db.Dashboard:
    d = (
        base("k8smon-deployment", "k8s-monitor / Deployment",
             "One Deployment: its sums and each of its pods.")
        .with_variable(variable("namespace", "Namespace",
                                f'label_values({WS}{{deployment!=""}}, namespace)'))
        .with_variable(variable(
            "deployment", "Deployment",
            f'label_values({WS}{{namespace="$namespace", deployment!=""}}, deployment)'))
    )
    sel = '{namespace="$namespace", deployment="$deployment"}'
    for title, unit, rec, desc in (
        ("Pods", "none", "k8smon_pods:count", "Pods counted in the Deployment's sums."),
        ("CPU usage", CORES, "k8smon_pod_cpu_usage_cores:sum", "CPU summed over the Deployment's pods."),
        ("CPU requests", CORES, "k8smon_pod_cpu_request_cores:sum", "Container CPU requests summed."),
        ("Memory working set", "bytes", "k8smon_pod_memory_working_set_bytes:sum", "Working set summed."),
    ):
        d = d.with_panel(single(title, unit, Query(f"namespace_deployment:{rec}{sel}", ""), desc, width=6))
    by_pod = "sum by (pod) (node_namespace_pod:k8smon_pod_{fam}:rate1m" + sel + ")"
    return (
        d.with_panel(series("CPU usage and requests", CORES, [
            Query(f"namespace_deployment:k8smon_pod_cpu_usage_cores:sum{sel}", "usage"),
            Query(f"namespace_deployment:k8smon_pod_cpu_request_cores:sum{sel}", "requests")],
            "Deployment sums (recording rules)."))
        .with_panel(series("Memory working set and requests", "bytes", [
            Query(f"namespace_deployment:k8smon_pod_memory_working_set_bytes:sum{sel}", "working set"),
            Query(f"namespace_deployment:k8smon_pod_memory_request_bytes:sum{sel}", "requests")],
            "Deployment sums (recording rules)."))
        .with_panel(series("CPU usage by pod", CORES,
                           [Query(f"max by (pod) (k8smon_pod_cpu_usage_cores{sel})", "{{pod}}")],
                           "CPU per pod over the exporter's last sampling interval."))
        .with_panel(series("Memory working set by pod", "bytes",
                           [Query(f"max by (pod) (k8smon_pod_memory_working_set_bytes{sel})", "{{pod}}")],
                           "Usage minus inactive file, per pod."))
        .with_panel(series("Network by pod", "Bps", _io(by_pod, NET, "{{pod}} "),
                           "Bytes per second in each pod's network namespace (recording rule)."))
        .with_panel(series("Disk I/O by pod", "Bps", _io(by_pod, DISK, "{{pod}} "),
                           "Block I/O bytes per second of each pod's cgroup (recording rule)."))
    )


def pod() -> db.Dashboard:
    d = (
        base("k8smon-pod", "k8s-monitor / Pod",
             "One pod and its containers: usage against requests and limits.")
        .with_variable(variable("namespace", "Namespace",
                                f'label_values({WS}{{namespace!=""}}, namespace)'))
        .with_variable(variable("pod", "Pod",
                                f'label_values({WS}{{namespace="$namespace"}}, pod)'))
    )
    sel = '{namespace="$namespace", pod="$pod"}'
    one = "max(k8smon_pod_{fam}" + sel + ")"
    for title, unit, expr, desc in (
        ("CPU usage", CORES, fill(one, "cpu_usage_cores"), "CPU over the last sampling interval."),
        ("Memory working set", "bytes", fill(one, "memory_working_set_bytes"), "Usage minus inactive file."),
        ("Memory limit used", "percentunit",
         f"{fill(one, 'memory_working_set_bytes')} / {fill(one, 'memory_limit_bytes')}",
         "Working set over the memory limit: the pod is OOM-killed at 100% (empty without a limit)."),
        ("Host network", "bool_yes_no", fill(one, "host_network"),
         "Yes when the pod shares the node's network namespace: its traffic is not counted per pod."),
    ):
        d = d.with_panel(single(title, unit, Query(expr, ""), desc, width=6))
    rate = "sum(node_namespace_pod:k8smon_pod_{fam}:rate1m" + sel + ")"
    return (
        d.with_panel(series("CPU", CORES, [Query(fill(one, f"cpu_{f}_cores"), w) for f, w in (
            ("usage", "usage"), ("request", "request"), ("limit", "limit"))],
            "Usage against the containers' summed requests and limits (absent when unset)."))
        .with_panel(series("Memory", "bytes", [Query(fill(one, f"memory_{f}_bytes"), w) for f, w in (
            ("working_set", "working set"), ("usage", "usage incl. page cache"), ("request", "request"),
            ("limit", "limit"))], "Working set and raw cgroup usage against requests and limits."))
        .with_panel(series("Network", "Bps", _io(rate, NET, ""),
                           "Bytes per second in the pod's network namespace (absent for host-network pods)."))
        .with_panel(series("Disk I/O", "Bps", _io(rate, DISK, ""),
                           "Block I/O bytes per second of the pod's cgroup."))
        .with_panel(series("CPU usage by container", CORES,
                           [Query(f"max by (container) (k8smon_container_cpu_usage_cores{sel})",
                                  "{{container}}")],
                           "CPU per container cgroup (the sandbox stays in the pod's figure only)."))
        .with_panel(series("Memory working set by container", "bytes",
                           [Query(f"max by (container) (k8smon_container_memory_working_set_bytes{sel})",
                                  "{{container}}")],
                           "Usage minus inactive file per container cgroup (kubectl top pod --containers)."))
    )


DASHBOARDS = {"cluster": cluster, "node": node, "namespace": namespace, "deployment": deployment, "pod": pod}


def _built(builder: db.Dashboard) -> dm.Dashboard:
    """The dashboard model with stable panel ids (1, 2, ... in layout order) for links and embeds."""
    model = builder.build()
    for i, panel in enumerate(model.panels or [], start=1):
        panel.id_val = i
    return model


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard (keys sorted, so a diff shows only real changes)."""
    return {
        f"k8s-monitor-{name}.json": json.dumps(
            json.loads(JSONEncoder().encode(_built(build()))), indent=2, sort_keys=True) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main() -> int:
    OUT.mkdir(exist_ok=True)
    rendered = render()
    for stale in set(p.name for p in OUT.glob("*.json")) - set(rendered):
        (OUT / stale).unlink()
    for name, text in rendered.items():
        (OUT / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(rendered)} dashboards to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
