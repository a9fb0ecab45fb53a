"""`python -m aggregator` as a process: serves, scrapes a static target, SIGTERM → clean exit 0."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.aggregator_fakes import FakeExporters, FakeNode
from tests.support import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent


def _get(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as err:
        err.close()
        return None
    except OSError:
        return None


def test_cli_scrapes_static_targets_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    with FakeExporters([FakeNode("127.0.0.1", "cli-node", pods=2)], interval=0.5) as fakes:
        log = (tmp_path / "aggregator.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "--listen", f"127.0.0.1:{port}",
             "--targets", fakes.nodes[0].target, "--scrape-interval", "0.5", "--scrape-timeout", "0.4",
             "--stale-after", "2", "--log-format", "json"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: _get(base + "/readyz"), timeout=60, message="aggregator ready", interval=0.2)
            nodes = _get(base + "/api/nodes")
            assert nodes is not None and [n["node_name"] for n in nodes["nodes"]] == ["cli-node"]
            status = _get(base + "/")
            assert status is not None and status["discovery_mode"] == "static"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    lines = [json.loads(line) for line in (tmp_path / "aggregator.log").read_text().splitlines() if line]
    assert any("SIGTERM" in line["msg"] for line in lines)
    assert lines[-1]["msg"] == "stopped"
