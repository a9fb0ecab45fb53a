"""Where the exporters are: static `--targets`, or a watch on the exporters' Service endpoints.

`KubeDiscovery` lists then watches the Service's Endpoints object (or its EndpointSlices) in a
background thread and keeps `targets()` = {"ip:port": nodeName} for every ready address, and
`not_ready()` the same for addresses Kubernetes lists as not ready (so the scrape loop can show their
nodes as down instead of letting them drop out of the listings). The list+watch loop is
k8smon_common.kube.ListWatch, shared with the exporter: a watch resumes from the last resourceVersion,
a 410 relists, any failure keeps the last known targets and retries with capped, jittered exponential
backoff, and a watch that ends at once with no events backs off too. An Endpoints object marked
`endpoints.kubernetes.io/over-capacity: truncated` (over 1000 addresses) makes it switch to
EndpointSlices for good, with a warning.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from aggregator.kube import ServiceEndpointsApi
from aggregator.stats import AggregatorStats
from k8smon_common.kube import KubeError, ListWatch, Query, Relist

log = logging.getLogger(__name__)

TRUNCATED_ANNOTATION = "endpoints.kubernetes.io/over-capacity"
Targets = dict[str, str | None]  # "ip:port" -> node name (None when unknown)


class Discovery(Protocol):
    """What the scrape loop asks discovery."""

    def targets(self) -> Mapping[str, str | None]: ...

    def not_ready(self) -> Mapping[str, str | None]:
        """Exporter addresses the Service lists as not ready (starting, failing /healthz, node NotReady)."""
        ...

    def answered(self) -> bool: ...

    @property
    def mode(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


def _address(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _port(ports: Iterable[Any], port_name: str) -> int | None:
    """The port named `port_name`; an unnamed single port also counts (a Service with one port)."""
    ports = [p for p in ports if isinstance(p, dict)]
    for p in ports:
        if p.get("name", "") == port_name and isinstance(p.get("port"), int):
            return int(p["port"])
    if len(ports) == 1 and not ports[0].get("name") and isinstance(ports[0].get("port"), int):
        return int(ports[0]["port"])
    return None


def endpoints_targets(obj: Mapping[str, Any], port_name: str, *, ready: bool = True) -> Targets:
    """Ready addresses of a v1 Endpoints object, or with `ready=False` its notReadyAddresses."""
    targets: Targets = {}
    for subset in obj.get("subsets") or ():
        port = _port(subset.get("ports") or (), port_name)
        if port is None:
            continue
        for address in subset.get("addresses" if ready else "notReadyAddresses") or ():
            ip = address.get("ip")
            if ip:
                targets[_address(ip, port)] = address.get("nodeName")
    return targets


def slice_targets(obj: Mapping[str, Any], port_name: str, *, ready: bool = True) -> Targets:
    """Ready endpoints of a discovery.k8s.io/v1 EndpointSlice (ready: null counts as ready), or with
    `ready=False` the not-ready ones. Terminating endpoints are neither: v1 Endpoints drops them too,
    and during a rolling update the node's new exporter pod takes over."""
    port = _port(obj.get("ports") or (), port_name)
    if port is None:
        return {}
    targets: Targets = {}
    for endpoint in obj.get("endpoints") or ():
        conditions = endpoint.get("conditions") or {}
        if conditions.get("terminating") is True:
            continue
        if (conditions.get("ready") is not False) != ready:
            continue
        for ip in endpoint.get("addresses") or ():
            targets[_address(ip, port)] = endpoint.get("nodeName")
    return targets


def is_truncated(obj: Mapping[str, Any]) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return annotations.get(TRUNCATED_ANNOTATION) == "truncated"


class StaticDiscovery:
    """Fixed targets from --targets; node names come from the expositions."""

    mode = "static"

    def __init__(self, targets: Iterable[str]) -> None:
        self._targets: Targets = dict.fromkeys(targets)

    def targets(self) -> Mapping[str, str | None]:
        return dict(self._targets)

    def not_ready(self) -> Mapping[str, str | None]:
        return {}

    def answered(self) -> bool:
        return True

    def start(self) -> None:
        """Nothing to start."""

    def stop(self) -> None:
        """Nothing to stop."""


