"""Wiring: settings -> readers, pod index, sampler, registry, app and server, started and stopped together."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from prometheus_client import CollectorRegistry

from exporter.collector import SnapshotCollector
from exporter.config import ExporterSettings
from exporter.sampler import (
    CgroupSource,
    ContainerSource,
    CountingErrors,
    HostSource,
    PodStatsSource,
    Sampler,
)
from exporter.server import create_app
from exporter.snapshot import Snapshot
from k8smon_common.http_server import ServerHandle
from k8smon_common.kubeauth import protect

log = logging.getLogger(__name__)


def default_readers(
    settings: ExporterSettings, errors: CountingErrors
) -> tuple[HostSource, CgroupSource, PodStatsSource]:
    """The real /proc, /sys and cgroup readers, rooted where the settings say."""
    from exporter.cgroups import PodCgroupFinder
    from exporter.host import HostReader
    from exporter.podstats import PodStatsReader

    return (
        HostReader(proc_root=settings.proc_root, sys_root=settings.sys_root, rootfs=settings.rootfs,
                   excluded_interfaces=settings.exclude_interfaces, errors=errors),
        PodCgroupFinder(cgroup_root=settings.cgroup_root, errors=errors),
        PodStatsReader(proc_root=settings.proc_root, sys_root=settings.sys_root, errors=errors),
    )


class ExporterService:
    """One running exporter: `start()` brings up the index, the sampler and the HTTP server."""

    def __init__(
        self,
        settings: ExporterSettings,
        *,
        environ: Mapping[str, str] | None = None,
        readers: tuple[HostSource, CgroupSource, PodStatsSource] | None = None,
        errors: CountingErrors | None = None,
        container_reader: ContainerSource | None = None,
    ) -> None:
        from exporter.podindex import KubeUnavailable, PodIndex, api_client_from

        self.settings = settings
        self.node = settings.node
        self.errors = errors or CountingErrors()
        host, cgroups, podstats = readers or default_readers(settings, self.errors)
        self.index: PodIndex | None = None
        try:
            api_client = api_client_from(settings.kubeconfig, environ)
        except KubeUnavailable as exc:
            log.error("%s; running standalone (pods labelled by UID)", exc)
            self.errors.record("kube", "configuration", exc)
            api_client = None
        if api_client is None:
            log.info("no Kubernetes API configured; running standalone (pods labelled by UID)")
        else:
            self.index = PodIndex(node=self.node, api_client=api_client, errors=self.errors)
        self.sampler = Sampler(
            node=self.node, host_reader=host, cgroup_finder=cgroups, pod_reader=podstats,
            errors=self.errors, pods=self.index, exclude_namespaces=settings.exclude_namespaces,
            interval=settings.interval,
            container_reader=self._container_reader(settings, readers, container_reader),
        )
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SnapshotCollector(self.latest, containers=settings.container_metrics))
        self.app = create_app(
            latest=self.latest, node=self.node, registry=self.registry,
            liveness_timeout=settings.liveness_timeout,
        )
        served = self.app if settings.auth == "none" else protect(
            self.app, api_client, on_reject=lambda code: self.errors.record("auth", f"HTTP {code}"))
        self.server = ServerHandle(served, host=settings.listen.host, port=settings.listen.port, threads=4)

    def _container_reader(self, settings: ExporterSettings,
                          readers: tuple[HostSource, CgroupSource, PodStatsSource] | None,
                          given: ContainerSource | None) -> ContainerSource | None:
        """None when container metrics are off; with `readers` given, `given` (stand-ins go together);
        else the real reader over the settings' /proc."""
        if not settings.container_metrics:
            return None
        if readers is not None:
            return given
        from exporter.containers import ContainerReader

        return ContainerReader(proc_root=settings.proc_root, errors=self.errors)

    def latest(self) -> Snapshot | None:
        """The snapshot being served."""
        return self.sampler.latest

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> ExporterService:
        if self.index is not None:
            self.index.start()
        self.sampler.start()
        self.server.start()
        log.info("k8smon-exporter for node %s listening on %s", self.node, self.url)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Finish in-flight requests, then stop sampling and watching."""
        try:
            self.server.stop(timeout)
        finally:
            self.sampler.stop(timeout)
            if self.index is not None:
                self.index.stop(timeout)

    def __enter__(self) -> ExporterService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
