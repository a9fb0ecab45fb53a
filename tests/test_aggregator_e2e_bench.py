"""The aggregator benchmark's short form: N = 3 nodes, 2 rounds, every phase runs (no speed assertions)."""

from __future__ import annotations

from bench import aggregator_bench


def test_benchmark_smoke(capsys) -> None:  # type: ignore[no-untyped-def]
    result = aggregator_bench.measure(3, 3, rounds=2, interval=0.5, timeout=0.4, api_seconds=1.0)
    aggregator_bench.report(result)
    out = capsys.readouterr().out
    assert "scrape round" in out and "bytes per stored point" in out and "p99" not in out.split("API")[0]
    assert result["series"]["node"] == 3 and result["series"]["pod"] == 9
    assert result["rounds_measured"] >= 2
    assert result["bytes_per_sample"] > 0
    assert all(n > 0 for _p50, _p99, n in result["api"].values()), "every API route answered under load"
    assert result["rounds_total"] >= result["rounds_measured"] + 1


def _figures(**over: object) -> dict:
    figures = {"nodes": 1000, "pods_per_node": 30, "interval": 5.0, "rounds_measured": 6, "series": {},
               "round_p50": 3.0, "round_max": 4.5, "rounds_total": 40, "rounds_skipped": 0,
               "targets_up_min": 1000, "stats": {"gauges": {}, "errors": {}}, "fake_cpu_cores": 1.0,
               "load_average": 1.0, "cpu_cores": 0.5, "rss_running": 600 << 20,
               "rss_full_history": 1600 << 20, "bytes_per_sample": 37.0, "points": 31_000_000,
               "api": {}, "api_all": (0.05, 0.2)}
    return {**figures, **over}


def test_verdict_counts_rounds_skipped_over_the_whole_run(capsys) -> None:  # type: ignore[no-untyped-def]
    """A 1000-node run whose log showed 9 overrunning rounds used to print "targets met": the six
    measured rounds were all under the interval. Skipped rounds anywhere in the run now miss it."""
    assert aggregator_bench.report(_figures())
    assert "targets (" in capsys.readouterr().out
    assert not aggregator_bench.report(_figures(rounds_skipped=9))
    out = capsys.readouterr().out
    assert "MISSED" in out and "skipped by overrunning rounds over the whole run: 9" in out
    assert "median 3.000s  max 4.500s of 6 measured" in out  # the largest of 6 is called max, not p99
