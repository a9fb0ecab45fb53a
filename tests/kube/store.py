"""The fake's etcd: objects, a global resourceVersion counter, and a bounded event history.

Every write bumps one counter (as etcd's revision does), stamps the object, appends an event and
wakes watchers through one Condition, so watch streams see events promptly and in order.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass

from tests.kube.resources import Resource, by_kind

FIRST_RESOURCE_VERSION = 1000


class StatusError(Exception):
    """A failure the API server reports as a `Status` object with an HTTP code."""

    def __init__(self, code: int, reason: str, message: str, *, details: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> dict:
        """The `Status` JSON a real API server sends for this failure."""
        return failure_status(self.code, self.reason, self.message, details=self.details)


def failure_status(code: int, reason: str, message: str, *, details: dict | None = None) -> dict:
    """A meta/v1 Status of a failed request."""
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        status["details"] = details
    return status


def not_found(resource: Resource, name: str) -> StatusError:
    """404 exactly as the server words it: `pods "x" not found`."""
    kind = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
    return StatusError(404, "NotFound", f'{kind} "{name}" not found',
                       details={"name": name, "group": resource.group, "kind": resource.plural})


def expired(message: str) -> StatusError:
    """410 Gone, reason Expired: the requested resourceVersion was compacted away."""
    return StatusError(410, "Expired", message)


@dataclass(frozen=True)
class Event:
    """One change in the history: the object after the change and the object before it."""

    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: Resource
    obj: dict
    prev: dict | None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _spec_part(obj: dict) -> dict:
    """Everything except metadata and status: what a generation counts changes of."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


class Store:
    """Thread-safe object store; `cond` is held while reading events and notified on every change."""

    def __init__(self, *, history: int = 1000) -> None:
        self.cond = threading.Condition()
        self._objects: dict[tuple[Resource, str, str], dict] = {}
        self._rv = FIRST_RESOURCE_VERSION
        self._history = history
        # One bounded history per resource, like the API server's per-resource watch cache: a
        # burst of pod events does not expire an endpoints watcher's resourceVersion.
        self._events: dict[Resource, deque[Event]] = {}
        self._floors: dict[Resource, int] = {}
        # Versions older than the last compact() are gone for every resource (etcd compaction).
        self._compacted = FIRST_RESOURCE_VERSION

    @property
    def resource_version(self) -> int:
        with self.cond:
            return self._rv

    @property
    def compacted(self) -> int:
        """The version of the last compaction: continue tokens and watches from before it get 410."""
        with self.cond:
            return self._compacted

    def floor(self, resource: Resource) -> int:
        """The oldest version a watch on `resource` may resume from."""
        with self.cond:
            return max(self._compacted, self._floors.get(resource, FIRST_RESOURCE_VERSION))

    @staticmethod
    def _key(resource: Resource, namespace: str | None, name: str) -> tuple[Resource, str, str]:
        return (resource, namespace or "" if resource.namespaced else "", name)

    def _record(self, event_type: str, resource: Resource, obj: dict, prev: dict | None) -> None:
        """Append an event (caller holds cond and has bumped _rv) and wake every watcher."""
        history = self._events.setdefault(resource, deque(maxlen=self._history))
        if len(history) == history.maxlen:
            self._floors[resource] = history[0].rv
        history.append(Event(self._rv, event_type, resource, copy.deepcopy(obj), prev))
        self.cond.notify_all()

    def create(self, obj: dict) -> dict:
        """Store a new object, filling uid, resourceVersion, creationTimestamp, generation."""
        resource = by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            raise StatusError(422, "Invalid", f"{resource.kind}.{resource.group or 'core'} is invalid: "
                              "metadata.name: Required value: name or generateName is required")
        if resource.namespaced:
            meta["namespace"] = meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)
        with self.cond:
            key = self._key(resource, meta.get("namespace"), name)
            if key in self._objects:
                kind = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
                raise StatusError(409, "AlreadyExists", f'{kind} "{name}" already exists',
                                  details={"name": name, "group": resource.group, "kind": resource.plural})
            self._rv += 1
            meta["uid"] = meta.get("uid") or str(uuid.uuid4())
            meta["resourceVersion"] = str(self._rv)
            meta["creationTimestamp"] = meta.get("creationTimestamp") or _now()
            meta["generation"] = 1
            self._objects[key] = obj
            self._record("ADDED", resource, obj, None)
            return copy.deepcopy(obj)

    def update(self, obj: dict) -> dict:
        """Replace an existing object; a stale metadata.resourceVersion is a 409 Conflict."""
        resource = by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        name = meta.get("name", "")
        with self.cond:
            key = self._key(resource, meta.get("namespace") or "default", name)
            old = self._objects.get(key)
            if old is None:
                raise not_found(resource, name)
            old_meta = old["metadata"]
            wanted = meta.get("resourceVersion")
            if wanted and wanted != old_meta["resourceVersion"]:
                raise StatusError(
                    409, "Conflict",
                    f'Operation cannot be fulfilled on {resource.plural} "{name}": the object has been '
                    "modified; please apply your changes to the latest version and try again")
            self._rv += 1
            if resource.namespaced:
                meta["namespace"] = old_meta["namespace"]
            meta["uid"] = old_meta["uid"]
            meta["creationTimestamp"] = old_meta["creationTimestamp"]
            changed = _spec_part(obj) != _spec_part(old)
            meta["generation"] = old_meta.get("generation", 1) + (1 if changed else 0)
            meta["resourceVersion"] = str(self._rv)
            self._objects[key] = obj
            self._record("MODIFIED", resource, obj, old)
            return copy.deepcopy(obj)

    def delete(self, resource: Resource, name: str, namespace: str | None = None) -> dict:
        """Remove an object; the DELETED event carries its last state with the deletion's version."""
        with self.cond:
            old = self._objects.pop(self._key(resource, namespace, name), None)
            if old is None:
                raise not_found(resource, name)
            self._rv += 1
            gone = copy.deepcopy(old)
            gone["metadata"]["resourceVersion"] = str(self._rv)
            self._record("DELETED", resource, gone, old)
            return copy.deepcopy(gone)

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> dict:
        """One object, or StatusError 404."""
        with self.cond:
            obj = self._objects.get(self._key(resource, namespace, name))
            if obj is None:
                raise not_found(resource, name)
            return copy.deepcopy(obj)

    def list(self, resource: Resource, namespace: str | None = None) -> tuple[list[dict], int]:
        """Current objects of a resource (all namespaces when namespace is None), sorted, and the version."""
        with self.cond:
            items = [
                copy.deepcopy(obj) for (res, ns, _), obj in self._objects.items()
                if res == resource and (namespace is None or ns == namespace)
            ]
            rv = self._rv
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return items, rv

    def events_after(self, resource: Resource, rv: int) -> list[Event]:
        """Events of one resource newer than rv; caller holds cond. 410 if rv was compacted away."""
        floor = self.floor(resource)
        if rv < floor:
            raise expired(f"too old resource version: {rv} ({floor})")
        return [e for e in self._events.get(resource, ()) if e.rv > rv]

    def compact(self) -> int:
        """Forget the whole history: resuming from any version older than now gets 410."""
        with self.cond:
            self._events.clear()
            self._compacted = self._rv
            self.cond.notify_all()
            return self._rv
