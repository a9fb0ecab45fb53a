"""The fake's aggregation layer (kube-aggregator's part of the API server) and the reviews it delegates.

- `APIService` objects (apiregistration.k8s.io/v1) name a Service; the backend is reached through that
  Service's Endpoints (kube-aggregator's endpoint routing), over TLS: the backend's certificate is checked
  against `spec.caBundle` unless `insecureSkipTLSVerify`, and the fake presents its front-proxy client
  certificate (CN `front-proxy-client`, issued by the front-proxy CA).
- `/apis` lists an aggregated group once its backend answers: first `/apis` with the aggregated-discovery
  Accept header (a 406 falls back, as kube-aggregator does; `discovery_fallbacks` counts them), then
  `/apis/<group>/<version>` must answer 200.
- Requests under `/apis/<group>/<version>/...` are proxied with the authenticated user in
  `X-Remote-User`/`X-Remote-Group`/`X-Remote-Extra-*`; the caller's Authorization header is not passed.
  An unreachable backend is a 503 ServiceUnavailable Status.
- `authentication_configmap()` is the `kube-system/extension-apiserver-authentication` ConfigMap.
- `POST .../tokenreviews` and `.../subjectaccessreviews` answer with what a test sets (`token_users`,
  `authorize`); `reviews` records every request body.
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import ssl
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.kube import resources
from tests.kube.pki import CertificateAuthority
from tests.kube.resources import by_kind
from tests.kube.store import StatusError

if TYPE_CHECKING:
    from tests.kube.server import Handler
    from tests.kube.store import Store

AGGREGATED_ACCEPT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
FRONT_PROXY_NAME = "front-proxy-client"
REVIEWS = {("apis", "authentication.k8s.io", "v1", "tokenreviews"): "_token_review",
           ("apis", "authorization.k8s.io", "v1", "subjectaccessreviews"): "_access_review"}
USER_GROUPS = {"tester": ["system:masters", "system:authenticated"],
               "system:anonymous": ["system:unauthenticated"]}


def _group(name: str, versions: list[str]) -> dict:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}


class Aggregation:
    """State of the aggregation layer; one per fake API server."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.front_proxy_ca = CertificateAuthority("front-proxy-ca")
        self.client_ca = CertificateAuthority("kubernetes-client-ca")
        self._dir = Path(tempfile.mkdtemp(prefix="fake-kube-aggregation-"))
        self.client_cert_file, self.client_key_file = self.front_proxy_ca.issue(FRONT_PROXY_NAME).write(
            self._dir, "front-proxy-client")
        self.lock = threading.Lock()
        self.discovery_fallbacks = 0  # 406 answers to the aggregated-discovery request
        self.proxied: list[tuple[str, str, int]] = []  # (path, X-Remote-User, backend status)
        self.token_users: dict[str, dict[str, Any]] = {}  # bearer token -> TokenReview status.user
        self.authorize: Callable[[dict[str, Any]], tuple[bool, str]] = lambda spec: (True, "")
        self.reviews: list[dict[str, Any]] = []

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    # --- objects ---------------------------------------------------------------------------------------

    def authentication_configmap(self, *, allowed_names: tuple[str, ...] = (FRONT_PROXY_NAME,)) -> dict:
        """The ConfigMap kube-apiserver publishes for extension API servers."""
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"},
                "data": {"client-ca-file": self.client_ca.cert.decode(),
                         "requestheader-client-ca-file": self.front_proxy_ca.cert.decode(),
                         "requestheader-allowed-names": json.dumps(list(allowed_names)),
                         "requestheader-username-headers": '["X-Remote-User"]',
                         "requestheader-group-headers": '["X-Remote-Group"]',
                         "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]'}}

    def _apiservices(self) -> list[dict]:
        return self.store.list(by_kind("apiregistration.k8s.io/v1", "APIService"))[0]

    def service_for(self, group: str, version: str) -> dict | None:
        for svc in self._apiservices():
            spec = svc.get("spec") or {}
            if spec.get("group") == group and spec.get("version") == version and spec.get("service"):
                return svc
        return None

    def _backend(self, apiservice: dict) -> tuple[str, int] | None:
        """The first ready endpoint address and port of the APIService's Service, or None."""
        ref = apiservice["spec"]["service"]
        ns, name, port = ref["namespace"], ref["name"], ref.get("port", 443)
        service = self.store_get("v1", "Service", name, ns)
        endpoints = self.store_get("v1", "Endpoints", name, ns)
        if service is None or endpoints is None:
            return None
        port_name = next((p.get("name") for p in service["spec"].get("ports", []) if p.get("port") == port),
                         None)
        for subset in endpoints.get("subsets") or []:
            ports = subset.get("ports") or []
            only = ports[0] if len(ports) == 1 else None
            chosen = next((p for p in ports if p.get("name") == port_name), only)
            if chosen and subset.get("addresses"):
                return subset["addresses"][0]["ip"], int(chosen["port"])
        return None

    def store_get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict | None:
        try:
            return self.store.get(by_kind(api_version, kind), name, namespace)
        except StatusError:
            return None

    def _context(self, apiservice: dict) -> ssl.SSLContext:
        spec = apiservice["spec"]
        if spec.get("insecureSkipTLSVerify"):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx = ssl.create_default_context(cadata=base64.b64decode(spec.get("caBundle", "")).decode())
            ctx.check_hostname = False  # kube-aggregator checks the Service's DNS name; ours is an IP
        ctx.load_cert_chain(self.client_cert_file, self.client_key_file)
        return ctx

    def _request(self, apiservice: dict, method: str, path: str, headers: dict[str, str], *,
                 groups: list[str] | tuple[str, ...] = (), body: bytes = b"") -> tuple[int, str, bytes]:
        backend = self._backend(apiservice)
        if backend is None:
            raise OSError("no endpoints for the APIService's Service")
        conn = http.client.HTTPSConnection(backend[0], backend[1], context=self._context(apiservice),
                                           timeout=30)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for name, value in headers.items():
                conn.putheader(name, value)
            for group in groups:  # one header per group, as kube-aggregator sends them
                conn.putheader("X-Remote-Group", group)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type", "application/json"), resp.read()
        finally:
            conn.close()

    def available(self, apiservice: dict) -> bool:
        """kube-aggregator's discovery and availability checks, against the backend itself."""
        spec = apiservice["spec"]
        headers = {"X-Remote-User": "system:kube-aggregator"}
        groups = ["system:masters"]
        try:
            status, _type, _body = self._request(apiservice, "GET", "/apis",
                                                 {**headers, "Accept": AGGREGATED_ACCEPT}, groups=groups)
            if status == 406:
                with self.lock:
                    self.discovery_fallbacks += 1
            version_path = f"/apis/{spec['group']}/{spec['version']}"
            status, _type, _body = self._request(apiservice, "GET", version_path,
                                                 {**headers, "Accept": "application/json"}, groups=groups)
        except (OSError, ssl.SSLError, http.client.HTTPException):
            return False
        return status == 200

    def available_groups(self) -> dict[str, list[str]]:
        """group -> versions whose backend answers, in APIService order (by name)."""
        out: dict[str, list[str]] = {}
        for svc in self._apiservices():
            spec = svc.get("spec") or {}
            if spec.get("service") and self.available(svc):
                out.setdefault(spec["group"], []).append(spec["version"])
        return out

    # --- HTTP ------------------------------------------------------------------------------------------

    def handle(self, handler: Handler, method: str, path: str) -> bool:
        """Answer the request if it is the aggregation layer's; False to let the fake serve it."""
        parts = [p for p in path.split("/") if p]
        apiservice = self.service_for(parts[1], parts[2]) if len(parts) >= 3 and parts[0] == "apis" else None
        if apiservice is not None and method != "POST":
            self._proxy(handler, apiservice, method)
            return True
        answer = self._answer(method, parts, handler)
        if answer is not None:
            handler.send_json(*answer)
        return answer is not None

    def _answer(self, method: str, parts: list[str], handler: Handler) -> tuple[int, dict] | None:
        """Reviews, `/apis` and `/apis/<aggregated group>`; None for anything else."""
        if method == "POST":
            review = REVIEWS.get(tuple(parts))
            return None if review is None else (201, getattr(self, review)(handler.read_body()))
        if parts == ["apis"] and method == "GET":
            return 200, self._group_list()
        if len(parts) == 2 and parts[0] == "apis":
            versions = self.available_groups().get(parts[1])
            if versions is not None:
                return 200, {"kind": "APIGroup", "apiVersion": "v1", **_group(parts[1], versions)}
        return None

    def _group_list(self) -> dict:
        body = resources.api_group_list()
        body["groups"] += [_group(g, versions) for g, versions in self.available_groups().items()]
        return body

    def _proxy(self, handler: Handler, apiservice: dict, method: str) -> None:
        user = handler.remote_user
        headers = {"Accept": handler.headers.get("Accept", "application/json"),
                   "User-Agent": handler.headers.get("User-Agent", ""), "X-Remote-User": user}
        groups = USER_GROUPS.get(user, ["system:authenticated"])
        try:
            status, content_type, body = self._request(apiservice, method, handler.path, headers,
                                                       groups=groups, body=handler.raw_body)
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            handler.send_status(503, f"the backend of {apiservice['metadata']['name']} is unavailable: {exc}")
            return
        with self.lock:
            self.proxied.append((handler.path, user, status))
        handler.send_raw(status, content_type, body)

    def _token_review(self, body: dict) -> dict:
        with self.lock:
            self.reviews.append(body)
        token = (body.get("spec") or {}).get("token", "")
        user = self.token_users.get(token)
        status: dict[str, Any] = ({"authenticated": True, "user": user} if user
                                  else {"authenticated": False, "error": "invalid token"})
        return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": body.get("spec"),
                "status": status}

    def _access_review(self, body: dict) -> dict:
        with self.lock:
            self.reviews.append(body)
        allowed, reason = self.authorize(body.get("spec") or {})
        return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                "spec": body.get("spec"), "status": {"allowed": allowed, "reason": reason}}
