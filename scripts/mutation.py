"""`make mutation`: mutation testing of the numeric core with mutmut, one module at a time.

For each module in scripts/mutation.toml this builds a scratch copy under build/mutation/<module>/,
lets mutmut (3.x) change one operator, number or call at a time inside the module's functions, and
runs only that module's fast unit tests against each change. A mutant the tests do not notice
("survived") is a wrong number nobody would see; each must be killed by a test that asserts a value
or be listed in scripts/mutation.toml as equivalent (it cannot change any result) with the reason.

The machine is shared: mutmut runs under `nice -n 19` with one worker process, one module at a time.
Exit status: 0 when every module reaches the target score and every survivor is a listed
equivalent, 1 otherwise, 2 on a usage or set-up error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "scripts" / "mutation.toml"
WORK = ROOT / "build" / "mutation"
PACKAGES = ("aggregator", "exporter", "k8smon_common")
DOC_FILES = (ROOT / "README.md", ROOT / "docs" / "testing.md")
BEGIN, END = "<!-- mutation-scores:begin -->", "<!-- mutation-scores:end -->"
EQ_BEGIN, EQ_END = "<!-- mutation-equivalents:begin -->", "<!-- mutation-equivalents:end -->"

# mutmut's exit codes per mutant (mutmut.stats.status_by_exit_code): 1/3 a test failed, timeouts
# (SIGXCPU) count as killed like mutmut's own score does; 0 survived; 33/5 no test reached it.
KILLED_CODES = {1, 3}
TIMEOUT_CODES = {-24, 24, 152, 255, 36}
SURVIVED_CODES = {0}
NO_TEST_CODES = {5, 33}


@dataclass(frozen=True)
class Equivalent:
    module: str
    function: str
    before: str
    after: str | list[str]  # several mutants of one line can be equivalent for one reason
    reason: str

    def matches(self, function: str, before: str, after: str) -> bool:
        afters = [self.after] if isinstance(self.after, str) else self.after
        return (self.function == function and _normalise(self.before) == before
                and any(_normalise(a) == after for a in afters))


@dataclass
class Mutant:
    name: str
    function: str
    status: str  # killed | timeout | survived | no tests | other
    before: str = ""
    after: str = ""
    equivalent: str = ""  # the reason, when listed as equivalent


@dataclass
class Result:
    module: str
    seconds: float
    mutants: list[Mutant] = field(default_factory=list)
    error: str = ""

    def count(self, *statuses: str) -> int:
        return sum(1 for m in self.mutants if m.status in statuses)

    @property
    def equivalents(self) -> int:
        return sum(1 for m in self.mutants if m.equivalent)

    @property
    def unexplained(self) -> list[Mutant]:
        return [m for m in self.mutants if m.status not in ("killed", "timeout") and not m.equivalent]

    @property
    def score(self) -> float:
        """Killed / (all - listed equivalents), the usual mutation score."""
        total = len(self.mutants) - self.equivalents
        return 1.0 if total <= 0 else self.count("killed", "timeout") / total


def load_config(path: Path = CONFIG) -> tuple[float, dict[str, list[str]], list[Equivalent], dict]:
    """(target, module -> pytest arguments selecting its tests, equivalents, the raw table)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    modules = {
        name: [*spec["tests"], *(arg for test in spec.get("deselect", []) for arg in ("--deselect", test))]
        for name, spec in data["modules"].items()
    }
    equivalents = [Equivalent(**e) for e in data.get("equivalent", [])]
    return float(data["target"]), modules, equivalents, data


def _normalise(code: str) -> str:
    return "\n".join(" ".join(line.split()) for line in code.strip().splitlines())


def function_of(mutant: str, module: str) -> str:
    """`aggregator.rates.xǁCounterTrackerǁupdate__mutmut_17` -> `CounterTracker.update`."""
    dotted = module.removesuffix(".py").replace("/", ".")
    tail = mutant.removeprefix(dotted + ".")
    tail = re.sub(r"__mutmut_\d+$", "", tail)
    if tail.startswith("xǁ"):
        return ".".join(part for part in tail[2:].split("ǁ") if part)
    return tail.removeprefix("x_")


def status_of(code: int | None) -> str:
    if code in KILLED_CODES:
        return "killed"
    if code in TIMEOUT_CODES:
        return "timeout"
    if code in SURVIVED_CODES:
        return "survived"
    if code in NO_TEST_CODES:
        return "no tests"
    return "other" if code is not None else "not checked"


