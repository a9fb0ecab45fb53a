"""`make demo`: run an exporter on this machine and an aggregator scraping it; Ctrl-C stops both."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _wait_http(url: str, deadline: float, stopping: threading.Event) -> bool:
    while time.monotonic() < deadline and not stopping.is_set():
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exporter", default="127.0.0.1:9100", help="exporter listen address")
    parser.add_argument("--aggregator", default="127.0.0.1:5000", help="aggregator listen address")
    args = parser.parse_args()
    py = sys.executable
    # Own sessions: Ctrl-C reaches only this script, which then stops both in order with SIGTERM
    # (a terminal's SIGINT to the whole group would interrupt them mid-import with tracebacks).
    procs = [
        subprocess.Popen(
            [py, "-m", "exporter", "--listen", args.exporter, "--interval", "5"],
            cwd=ROOT,
            start_new_session=True,
        ),
        subprocess.Popen(
            [py, "-m", "aggregator", "--listen", args.aggregator, "--targets", args.exporter],
            cwd=ROOT,
            start_new_session=True,
        ),
    ]
    stopping = threading.Event()

    def stop(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exporter_url, aggregator_url = f"http://{args.exporter}", f"http://{args.aggregator}"
    deadline = time.monotonic() + 30
    if _wait_http(exporter_url + "/healthz", deadline, stopping) and _wait_http(
        aggregator_url + "/healthz", deadline, stopping
    ):
        print(
            "\nk8s-monitor demo is running (Ctrl-C stops both):\n"
            f"  dashboard:          open {aggregator_url}/ui/ in a browser\n"
            f"  exporter metrics:   curl {exporter_url}/metrics\n"
            f"  nodes:              curl {aggregator_url}/api/nodes\n"
            f"  pods:               curl {aggregator_url}/api/pods\n"
            f"  namespaces:         curl {aggregator_url}/api/namespaces\n"
            f"  node history:       curl '{aggregator_url}/api/nodes/<node>/timeseries?window=300'\n"
            f"  federated metrics:  curl {aggregator_url}/metrics\n"
            f"  status:             curl {aggregator_url}/\n",
            flush=True,
        )
    else:
        if not stopping.is_set():
            print("demo: a component did not come up; see its log above", file=sys.stderr)
        stopping.set()
    while not stopping.is_set() and all(p.poll() is None for p in procs):
        time.sleep(0.2)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    rc = 0
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = 1
    print("demo: stopped", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
