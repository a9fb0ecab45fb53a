"""The aggregator process's GIL switch interval (aggregator/gilpolicy.py): `python -m aggregator` sets
it before anything starts, and nothing else in a process changes it (tests keep CPython's default)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from aggregator.gilpolicy import SWITCH_INTERVAL

REPO = Path(__file__).resolve().parent.parent

# The real entry point with an Aggregator that reports the process's switch interval when started.
ENTRY = """
import sys
import aggregator.service as service

class Reporting:
    def __init__(self, settings):
        print("built", sys.getswitchinterval(), flush=True)

    def start(self):
        print("started", sys.getswitchinterval(), flush=True)
        raise SystemExit(0)

service.Aggregator = Reporting
from aggregator.__main__ import main
main(["--targets", "127.0.0.1:9", "--listen", "127.0.0.1:0", "--log-level", "warning"])
"""


def test_python_m_aggregator_sets_the_switch_interval_before_it_starts() -> None:
    out = subprocess.run([sys.executable, "-c", ENTRY], cwd=REPO, capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stderr
    default = sys.getswitchinterval()
    assert out.stdout.split() == ["built", repr(default), "started", repr(SWITCH_INTERVAL)]
    assert SWITCH_INTERVAL < default == 0.005  # CPython's default, kept by everything but the aggregator


def test_importing_the_aggregator_changes_nothing() -> None:
    code = ("import sys\nbefore = sys.getswitchinterval()\n"
            "import aggregator.gilpolicy, aggregator.service, aggregator.__main__\n"
            "print(before == sys.getswitchinterval())")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
