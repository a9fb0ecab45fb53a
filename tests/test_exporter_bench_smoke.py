"""A tiny bounded run of the exporter benchmark: it must run end to end and print its figures."""

from __future__ import annotations

import re

import pytest

from bench import exporter_bench


def test_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    code = exporter_bench.main(["--pods", "5", "--iterations", "3", "--scrapes", "3"])
    out = capsys.readouterr().out
    assert code == 0  # targets are only enforced at 110 pods
    assert re.search(r"sampling cycle \(5 pods, 0 containers, 3 cycles; pod families only\): CPU median "
                     r"[\d.]+ ms", out), out
    assert re.search(r"sampling cycle \(5 pods, 15 containers, 3 cycles; with containers \(3/pod\)\): CPU "
                     r"median [\d.]+ ms", out), out
    assert re.search(r"k8smon \(pods\) +[\d.]+ ms", out), out
    assert re.search(r"k8smon \(containers\) +[\d.]+ ms", out), out
    assert "exporter exit code after SIGTERM: 0" in out
    assert "target " in out
