"""The Kubernetes plumbing both components use: client factory, error tree, GET, backoff, list+watch loop.

The only module that imports `kubernetes`. Requests go through the client's auth and TLS settings with
`ApiClient.call_api` (the generated `CoreV1Api`-style classes cost ~25 MB of RSS and seconds of start-up);
answers are the API server's JSON as dicts. Everything the client and urllib3 raise is wrapped, chained
with `from`:

    KubeError                 any failure talking to the API server (`status`: HTTP status, 0 if none)
    ├── KubeGone              410 (status or watch ERROR event): the resourceVersion expired; relist
    ├── KubeUnavailable       no usable configuration, connection refused/reset, timeouts, 429, 5xx
    └── KubeApiError          any other error status (401, 403, 404, 422...)

`ListWatch` lists, then watches from the list's resourceVersion, resuming from the last version seen
(events and bookmarks), relisting only on 410. It never spins: a watch counts as *productive* when it
delivered an object event or stayed open `min_watch` seconds (or nearly the timeout it asked for);
anything else (an error, a stream that
ends at once with nothing in it, a 410 straight after another unproductive cycle) waits a capped,
jittered exponential backoff (at least the `Retry-After` a 429/503 asks for, up to the cap) before the
next request, and only a productive watch resets that backoff
(a successful list does not: a server whose watches always fail would otherwise be relisted at the
initial delay forever). With the defaults (0.5 s initial, 30 s cap) a misbehaving API server sees at most
~4 requests in the first 5 s and then one per 15-30 s.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import urllib3
import yaml
from kubernetes import client as kclient
from kubernetes import config as kconfig
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

log = logging.getLogger(__name__)

Json = dict[str, Any]
Query = list[tuple[str, str]]
CONNECT_TIMEOUT = 5.0
LIST_TIMEOUT = 30.0


class KubeError(Exception):
    """A Kubernetes API call failed."""

    def __init__(self, message: str, status: int = 0, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after  # seconds the server asked us to wait (Retry-After), if any


class KubeGone(KubeError):
    """The resourceVersion we watch from has expired (HTTP or watch status 410); list again."""


class KubeUnavailable(KubeError):
    """No usable configuration, the API server could not be reached, or it answered 429/5xx."""


class KubeApiError(KubeError):
    """The API server answered another error status."""


class Relist(Exception):
    """Raised by a ListWatch callback to list again now (e.g. after switching to another resource)."""


def error_for_status(status: int, message: str, retry_after: float | None = None) -> KubeError:
    """The KubeError subclass for an HTTP (or watch ERROR event) status."""
    if status == 410:
        return KubeGone(message, status)
    if status in (0, 429) or status >= 500:
        return KubeUnavailable(message, status, retry_after)
    return KubeApiError(message, status, retry_after)


def _retry_after(headers: Any) -> float | None:
    """Seconds from a Retry-After header (the API server sends whole seconds; dates are not used)."""
    try:
        value = float(headers.get("Retry-After")) if headers is not None else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and value >= 0 else None


def api_client(kubeconfig: str, environ: Mapping[str, str] | None = None) -> kclient.ApiClient | None:
    """A client from `kubeconfig`, else in-cluster config when KUBERNETES_SERVICE_HOST is set, else None
    (not in a cluster and not told where one is); KubeUnavailable when the configuration is unusable."""
    env = os.environ if environ is None else environ
    configuration = kclient.Configuration()
    try:
        if kubeconfig:
            kconfig.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        elif env.get("KUBERNETES_SERVICE_HOST"):
            kconfig.load_incluster_config(client_configuration=configuration)
        else:
            return None
    except (ConfigException, OSError, ValueError, TypeError, yaml.YAMLError) as exc:
        raise KubeUnavailable(f"cannot configure the Kubernetes client: {exc}") from exc
    # The callers retry with their own backoff; urllib3's immediate retries would multiply the requests.
    configuration.retries = False
    return kclient.ApiClient(configuration)


def http_get(api: kclient.ApiClient, path: str, query: Query, *, timeout: tuple[float, float],
             accept: str = "application/json") -> Any:
    """GET `path` through the client's auth and TLS settings; the raw (streaming) urllib3 response."""
    try:
        request = api.param_serialize(method="GET", resource_path=path, query_params=query,
                                      header_params={"Accept": accept},
                                      auth_settings=["BearerToken"])
        resp = api.call_api(*request, _request_timeout=timeout)
        if not 200 <= resp.status <= 299:
            resp.read()
            raise ApiException.from_response(http_resp=resp, body=None, data=None)
    except ApiException as exc:
        message = f"GET {path}: HTTP {exc.status} {exc.reason or ''}".strip()
        raise error_for_status(exc.status or 0, message, _retry_after(exc.headers)) from exc
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        raise KubeUnavailable(f"GET {path}: {type(exc).__name__}: {exc}"[:300]) from exc
    return resp.response


