"""The aggregator benchmark's short form: N = 3 nodes, 2 rounds, every phase runs (no speed assertions)."""

from __future__ import annotations

from bench import aggregator_bench


def test_benchmark_smoke(capsys) -> None:  # type: ignore[no-untyped-def]
    result = aggregator_bench.measure(3, 3, rounds=2, interval=0.5, timeout=0.4, api_seconds=1.0)
    aggregator_bench.report(result)
    out = capsys.readouterr().out
    assert "scrape round" in out and "bytes per stored sample" in out
    assert result["series"]["node"] == 3 and result["series"]["pod"] == 9
    assert result["rounds_measured"] >= 2
    assert result["bytes_per_sample"] > 0
    assert all(n > 0 for _p50, _p99, n in result["api"].values()), "every API route answered under load"
