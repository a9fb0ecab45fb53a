"""FakeKube: the test handle that runs the fake API server in a thread and drives it."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from tests.kube.aggregation import Aggregation
from tests.kube.resources import by_kind
from tests.kube.server import FakeHTTPServer
from tests.kube.state import Call, Fault, ServerState
from tests.kube.store import StatusError, Store

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: {url}
contexts:
- name: fake
  context:
    cluster: fake
    user: tester
    namespace: default
current-context: fake
users:
- name: tester
  user:
    token: {token}
"""


class FakeKube:
    """A Kubernetes API server on 127.0.0.1 for tests; see tests/kube/__init__.py for the interface."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 history: int = 1000, bookmark_interval: float = 1.0, require_auth: bool = False,
                 aggregation: bool = False) -> None:
        self.host = host
        self.port = port
        self.token = token or secrets.token_hex(16)
        self.state = ServerState(store=Store(history=history), token=self.token,
                                 bookmark_interval=bookmark_interval, require_auth=require_auth)
        if aggregation:
            self.state.aggregation = Aggregation(self.state.store)
        self._server: FakeHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._dir: Path | None = None

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> FakeKube:
        """Listen (on the configured port, or a free one) and write the kubeconfig."""
        if self._server is not None:
            raise RuntimeError("FakeKube is already listening")
        self.state.set_closing(False)
        self._server = FakeHTTPServer((self.host, self.port), self.state)
        self.port = self._server.server_address[1]  # keep it so resume() comes back on the same port
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-kube-{self.port}")
        self._thread.start()
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="fake-kube-"))
            (self._dir / "kubeconfig").write_text(_KUBECONFIG.format(url=self.url, token=self.token))
        return self

    def _close_server(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self.state.set_closing(True)
        server.shutdown()
        self.state.close_connections()
        server.server_close()  # joins every handler thread
        thread.join(timeout=10)
        self._server = self._thread = None

    def stop(self) -> None:
        """Close every connection, join every thread, remove the kubeconfig directory."""
        self._close_server()
        if self.state.aggregation is not None:
            self.state.aggregation.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def pause(self) -> None:
        """Go away: stop listening and cut every open connection (clients get refused/reset)."""
        self._close_server()

    def resume(self) -> None:
        """Come back on the same port, with the same objects and history."""
        self.start()

    def __enter__(self) -> FakeKube:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def aggregation(self) -> Aggregation:
        """The aggregation layer (FakeKube(aggregation=True))."""
        if self.state.aggregation is None:
            raise RuntimeError("FakeKube(aggregation=True) serves the aggregation layer")
        return self.state.aggregation

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        if self._dir is None:
            raise RuntimeError("FakeKube has not been started")
        return self._dir / "kubeconfig"

    def api_client(self) -> ApiClient:
        """A kubernetes ApiClient built from the generated kubeconfig; close it (or use `with`)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    # --- objects ------------------------------------------------------------------------------------

    def create(self, obj: dict) -> dict:
        """Store a new object (see tests.kube.objects); returns it with uid/resourceVersion filled."""
        return self.state.store.create(obj)

    def update(self, obj: dict) -> dict:
        """Replace an object; watchers see MODIFIED."""
        return self.state.store.update(obj)

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict:
        """Remove an object (StatusError 404 if missing); returns its last state."""
        return self.state.store.delete(by_kind(api_version, kind), name, namespace)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        """The stored object, or None."""
        try:
            return self.state.store.get(by_kind(api_version, kind), name, namespace)
        except StatusError as err:
            if err.code == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict]:
        """Stored objects of a kind (all namespaces when namespace is None), with kind/apiVersion."""
        return self.state.store.list(by_kind(api_version, kind), namespace)[0]

    @property
    def resource_version(self) -> int:
        """The current global resourceVersion."""
        return self.state.store.resource_version

    @property
    def open_watches(self) -> int:
        """How many watch streams are open right now (e.g. to wait until a component is watching)."""
        with self.state.store.cond:
            return len(self.state.watches)

    # --- faults -------------------------------------------------------------------------------------

    def drop_watches(self) -> None:
        """Close every open watch stream abruptly (no terminating chunk)."""
        self.state.drop_watches()

    def fail_next(self, n: int, status: int = 500, path_contains: str | None = None, *,
                  retry_after: int | None = None) -> None:
        """The next n requests (whose path+query contains path_contains) answer a Status with `status`,
        with a `Retry-After` header when `retry_after` is set."""
        with self.state.lock:
            self.state.faults.append(Fault(n, status, path_contains, retry_after))

    def limit_watches(self, seconds: float | None) -> None:
        """Every watch that starts from now on ends after `seconds` (0: at once, as a misbehaving proxy or
        server may end them); None lifts the limit."""
        self.state.watch_limit = seconds

    def compact(self) -> int:
        """Forget the event history; watches resuming from an older version get 410 Expired."""
        return self.state.store.compact()

    # --- recording ----------------------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        with self.state.lock:
            return list(self.state.calls)

    def reset_calls(self) -> None:
        with self.state.lock:
            self.state.calls.clear()