class KubeDiscovery:
    """Watches the exporters' Service in a thread; `targets()` is always the latest complete view."""

    def __init__(
        self,
        api: ServiceEndpointsApi,
        *,
        mode: str,
        port_name: str,
        stats: AggregatorStats,
        watch_timeout: int = 300,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        if mode not in {"endpoints", "endpointslices"}:
            raise ValueError(f"unknown discovery mode {mode!r}")
        self._api = api
        self._mode = mode
        self._port_name = port_name
        self._stats = stats
        self._lock = threading.Lock()
        self._targets: Targets = {}
        self._not_ready: Targets = {}
        self._slices: dict[str, tuple[Targets, Targets]] = {}  # slice name -> (ready, not ready)
        self._answered = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop = ListWatch(
            api.client, what=f"service {api.namespace}/{api.service}", request=self._request,
            on_list=self._list, on_event=self._apply, on_error=self._failed, watch_timeout=watch_timeout,
            backoff_initial=backoff_initial, backoff_max=backoff_max)

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def relists(self) -> int:
        """Lists done after the first (410s, the switch to slices)."""
        return max(0, self._loop.relists - 1)

    def targets(self) -> Mapping[str, str | None]:
        with self._lock:
            return self._targets

    def not_ready(self) -> Mapping[str, str | None]:
        with self._lock:
            return self._not_ready

    def answered(self) -> bool:
        return self._answered.is_set()

    def wait_answered(self, timeout: float) -> bool:
        return self._answered.wait(timeout)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop.run, name="discovery", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """End the loop, interrupting a watch blocked on its socket."""
        self._loop.stop()
        if self._thread is not None:
            self._thread.join(timeout)

    # --- list+watch callbacks ----------------------------------------------------------------------

    def _request(self) -> tuple[str, Query]:
        return self._api.request(self._mode)

    def _failed(self, exc: KubeError) -> None:
        self._stats.error("discovery")
        log.warning("discovery: %s; keeping %d known targets, retrying", exc, len(self._targets))

    def _switch_to_slices(self) -> None:
        log.warning("discovery: Endpoints %s/%s is truncated (over 1000 addresses); switching to "
                    "EndpointSlices", self._api.namespace, self._api.service)
        self._mode = "endpointslices"
        raise Relist("switching to EndpointSlices")

    def _list(self, items: list[dict[str, Any]]) -> None:
        if self._mode == "endpoints":
            obj = items[0] if items else {}
            if is_truncated(obj):
                self._switch_to_slices()
            self._publish_endpoints(obj)
        else:
            self._slices = {(item.get("metadata") or {}).get("name", ""): self._slice(item) for item in items}
            self._publish_slices()
        self._answered.set()

    def _apply(self, kind: str, obj: Mapping[str, Any]) -> None:
        name = (obj.get("metadata") or {}).get("name", "")
        if self._mode == "endpoints":
            if kind == "DELETED":
                self._publish({}, {})
            elif is_truncated(obj):
                self._switch_to_slices()
            else:
                self._publish_endpoints(obj)
            return
        if kind == "DELETED":
            self._slices.pop(name, None)
        else:
            self._slices[name] = self._slice(obj)
        self._publish_slices()

    def _slice(self, obj: Mapping[str, Any]) -> tuple[Targets, Targets]:
        return slice_targets(obj, self._port_name), slice_targets(obj, self._port_name, ready=False)

    def _publish_endpoints(self, obj: Mapping[str, Any]) -> None:
        self._publish(endpoints_targets(obj, self._port_name),
                      endpoints_targets(obj, self._port_name, ready=False))

    def _publish_slices(self) -> None:
        merged: Targets = {}
        waiting: Targets = {}
        for ready, not_ready in self._slices.values():
            for part, into in ((ready, merged), (not_ready, waiting)):
                for address, node in part.items():
                    if into.get(address) is None:
                        into[address] = node
        # An address ready in one slice and not in another (a slice not yet updated) counts as ready.
        self._publish(merged, {a: n for a, n in waiting.items() if a not in merged})

    def _publish(self, targets: Targets, not_ready: Targets) -> None:
        with self._lock:
            changed = targets != self._targets or not_ready != self._not_ready
            self._targets, self._not_ready = targets, not_ready
        if changed:
            log.info("discovery (%s): %d targets, %d not ready", self._mode, len(targets), len(not_ready))
