"""`make demo` (scripts/demo.py): both components come up, this machine and sample pods are listed,
every printed URL answers with data, Ctrl-C stops both; a taken port or a failing component ends it
at once, non-zero.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent


def _get_json(url: str) -> object:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.load(resp)
    except OSError:
        return None


def _refused(address: str) -> bool:
    host, port = address.split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return True
    return False


def _start(exporter: str, aggregator: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "scripts/demo.py", "--exporter", exporter, "--aggregator", aggregator],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )


def _stop(demo: subprocess.Popen[str]) -> None:
    """End the demo as Ctrl-C does (it stops its components); if it will not, kill it and them.

    Its components run in their own sessions, so killing the demo alone would leave them running.
    """
    if demo.poll() is not None:
        return
    demo.send_signal(signal.SIGINT)
    try:
        demo.communicate(timeout=30)
        return
    except subprocess.TimeoutExpired:
        pass
    for children in Path(f"/proc/{demo.pid}/task").glob("*/children"):
        for pid in children.read_text().split():
            os.kill(int(pid), signal.SIGKILL)
    demo.kill()
    demo.communicate()


def _banner(demo: subprocess.Popen[str]) -> list[str]:
    """The demo's output up to the end of its banner (what a newcomer reads first).

    Read from the pipe's descriptor with a deadline, so a demo that never prints the banner fails
    the test instead of hanging it.
    """
    assert demo.stdout is not None
    fd = demo.stdout.fileno()
    raw = b""
    deadline = time.monotonic() + 60
    while b"curl -X POST" not in raw or not raw.endswith(b"\n"):  # the banner's last line
        left = deadline - time.monotonic()
        assert left > 0 and select.select([fd], [], [], left)[0], raw.decode(errors="replace")
        chunk = os.read(fd, 65536)
        assert chunk, raw.decode(errors="replace")  # the demo ended before its banner
        raw += chunk
    return raw.decode().splitlines(keepends=True)


def test_demo_serves_this_machine_and_stops_on_ctrl_c() -> None:
    exporter, aggregator = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    demo = _start(exporter, aggregator)
    try:
        banner = "".join(_banner(demo))
        nodes = (_get_json(f"http://{aggregator}/api/nodes") or {}).get("nodes")  # type: ignore[union-attr]
        (machine,) = [n for n in nodes if n["source"] == "scrape"]
        assert machine["status"] == "up"
        assert machine["memory_total_bytes"] > 0
        demo.send_signal(signal.SIGINT)  # what Ctrl-C delivers
        out, _ = demo.communicate(timeout=30)
    finally:
        _stop(demo)
    assert demo.returncode == 0, out
    assert f"curl http://{aggregator}/api/nodes" in banner
    # real names, not placeholders: this machine's node as the exporter names it
    assert "<node>" not in banner
    assert f"curl http://{aggregator}/api/nodes/{machine['node_name']}\n" in banner
    listed = banner.split("k8s-monitor demo is running", 1)[1].splitlines()[1:]
    assert listed[0].split() == ["dashboard:", "open", f"http://{aggregator}/ui/", "in", "a", "browser"]
    assert "demo: stopped" in out
    # Both components are gone: their ports refuse connections.
    wait_until(lambda: _refused(exporter) and _refused(aggregator), timeout=5, message="both ports closed")


def test_every_printed_route_has_something_to_show() -> None:
    """With no pods on the machine, the sample pods pushed through the POST routes fill every route."""
    exporter, aggregator = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    demo = _start(exporter, aggregator)
    try:
        lines = _banner(demo)
        urls = [m.group(1) for line in lines if (m := re.search(r"curl '?(http://[^' ]+)'?\s*$", line))]
        assert len(urls) >= 12, lines
        for url in urls:
            with urllib.request.urlopen(url, timeout=5) as resp:
                assert resp.status == 200, url
                body = resp.read()
            if "/api/" not in url:
                continue
            doc = json.loads(body)
            # every listing has entries, every series has points, every item is found
            for key in ("nodes", "pods", "namespaces", "deployments", "points"):
                if key in doc:
                    assert doc[key], (url, doc)
        pods = _get_json(f"http://{aggregator}/api/pods?namespace=k8smon-demo")
        assert {p["pod_name"] for p in pods["pods"]} >= {"sample-db-0", "sample-web-7d9f8-x2k4p"}  # type: ignore[index]
        # the banner's own push command works as printed (bash fills in the timestamp)
        push = next(line for line in lines if "curl -X POST" in line)
        subprocess.run(["bash", "-c", push.strip() + " --fail --silent"], check=True, timeout=10)
        assert (_get_json(f"http://{aggregator}/api/nodes/my-node") or {}).get("source") == "push"  # type: ignore[union-attr]
    finally:
        _stop(demo)  # Ctrl-C
    assert demo.returncode == 0


def test_a_taken_port_fails_at_once_and_says_which() -> None:
    """It used to wait 30 s and exit 0 after the aggregator died in 0.3 s on a taken port."""
    exporter = f"127.0.0.1:{free_port()}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        aggregator = f"127.0.0.1:{taken.getsockname()[1]}"
        t0 = time.monotonic()
        out = subprocess.run(
            [sys.executable, "scripts/demo.py", "--exporter", exporter, "--aggregator", aggregator],
            cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
        )
        elapsed = time.monotonic() - t0
    assert out.returncode == 1, out.stdout + out.stderr
    assert elapsed < 10
    assert f"cannot listen on {aggregator}" in out.stderr and "DEMO_AGGREGATOR=" in out.stderr
    assert _refused(exporter)  # nothing was left running


def test_a_component_that_exits_ends_the_demo_non_zero() -> None:
    """A child that fails after the address checks (here: the exporter's bad setting) is reported."""
    exporter, aggregator = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    env = {**os.environ, "K8SMON_PROC_ROOT": "/nonexistent-k8smon-test-i10c"}
    t0 = time.monotonic()
    demo = _start(exporter, aggregator, env)
    try:
        out, _ = demo.communicate(timeout=60)
    finally:
        _stop(demo)
    assert demo.returncode == 1, out
    assert time.monotonic() - t0 < 20
    assert "demo: the exporter exited with status 2" in out
    wait_until(lambda: _refused(aggregator), timeout=5, message="the aggregator was stopped too")


def test_make_demo_installs_only_the_runtime_dependencies(tmp_path: Path) -> None:
    """`make demo` used to install the 600-MB test extras; `make test` still does."""
    venv = tmp_path / "venv"
    demo = subprocess.run(["make", "-n", "demo", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=30, check=True).stdout
    assert "pip install --quiet -e ." in demo and "[test]" not in demo
    test = subprocess.run(["make", "-n", "test", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=30, check=True).stdout
    assert "-e '.[test]'" in test


def test_readme_documents_the_demo_addresses() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for variable in ("DEMO_EXPORTER", "DEMO_AGGREGATOR"):
        default = re.search(rf"^{variable}\s*\?=\s*(\S+)", makefile, re.M)
        assert default is not None
        assert f"`{variable}`" in readme and f"`{default.group(1)}`" in readme
