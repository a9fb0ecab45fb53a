"""Run every `bench/*_bench.py` module's `main()` in turn, then one summary table; exit non-zero if any
benchmark missed its targets or failed."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import time
import traceback
from pathlib import Path

from bench.report import FIGURES, table

# Modules whose figures another benchmark prints; run alone only when asked for by their full name.
PART_OF_ANOTHER = {"history_bench": "target 4 of aggregator_bench"}


def main(argv: list[str] | None = None) -> int:
    """`python -m bench [NAME ...]`: all benchmarks, or those whose module name contains a NAME."""
    wanted = list(sys.argv[1:] if argv is None else argv)
    status = 0
    rows: list[str] = []
    started = time.monotonic()
    for path in sorted(Path(__file__).resolve().parent.glob("*_bench.py")):
        if path.stem in PART_OF_ANOTHER and not any(w == path.stem for w in wanted):
            continue
        if wanted and not any(w in path.stem for w in wanted):
            continue
        print(f"== {path.stem} ==", flush=True)
        t0 = time.monotonic()
        try:
            module = importlib.import_module(f"bench.{path.stem}")
            # An empty argv keeps our own arguments away from a main() that parses sys.argv.
            takes_argv = bool(inspect.signature(module.main).parameters)
            code = int((module.main([]) if takes_argv else module.main()) or 0)
            outcome = "targets met (or figures only)" if code == 0 else "TARGETS MISSED"
        except Exception:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            print(f"== {path.stem} FAILED ==", flush=True)
            code, outcome = 1, "FAILED"
        status = max(status, code)
        rows.append(f"  {path.stem:<22} {outcome:<30} {time.monotonic() - t0:6.0f} s   "
                    f"load {os.getloadavg()[0]:4.1f} at its end")
    print(f"\n== summary ({time.monotonic() - started:.0f} s in all, {os.cpu_count()} CPUs) ==")
    print("\n".join(rows))
    if FIGURES:
        print("\n" + table(FIGURES))
    return status


if __name__ == "__main__":
    sys.exit(main())
