"""The metrics API benchmark's short form: it runs, lists every pod, finds the HPA's pods, prints figures."""

from __future__ import annotations

import pytest

from bench import metrics_api_bench


def test_metrics_api_bench_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert metrics_api_bench.main(["--nodes", "4", "--pods", "80", "--containers", "2", "--requests", "2",
                                   "--interval", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "all namespaces      : 320 pods" in out
    assert "namespace + selector: 1 pods" in out  # ns-7, app-3: pod 307 alone at this size
