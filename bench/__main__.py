"""Run every `bench/*_bench.py` module's `main()` in turn; exit non-zero if any missed its targets."""

from __future__ import annotations

import importlib
import inspect
import sys
import traceback
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """`python -m bench [NAME ...]`: all benchmarks, or those whose module name contains a NAME."""
    wanted = list(sys.argv[1:] if argv is None else argv)
    status = 0
    for path in sorted(Path(__file__).resolve().parent.glob("*_bench.py")):
        if wanted and not any(w in path.stem for w in wanted):
            continue
        print(f"== {path.stem} ==", flush=True)
        try:
            module = importlib.import_module(f"bench.{path.stem}")
            # An empty argv keeps our own arguments away from a main() that parses sys.argv.
            takes_argv = bool(inspect.signature(module.main).parameters)
            status = max(status, int((module.main([]) if takes_argv else module.main()) or 0))
        except Exception:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            print(f"== {path.stem} FAILED ==", flush=True)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
