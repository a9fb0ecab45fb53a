"""Debian's `prometheus` scraping the benchmark's fake exporters: the other side of the ingest-cost figure.

A generated config lists the exporters under `static_configs` with the aggregator's interval and
timeout; storage goes to a temporary directory; the web listener is on loopback. Its own counters
give what it ingested: `prometheus_tsdb_head_samples_appended_total` (every sample appended to the
head, the 5 synthetic series per scrape such as `up` included) and how many scrapes that was.

    with Prometheus(targets, interval=5.0, timeout=4.0) as prom:
        prom.counters(), prom.query("count(up == 1)"), prom.pid
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

BINARY = "prometheus"


def duration(seconds: float) -> str:
    """A Prometheus duration (`5s`, `500ms`)."""
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def config(targets: list[str], *, interval: float, timeout: float) -> str:
    """prometheus.yml scraping `targets` (JSON is YAML: no YAML writer needed)."""
    return json.dumps({
        "global": {"scrape_interval": duration(interval), "scrape_timeout": duration(timeout)},
        "scrape_configs": [{"job_name": "fake-exporters", "static_configs": [{"targets": targets}]}],
    }, indent=1)


class Prometheus:
    """A Prometheus process for the lifetime of the `with` block."""

    def __init__(self, targets: list[str], *, interval: float, timeout: float) -> None:
        self.targets, self.interval, self.timeout = targets, interval, timeout
        self.url = ""
        self.version = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def __enter__(self) -> Prometheus:
        from tests.support import free_port

        binary = shutil.which(BINARY)
        if binary is None:
            raise RuntimeError("`prometheus` is not installed (apt-get install prometheus)")
        self.version = subprocess.run([binary, "--version"], capture_output=True, text=True,
                                      check=False).stdout.split("\n")[0]
        self._dir = tempfile.TemporaryDirectory(prefix="k8smon-bench-prometheus-")
        root = Path(self._dir.name)
        text = config(self.targets, interval=self.interval, timeout=self.timeout)
        (root / "prometheus.yml").write_text(text)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        log = (root / "prometheus.log").open("wb")
        self._proc = subprocess.Popen(
            [binary, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                tail = (root / "prometheus.log").read_text(errors="replace")[-2000:]
                self.__exit__(None, None, None)
                raise RuntimeError(f"prometheus did not become ready:\n{tail}")
            time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
            self._proc = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=30) as resp:
            return bytes(resp.read())

    def counters(self) -> tuple[float, float]:
        """(samples appended, scrapes) so far, from its own /metrics.

        Samples: `prometheus_tsdb_head_samples_appended_total` summed over its `type` label. Scrapes:
        `prometheus_target_interval_length_seconds_count`, one observation per scrape after a
        target's first (so a window's difference counts its scrapes).
        """
        samples = scrapes = 0.0
        for line in self._get("/metrics").decode().splitlines():
            if line.startswith("prometheus_tsdb_head_samples_appended_total"):
                samples += float(line.rsplit(" ", 1)[1])
            elif line.startswith("prometheus_target_interval_length_seconds_count"):
                scrapes += float(line.rsplit(" ", 1)[1])
        return samples, scrapes

    def query(self, expr: str, at: float | None = None) -> float:
        """The value of an instant query with one result (0.0 when it has none)."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        doc = json.loads(self._get("/api/v1/query?" + urllib.parse.urlencode(params)))
        if doc.get("status") != "success":
            raise RuntimeError(f"prometheus query {expr!r}: {doc}")
        result = doc["data"]["result"]
        return float(result[0]["value"][1]) if result else 0.0
