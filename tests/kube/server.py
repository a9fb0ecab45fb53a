"""The HTTP face of the fake: routing, auth, faults, call recording, JSON and Table answers."""

from __future__ import annotations

import json
import logging
import socket
import sys
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

from tests.kube import listing, resources, watching
from tests.kube.resources import Resource
from tests.kube.state import Call, ServerState
from tests.kube.store import StatusError, failure_status
from tests.kube.tables import table, wants_table

log = logging.getLogger(__name__)

_PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz")
_REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests",
    500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout",
}


class FakeHTTPServer(ThreadingHTTPServer):
    """A threading server whose close joins every handler thread (none are daemons)."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: ServerState) -> None:
        self.state = state
        super().__init__(address, Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients vanishing (or pause/stop cutting them) is routine; anything else is logged loudly."""
        exc = sys.exception()
        if isinstance(exc, ConnectionError):
            log.debug("connection from %s ended: %r", client_address, exc)
        else:
            log.error("fake API server handler failed for %s", client_address, exc_info=exc)


_NAMESPACE_SUBRESOURCES = ("status", "finalize")


class RequestInfo(NamedTuple):
    """What the API server's RequestInfoFactory reads from a resource path, served or not."""

    group: str
    version: str
    namespace: str | None
    plural: str
    name: str | None
    subresource: str | None

    @property
    def rbac_resource(self) -> str:
        """The resource as RBAC rules name it: `pods`, or `pods/log` for a subresource."""
        return f"{self.plural}/{self.subresource}" if self.subresource else self.plural


