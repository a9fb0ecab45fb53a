"""A tiny bounded run of `python -m bench listing_worker`: both ways measured, their listings equal
(the benchmark fails otherwise), WORKER_MIN put back, and no helper process left running."""

from __future__ import annotations

import re

import psutil
import pytest

from aggregator.api import views
from bench import listing_worker_bench


def test_listing_worker_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    code = listing_worker_bench.main(["--nodes", "3", "--pods", "4", "--rounds", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    for way in ("in-process", "worker"):
        figures = rf"{way}: aggregator CPU / helper CPU / wall +\d+ / \d+ / \d+ ms \(12 pods\)"
        assert re.search(figures, out), out
    assert re.search(r"aggregator CPU, worker / in-process +[\d.]+", out), out
    assert views.WORKER_MIN == 1000
    assert {p.pid for p in psutil.Process().children(recursive=True)} == before
