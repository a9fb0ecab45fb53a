"""Test helpers shared by every test module: strict skips, deadlines, ports."""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

STRICT = os.environ.get("K8SMON_STRICT", "") == "1"
T = TypeVar("T")


def require(condition: bool, reason: str) -> None:
    """Skip with `reason`, or fail under K8SMON_STRICT=1 where CI promises the prerequisite."""
    if condition:
        return
    if STRICT:
        pytest.fail(f"K8SMON_STRICT=1 and a prerequisite is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def require_tool(name: str) -> str:
    """Path of an external tool, e.g. `promtool`; skip (or strict-fail) naming it when missing."""
    path = shutil.which(name)
    require(path is not None, f"{name} is not installed (Debian package needed; .ci/run installs it)")
    assert path is not None
    return path


def require_root() -> None:
    require(os.geteuid() == 0, "needs root (creates cgroups / network namespaces)")


def wait_until(predicate: Callable[[], T], *, timeout: float, message: str, interval: float = 0.05) -> T:
    """Poll until `predicate()` is truthy; fail loudly with `message` at the deadline."""
    deadline = time.monotonic() + timeout
    last: T = predicate()
    while not last:
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s: {message} (last value {last!r})")
        time.sleep(interval)
        last = predicate()
    return last


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago; prefer port 0 binding where the server allows it."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
