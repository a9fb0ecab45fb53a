"""Exporter settings: every flag and env var, the NODE_NAME alias, all problems at once, README table."""

from __future__ import annotations

import dataclasses
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.config import DEFAULT_EXCLUDED_INTERFACES, ExporterSettings, load
from k8smon_common.config import ConfigError, HostPort, env_name, flag_name, markdown_table

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, str]:
    paths = {}
    for name in ("proc", "sys", "cgroup", "rootfs"):
        (tmp_path / name).mkdir()
        paths[name] = str(tmp_path / name)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    paths["kubeconfig"] = str(kubeconfig)
    return paths


def values(roots: dict[str, str]) -> dict[str, tuple[str, object]]:
    """field -> (raw text, parsed value), one non-default value for every field."""
    return {
        "listen": ("127.0.0.1:9200", HostPort("127.0.0.1", 9200)),
        "node_name": ("node-7", "node-7"),
        "proc_root": (roots["proc"], roots["proc"]),
        "sys_root": (roots["sys"], roots["sys"]),
        "cgroup_root": (roots["cgroup"], roots["cgroup"]),
        "rootfs": (roots["rootfs"], roots["rootfs"]),
        "interval": ("2.5", 2.5),
        "liveness_timeout": ("30", 30.0),
        "kubeconfig": (roots["kubeconfig"], roots["kubeconfig"]),
        "exclude_namespaces": ("a, b,,c", ("a", "b", "c")),
        "exclude_interfaces": ("lo,eth9*", ("lo", "eth9*")),
        "container_metrics": ("false", False),
        "auth": ("kubernetes", "kubernetes"),
        "log_level": ("debug", "DEBUG"),
        "log_format": ("JSON", "json"),
    }


def test_defaults_match_the_fixed_names() -> None:
    s = load([], {})
    assert s.listen == HostPort("0.0.0.0", 9100)
    assert (s.proc_root, s.sys_root, s.cgroup_root, s.rootfs) == ("/proc", "/sys", "/sys/fs/cgroup", "/")
    assert s.interval == 5.0 and s.liveness_timeout == 60.0
    assert s.kubeconfig == ""
    assert s.exclude_namespaces == ("kube-system", "kube-public")
    assert s.exclude_interfaces == DEFAULT_EXCLUDED_INTERFACES
    assert "veth*" in s.exclude_interfaces and "cali*" in s.exclude_interfaces
    assert s.log_format == "text"
    assert s.container_metrics is True
    assert s.node == socket.gethostname()


def test_every_field_is_covered_here(roots: dict[str, str]) -> None:
    assert set(values(roots)) == {f.name for f in dataclasses.fields(ExporterSettings)}


def test_every_flag(roots: dict[str, str]) -> None:
    argv = [arg for name, (raw, _) in values(roots).items() for arg in (flag_name(name), raw)]
    s = load(argv, {})
    for name, (_, parsed) in values(roots).items():
        assert getattr(s, name) == parsed, name


def test_every_env_var(roots: dict[str, str]) -> None:
    env = {env_name(name): raw for name, (raw, _) in values(roots).items()}
    s = load([], env)
    for name, (_, parsed) in values(roots).items():
        assert getattr(s, name) == parsed, name


def test_flag_beats_env_and_node_name_alias() -> None:
    assert load([], {"NODE_NAME": "from-downward-api"}).node == "from-downward-api"
    assert load([], {"NODE_NAME": "a", "K8SMON_NODE_NAME": "b"}).node_name == "b"
    assert load(["--node-name", "c"], {"NODE_NAME": "a", "K8SMON_NODE_NAME": "b"}).node_name == "c"
    assert load([], {"K8SMON_EXCLUDE_NAMESPACES": ""}).exclude_namespaces == ()


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    env = {
        "K8SMON_LISTEN": "nonsense",
        "K8SMON_INTERVAL": "-1",
        "K8SMON_PROC_ROOT": str(tmp_path / "missing"),
        "K8SMON_KUBECONFIG": str(tmp_path / "nope.yaml"),
        "K8SMON_LOG_LEVEL": "chatty",
        "K8SMON_LOG_FORMAT": "xml",
        "NODE_NAME": "has space",
    }
    with pytest.raises(ConfigError) as info:
        load(["--interval", "0"], env)
    problems = info.value.problems
    assert len(problems) == 7, problems
    for needle in ("K8SMON_LISTEN", "--interval", "K8SMON_PROC_ROOT", "K8SMON_KUBECONFIG",
                   "K8SMON_LOG_LEVEL", "K8SMON_LOG_FORMAT", "NODE_NAME"):
        assert any(p.startswith(needle) for p in problems), (needle, problems)


def test_cli_prints_every_problem_and_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "exporter", "--interval", "soon", "--listen", "x",
         "--rootfs", str(tmp_path / "no")],
        check=False, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert proc.returncode == 2
    assert "--interval" in proc.stderr and "--listen" in proc.stderr and "--rootfs" in proc.stderr


def test_help_documents_units_and_defaults() -> None:
    proc = subprocess.run([sys.executable, "-m", "exporter", "--help"], check=False, capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for field in dataclasses.fields(ExporterSettings):
        assert flag_name(field.name) in text
        assert env_name(field.name) in text
    assert "seconds" in text and "default: '5.0'" in text and "NODE_NAME" in text


def test_readme_has_the_current_settings_table() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"<!-- section:exporter -->(.*?)<!-- /section:exporter -->", readme, re.S)
    assert section is not None, "README lacks the exporter section markers"
    assert markdown_table(ExporterSettings) in section.group(1), (
        "README's exporter settings table is stale: paste markdown_table(ExporterSettings) into it"
    )


def test_interfaces_flag_is_spelled_like_namespaces_and_the_old_spelling_still_works() -> None:
    """--exclude-interfaces matches --exclude-namespaces; --excluded-interfaces (and its env var) stay."""
    assert load(["--exclude-interfaces", "lo,eth9*"], {}).exclude_interfaces == ("lo", "eth9*")
    assert load(["--excluded-interfaces", "lo,eth8*"], {}).exclude_interfaces == ("lo", "eth8*")
    assert load([], {"K8SMON_EXCLUDED_INTERFACES": "eth7"}).exclude_interfaces == ("eth7",)
    assert load([], {"K8SMON_EXCLUDE_INTERFACES": "eth6", "K8SMON_EXCLUDED_INTERFACES": "eth7"}) \
        .exclude_interfaces == ("eth6",)  # the current name wins over the alias
    table = markdown_table(ExporterSettings)
    assert "| `--exclude-interfaces`, `--excluded-interfaces` |" in table
    assert "`--exclude-namespaces`" in table


@pytest.mark.parametrize("module", ["exporter", "aggregator"])
def test_cli_prints_its_version(module: str) -> None:
    from k8smon_common import __version__

    proc = subprocess.run([sys.executable, "-m", module, "--version"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"k8smon-{module} {__version__}"
