"""A tiny bounded run of the GIL-hold benchmark (`python -m bench gil`): every step runs on the current
store, federation and listing code and prints its wall time and longest hold; the probe does see a
hold; the process's switch interval and collector are left as they were."""

from __future__ import annotations

import gc
import random
import re
import sys
import time

import pytest

from bench import gil_bench

STEPS = ("ingest (the round's readings)", "end_round", "federation hand-over (round_done)",
         "first /metrics after the round (render)", "its gzip form", "the round's pod listing",
         "preparing its documents", "answering the whole listing", "one full garbage collection")


def test_gil_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    switch = sys.getswitchinterval()
    code = gil_bench.main(["--nodes", "3", "--pods", "4"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("N=3 pods=12: step, wall time, longest hold of the GIL\n")
    for step in STEPS:
        assert re.search(rf"  {re.escape(step)} +[\d.]+ ms   longest hold +[\d.]+ ms\n", out), out
    assert re.search(r"\(sizes: /metrics [\d.]+ MiB, whole listing [\d.]+ MiB\)", out), out
    assert sys.getswitchinterval() == switch and gc.isenabled()


def test_the_probe_sees_a_call_that_keeps_the_gil() -> None:
    data = [random.random() for _ in range(1_000_000)]
    with gil_bench.Probe() as probe:
        _out, wall, hold = probe.step(lambda: sorted(data))  # one C call that never lets go of the GIL
        _out, _wall, idle = probe.step(lambda: time.sleep(wall))  # as long, without the GIL
    assert hold >= 0.5 * wall > 0
    assert idle < hold
