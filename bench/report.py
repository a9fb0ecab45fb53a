"""Figures the benchmarks measure, each with its goal, verdict and the machine's load when measured.

A benchmark calls `figure(...)` as it measures (the line is printed at once); `python -m bench` prints
every recorded figure again in one table at the end, beside each benchmark's exit status and time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MET, MISSED, NOT_MEASURED = "met", "MISSED", "not measured"


@dataclass(frozen=True)
class Figure:
    section: str
    name: str
    value: str
    goal: str  # "" for a figure without a target
    verdict: str  # MET, MISSED, NOT_MEASURED or "" (no target)
    load: float  # 1-minute load average when measured

    def line(self) -> str:
        goal = f"goal {self.goal}" if self.goal else ""
        return f"  {self.name:<56} {self.value:<52} {goal:<18} {self.verdict:<12} load {self.load:4.1f}"


FIGURES: list[Figure] = []


def figure(
    section: str, name: str, value: str, *, goal: str = "", ok: bool | None = None, verdict: str | None = None
) -> Figure:
    """Record and print one figure; `ok` (None: no target) gives the verdict unless `verdict` is given."""
    if verdict is None:
        verdict = "" if ok is None else (MET if ok else MISSED)
    f = Figure(section, name, value, goal, verdict, os.getloadavg()[0])
    FIGURES.append(f)
    print(f.line(), flush=True)
    return f


def missed(figures: list[Figure]) -> list[Figure]:
    """Figures with a target that was missed or could not be measured."""
    return [f for f in figures if f.verdict in (MISSED, NOT_MEASURED)]


def table(figures: list[Figure]) -> str:
    """Every figure, grouped by section, in one block of text."""
    lines: list[str] = []
    section = None
    for f in figures:
        if f.section != section:
            section = f.section
            lines.append(section)
        lines.append(f.line())
    return "\n".join(lines)
