"""The short bounded form of bench/history_bench.py (issue 15 target 4; the full shape: `make bench`)."""

from __future__ import annotations

import time

from bench.history_bench import measure


def test_history_bench_measures_bytes_appends_and_window_reads() -> None:
    t0 = time.monotonic()
    result = measure(1, 1, 1500, rounds=240, reads=4)
    elapsed = time.monotonic() - t0
    print(f"\n{result} in {elapsed:.1f} s")
    assert result["series"] == 2 and result["points"] == 1500 and result["layout"] == "ChunkedSeries"
    # 2 series x 1500 points: open chunks (plain, 56 B a point) weigh more than at 5000 points, and
    # tracemalloc counts every allocation: the bound is loose; the full shape prints the real figure
    assert 0.5 < result["bytes_per_value"] < 4
    # the same measurement, each figure rounded on its own (to 3 and 2 decimals): within 6 x 0.0005 + 0.005
    assert abs(result["bytes_per_point"] - result["bytes_per_value"] * 6) <= 0.008 + 1e-9
    assert result["append_us_per_point"] > 0 and result["window_p50_ms"] <= result["window_p99_ms"]
    regular = measure(1, 1, 1500, data="regular", rounds=10, reads=4)
    assert regular["bytes_per_value"] < result["bytes_per_value"]
