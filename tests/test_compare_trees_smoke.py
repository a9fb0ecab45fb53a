"""bench/compare_trees.py's short form: two trees loaded side by side in one process, each keeping its own
modules, and every step's figures produced (not their values: the machine is shared)."""

from __future__ import annotations

import sys
from pathlib import Path

from bench import compare_trees

REPO = Path(__file__).resolve().parents[1]


def test_each_tree_keeps_its_own_modules_and_the_running_ones_are_left_alone() -> None:
    running = {k: v for k, v in sys.modules.items() if k.split(".")[0] in compare_trees.PACKAGES}
    first, second = compare_trees.load(REPO), compare_trees.load(REPO)
    assert first["Store"] is not second["Store"]  # two loads, two module objects
    assert first["Store"].ingest.__globals__ is not second["Store"].ingest.__globals__
    assert {k: v for k, v in sys.modules.items() if k.split(".")[0] in compare_trees.PACKAGES} == running


def test_every_step_is_measured_on_both_sides() -> None:
    figures = compare_trees.compare(REPO, REPO, nodes=3, pods=4, rounds=2, warmup=1)
    assert list(figures) == [*compare_trees.STEPS, "total"]
    for step in figures.values():
        assert step["base"] > 0 and step["new"] > 0 and step["ratio"] is not None
    assert compare_trees.main([str(REPO), str(REPO), "--nodes", "2", "--pods", "2", "--rounds", "1"]) == 0
