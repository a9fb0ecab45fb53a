"""The aggregator's settings: one frozen dataclass built from flags and `K8SMON_*` env vars."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from k8smon_common import __version__
from k8smon_common.config import (
    HostPort,
    load_settings,
    option,
    parse_choice,
    parse_csv,
    parse_hostport,
    parse_hostport_list,
    parse_log_level,
    parse_positive_float,
    parse_positive_int,
)

DISCOVERY_MODES = ("endpoints", "endpointslices")
SCRAPE_FORMATS = ("auto", "text")  # auto: ask for the JSON snapshot document (k8smon_common/snapshotdoc.py)
_SIZE_UNITS = {"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "kb": 1000, "mb": 10**6}
_SIZE_RE = re.compile(r"\s*([0-9]+)\s*([a-zA-Z]*)\s*")


def parse_size(text: str) -> int:
    """A byte count: `16777216`, `16MiB`, `512KiB`, `10MB`."""
    match = _SIZE_RE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _SIZE_UNITS:
        raise ValueError(f"expected a byte count like 16777216 or 16MiB, got {text!r}")
    value = int(match.group(1)) * _SIZE_UNITS[unit]
    if value <= 0:
        raise ValueError(f"expected a positive byte count, got {text!r}")
    return value


def parse_optional_hostport(text: str) -> HostPort | None:
    """`host:port`, or empty for off."""
    return parse_hostport(text) if text.strip() else None


def parse_origins(text: str) -> tuple[str, ...]:
    """CORS origins: `*` or a comma-separated list of `scheme://host[:port]`."""
    origins = parse_csv(text)
    for origin in origins:
        if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
            raise ValueError(f"expected * or origins like https://example.com, got {origin!r}")
    return origins


DEFAULT_SCRAPE_TIMEOUT = 4.0  # seconds, with the default 5-s interval
TIMEOUT_SHARE = 0.8  # a derived timeout leaves a fifth of the interval before the next round
DEFAULT_SCRAPE_CONCURRENCY = 256  # scrapes in flight at once (service.ScrapeService, bench target 3)


def derived_defaults(interval: float) -> dict[str, float]:
    """The interval-bound settings when not given, so `--scrape-interval` alone always starts.

    Prometheus caps its default scrape_timeout at the scrape_interval in the same way. Timeout: 4 s
    or 0.8 x the interval when shorter; staleness: 15 s or three intervals; liveness: 60 s or three
    intervals, whichever is longer.
    """
    return {
        "scrape_timeout": min(DEFAULT_SCRAPE_TIMEOUT, round(TIMEOUT_SHARE * interval, 6)),
        "stale_after": max(15.0, 3 * interval),
        "liveness_timeout": max(60.0, 3 * interval),
    }


@dataclass(frozen=True)
class AggregatorSettings:
    """Everything `k8smon-aggregator` can be told; units are in each help text."""

    listen: HostPort = option(
        HostPort("0.0.0.0", 5000),
        "address the HTTP API listens on (host:port)",
        parse=parse_hostport,
        metavar="HOST:PORT",
    )
    targets: tuple[HostPort, ...] = option(
        (),
        "static exporter addresses (host:port,...); when set, no Kubernetes discovery",
        parse=parse_hostport_list,
        metavar="HOST:PORT,...",
    )
    kubeconfig: str = option(
        "", "kubeconfig file; empty = in-cluster config when KUBERNETES_SERVICE_HOST is set", metavar="PATH"
    )
    discovery_mode: str = option(
        "endpoints",
        "how exporters are found: endpoints or endpointslices "
        "(endpoints switches to slices by itself when the object is truncated)",
        parse=parse_choice(*DISCOVERY_MODES),
        metavar="MODE",
    )
    discovery_namespace: str = option("k8s-monitor", "namespace of the exporters' Service", metavar="NS")
    discovery_service: str = option("k8s-monitor-exporter", "name of the exporters' Service", metavar="NAME")
    discovery_port_name: str = option(
        "metrics", "name of the Service port the exporters serve /metrics on", metavar="NAME"
    )
    scrape_interval: float = option(
        5.0, "seconds between scrape rounds", parse=parse_positive_float, metavar="SECONDS"
    )
    # The three settings declared None are derived from --scrape-interval in __post_init__ when not
    # given (derived_defaults), so a built settings object always holds numbers.
    scrape_timeout: float = option(
        None,
        "total deadline per exporter scrape, seconds (< scrape interval); empty = "
        f"{DEFAULT_SCRAPE_TIMEOUT:g}, capped at {TIMEOUT_SHARE:g} x --scrape-interval",
        parse=parse_positive_float,
        metavar="SECONDS",
    )
    scrape_format: str = option(
        "auto",
        "what the scrapes ask exporters for: auto (the exporter's JSON snapshot document, text format "
        "0.0.4 from any exporter that does not serve it) or text (always the text format)",
        parse=parse_choice(*SCRAPE_FORMATS),
        metavar="FORMAT",
    )
    scrape_concurrency: int = option(
        DEFAULT_SCRAPE_CONCURRENCY,
        "most scrapes in flight at once; the others start as slots free up (thousands started at once "
        "left the last answers unread past --scrape-timeout while the first were being parsed)",
        parse=parse_positive_int,
        metavar="N",
    )
    max_response_bytes: int = option(
        16 << 20,
        "largest exposition accepted per scrape, bytes (after gzip "
        "decompression too; 16MiB style suffixes accepted)",
        parse=parse_size,
        metavar="BYTES",
    )
    retention_points: int = option(
        1000, "points kept per node and pod series", parse=parse_positive_int, metavar="N"
    )
    liveness_timeout: float = option(
        None,
        "seconds without a completed scrape round after which /healthz answers 503, so the liveness "
        "probe restarts an aggregator whose scrape loop hangs (> --scrape-interval); empty = 60, "
        "at least 3 x --scrape-interval",
        parse=parse_positive_float,
        metavar="SECONDS",
    )
    stale_after: float = option(
        None,
        "seconds after which a pod not seen leaves current listings; empty = 15, at least "
        "3 x --scrape-interval; stretched while rounds overrun the interval",
        parse=parse_positive_float,
        metavar="SECONDS",
    )
    cors_origins: tuple[str, ...] = option(
        ("*",), "CORS allowed origins (* or a comma-separated list)", parse=parse_origins, metavar="ORIGINS"
    )
    ingest_token: str = option(
        "", "bearer token for the POST ingest routes; empty = ingest disabled (403)", metavar="TOKEN"
    )
    max_push_skew: float = option(
        60.0,
        "largest difference between a pushed timestamp and the aggregator's clock, seconds, either way; "
        "a push outside it is 400",
        parse=parse_positive_float,
        metavar="SECONDS",
    )
    max_body_bytes: int = option(
        64 << 10, "largest POST ingest body accepted, bytes (larger: 413)", parse=parse_size, metavar="BYTES"
    )
    max_series_per_target: int = option(
        100_000,
        "most samples one exposition may carry; more marks the target down (reason says why)",
        parse=parse_positive_int,
        metavar="N",
    )
    max_label_length: int = option(
        1024,
        "longest label value accepted, characters; a pod with a longer one is dropped from the reading",
        parse=parse_positive_int,
        metavar="N",
    )
    max_labels_per_series: int = option(
        32, "most labels one series may carry; a pod with more is dropped",
        parse=parse_positive_int, metavar="N",
    )
    max_targets: int = option(
        5000, "most targets scraped; the rest (by address order) are not scraped", parse=parse_positive_int,
        metavar="N",
    )
    state_file: str = option(
        "", "file the series are saved to and restored from; empty = no persistence", metavar="PATH"
    )
    snapshot_interval: float = option(
        60.0, "seconds between state-file snapshots (one is also written on SIGTERM)",
        parse=parse_positive_float, metavar="SECONDS",
    )
    metrics_api_listen: HostPort | None = option(
        None,
        "address the Resource Metrics API (metrics.k8s.io, for kubectl top and the HPA) listens on over "
        "TLS (host:port); empty = off",
        parse=parse_optional_hostport,
        metavar="HOST:PORT",
    )
    tls_cert_file: str = option(
        "", "PEM certificate of the metrics API listener; empty = a self-signed one made at start",
        metavar="PATH",
    )
    tls_private_key_file: str = option("", "PEM private key of --tls-cert-file", metavar="PATH")
    metrics_api_auth: str = option(
        "delegated",
        "who may read the metrics API: delegated (front-proxy request headers, TokenReview and "
        "SubjectAccessReview through the API server, as metrics-server) or none (anyone; local demo only)",
        parse=parse_choice("delegated", "none"),
        metavar="MODE",
    )
    auth: str = option(
        "none",
        "who may read the HTTP listener (JSON API, /metrics, dashboard): none (anyone who reaches the "
        "port reads every pod name, namespace and usage figure) or kubernetes (a bearer token checked "
        "by TokenReview, then a SubjectAccessReview for get on the path, as kube-rbac-proxy; /healthz "
        "and /readyz stay open); POST ingest keeps its own token",
        parse=parse_choice("none", "kubernetes"),
        metavar="MODE",
    )
    log_level: str = option("INFO", "debug, info, warning or error", parse=parse_log_level, metavar="LEVEL")
    log_format: str = option("text", "text or json", parse=parse_choice("text", "json"), metavar="FORMAT")

    def __post_init__(self) -> None:
        # Settings left empty follow the interval; only explicit values that conflict are refused.
        for name, value in derived_defaults(self.scrape_interval).items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    def validate(self) -> Iterator[str]:
        """Problems that involve more than one setting."""
        if self.scrape_timeout >= self.scrape_interval:
            yield (
                f"--scrape-timeout ({self.scrape_timeout:g}s) must be shorter than --scrape-interval "
                f"({self.scrape_interval:g}s), or rounds would overlap"
            )
        if self.stale_after < self.scrape_interval:
            yield (
                f"--stale-after ({self.stale_after:g}s) must be at least --scrape-interval "
                f"({self.scrape_interval:g}s), or every pod would go stale between rounds"
            )
        if self.liveness_timeout <= self.scrape_interval:
            yield (
                f"--liveness-timeout ({self.liveness_timeout:g}s) must be longer than --scrape-interval "
                f"({self.scrape_interval:g}s), or /healthz would fail between two rounds"
            )
        if self.max_response_bytes < 1024:
            yield f"--max-response-bytes ({self.max_response_bytes}) must be at least 1024"
        for target in self.targets:
            if target.port == 0:
                yield f"--targets: {target} needs a port"
        if bool(self.tls_cert_file) != bool(self.tls_private_key_file):
            yield "--tls-cert-file and --tls-private-key-file go together: give both or neither"
        if any(c.isspace() for c in self.ingest_token):
            yield "--ingest-token must not contain whitespace"

    @property
    def discovery(self) -> str:
        """`static` when --targets is set, else the Kubernetes discovery mode."""
        return "static" if self.targets else self.discovery_mode


def load(argv: Sequence[str] | None, environ: Mapping[str, str]) -> AggregatorSettings:
    """Settings from flags, then `K8SMON_*` env vars, then defaults; ConfigError lists every problem."""
    return load_settings(
        AggregatorSettings,
        argv,
        environ,
        prog="k8smon-aggregator",
        version=__version__,
        description="Discovers k8s-monitor exporters, scrapes them every few seconds into "
        "bounded series and serves a JSON API plus a federated /metrics.",
    )
