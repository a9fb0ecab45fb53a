"""A tiny bounded run of the per-round benchmark (`python -m bench round`): every step it times must
run on the current store and federation code and print its figures (it once called a method that
had been renamed, and `make bench` printed a traceback in its place)."""

from __future__ import annotations

import gc
import re

import pytest

from bench import round_bench


def test_round_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    frozen = gc.get_freeze_count()
    code = round_bench.main(["--nodes", "3", "--pods", "4", "--rounds", "2", "--expositions", "3"])
    out = capsys.readouterr().out
    assert code == 0
    for form in ("snapshot document", "text exposition"):
        line = rf"parse\+convert one {form} \(4 pods, 0 containers/pod\): CPU median [\d.]+ ms"
        assert re.search(line, out), out
    for collector in ("automatic", "rounds"):
        for step in ("ingest", "end_round", "hand-over", "render", "loop's steps"):
            line = (rf"N=3 pods=12 collector={collector} {step}: "
                    r"median [\d.]+ s \(min [\d.]+, max [\d.]+, 2 rounds\)")
            assert re.search(line, out), out
            if step != "loop's steps":
                assert re.search(rf"N=3 pods=12 collector={collector} {step} cpu: median [\d.]+ s", out), out
    assert re.search(r"N=3 pods=12 collector=rounds full collection: median [\d.]+ s", out), out
    assert "collector=automatic full collection" not in out
    assert gc.isenabled() and gc.get_freeze_count() == frozen  # the benchmark left the collector as it was
