"""`python -m exporter` / `k8smon-exporter`: parse settings, run until SIGTERM/SIGINT, exit 0."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

from k8smon_common.config import ConfigError, configure_logging
from k8smon_common.kube import KubeError

log = logging.getLogger("exporter")


def main(argv: list[str] | None = None) -> int:
    """Run the exporter; 2 on bad configuration, 0 after a clean shutdown."""
    from exporter.config import load
    from exporter.service import ExporterService

    try:
        settings = load(argv)
    except ConfigError as exc:
        print(f"k8smon-exporter: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        service = ExporterService(settings)
    except (OSError, KubeError) as exc:  # the listen address is taken; --auth kubernetes without an API
        print(f"k8smon-exporter: cannot start: {exc}", file=sys.stderr)
        return 1
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s; shutting down", signal.Signals(signum).name)
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        service.start()
        print(f"k8smon-exporter listening on {service.url}", flush=True)
        while not stopping.wait(3600):
            pass
    finally:
        service.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
