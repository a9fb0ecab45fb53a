"""A waitress server that can be started in a thread and stopped cleanly (tests and graceful shutdown)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import waitress
from waitress.server import BaseWSGIServer, MultiSocketServer

log = logging.getLogger(__name__)


class ServerHandle:
    """Owns one waitress server bound at construction, so `port` is known before `start()`."""

    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int = 0, threads: int = 4, **kw: Any
    ) -> None:
        self._server: BaseWSGIServer | MultiSocketServer = waitress.create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            ident="k8s-monitor",
            clear_untrusted_proxy_headers=True,
            # poll(), not select(): select() refuses descriptors >= 1024, and the aggregator holds
            # one kept-alive connection per exporter, so past ~1000 nodes accepted requests get
            # such descriptors and waitress's loop died on the first one.
            asyncore_use_poll=True,
            **kw,
        )
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.effective_host)  # type: ignore[union-attr]

    @property
    def port(self) -> int:
        return int(self._server.effective_port)  # type: ignore[union-attr]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> ServerHandle:
        self._thread = threading.Thread(target=self._run, name=f"waitress:{self.port}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._server.run()
        except OSError:
            # close() from another thread can race the select loop; the server is going away anyway.
            log.debug("server loop ended", exc_info=True)

    def serve_forever(self) -> None:
        self._server.run()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, let in-flight requests finish (up to `timeout`), then close every connection.

        Idle keep-alive connections (Prometheus keeps one open per target) would otherwise keep
        waitress's loop alive until they time out, stalling shutdown past the pod's grace period.
        """
        server = self._server
        server.accepting = False  # type: ignore[union-attr]  # readable() turns False: no new connections
        server.task_dispatcher.shutdown(cancel_pending=False, timeout=timeout)  # type: ignore[union-attr]

        def close_all() -> None:
            # will_close lets a channel flush a response still in its buffer before it closes.
            for channel in list(server.active_channels.values()):  # type: ignore[union-attr]
                channel.will_close = True
            server.close()

        if self._thread is not None and self._thread.is_alive():
            try:
                server.trigger.pull_trigger(close_all)  # type: ignore[union-attr]  # run in the loop's thread
            except OSError:
                # Its pipe was closed already (EBADF in ~1 stop in 10 of tests/test_shutdown.py, cause not
                # pinned down; waitress closes the trigger only with the server). The loop still runs
                # the open connections: marked from here, it closes them within a poll timeout (1 s).
                log.debug("server trigger closed: closing connections from here", exc_info=True)
                close_all()
            self._thread.join(timeout)
        else:
            close_all()

    def __enter__(self) -> ServerHandle:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
