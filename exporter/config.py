"""The exporter's settings: one frozen dataclass built from flags and `K8SMON_*` env vars."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from exporter.host import DEFAULT_EXCLUDED_INTERFACES  # one list, owned by the reader that applies it
from k8smon_common import __version__
from k8smon_common.config import (
    HostPort,
    load_settings,
    option,
    parse_bool,
    parse_choice,
    parse_csv,
    parse_hostport,
    parse_log_level,
    parse_positive_float,
)

PROG = "k8smon-exporter"
DESCRIPTION = "Samples this node and its pods every --interval seconds and serves Prometheus metrics."

def _parse_node_name(text: str) -> str:
    name = text.strip()
    if any(c.isspace() for c in name):
        raise ValueError(f"expected a node name without spaces (empty = hostname), got {text!r}")
    return name


def _parse_dir(text: str) -> str:
    # Checked while parsing (not only in validate()) so a missing root is listed with the other problems.
    path = text.strip()
    if not path:
        raise ValueError("expected a directory, got an empty string")
    if not os.path.isdir(path):
        raise ValueError("not a directory")
    return path


def _parse_kubeconfig(text: str) -> str:
    path = text.strip()
    if path and not os.path.isfile(path):
        raise ValueError("no such file")
    return path


def _parse_interval(text: str) -> float:
    value = parse_positive_float(text)
    if not 0.05 <= value <= 3600:
        raise ValueError(f"expected seconds between 0.05 and 3600, got {text!r}")
    return value


@dataclass(frozen=True)
class ExporterSettings:
    """Everything the exporter can be told; every field has a default and a unit in its help."""

    listen: HostPort = option(
        HostPort("0.0.0.0", 9100), "address to serve /metrics and /healthz on (host:port)",
        parse=parse_hostport, metavar="HOST:PORT",
    )
    node_name: str = option(
        "", "this node's name, used as the `node` label and the pod field selector "
        "(empty = the machine's hostname)",
        parse=_parse_node_name, env_aliases=("NODE_NAME",), metavar="NAME",
    )
    proc_root: str = option("/proc", "where the host's /proc is mounted", parse=_parse_dir, metavar="DIR")
    sys_root: str = option("/sys", "where the host's /sys is mounted", parse=_parse_dir, metavar="DIR")
    cgroup_root: str = option(
        "/sys/fs/cgroup", "where the host's cgroup hierarchies are mounted", parse=_parse_dir, metavar="DIR"
    )
    rootfs: str = option(
        "/", "path whose filesystem size and free space are reported", parse=_parse_dir, metavar="DIR"
    )
    interval: float = option(5.0, "sampling interval in seconds", parse=_parse_interval, metavar="SECONDS")
    liveness_timeout: float = option(
        60.0, "seconds without a new sample after which /healthz answers 503, so the liveness probe "
        "restarts an exporter whose sampling hangs (> --interval)",
        parse=parse_positive_float, metavar="SECONDS",
    )
    kubeconfig: str = option(
        "", "kubeconfig file; empty = in-cluster config when KUBERNETES_SERVICE_HOST is set, "
        "else standalone (pods labelled by UID)",
        parse=_parse_kubeconfig, metavar="FILE",
    )
    exclude_namespaces: tuple[str, ...] = option(
        ("kube-system", "kube-public"),
        "comma-separated namespaces whose pods are not exported (empty = none)",
        parse=parse_csv, metavar="NS,...",
    )
    # Spelled like --exclude-namespaces; the seed's --excluded-interfaces still works.
    exclude_interfaces: tuple[str, ...] = option(
        DEFAULT_EXCLUDED_INTERFACES,
        "comma-separated interface name globs left out of host network totals",
        parse=parse_csv, metavar="GLOB,...",
        flag_aliases=("--excluded-interfaces",), env_aliases=("K8SMON_EXCLUDED_INTERFACES",),
    )
    container_metrics: bool = option(
        True, "export per-container families (k8smon_container_*, up to 7 series per container); "
        "false reads pod cgroups only",
        parse=parse_bool, metavar="BOOL",
    )
    auth: str = option(
        "none",
        "who may read this listener: none (anyone who reaches the port reads every pod name, namespace "
        "and usage figure) or kubernetes (a bearer token checked by TokenReview, then a "
        "SubjectAccessReview for get on the path, as kube-rbac-proxy; /healthz and /readyz stay open)",
        parse=parse_choice("none", "kubernetes"), metavar="MODE",
    )
    log_level: str = option("INFO", "debug, info, warning or error", parse=parse_log_level, metavar="LEVEL")
    log_format: str = option("text", "text or json", parse=parse_choice("text", "json"), metavar="FORMAT")

    def validate(self) -> list[str]:
        """Cross-field and filesystem checks, every problem at once."""
        problems: list[str] = []
        for flag, path in (
            ("--proc-root", self.proc_root),
            ("--sys-root", self.sys_root),
            ("--cgroup-root", self.cgroup_root),
            ("--rootfs", self.rootfs),
        ):
            if not os.path.isdir(path):
                problems.append(f"{flag}={path!r}: not a directory")
        if self.kubeconfig and not os.path.isfile(self.kubeconfig):
            problems.append(f"--kubeconfig={self.kubeconfig!r}: no such file")
        if self.liveness_timeout <= self.interval:
            problems.append(
                f"--liveness-timeout ({self.liveness_timeout:g}s) must be longer than "
                f"--interval ({self.interval:g}s), or /healthz would fail between two samples"
            )
        return problems

    @property
    def node(self) -> str:
        """The node name in effect: the flag/env value, else the hostname."""
        return self.node_name or socket.gethostname()


def load(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> ExporterSettings:
    """Parse flags and environment into settings; raises ConfigError listing every problem."""
    return load_settings(
        ExporterSettings,
        argv,
        os.environ if environ is None else environ,
        prog=PROG,
        description=DESCRIPTION,
        version=__version__,
    )
