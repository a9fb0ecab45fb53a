"""The resource types the fake API server knows, and the discovery documents built from them."""

from __future__ import annotations

from dataclasses import dataclass

SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-fake",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.4",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
_CLUSTER_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Resource:
    """One REST resource: where it lives, what it is called, and how it is filtered."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    # Field labels the real server accepts in fieldSelector for this resource.
    field_labels: tuple[str, ...] = ("metadata.name", "metadata.namespace")

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def api_resource(self) -> dict:
        """The entry of this resource in an APIResourceList."""
        entry: dict = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": _VERBS if self.namespaced else _CLUSTER_VERBS,
            "storageVersionHash": f"fake-{self.plural}",
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        return entry


RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",),
             field_labels=("metadata.name", "status.phase")),
    Resource("", "v1", "nodes", "Node", namespaced=False, short_names=("no",),
             field_labels=("metadata.name", "spec.unschedulable")),
    Resource("", "v1", "pods", "Pod", namespaced=True, short_names=("po",),
             field_labels=("metadata.name", "metadata.namespace", "spec.nodeName", "status.phase",
                           "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                           "spec.hostNetwork", "status.podIP", "status.nominatedNodeName")),
    Resource("", "v1", "endpoints", "Endpoints", namespaced=True, short_names=("ep",)),
    Resource("", "v1", "services", "Service", namespaced=True, short_names=("svc",)),
    Resource("apps", "v1", "replicasets", "ReplicaSet", namespaced=True, short_names=("rs",),
             field_labels=("metadata.name", "metadata.namespace", "status.replicas")),
    Resource("apps", "v1", "deployments", "Deployment", namespaced=True, short_names=("deploy",)),
    Resource("", "v1", "configmaps", "ConfigMap", namespaced=True, short_names=("cm",)),
    Resource("apiregistration.k8s.io", "v1", "apiservices", "APIService", namespaced=False,
             field_labels=("metadata.name",)),
    Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", namespaced=True,
             field_labels=("metadata.name", "metadata.namespace", "addressType")),
)

GROUPS: dict[str, str] = {"apps": "v1", "discovery.k8s.io": "v1", "apiregistration.k8s.io": "v1"}


def by_path(group: str, version: str, plural: str) -> Resource | None:
    """The resource served at /api(s)/<group>/<version>/<plural>, if any."""
    for res in RESOURCES:
        if (res.group, res.version, res.plural) == (group, version, plural):
            return res
    return None


def by_kind(api_version: str, kind: str) -> Resource:
    """The resource for an object's apiVersion and kind; KeyError names what is unknown."""
    for res in RESOURCES:
        if (res.api_version, res.kind) == (api_version, kind):
            return res
    raise KeyError(f"the fake API server does not serve {api_version} {kind}")


def api_versions(server_address: str) -> dict:
    """GET /api: the legacy core group's APIVersions."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def api_group_list() -> dict:
    """GET /apis: every named group with its preferred version."""
    groups = []
    for name, version in GROUPS.items():
        gv = {"groupVersion": f"{name}/{version}", "version": version}
        groups.append({"name": name, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(name: str) -> dict | None:
    """GET /apis/<group>: one APIGroup, or None when the group is not served."""
    version = GROUPS.get(name)
    if version is None:
        return None
    gv = {"groupVersion": f"{name}/{version}", "version": version}
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": [gv], "preferredVersion": gv}


def api_resource_list(group: str, version: str) -> dict | None:
    """GET /api/v1 or /apis/<group>/<version>: the APIResourceList, or None when not served."""
    members = [r for r in RESOURCES if (r.group, r.version) == (group, version)]
    if not members:
        return None
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [r.api_resource() for r in members],
    }