def parse_request_info(path: str) -> RequestInfo | None:
    """Split /api/v1/... and /apis/<g>/<v>/... into its parts; None for non-resource paths."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    if rest[0] == "namespaces":
        namespace = None  # the namespace object itself (namespaces/<name>[/status]) is cluster-scoped
    return RequestInfo(group, version, namespace, rest[0], rest[1] if len(rest) > 1 else None,
                       rest[2] if len(rest) > 2 else None)


class Route:
    """A request for a resource this fake serves (no subresources)."""

    def __init__(self, resource: Resource, namespace: str | None, name: str | None) -> None:
        self.resource = resource
        self.namespace = namespace
        self.name = name


def resolve(info: RequestInfo) -> Route | None:
    """The served resource a request addresses, or None (a real server answers 404)."""
    resource = resources.by_path(info.group, info.version, info.plural)
    if resource is None or info.subresource or (info.namespace is not None and not resource.namespaced):
        return None
    return Route(resource, info.namespace, info.name)


def _verb(method: str, info: RequestInfo | None, query: dict[str, str]) -> str:
    if info is None:
        return method.lower()
    if method == "GET":
        if info.name:
            return "get"
        return "watch" if query.get("watch") in ("1", "true") else "list"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(
        method, "delete" if info.name else "deletecollection")


class Handler(BaseHTTPRequestHandler):
    """One connection; HTTP/1.1 keep-alive like client-go expects."""

    protocol_version = "HTTP/1.1"
    server: FakeHTTPServer
    query: dict[str, str]
    _info: RequestInfo | None
    _route: Route | None
    _verb: str
    _user: str
    _raw_body: bytes
    server_version = "fake-kube-apiserver"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle plus the client's
        # delayed ACK adds ~40 ms to every request (Go's net/http, like the real server, sets it).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.state.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.state.untrack(self.connection)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests read kube.calls instead of a request log."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # --- plumbing ---------------------------------------------------------------------------------

    @property
    def state(self) -> ServerState:
        return self.server.state

    def _record(self, status: int) -> None:
        info = self._info
        self.state.record(Call(
            verb=self._verb,
            group=info.group if info else "",
            version=info.version if info else "",
            resource=info.rbac_resource if info else "",
            namespace=info.namespace if info else None,
            name=info.name if info else None,
            user_agent=self.headers.get("User-Agent", ""),
            status=status,
            path=self.path,
            user=self._user,
            at=time.monotonic(),
        ))

    def send_json(self, status: int, body: dict | list, *, headers: dict[str, str] | None = None) -> None:
        """A complete JSON answer with Content-Length, recorded as a call."""
        data = json.dumps(body).encode()
        self._record(status)
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_status(self, code: int, message: str, *, reason: str | None = None) -> None:
        self.send_json(code, failure_status(code, reason or _REASONS.get(code, "Unknown"), message))

    @property
    def remote_user(self) -> str:
        """Who the request authenticated as ("tester", "system:anonymous")."""
        return self._user

    @property
    def raw_body(self) -> bytes:
        return self._raw_body

    def send_raw(self, status: int, content_type: str, data: bytes) -> None:
        """A proxied answer as the backend gave it, recorded as a call."""
        self._record(status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_text(self, status: int, text: str) -> None:
        data = text.encode()
        self._record(status)
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _read_raw_body(self) -> bytes:
        """Consume the request body first, whatever the answer: leftovers would corrupt keep-alive."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        return self.rfile.read(length) if length > 0 else b""

    def read_body(self) -> dict:
        """The request body as a JSON object, or 400 BadRequest."""
        try:
            body = json.loads(self._raw_body or b"{}")
        except ValueError as exc:
            raise StatusError(400, "BadRequest", f"the request body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise StatusError(400, "BadRequest", "the request body must be a JSON object")
        return body

    def _dispatch(self, method: str) -> None:
        self._raw_body = self._read_raw_body()
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        self._info = parse_request_info(split.path)
        self._route = resolve(self._info) if self._info else None
        self._user = ""
        self._verb = _verb(method, self._info, query)
        self.query = query
        if not self._authenticate(split.path):
            self.send_status(401, "Unauthorized")
            return
        fault = self.state.take_fault(self.path)
        if fault is not None:
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            self.send_json(fault.status, failure_status(
                fault.status, _REASONS.get(fault.status, "Unknown"),
                f"injected fault: {fault.status} for {self.path}"), headers=headers)
            return
        try:
            aggregation = self.state.aggregation
            if aggregation is not None and aggregation.handle(self, method, split.path):
                return
            if self._route is not None:
                self._resource(method, self._route)
            elif self._info is not None:
                self.send_status(404, "the server could not find the requested resource")
            else:
                self._non_resource(method, split.path)
        except StatusError as err:
            self.send_json(err.code, err.status())
        except (ValueError, KeyError, TypeError) as exc:
            # A bug in the fake or a request it cannot digest: say so loudly, as a 500 Status.
            log.exception("fake API server failed on %s %s", method, self.path)
            self.send_status(500, f"fake API server error: {exc!r}")

    def _authenticate(self, path: str) -> bool:
        """A wrong token is always 401; no token is allowed unless require_auth is set.

        kubectl (client-go's clientcmd) never sends a kubeconfig's credentials over plain HTTP, so the
        fake treats tokenless requests like a real server's old insecure port did, as an admin.
        """
        header = self.headers.get("Authorization")
        if header is None:
            self._user = "system:anonymous"
            return path.rstrip("/") in _PUBLIC_PATHS or not self.state.require_auth
        self._user = "tester"
        return header == f"Bearer {self.state.token}"

    def _non_resource(self, method: str, path: str) -> None:
        if method != "GET":
            self.send_status(405, f"{method} is not allowed on {path}")
            return
        if path.rstrip("/") in ("/healthz", "/livez", "/readyz"):
            self.send_text(200, "ok")
            return
        parts = [p for p in path.split("/") if p]
        body: dict | None = None
        if parts == ["version"]:  # the Python client asks for /version/
            body = resources.SERVER_VERSION
        elif parts == ["api"]:
            body = resources.api_versions(f"{self.server.server_address[0]}:{self.server.server_address[1]}")
        elif parts == ["apis"]:
            body = resources.api_group_list()
        elif len(parts) == 2 and parts[0] == "api":
            body = resources.api_resource_list("", parts[1])
        elif len(parts) == 2 and parts[0] == "apis":
            body = resources.api_group(parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            body = resources.api_resource_list(parts[1], parts[2])
        if body is None:
            self.send_status(404, "the server could not find the requested resource")
            return
        self.send_json(200, body)

    def _resource(self, method: str, route: Route) -> None:
        store, res = self.state.store, route.resource
        if self._verb == "watch":
            watching.serve_watch(self, route)
        elif self._verb == "list":
            body = listing.list_body(store, route, self.query)
            if wants_table(self.headers.get("Accept")):
                items = listing.with_kind(res, body["items"])
                body = table(res, items, resource_version=int(body["metadata"]["resourceVersion"]),
                             include_object=self.query.get("includeObject", "Metadata"))
            self.send_json(200, body)
        elif self._verb == "get":
            obj = store.get(res, route.name or "", route.namespace)
            if wants_table(self.headers.get("Accept")):
                obj = table(res, [obj], resource_version=int(obj["metadata"]["resourceVersion"]),
                            include_object=self.query.get("includeObject", "Metadata"))
            self.send_json(200, obj)
        elif self._verb == "create":
            obj = listing.body_for(res, route, self.read_body())
            self.send_json(HTTPStatus.CREATED, store.create(obj))
        elif self._verb == "update":
            obj = listing.body_for(res, route, self.read_body())
            self.send_json(200, store.update(obj))
        elif self._verb == "patch":
            if "json-patch" in self.headers.get("Content-Type", ""):
                raise StatusError(415, "UnsupportedMediaType", "the fake supports merge patches only")
            self.send_json(200, listing.patch(store, route, self.read_body()))
        elif self._verb == "delete":
            gone = store.delete(res, route.name or "", route.namespace)
            if res.plural == "pods":
                self.send_json(200, gone)
            else:
                self.send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                     "status": "Success", "details": {
                                         "name": route.name, "group": res.group, "kind": res.plural,
                                         "uid": gone["metadata"]["uid"]}})
        else:
            self.send_status(405, f"{self._verb} is not supported by the fake API server")
