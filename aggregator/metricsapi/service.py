"""The metrics API as one part of the aggregator process: label watches, the app and its TLS listener."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from aggregator.config import AggregatorSettings
from aggregator.metricsapi.app import create_metrics_app
from aggregator.metricsapi.auth import DelegatedAuth, KubeReviewer, load_requestheader
from aggregator.metricsapi.metadata import KubeLabels, Labels, NoLabels
from aggregator.metricsapi.tls import TlsServer
from aggregator.stats import AggregatorStats
from aggregator.store.store import Store
from k8smon_common import kube
from k8smon_common.kube import KubeError

log = logging.getLogger(__name__)


class MetricsApi:
    """Built (and its port bound) by the Aggregator when --metrics-api-listen is set; KubeError when
    delegated auth cannot read `extension-apiserver-authentication` (or there is no API server)."""

    def __init__(self, settings: AggregatorSettings, *, store: Store, stats: AggregatorStats,
                 ready: Callable[[], bool], environ: Mapping[str, str] | None = None) -> None:
        listen = settings.metrics_api_listen
        assert listen is not None
        client = kube.api_client(settings.kubeconfig, environ)
        self.watches = KubeLabels(client, stats=stats) if client is not None else None
        labels: Labels = self.watches if self.watches is not None else NoLabels()
        if self.watches is None:
            log.warning("metrics API: no Kubernetes API to ask for pod and node labels; "
                        "label selectors match only objects without labels")
        middleware: list[object] = []
        client_ca = ""
        if settings.metrics_api_auth == "delegated":
            if client is None:
                raise KubeError("--metrics-api-auth delegated needs the API server (--kubeconfig or "
                                "in-cluster); --metrics-api-auth none serves anyone")
            config = load_requestheader(client)
            client_ca = config.client_ca
            middleware.append(DelegatedAuth(config, KubeReviewer(client), stats=stats))
        else:
            log.warning("metrics API: --metrics-api-auth none: anyone who reaches %s reads every pod's usage",
                        listen)
        app = create_metrics_app(store=store, labels=labels, stats=stats, middleware=middleware,
                                 default_window=settings.scrape_interval, clock=store.now, ready=ready)
        self.server = TlsServer(app, host=listen.host, port=listen.port, cert_file=settings.tls_cert_file,
                                key_file=settings.tls_private_key_file, client_ca=client_ca)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        if self.watches is not None:
            self.watches.start()
        self.server.start()
        log.info("metrics API (metrics.k8s.io v1beta1, v1) listening on %s", self.server.url)

    def stop(self) -> None:
        self.server.stop()
        if self.watches is not None:
            self.watches.stop()
