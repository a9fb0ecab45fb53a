"""`python -m aggregator` / `k8smon-aggregator`: run the aggregator until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from aggregator.config import load
from aggregator.kube import KubeError
from k8smon_common.config import ConfigError, configure_logging

log = logging.getLogger("aggregator")


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status: 0 after a clean stop, 2 for bad configuration, 1 when it cannot start."""
    try:
        settings = load(argv, os.environ)
    except ConfigError as exc:
        print(f"k8smon-aggregator: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    from aggregator.gcpolicy import tune_gc
    from aggregator.gilpolicy import tune_switching
    from aggregator.service import Aggregator  # after logging is set up: importing it is not free

    try:
        aggregator = Aggregator(settings)
    except KubeError as exc:
        log.error("cannot start: %s (pass --targets to run without a cluster)", exc)
        return 1
    except OSError as exc:
        log.error("cannot listen on %s: %s", settings.listen, exc)
        return 1
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    tune_gc()
    tune_switching()
    aggregator.start()
    try:
        while not stopping.wait(1.0):
            pass
    finally:
        aggregator.stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
