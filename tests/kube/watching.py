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

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    def start(self) -> None:
        h = self.handler
        h._record(200)
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Cache-Control", "no-cache, private")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

    def send(self, event: dict) -> None:
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


def serve_watch(handler: Handler, route: Route) -> None:
    """Stream events for one watch request until timeout, drop, server stop or client hang-up."""
    state, store = handler.state, handler.state.store
    matches = matcher(route, handler.query)
    start_rv, timeout, bookmarks = _parse_params(handler.query)
    initial_events = handler.query.get("sendInitialEvents") in ("1", "true")
    if initial_events and not bookmarks:
        raise StatusError(422, "Invalid", "sendInitialEvents requires allowWatchBookmarks=true")
    res = route.resource
    now = time.monotonic()
    deadline = now + timeout if timeout else None
    next_bookmark = now + state.bookmark_interval
    watch_id = next(_watch_ids)
    cond = store.cond
    pending: list[dict] = []
    with cond:
        epoch = state.drop_epoch
        state.watches[watch_id] = epoch
        if start_rv is None or initial_events:
            # The current state as synthetic ADDED events, then changes from here on.
            items, cursor = store.list(res, route.namespace)
            pending = [{"type": "ADDED", "object": o} for o in items if matches(o)]
            if initial_events:
                # Watch-list (sendInitialEvents): a bookmark marks the end of the initial state.
                pending.append(_bookmark(res, cursor, {"k8s.io/initial-events-end": "true"}))
        else:
            cursor = start_rv
    stream = _Stream(handler)
    abrupt = False
    try:
        stream.start()
        finished = False
        while not finished:
            for event in pending:
                stream.send(event)
            handler.wfile.flush()
            pending = []
            with cond:
                while True:
                    if state.closing or state.drop_epoch != epoch:
                        abrupt = finished = True
                        break
                    try:
                        events = store.events_after(res, cursor)
                    except StatusError as err:
                        pending, finished = [{"type": "ERROR", "object": err.status()}], True
                        break
                    # No event of this resource is missing up to the current version.
                    cursor = store.resource_version
                    pending = [c for c in (convert(e, matches) for e in events) if c]
                    if pending:
                        break
                    now = time.monotonic()
                    if deadline is not None and now >= deadline:
                        finished = True
                        break
                    if bookmarks and now >= next_bookmark:
                        next_bookmark = now + state.bookmark_interval
                        pending = [_bookmark(res, cursor)]
                        break
                    waits = [t - now for t in (deadline, next_bookmark if bookmarks else None) if t]
                    cond.wait(timeout=min(waits) if waits else None)
        if abrupt:
            # Vanish mid-stream: no terminating chunk, so the client sees a broken connection.
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
        else:
            for event in pending:
                stream.send(event)
            stream.end()
            handler.wfile.flush()
    except OSError:
        handler.close_connection = True  # the client went away; nothing to answer
    finally:
        with cond:
            state.watches.pop(watch_id, None)
            cond.notify_all()
