"""The metrics API's own TLS listener inside a real aggregator process object: self-signed or given cert."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from aggregator.config import load
from aggregator.metricsapi.tls import self_signed
from aggregator.model import ContainerReading, NodeReading, PodReading
from aggregator.service import Aggregator
from k8smon_common.config import ConfigError


def _get(url: str, cafile: bytes) -> tuple[int, dict]:
    ctx = ssl.create_default_context(cadata=cafile.decode())
    with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def _aggregator(*flags: str) -> Aggregator:
    settings = load(["--listen", "127.0.0.1:0", "--targets", "127.0.0.1:9", "--metrics-api-listen",
                     "127.0.0.1:0", "--metrics-api-auth", "none", *flags], environ={})
    return Aggregator(settings, environ={})


def _feed(agg: Aggregator) -> None:
    pod = PodReading(namespace="ns", pod="web", uid="u1", values={"cpu_usage_cores": 0.1},
                     containers=(ContainerReading("app", {"cpu_usage_cores": 0.1,
                                                          "memory_working_set_bytes": 8 << 20}),))
    agg.store.ingest(NodeReading(node="n1", timestamp=time.time(), pods=(pod,),
                                 values={"cpu_usage_cores": 1.0, "memory_used_bytes": 1 << 30}))


def test_self_signed_listener_serves_pod_metrics_plain_api_unchanged() -> None:
    agg = _aggregator()
    assert agg.metrics_api is not None
    with agg:
        _feed(agg)
        cert = agg.metrics_api.server.certificate
        status, doc = _get(f"{agg.metrics_api.url}/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods/web", cert)
        assert status == 200
        assert doc["containers"] == [{"name": "app", "usage": {"cpu": "100m", "memory": "8Mi"}}]
        # the plain JSON API is still plain HTTP on its own port
        with urllib.request.urlopen(f"{agg.url}/api/pods/web", timeout=10) as resp:
            assert json.loads(resp.read())["namespace"] == "ns"
        with pytest.raises(urllib.error.URLError):  # verification against a foreign CA fails
            _get(f"{agg.metrics_api.url}/healthz", self_signed(["localhost"])[0])


def test_given_certificate_is_served(tmp_path: Path) -> None:
    cert, key = self_signed(["127.0.0.1", "metrics.example"])
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    agg = _aggregator("--tls-cert-file", str(tmp_path / "tls.crt"), "--tls-private-key-file",
                      str(tmp_path / "tls.key"))
    with agg:
        assert agg.metrics_api is not None and agg.metrics_api.server.certificate == cert
        _feed(agg)
        status, doc = _get(f"{agg.metrics_api.url}/apis/metrics.k8s.io/v1/nodes/n1", cert)
        assert status == 200 and doc["usage"] == {"cpu": "1", "memory": "1Gi"}


def test_metrics_api_is_off_by_default_and_key_needs_cert() -> None:
    settings = load(["--listen", "127.0.0.1:0", "--targets", "127.0.0.1:9"], environ={})
    assert settings.metrics_api_listen is None
    agg = Aggregator(settings, environ={})
    try:
        assert agg.metrics_api is None
    finally:
        agg.server.stop()
    with pytest.raises(ConfigError, match="go together"):
        load(["--metrics-api-listen", "127.0.0.1:0", "--tls-cert-file", "/x"], environ={})
    assert load([], environ={"K8SMON_METRICS_API_LISTEN": ":8443"}).metrics_api_listen.port == 8443