def get_json(api: kclient.ApiClient, path: str, query: Query, *,
             timeout: tuple[float, float] = (CONNECT_TIMEOUT, LIST_TIMEOUT),
             accept: str = "application/json") -> Json:
    """GET `path` and decode its JSON object."""
    resp = http_get(api, path, query, timeout=timeout, accept=accept)
    try:
        doc = json.loads(resp.data)
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        raise KubeUnavailable(f"GET {path}: {type(exc).__name__}: {exc}"[:300]) from exc
    finally:
        resp.release_conn()
    if not isinstance(doc, dict):
        raise KubeApiError(f"GET {path}: the answer is not a JSON object")
    return doc


def post_json(api: kclient.ApiClient, path: str, body: Json, *,
              timeout: tuple[float, float] = (CONNECT_TIMEOUT, LIST_TIMEOUT)) -> Json:
    """POST a JSON object (TokenReview, SubjectAccessReview) and decode the JSON object answered."""
    try:
        request = api.param_serialize(method="POST", resource_path=path, body=body,
                                      header_params={"Accept": "application/json",
                                                     "Content-Type": "application/json"},
                                      auth_settings=["BearerToken"])
        resp = api.call_api(*request, _request_timeout=timeout)
        data = resp.read()
        if not 200 <= resp.status <= 299:
            raise ApiException.from_response(http_resp=resp, body=None, data=None)
        doc = json.loads(data)
    except ApiException as exc:
        message = f"POST {path}: HTTP {exc.status} {exc.reason or ''}".strip()
        raise error_for_status(exc.status or 0, message, _retry_after(exc.headers)) from exc
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        raise KubeUnavailable(f"POST {path}: {type(exc).__name__}: {exc}"[:300]) from exc
    if not isinstance(doc, dict):
        raise KubeApiError(f"POST {path}: the answer is not a JSON object")
    return doc


def watch_events(resp: Any, what: str) -> Iterator[Json]:
    """Events of a watch response, one JSON object per line; an ERROR event raises its KubeError."""
    buffer = b""
    try:
        for chunk in resp.stream(amt=64 * 1024, decode_content=True):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                event = json.loads(line)
                if not isinstance(event, dict):
                    raise ValueError(f"watch event is not an object: {line[:100]!r}")
                if event.get("type") == "ERROR":
                    obj = event.get("object") if isinstance(event.get("object"), dict) else {}
                    code = obj.get("code") if isinstance(obj.get("code"), int) else 500
                    message = f"{what}: watch error {code}: {obj.get('message', '')}"
                    raise error_for_status(code, message[:300])
                yield event
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        raise KubeUnavailable(f"{what}: watch stream: {type(exc).__name__}: {exc}"[:300]) from exc


def backoff_delay(attempt: int, *, initial: float, cap: float, rng: Callable[[], float]) -> float:
    """Capped exponential backoff with jitter: in [d/2, d] where d = min(cap, initial * 2**attempt)."""
    return min(cap, initial * 2 ** min(attempt, 60)) * (0.5 + rng() / 2)


