"""What the HTTP side and the test handle share: the store, recorded calls, faults, open connections."""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field
from typing import NamedTuple

from tests.kube.aggregation import Aggregation
from tests.kube.store import Store


class Call(NamedTuple):
    """One request as the RBAC layer would see it; resource is "" for non-resource paths like /version."""

    verb: str  # get, list, watch, create, update, patch, delete, deletecollection
    group: str
    version: str
    resource: str
    namespace: str | None
    name: str | None
    user_agent: str
    status: int
    path: str = ""
    user: str = ""  # "tester" with the kubeconfig's token, "system:anonymous" without one (kubectl)
    at: float = 0.0  # time.monotonic() when answered: request rates in the load tests


@dataclass
class Fault:
    """`remaining` more requests whose path contains `path_contains` answer `status` (with a
    `Retry-After: retry_after` header when set, as the API server's priority and fairness sends with 429)."""

    remaining: int
    status: int
    path_contains: str | None
    retry_after: int | None = None


@dataclass
class ServerState:
    """Shared mutable state; the store's Condition also guards watch bookkeeping."""

    store: Store
    token: str
    bookmark_interval: float
    require_auth: bool = False
    calls: list[Call] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    connections: set[socket.socket] = field(default_factory=set)
    closing: bool = False
    drop_epoch: int = 0
    # watch id -> drop epoch it started in; drop_watches waits for the old ones to end.
    watches: dict[int, int] = field(default_factory=dict)
    # Fault: every watch ends this many seconds after it starts (0: at once, after its initial events).
    watch_limit: float | None = None
    aggregation: Aggregation | None = None  # the aggregation layer, when FakeKube(aggregation=True)

    def record(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)

    def take_fault(self, path: str) -> Fault | None:
        """The fault to fail this request with, consuming one use of the first matching one."""
        with self.lock:
            for fault in self.faults:
                if fault.path_contains is None or fault.path_contains in path:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def track(self, conn: socket.socket) -> None:
        with self.lock:
            if self.closing:
                # Accepted just as the server went away: close it like a vanished server would.
                _shutdown(conn)
            self.connections.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self.lock:
            self.connections.discard(conn)

    def close_connections(self) -> None:
        """Shut down every open connection so handler threads see EOF and end."""
        with self.lock:
            conns = list(self.connections)
        for conn in conns:
            _shutdown(conn)

    def drop_watches(self, *, timeout: float = 5.0) -> None:
        """End every open watch stream abruptly and wait (bounded) until they are gone."""
        cond = self.store.cond
        with cond:
            self.drop_epoch += 1
            epoch = self.drop_epoch
            cond.notify_all()
            ended = cond.wait_for(lambda: all(e >= epoch for e in self.watches.values()), timeout=timeout)
        if not ended:
            raise TimeoutError(f"watch streams still open {timeout}s after drop_watches()")

    def set_closing(self, value: bool) -> None:
        with self.lock:
            self.closing = value
        with self.store.cond:
            self.store.cond.notify_all()


def _shutdown(conn: socket.socket) -> None:
    # OSError: already closed by its handler, nothing left to end.
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)


