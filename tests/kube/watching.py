"""Watch streams: chunked JSON lines, resume, bookmarks, timeouts, 410 Expired, abrupt drops.

Events are filtered the way the API server's watch cache does it: an object that starts matching
the selector arrives as ADDED, one that stops matching as DELETED (its previous state, with the
event's resourceVersion), one that keeps matching as MODIFIED.
"""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tests.kube.listing import matcher
from tests.kube.store import Event, StatusError
from tests.kube.tables import table, wants_table

if TYPE_CHECKING:
    from tests.kube.resources import Resource
    from tests.kube.server import Handler, Route

_watch_ids = itertools.count(1)


def convert(event: Event, matches: Callable[[dict], bool]) -> dict | None:
    """The watch event a client with this filter sees for a store event, or None."""
    cur = event.type != "DELETED" and matches(event.obj)
    old = event.prev is not None and matches(event.prev)
    if cur:
        return {"type": "MODIFIED" if old else "ADDED", "object": event.obj}
    if old:
        assert event.prev is not None
        gone = {**event.prev, "metadata": {**event.prev["metadata"], "resourceVersion": str(event.rv)}}
        return {"type": "DELETED", "object": gone}
    return None


def _bookmark(res: Resource, rv: int, annotations: dict[str, str] | None = None) -> dict:
    """A BOOKMARK event: an object of the watched kind carrying only metadata.resourceVersion."""
    meta: dict = {"resourceVersion": str(rv)}
    if annotations:
        meta["annotations"] = annotations
    return {"type": "BOOKMARK", "object": {"kind": res.kind, "apiVersion": res.api_version, "metadata": meta}}


class _Stream:
    """Writes one chunked response body."""

    def __init__(self, handler: Handler, resource: Resource) -> None:
        self.handler = handler
        self.resource = resource
        # `kubectl get -w` asks for Tables: each object event then carries a one-row Table.
        self.as_table = wants_table(handler.headers.get("Accept"))
        self.include_object = handler.query.get("includeObject", "Metadata")

    def start(self) -> None:
        h = self.handler
        h._record(200)
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Cache-Control", "no-cache, private")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

    def send(self, event: dict) -> None:
        if self.as_table and event["type"] in ("ADDED", "MODIFIED", "DELETED"):
            obj = event["object"]
            event = {"type": event["type"], "object": table(
                self.resource, [obj], resource_version=int(obj["metadata"]["resourceVersion"]),
                include_object=self.include_object)}
        data = json.dumps(event).encode() + b"\n"
        self.handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end(self) -> None:
        self.handler.wfile.write(b"0\r\n\r\n")


def _parse_params(query: dict[str, str]) -> tuple[int | None, float | None, bool]:
    """resourceVersion (None = start from the current state), timeoutSeconds, allowWatchBookmarks."""
    raw_rv = query.get("resourceVersion") or ""
    raw_timeout = query.get("timeoutSeconds") or ""
    try:
        rv = int(raw_rv) if raw_rv not in ("", "0") else None
        timeout = float(raw_timeout) if raw_timeout else None
    except ValueError as exc:
        raise StatusError(400, "BadRequest", f"invalid watch parameter: {exc}") from exc
    return rv, timeout, query.get("allowWatchBookmarks") in ("1", "true")


_HANGUP_CHECK_S = 0.5  # how often an idle stream checks whether its client hung up


def _client_gone(conn: socket.socket) -> bool:
    """True when the peer closed the connection (a watch client never sends more on it)."""
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


class WatchSession:
    """One watch request: the initial events, then changes until it ends one of four ways."""

    def __init__(self, handler: Handler, route: Route) -> None:
        self.handler = handler
        self.state = handler.state
        self.store = handler.state.store
        self.resource = route.resource
        self.namespace = route.namespace
        self.matches = matcher(route, handler.query)
        self.start_rv, timeout, self.bookmarks = _parse_params(handler.query)
        self.initial_events = handler.query.get("sendInitialEvents") in ("1", "true")
        if self.initial_events and not self.bookmarks:
            raise StatusError(422, "Invalid", "sendInitialEvents requires allowWatchBookmarks=true")
        now = time.monotonic()
        self.deadline = now + timeout if timeout else None
        limit = self.state.watch_limit
        if limit is not None:
            self.deadline = now + limit if self.deadline is None else min(self.deadline, now + limit)
        self.next_bookmark = now + self.state.bookmark_interval
        self.cursor = 0
        self.epoch = 0

    def _initial(self) -> list[dict]:
        """Events before any change (caller holds cond): the current state unless resuming."""
        if self.start_rv is not None and not self.initial_events:
            self.cursor = self.start_rv
            return []
        items, self.cursor = self.store.list(self.resource, self.namespace)
        pending = [{"type": "ADDED", "object": o} for o in items if self.matches(o)]
        if self.initial_events:
            # Watch-list (sendInitialEvents): a bookmark marks the end of the initial state.
            pending.append(_bookmark(self.resource, self.cursor, {"k8s.io/initial-events-end": "true"}))
        return pending

    def _next(self) -> tuple[list[dict], str]:
        """Block (caller holds cond) until events are due; the outcome is more, end or drop."""
        cond = self.store.cond
        while True:
            if self.state.closing or self.state.drop_epoch != self.epoch:
                return [], "drop"
            try:
                events = self.store.events_after(self.resource, self.cursor)
            except StatusError as err:
                return [{"type": "ERROR", "object": err.status()}], "end"
            # Holding cond, every event of this resource up to the current version has been seen.
            self.cursor = self.store.resource_version
            pending = [c for c in (convert(e, self.matches) for e in events) if c]
            if pending:
                return pending, "more"
            now = time.monotonic()
            if self.deadline is not None and now >= self.deadline:
                return [], "end"
            if self.bookmarks and now >= self.next_bookmark:
                self.next_bookmark = now + self.state.bookmark_interval
                return [_bookmark(self.resource, self.cursor)], "more"
            if _client_gone(self.handler.connection):
                return [], "drop"
            due = (self.deadline, self.next_bookmark if self.bookmarks else None)
            waits = [_HANGUP_CHECK_S] + [t - now for t in due if t is not None]
            cond.wait(timeout=min(waits))

    def run(self) -> None:
        """Stream until timeout, drop, server stop or client hang-up."""
        handler, cond, state = self.handler, self.store.cond, self.state
        watch_id = next(_watch_ids)
        with cond:
            self.epoch = state.drop_epoch
            state.watches[watch_id] = self.epoch
            pending = self._initial()
        stream = _Stream(handler, self.resource)
        try:
            stream.start()
            outcome = "more"
            while outcome == "more":
                for event in pending:
                    stream.send(event)
                with cond:
                    pending, outcome = self._next()
            if outcome == "drop":
                # Vanish mid-stream: no terminating chunk, so the client sees a broken connection.
                handler.close_connection = True
                handler.connection.shutdown(socket.SHUT_RDWR)
            else:
                for event in pending:
                    stream.send(event)
                stream.end()
        except OSError:
            handler.close_connection = True  # the client went away; nothing to answer
        finally:
            with cond:
                state.watches.pop(watch_id, None)
                cond.notify_all()


def serve_watch(handler: Handler, route: Route) -> None:
    """Answer a watch request (parameter errors are raised before the stream starts)."""
    WatchSession(handler, route).run()