class ListWatch:
    """List then watch one collection forever (call `run()` in a thread); see the module docstring.

    `request()` gives the collection's path and selector query (asked before every call, so a callback
    may switch resources and raise `Relist`); `on_list(items)` replaces the caller's state with a fresh
    list; `on_event(type, object)` applies one ADDED/MODIFIED/DELETED event; `on_error(exc)` hears every
    failure (count it, log it); `before_watch()` runs before each watch request. `accept` /
    `watch_accept` are the Accept headers of lists and watches (metadata-only watches ask for
    PartialObjectMetadata there).
    """

    def __init__(
        self,
        api: kclient.ApiClient,
        *,
        what: str,
        request: Callable[[], tuple[str, Query]],
        on_list: Callable[[list[Json]], None],
        on_event: Callable[[str, Json], None],
        on_error: Callable[[KubeError], None],
        before_watch: Callable[[], None] = lambda: None,
        watch_timeout: float = 300.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        min_watch: float = 1.0,
        rng: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
        accept: str = "application/json",
        watch_accept: str = "application/json",
    ) -> None:
        self._api = api
        self._accept, self._watch_accept = accept, watch_accept
        self.what = what
        self._request = request
        self._on_list = on_list
        self._on_event = on_event
        self._on_error = on_error
        self._before_watch = before_watch
        self._watch_timeout = watch_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._min_watch = min_watch
        self._rng = rng
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._resp: Any = None
        self._opened: float | None = None  # when this cycle's watch was answered
        self._asked = 0  # timeoutSeconds of this cycle's watch
        self.resource_version: str | None = None
        self.connected = False  # the last list or watch request was answered
        self.relists = 0  # lists done, the first one included

    def set_backoff(self, *, initial: float, cap: float) -> None:
        """Change the backoff (tests make faults play out quickly); takes effect at the next delay."""
        self._backoff_initial, self._backoff_max = initial, cap

    def list_now(self) -> None:
        """List the collection, hand the items to `on_list` and remember the resourceVersion."""
        path, query = self._request()
        doc = get_json(self._api, path, query, accept=self._accept)
        items = doc.get("items")
        if not isinstance(items, list):
            raise KubeApiError(f"list {self.what}: the answer has no items")
        self._on_list(items)
        self.resource_version = str((doc.get("metadata") or {}).get("resourceVersion") or "") or None
        self.connected = True
        self.relists += 1

    def watch_now(self) -> int:
        """Follow one watch request from the current resourceVersion until it ends; object events seen."""
        path, query = self._request()
        timeout = max(1, int(self._watch_timeout * (0.75 + self._rng() / 4)))  # spread reconnects out
        self._asked = timeout
        query = [*query, ("watch", "true"), ("allowWatchBookmarks", "true"), ("timeoutSeconds", str(timeout))]
        if self.resource_version:
            query.append(("resourceVersion", self.resource_version))
        resp = http_get(self._api, path, query, timeout=(CONNECT_TIMEOUT, timeout + 30),
                        accept=self._watch_accept)
        self._opened = self._monotonic()
        self.connected = True  # the API answered; a stream with no events is still in sync
        self._resp = resp
        seen = 0
        try:
            for event in watch_events(resp, self.what):
                if self._stop.is_set():
                    break
                kind, obj = str(event.get("type", "")), event.get("object")
                obj = obj if isinstance(obj, dict) else {}
                if kind != "BOOKMARK":
                    self._on_event(kind, obj)
                    seen += 1
                rv = (obj.get("metadata") or {}).get("resourceVersion")
                if rv:
                    self.resource_version = str(rv)
        except KubeUnavailable:
            if not self._stop.is_set():
                raise  # a stream cut by stop() is not a failure
        finally:
            self._resp = None
            resp.release_conn()
        return seen

    def run(self) -> None:
        """List, then watch until stop(); relist on 410; back off after every unproductive cycle."""
        attempt = 0
        while not self._stop.is_set():
            self._opened = None
            asked: float = 0.0  # a pause the server asked for (Retry-After)
            try:
                if self.resource_version is None:
                    self.list_now()
                self._before_watch()
                if self.watch_now() or self._watched() >= self._healthy():
                    attempt = 0
                    continue
                log.debug("%s: the watch ended after %.2fs with no events", self.what, self._watched())
            except (KubeGone, Relist) as exc:
                self.resource_version = None
                log.info("%s: %s; listing again", self.what, str(exc) or type(exc).__name__)
                attempt = 0 if self._watched() >= self._healthy() else attempt
                if attempt == 0 and not self._stop.is_set():  # the first relist in a row goes at once
                    attempt = 1
                    continue
            except KubeError as exc:
                if self._stop.is_set():
                    return
                self.connected = False
                # A long, healthy watch that broke starts the backoff over.
                attempt = 0 if self._watched() >= self._healthy() else attempt
                asked = exc.retry_after or 0.0
                self._on_error(exc)
            except Exception as exc:  # a bug in a callback must not end the watch for good: log, count, retry
                log.exception("%s: list/watch callback failed", self.what)
                self.resource_version = None  # the caller's state may be half-applied: start from a list
                self._on_error(KubeError(f"{self.what}: callback failed: {exc!r}"[:300]))
            delay = min(self._backoff_max, max(asked, self._delay(attempt)))
            attempt += 1
            if self._stop.wait(delay):
                return

    def _delay(self, attempt: int) -> float:
        return backoff_delay(attempt, initial=self._backoff_initial, cap=self._backoff_max, rng=self._rng)

    def _healthy(self) -> float:
        """How long a watch must have stayed open to count as productive: `min_watch`, or nearly the
        timeout it asked for (a watch that runs to its own timeout is healthy, however short)."""
        return min(self._min_watch, 0.9 * self._asked) if self._asked else self._min_watch

    def _watched(self) -> float:
        """Seconds this cycle's watch has been open (0 when no watch was answered)."""
        return 0.0 if self._opened is None else self._monotonic() - self._opened

    def stop(self) -> None:
        """End run() soon, interrupting a watch blocked on its socket (from another thread)."""
        self._stop.set()
        resp = self._resp
        if resp is None:
            return
        # urllib3 >= 2.3 can shut the socket down under a blocked read; close() is the older fallback.
        closer = getattr(resp, "shutdown", None) or resp.close
        with contextlib.suppress(OSError, AttributeError, urllib3.exceptions.HTTPError):
            closer()