def _prepare(work: Path, module: str, tests: list[str], patterns: list[str]) -> None:
    """A scratch tree mutmut can own: the packages (linked), a copy of tests/, its own config."""
    if work.exists():
        shutil.rmtree(work)
    (work / "mutants").mkdir(parents=True)
    for package in PACKAGES:
        (work / package).symlink_to(ROOT / package)
    # mutmut copies tests/ itself, but shutil.copytree trips over the fixtures' dangling
    # ns/net links; a copy that keeps links as links is what the tests expect anyway.
    shutil.copytree(ROOT / "tests", work / "mutants" / "tests", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"))
    for name in ("docs", "deploy", "README.md", "setup.py"):  # read by some tests (tables, manifests)
        if (ROOT / name).exists():
            (work / "mutants" / name).symlink_to(ROOT / name)
    settings = {
        "source_paths": list(PACKAGES),
        "only_mutate": [module],
        "pytest_add_cli_args_test_selection": tests,
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-p", "no:randomly"],
        "do_not_mutate_patterns": patterns,
    }
    lines = ["", "[tool.mutmut]"] + [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    config = (ROOT / "pyproject.toml").read_text(encoding="utf-8") + "\n".join(lines) + "\n"
    (work / "pyproject.toml").write_text(config, encoding="utf-8")


def _mutmut(work: Path, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("mutmut")
    # K8SMON_MUTATION=1 loads a derandomised Hypothesis profile (tests/conftest.py), so a kill does not
    # depend on luck, without shrinking (a failure is all a mutant needs).
    env = {**os.environ, "K8SMON_MUTATION": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(["nice", "-n", "19", str(exe), *args], cwd=work, env=env, text=True,
                          capture_output=True, timeout=timeout, check=False)


# One process for all of a module's diffs: `mutmut show` per mutant costs a start-up each.
_DIFFS = """
import json, sys
from pathlib import Path
from mutmut.mutation.diff_apply import get_diff_for_mutant
print(json.dumps({n: get_diff_for_mutant(n, path=Path(sys.argv[1])) for n in sys.argv[2:]}))
"""


def _diffs(work: Path, module: str, names: list[str]) -> dict[str, tuple[str, str]]:
    """(removed lines, added lines) of each mutant, whitespace-normalised."""
    if not names:
        return {}
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(["nice", "-n", "19", sys.executable, "-c", _DIFFS, module, *names], cwd=work,
                          env=env, text=True, capture_output=True, check=False)
    if proc.returncode == 0:
        shown = json.loads(proc.stdout.strip().splitlines()[-1])
    else:  # mutmut moved its internals: fall back to the public command, one mutant at a time
        shown = {n: _mutmut(work, "show", n).stdout for n in names}
    out = {}
    for name, diff in shown.items():
        lines = diff.splitlines()
        before = [ln[1:] for ln in lines if ln.startswith("-") and not ln.startswith("---")]
        after = [ln[1:] for ln in lines if ln.startswith("+") and not ln.startswith("+++")]
        out[name] = _normalise("\n".join(before)), _normalise("\n".join(after))
    return out


def run_module(module: str, tests: list[str], *, equivalents: list[Equivalent], patterns: list[str],
               functions: list[str], timeout: float, root: Path = WORK) -> Result:
    work = root / module.removesuffix(".py").replace("/", ".")
    started = time.monotonic()
    _prepare(work, module, tests, patterns)
    dotted = module.removesuffix(".py").replace("/", ".")
    selectors = [f"{dotted}.{_mangle(f)}__mutmut_*" for f in functions]
    try:
        proc = _mutmut(work, "run", "--max-children", "1", *selectors, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Result(module, time.monotonic() - started, error=f"mutmut ran past {timeout:.0f} s")
    (work / "mutmut.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    meta = work / "mutants" / (module + ".meta")
    if not meta.exists():
        tail = (proc.stdout + proc.stderr)[-2000:]
        return Result(module, time.monotonic() - started, error=f"mutmut exit {proc.returncode}: {tail}")
    codes: dict[str, int | None] = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
    if selectors:
        codes = {k: v for k, v in codes.items() if any(_matches(k, s) for s in selectors)}
    result = Result(module, 0.0)
    listed = [e for e in equivalents if e.module == module]
    diffs = _diffs(work, module, [n for n, c in codes.items() if status_of(c) not in ("killed", "timeout")])
    for name, code in sorted(codes.items(), key=lambda kv: _natural(kv[0])):
        mutant = Mutant(name, function_of(name, module), status_of(code))
        if name in diffs:
            mutant.before, mutant.after = diffs[name]
            for e in listed:
                if e.matches(mutant.function, mutant.before, mutant.after):
                    mutant.equivalent = e.reason
                    break
        result.mutants.append(mutant)
    result.seconds = time.monotonic() - started
    if not any(m.status in ("killed", "timeout", "survived", "no tests") for m in result.mutants):
        # mutmut gave up before testing anything (the clean run failed, say): that is no score.
        result.error = "no mutant was tested: " + (proc.stdout + proc.stderr).strip()[-1500:]
    return result


def _mangle(function: str) -> str:
    """`CounterTracker.update` -> mutmut's `xǁCounterTrackerǁupdate`; `counter_delta` -> `x_counter_delta`."""
    if "." in function:
        return "xǁ" + "ǁ".join(function.split("."))
    return "x_" + function


def _matches(name: str, selector: str) -> bool:
    return name.startswith(selector.removesuffix("*"))


def _natural(name: str) -> tuple[str, int]:
    stem, _, number = name.rpartition("_")
    return stem, int(number) if number.isdigit() else 0


def rescore(paths: list[Path], equivalents: list[Equivalent]) -> list[Result]:
    """Results saved with --json, survivors matched again (equivalents listed since the run count);
    a module found in several files keeps its last result."""
    by_module: dict[str, Result] = {}
    for path in paths:
        for saved in json.loads(path.read_text(encoding="utf-8")):
            r = Result(saved["module"], saved["seconds"], error=saved["error"])
            listed = [e for e in equivalents if e.module == r.module]
            for m in saved["mutants"]:
                mutant = Mutant(**{**m, "equivalent": ""})
                if mutant.status not in ("killed", "timeout"):
                    key = (mutant.function, mutant.before, mutant.after)
                    mutant.equivalent = next((e.reason for e in listed if e.matches(*key)), "")
                r.mutants.append(mutant)
            by_module[r.module] = r
    return list(by_module.values())


def changed_modules(base: str, modules: list[str]) -> list[str]:
    """Configured modules a change touched: committed since the merge base with `base`, or uncommitted."""
    names: set[str] = set()
    for args in (["diff", "--name-only", f"{base}...HEAD"], ["diff", "--name-only", "HEAD"]):
        out = subprocess.run(["git", *args], cwd=ROOT, text=True, capture_output=True, check=True).stdout
        names.update(out.split())
    return [m for m in modules if m in names]


def table(results: list[Result], target: float) -> str:
    rows = ["| module | mutants | killed | survived | no test | equivalent | score | seconds |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        if r.error:
            rows.append(f"| `{r.module}` | error: {r.error.splitlines()[0]} | | | | | | {r.seconds:.0f} |")
            continue
        mark = "" if r.score >= target and not r.unexplained else " ✗"
        rows.append(f"| `{r.module}` | {len(r.mutants)} | {r.count('killed', 'timeout')} | "
                    f"{r.count('survived')} | {r.count('no tests')} | {r.equivalents} | "
                    f"{100 * r.score:.1f} %{mark} | {r.seconds:.0f} |")
    return "\n".join(rows)


def equivalents_table(equivalents: list[Equivalent]) -> str:
    def code(text: str) -> str:
        return "`" + " ⏎ ".join(line.strip() for line in text.strip().splitlines()).replace("|", "\\|") + "`"

    rows = ["| module | function | original | mutant | why it cannot change a result |",
            "| --- | --- | --- | --- | --- |"]
    for e in sorted(equivalents, key=lambda e: (e.module, e.function)):
        afters = [e.after] if isinstance(e.after, str) else e.after
        mutants = "<br>".join(code(a) for a in afters)
        rows.append(f"| `{e.module}` | `{e.function}` | {code(e.before)} | {mutants} | {e.reason} |")
    return "\n".join(rows)


def fill(path: Path, begin: str, end: str, text: str) -> None:
    doc = path.read_text(encoding="utf-8")
    head, sep, rest = doc.partition(begin)
    _, sep2, tail = rest.partition(end)
    if not (sep and sep2):
        raise SystemExit(f"{path}: no {begin} ... {end} block to fill")
    path.write_text(f"{head}{begin}\n{text}\n{end}{tail}", encoding="utf-8")


def write_docs(scores: str, equivalents: list[Equivalent], modules: list[str]) -> None:
    """Replace the score table's rows for the modules just run (others keep their last figures; a
    configured module never run gets a row saying so)."""
    for path in DOC_FILES:
        block = path.read_text(encoding="utf-8").partition(BEGIN)[2].partition(END)[0]
        fresh = {row.split("|")[1].strip(): row for row in scores.splitlines()[2:]}
        rows = [ln for ln in block.strip().splitlines()[2:]
                if ln.split("|")[1].strip() not in fresh and ln.split("|")[1].strip().strip("`") in modules]
        known = {ln.split("|")[1].strip() for ln in [*rows, *fresh.values()]}
        rows += [f"| `{m}` | not measured yet | | | | | | |" for m in modules if f"`{m}`" not in known]
        merged = scores.splitlines()[:2] + sorted([*rows, *fresh.values()])
        fill(path, BEGIN, END, "\n".join(merged))
    fill(ROOT / "docs" / "testing.md", EQ_BEGIN, EQ_END, equivalents_table(equivalents))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--module", action="append", default=[], help="only this module (repeatable)")
    parser.add_argument("--changed", metavar="REF",
                        help="only the configured modules changed since the merge base with REF")
    parser.add_argument("--function", action="append", default=[],
                        help="only mutants of this function, e.g. CounterTracker.update (with one --module)")
    parser.add_argument("--sample", action="store_true",
                        help="the bounded form the suite runs: the functions listed under [sample]")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per module before giving up")
    parser.add_argument("--write-docs", action="store_true",
                        help="write the score table into README.md and docs/testing.md")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument("--rescore", type=Path, action="append", default=[], metavar="JSON",
                        help="run nothing: score earlier --json results against today's equivalents")
    parser.add_argument("--work", type=Path, default=WORK, help="scratch trees (default build/mutation)")
    args = parser.parse_args(argv)

    target, modules, equivalents, raw = load_config()
    selected = list(modules)
    if args.module:
        unknown = [m for m in args.module if m not in modules]
        if unknown:
            parser.error(f"not in {CONFIG.relative_to(ROOT)}: {', '.join(unknown)}")
        selected = args.module
    if args.changed:
        selected = changed_modules(args.changed, selected)
        if not selected:
            print(f"mutation: no configured module changed since {args.changed}")
            return 0
    if args.function and len(selected) != 1:
        parser.error("--function needs exactly one --module")
    functions = {m: list(args.function) for m in selected}
    if args.sample:
        functions = {m: list(fs) for m, fs in raw["sample"].items() if m in selected}
        selected = list(functions)
    patterns = list(raw.get("do_not_mutate_patterns", []))

    results: list[Result] = []
    started = time.monotonic()
    if args.rescore:
        results = rescore(args.rescore, equivalents)
        selected = []
    for module in selected:
        print(f"mutation: {module} against {' '.join(modules[module])}", flush=True)
        r = run_module(module, modules[module], equivalents=equivalents, patterns=patterns,
                       functions=functions[module], timeout=args.timeout, root=args.work)
        results.append(r)
        summary = r.error or (f"{len(r.mutants)} mutants, {r.count('killed', 'timeout')} killed, "
                              f"{len(r.unexplained)} unexplained, score {100 * r.score:.1f} %")
        print(f"mutation: {module}: {summary} ({r.seconds:.0f} s)", flush=True)
        for m in r.unexplained:
            print(f"  {m.status}: {m.name} ({m.function})\n    - {m.before}\n    + {m.after}", flush=True)
    text = table(results, target)
    print()
    print(text)
    print(f"\nmutation: {len(results)} modules in {time.monotonic() - started:.0f} s "
          f"(target {100 * target:.0f} % per module; nice -n 19, one worker)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([
            {"module": r.module, "seconds": round(r.seconds, 1), "score": r.score, "error": r.error,
             "mutants": [vars(m) for m in r.mutants]} for r in results], indent=1, ensure_ascii=False))
    if args.write_docs:
        write_docs(text, equivalents, list(modules))
    failed = [r for r in results if r.error or r.score < target or r.unexplained]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
