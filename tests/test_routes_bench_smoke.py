"""A tiny bounded run of the per-route benchmark (`python -m bench routes`): every route the API
clients poll must answer 200 on the current API and print its figures, pod listings with their
prepared figure too, and the process's collector settings must come back as they were."""

from __future__ import annotations

import gc
import re

import pytest

from bench import routes_bench
from bench.api_load import ROUTES


def test_routes_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    frozen, thresholds = gc.get_freeze_count(), gc.get_threshold()
    code = routes_bench.main(["--nodes", "3", "--pods", "4", "--repeat", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "3 nodes x 4 pods" in out
    lines = [line for line in out.splitlines() if " first " in line]
    assert len(lines) == len(ROUTES), out
    figure = r"first +[\d.]+ ms +warm +[\d.]+ ms +\d+ KiB"
    for line, route in zip(lines, ROUTES, strict=True):
        assert re.search(figure, line), line
        lists_pods = route.partition("?")[0].endswith("/pods")  # /api/pods?sort=... is a page of one
        assert bool(re.search(r"prepared +[\d.]+ ms", line)) == lists_pods, line
    assert gc.get_freeze_count() == frozen and gc.get_threshold() == thresholds and gc.isenabled()
