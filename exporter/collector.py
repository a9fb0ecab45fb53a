"""Turns the latest Snapshot into the metric families of docs/metrics.md (no I/O in collect())."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib import metadata

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.snapshot import ContainerSample, PodSample, Snapshot

POD_LABELS = ("node", "namespace", "pod", "uid", "owner_kind", "owner_name", "deployment")
CONTAINER_LABELS = ("node", "namespace", "pod", "uid", "container")
# (family without the k8smon_container_ prefix, help); all gauges but cpu_seconds.
CONTAINER_FAMILIES = (
    ("cpu_usage_cores", "CPU the container used over the last sampling interval."),
    ("cpu_seconds", "Cumulative CPU time of the container; continues across restarts of the same name."),
    ("memory_working_set_bytes", "Container memory usage minus inactive file, floored at 0."),
    ("cpu_request_cores", "The container's CPU request."),
    ("cpu_limit_cores", "The container's CPU limit (absent when unlimited)."),
    ("memory_request_bytes", "The container's memory request."),
    ("memory_limit_bytes", "The container's memory limit (absent when unlimited)."),
)


def package_version() -> str:
    """The installed k8s-monitor version, or "unknown" when running from an uninstalled tree."""
    try:
        return metadata.version("k8s-monitor")
    except metadata.PackageNotFoundError:
        return "unknown"


def pod_labels(node: str, pod: PodSample) -> list[str]:
    """Label values in POD_LABELS order; an unnamed pod is labelled by its UID (docs/metrics.md)."""
    uid = pod.usage.uid
    meta = pod.meta
    if meta is None:
        return [node, "", uid, uid, "", "", ""]
    return [node, meta.namespace, meta.name, uid, meta.owner_kind, meta.owner_name, meta.deployment]


class SnapshotCollector(Collector):
    """A prometheus_client collector over whatever snapshot `latest()` returns at scrape time."""

    def __init__(self, latest: Callable[[], Snapshot | None], *, version: str | None = None,
                 containers: bool = True) -> None:
        self._latest = latest
        self._version = version if version is not None else package_version()
        self._containers = containers  # False: no k8smon_container_* families (--container-metrics)

    def describe(self) -> Iterator[Metric]:
        # Returning nothing keeps registration from calling collect() (no snapshot exists yet).
        return iter(())

    def collect(self) -> Iterator[Metric]:
        snapshot = self._latest()
        build = GaugeMetricFamily("k8smon_exporter_build_info", "Always 1; labels carry the version.",
                                  labels=["version"])
        build.add_metric([self._version], 1)
        yield build
        if snapshot is None:
            return
        yield from self._self_metrics(snapshot)
        yield from self._node_metrics(snapshot)
        yield from self._pod_metrics(snapshot)
        if self._containers:
            yield from self._container_metrics(snapshot)

    @staticmethod
    def _self_metrics(s: Snapshot) -> Iterator[Metric]:
        node = [s.node]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=["node"])
            family.add_metric(node, value)
            return family

        yield gauge("k8smon_exporter_sample_timestamp_seconds",
                    "Unix time at which the served snapshot was taken.", s.timestamp)
        yield gauge("k8smon_exporter_sample_duration_seconds",
                    "Wall time of the last sampling cycle.", s.duration_seconds)
        yield gauge("k8smon_exporter_sample_cpu_seconds",
                    "CPU time the exporter spent in the last sampling cycle.", s.cpu_seconds)
        samples = CounterMetricFamily("k8smon_exporter_samples", "Sampling cycles completed.",
                                      labels=["node"])
        samples.add_metric(node, s.sequence)
        yield samples
        errors = CounterMetricFamily("k8smon_exporter_errors", "Errors by source; a failed read drops "
                                     "one group of metrics, never the scrape.", labels=["node", "source"])
        for source, count in sorted(s.errors.items()):
            errors.add_metric([s.node, source], count)
        yield errors
        yield gauge("k8smon_exporter_pods_tracked", "Pods in the served snapshot.", len(s.pods))
        yield gauge("k8smon_exporter_containers_tracked", "Containers reported in the served snapshot.",
                    sum(len(p.containers) for p in s.pods))
        yield gauge("k8smon_exporter_kube_connected",
                    "1 while the pod index is synced with the API server.", 1 if s.kube_connected else 0)

    @staticmethod
    def _node_metrics(s: Snapshot) -> Iterator[Metric]:
        h, node = s.host, [s.node]

        def one(family: GaugeMetricFamily | CounterMetricFamily, value: float | None) -> Iterator[Metric]:
            if value is not None:  # a failed read drops the family for this scrape, not the scrape
                family.add_metric(node, value)
                yield family

        def gauge(name: str, doc: str, value: float | None) -> Iterator[Metric]:
            yield from one(GaugeMetricFamily(name, doc, labels=["node"]), value)

        def counter(name: str, doc: str, value: float | None) -> Iterator[Metric]:
            yield from one(CounterMetricFamily(name, doc, labels=["node"]), value)

        yield from gauge("k8smon_node_cpu_usage_cores", "CPU in use over the last sampling interval.",
                         s.host_cpu_usage_cores)
        yield from gauge("k8smon_node_cpu_capacity_cores", "Logical CPUs online.", h.cpu_count)
        yield from counter("k8smon_node_cpu_seconds", "Cumulative busy CPU time over all CPUs.",
                           h.cpu.busy_seconds if h.cpu else None)
        total, avail = h.memory_total_bytes, h.memory_available_bytes
        used = total - avail if total is not None and avail is not None else None
        yield from gauge("k8smon_node_memory_used_bytes", "MemTotal - MemAvailable.", used)
        yield from gauge("k8smon_node_memory_available_bytes", "MemAvailable.", avail)
        yield from gauge("k8smon_node_memory_total_bytes", "MemTotal.", total)
        yield from counter("k8smon_node_disk_read_bytes", "Bytes read from whole block devices.",
                           h.disk.read_bytes if h.disk else None)
        yield from counter("k8smon_node_disk_written_bytes", "Bytes written to whole block devices.",
                           h.disk.written_bytes if h.disk else None)
        yield from counter("k8smon_node_network_receive_bytes",
                           "Bytes received on the host's physical interfaces.",
                           h.network.receive_bytes if h.network else None)
        yield from counter("k8smon_node_network_transmit_bytes",
                           "Bytes transmitted on the host's physical interfaces.",
                           h.network.transmit_bytes if h.network else None)
        if h.filesystem is not None:
            labels = [s.node, h.filesystem.mountpoint]
            size = GaugeMetricFamily("k8smon_node_filesystem_size_bytes", "Size of the root filesystem.",
                                     labels=["node", "mountpoint"])
            size.add_metric(labels, h.filesystem.size_bytes)
            yield size
            free = GaugeMetricFamily("k8smon_node_filesystem_avail_bytes",
                                     "Bytes available to unprivileged users on the root filesystem.",
                                     labels=["node", "mountpoint"])
            free.add_metric(labels, h.filesystem.avail_bytes)
            yield free

    @staticmethod
    def _pod_metrics(s: Snapshot) -> Iterator[Metric]:
        labels = list(POD_LABELS)
        g = {
            name: GaugeMetricFamily(f"k8smon_pod_{name}", doc, labels=labels)
            for name, doc in (
                ("cpu_usage_cores", "CPU used over the last sampling interval."),
                ("memory_working_set_bytes", "Memory usage minus inactive file, floored at 0."),
                ("memory_usage_bytes", "Raw cgroup memory usage, page cache included."),
                ("host_network", "1 when the pod shares the host network namespace."),
                ("cpu_request_cores", "Sum of container CPU requests."),
                ("cpu_limit_cores", "Sum of container CPU limits (absent when any is unlimited)."),
                ("memory_request_bytes", "Sum of container memory requests."),
                ("memory_limit_bytes", "Sum of container memory limits (absent when any is unlimited)."),
            )
        }
        c = {
            name: CounterMetricFamily(f"k8smon_pod_{name}", doc, labels=labels)
            for name, doc in (
                ("cpu_seconds", "Cumulative CPU time of the pod cgroup."),
                ("disk_read_bytes", "Block I/O bytes read by the pod cgroup."),
                ("disk_written_bytes", "Block I/O bytes written by the pod cgroup."),
                ("network_receive_bytes", "Bytes received in the pod's network namespace."),
                ("network_transmit_bytes", "Bytes transmitted in the pod's network namespace."),
            )
        }
        for pod in s.pods:
            values = pod_labels(s.node, pod)
            u, meta = pod.usage, pod.meta
            pairs: list[tuple[GaugeMetricFamily | CounterMetricFamily, float | None]] = [
                (g["cpu_usage_cores"], pod.cpu_usage_cores),
                (c["cpu_seconds"], u.cpu_seconds),
                (g["memory_working_set_bytes"], u.memory_working_set_bytes),
                (g["memory_usage_bytes"], u.memory_usage_bytes),
                (c["disk_read_bytes"], u.disk.read_bytes if u.disk else None),
                (c["disk_written_bytes"], u.disk.written_bytes if u.disk else None),
                (c["network_receive_bytes"], u.network.receive_bytes if u.network else None),
                (c["network_transmit_bytes"], u.network.transmit_bytes if u.network else None),
                (g["host_network"], 1 if (u.host_network or (meta is not None and meta.host_network)) else 0),
            ]
            if meta is not None:
                pairs += [
                    (g["cpu_request_cores"], meta.cpu_request_cores),
                    (g["cpu_limit_cores"], meta.cpu_limit_cores),
                    (g["memory_request_bytes"], meta.memory_request_bytes),
                    (g["memory_limit_bytes"], meta.memory_limit_bytes),
                ]
            for family, value in pairs:
                if value is not None:
                    family.add_metric(values, value)
        # Families with no samples are still announced (HELP/TYPE) so the set of names is stable.
        order = ("cpu_usage_cores", "cpu_seconds", "memory_working_set_bytes", "memory_usage_bytes",
                 "disk_read_bytes", "disk_written_bytes", "network_receive_bytes", "network_transmit_bytes",
                 "host_network", "cpu_request_cores", "cpu_limit_cores", "memory_request_bytes",
                 "memory_limit_bytes")
        for name in order:
            yield g[name] if name in g else c[name]

    @staticmethod
    def _container_metrics(s: Snapshot) -> Iterator[Metric]:
        # One family at a time: generate_latest renders each before the next is built, so only one
        # family's samples (one per container) are alive at once; that keeps the peak RSS down.
        rows = [(pod_labels(s.node, pod)[:4], c) for pod in s.pods for c in pod.containers]
        labels = list(CONTAINER_LABELS)
        getters: dict[str, Callable[[ContainerSample], float | None]] = {
            "cpu_usage_cores": lambda c: c.cpu_usage_cores,
            "cpu_seconds": lambda c: c.cpu_seconds,
            "memory_working_set_bytes": lambda c: c.memory_working_set_bytes,
            "cpu_request_cores": lambda c: c.meta.cpu_request_cores if c.meta else None,
            "cpu_limit_cores": lambda c: c.meta.cpu_limit_cores if c.meta else None,
            "memory_request_bytes": lambda c: c.meta.memory_request_bytes if c.meta else None,
            "memory_limit_bytes": lambda c: c.meta.memory_limit_bytes if c.meta else None,
        }
        for name, doc in CONTAINER_FAMILIES:
            cls = CounterMetricFamily if name == "cpu_seconds" else GaugeMetricFamily
            family = cls(f"k8smon_container_{name}", doc, labels=labels)
            get = getters[name]
            for pod_values, c in rows:
                value = get(c)
                if value is not None:
                    family.add_metric([*pod_values, c.name], value)
            yield family  # announced even when empty, like the pod families
            del family
