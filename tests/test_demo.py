"""`make demo` (scripts/demo.py): both components come up, this machine is listed, Ctrl-C stops both."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
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


def test_demo_serves_this_machine_and_stops_on_ctrl_c() -> None:
    exporter, aggregator = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    demo = subprocess.Popen(
        [sys.executable, "scripts/demo.py", "--exporter", exporter, "--aggregator", aggregator],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        nodes = wait_until(
            lambda: (_get_json(f"http://{aggregator}/api/nodes") or {}).get("nodes"),  # type: ignore[union-attr]
            timeout=60,
            message="the demo aggregator lists this machine",
        )
        assert nodes[0]["status"] == "up"
        assert nodes[0]["memory_total_bytes"] > 0
        demo.send_signal(signal.SIGINT)  # what Ctrl-C delivers
        out, _ = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()
    assert demo.returncode == 0, out
    assert f"curl http://{aggregator}/api/nodes" in out
    listed = out.split("k8s-monitor demo is running", 1)[1].splitlines()[1:]
    assert listed[0].split() == ["dashboard:", "open", f"http://{aggregator}/ui/", "in", "a", "browser"]
    assert "demo: stopped" in out
    # Both components are gone: their ports refuse connections.
    wait_until(lambda: _refused(exporter) and _refused(aggregator), timeout=5, message="both ports closed")
