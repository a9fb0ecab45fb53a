"""Dockerfiles/: parsed (no Docker engine here) and checked against setup.py, .dockerignore and deploy/."""

from __future__ import annotations

import ast
import fnmatch
import re
import shlex
from dataclasses import dataclass

import pytest

from tests.support.deploy import REPO, container_port, find, pod_spec, render

COMPONENTS = {
    # component: (Dockerfile, console script, workload kind, workload name, port name)
    "exporter": ("exporter.Dockerfile", "k8smon-exporter", "DaemonSet", "k8s-monitor-exporter", "metrics"),
    "aggregator": (
        "aggregator.Dockerfile", "k8smon-aggregator", "Deployment", "k8s-monitor-aggregator", "http",
    ),
}
COMPILERS = ("gcc", "g++", "clang", "build-essential", "make", "python3-dev")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int  # index of the FROM it belongs to; -1 before the first FROM


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped."""
    out: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, args.strip(), stage))
    assert not pending, "Dockerfile ends inside a line continuation"
    return out


def _instructions(component: str) -> list[Instruction]:
    path = REPO / "Dockerfiles" / COMPONENTS[component][0]
    return parse_dockerfile(path.read_text(encoding="utf-8"))


def _console_scripts() -> dict[str, str]:
    """name -> target of setup.py's console_scripts, read from its source (not installed metadata)."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    entries = ast.literal_eval(value)
                    return dict(e.replace(" ", "").split("=", 1) for e in entries)
    raise AssertionError("setup.py has no console_scripts")


def _dockerignore_excludes(relpath: str) -> bool:
    """Whether .dockerignore keeps `relpath` out of the build context (last matching pattern wins)."""
    excluded = False
    for raw in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = relpath.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, pattern) or fnmatch.fnmatchcase(p, pattern.removeprefix("**/"))
               for p in prefixes):
            excluded = not negate
    return excluded


def test_dockerignore_matcher() -> None:
    """Guards the matcher the COPY test relies on."""
    assert _dockerignore_excludes(".venv/bin/python")
    assert _dockerignore_excludes("tests/test_common.py")
    assert not _dockerignore_excludes("setup.py")
    assert not _dockerignore_excludes("exporter/server.py")
    assert _dockerignore_excludes("exporter/__pycache__/server.cpython-311.pyc")


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_copy_sources_exist_and_reach_the_build_context(component: str) -> None:
    copies = [i for i in _instructions(component) if i.keyword == "COPY" and "--from" not in i.args]
    assert copies
    for inst in copies:
        *sources, _dest = shlex.split(inst.args)
        for src in sources:
            path = REPO / src
            assert path.exists(), f"COPY source {src} does not exist"
            assert not _dockerignore_excludes(src.rstrip("/")), f".dockerignore leaves {src} out"
    copied = {s.rstrip("/") for i in copies for s in shlex.split(i.args)[:-1]}
    # Everything setup.py needs to build the wheel: its packages and the README it reads.
    assert {"setup.py", "pyproject.toml", "README.md", "k8smon_common", "exporter", "aggregator"} <= copied


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_entrypoint_is_the_console_script(component: str) -> None:
    _file, script, *_ = COMPONENTS[component]
    scripts = _console_scripts()
    assert script in scripts
    assert scripts[script] == f"{component}.__main__:main"
    (entry,) = [i for i in _instructions(component) if i.keyword == "ENTRYPOINT"]
    assert ast.literal_eval(entry.args) == [script]  # exec form: signals reach the process


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_ports_and_user_match_the_manifests(component: str) -> None:
    _file, _script, kind, name, port_name = COMPONENTS[component]
    workload = find(render(), kind, name)
    insts = _instructions(component)
    (expose,) = [i for i in insts if i.keyword == "EXPOSE"]
    port = container_port(workload, port_name)
    assert expose.args in {str(port), f"{port}/tcp"}
    (user,) = [i for i in insts if i.keyword == "USER"]
    uid, _, gid = user.args.partition(":")
    assert uid.isdigit() and int(uid) > 0, "USER must be a numeric non-root UID (runAsNonRoot checks it)"
    sc = pod_spec(workload)["securityContext"]
    assert (int(uid), int(gid)) == (sc["runAsUser"], sc["runAsGroup"])
    (health,) = [i for i in insts if i.keyword == "HEALTHCHECK"]
    assert f"127.0.0.1:{port}/healthz" in health.args


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_multi_stage_on_a_pinned_slim_base_without_compilers(component: str) -> None:
    insts = _instructions(component)
    args = dict(i.args.split("=", 1) for i in insts if i.keyword == "ARG" and i.stage == -1)
    base = args["BASE_IMAGE"]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", base), base
    froms = [i for i in insts if i.keyword == "FROM"]
    assert len(froms) == 2
    assert froms[0].args == "${BASE_IMAGE} AS build"
    assert froms[1].args == "${BASE_IMAGE}"
    build_runs = " ".join(i.args for i in insts if i.keyword == "RUN" and i.stage == 0)
    assert "pip wheel" in build_runs
    final_runs = [i.args for i in insts if i.keyword == "RUN" and i.stage == 1]
    assert final_runs and all("--no-index" in r and "from=build" in r for r in final_runs)
    for run in final_runs:
        words = set(re.split(r"[\s;&|]+", run))
        assert not words & set(COMPILERS), f"compiler in the final stage: {run}"
        assert "apt-get" not in words
