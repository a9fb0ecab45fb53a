"""Mutation testing in the suite: the bounded sample, and that no numeric module arrives unguarded.

`make mutation` (scripts/mutation.py) runs every configured module; it takes minutes, so the suite
runs only the `[sample]` of scripts/mutation.toml (the counter rules and the human forms) and checks
the configuration: every module of the exporter and the aggregator is either mutation-tested or
listed as left out with a reason, and the docs show every module and every accepted equivalent.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "mutation.py"


def _driver():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("k8smon_mutation", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


mutation = _driver()
TARGET, MODULES, EQUIVALENTS, RAW = mutation.load_config()


def test_every_module_is_mutation_tested_or_left_out_with_a_reason() -> None:
    sources = {
        str(p.relative_to(ROOT)) for pkg in mutation.PACKAGES for p in (ROOT / pkg).rglob("*.py")
    }
    left_out = RAW["unmutated"]
    assert not set(MODULES) & set(left_out)
    unclassified = sources - set(MODULES) - set(left_out)
    assert not unclassified, f"add these to scripts/mutation.toml [modules] or [unmutated]: {unclassified}"
    assert not (set(MODULES) | set(left_out)) - sources, "scripts/mutation.toml names modules that are gone"
    assert all(reason.strip() for reason in left_out.values())


def test_configured_tests_and_sample_exist() -> None:
    for module, spec in RAW["modules"].items():
        assert spec["tests"], module
        for test in [*spec["tests"], *spec.get("deselect", [])]:
            assert (ROOT / test.partition("::")[0]).is_file(), f"{module}: {test}"
    for module, functions in RAW["sample"].items():
        assert module in MODULES
        assert functions
    assert 0 < TARGET <= 1


def test_equivalents_name_real_modules_and_say_why() -> None:
    testing = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    for e in EQUIVALENTS:
        assert e.module in MODULES
        afters = [e.after] if isinstance(e.after, str) else e.after
        assert afters and all(e.before.strip() != a.strip() for a in afters), e
        assert len(e.reason) > 20, e
        assert e.reason in testing, f"docs/testing.md does not list the equivalent {e}"


def test_docs_show_a_score_for_every_module() -> None:
    for doc in (ROOT / "README.md", ROOT / "docs" / "testing.md"):
        text = doc.read_text(encoding="utf-8")
        block = text.partition(mutation.BEGIN)[2].partition(mutation.END)[0]
        assert block, f"{doc.name}: no score table"
        for module in MODULES:
            assert f"| `{module}` |" in block, f"{doc.name}: no score for {module}"


@pytest.mark.parametrize(
    ("mutant", "module", "function"),
    [
        ("aggregator.rates.x_counter_delta__mutmut_7", "aggregator/rates.py", "counter_delta"),
        ("aggregator.rates.xǁCounterTrackerǁupdate__mutmut_25", "aggregator/rates.py",
         "CounterTracker.update"),
        ("aggregator.api.human.x__sig3__mutmut_3", "aggregator/api/human.py", "_sig3"),
    ],
)
def test_mutant_names_map_to_functions(mutant: str, module: str, function: str) -> None:
    assert mutation.function_of(mutant, module) == function
    assert mutant.startswith(module.removesuffix(".py").replace("/", ".") + "." + mutation._mangle(function))


@pytest.mark.slow
def test_sample_mutants_are_all_killed(tmp_path: Path) -> None:
    """The bounded form: every mutant of the sampled functions is killed or a listed equivalent."""
    out = tmp_path / "sample.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--sample", "--timeout", "240", "--json", str(out),
         "--work", str(tmp_path / "work")],
        cwd=ROOT, text=True, capture_output=True, timeout=280, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert out.is_file(), proc.stdout[-2000:]
    results = json.loads(out.read_text(encoding="utf-8"))
    assert {r["module"] for r in results} == set(RAW["sample"])
    for r in results:
        assert not r["error"]
        assert r["mutants"], r["module"]  # a sample that generated nothing guards nothing
        for m in r["mutants"]:
            assert m["status"] in ("killed", "timeout") or m["equivalent"], m
