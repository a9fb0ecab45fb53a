"""Builders of real Kubernetes JSON objects for tests: pass them to FakeKube.create()."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

Address = tuple[str, str]  # (ip, node_name)


def _meta(name: str, namespace: str | None = None, *, uid: str | None = None,
          labels: dict[str, str] | None = None) -> dict:
    meta: dict = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if uid is not None:
        meta["uid"] = uid
    if labels:
        meta["labels"] = dict(labels)
    return meta


def owner_ref(obj: dict, *, controller: bool = True) -> dict:
    """An ownerReferences entry pointing at `obj`, which needs metadata.uid (builders set one)."""
    uid = obj["metadata"].get("uid")
    if not uid:
        raise ValueError(f"{obj['kind']} {obj['metadata']['name']} has no metadata.uid to reference")
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": uid, "controller": controller, "blockOwnerDeletion": True}


def namespace(name: str, *, labels: dict[str, str] | None = None) -> dict:
    """A v1 Namespace, phase Active."""
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": _meta(name, labels={"kubernetes.io/metadata.name": name, **(labels or {})}),
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def node(name: str, cpu: str = "4", memory: str = "16Gi", *, labels: dict[str, str] | None = None,
         internal_ip: str = "10.0.0.1", ready: bool = True) -> dict:
    """A v1 Node with capacity/allocatable and a Ready condition."""
    resources = {"cpu": cpu, "memory": memory, "pods": "110", "ephemeral-storage": "100Gi"}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": _meta(name, labels={"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                        **(labels or {})}),
        "spec": {"podCIDR": "10.244.0.0/24"},
        "status": {
            "capacity": dict(resources), "allocatable": dict(resources),
            "conditions": [{"type": "Ready", "status": "True" if ready else "False", "reason": "KubeletReady",
                            "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "addresses": [{"type": "InternalIP", "address": internal_ip},
                          {"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": "v1.32.0", "kubeProxyVersion": "v1.32.0", "osImage": "Debian",
                         "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.7.0",
                         "operatingSystem": "linux", "architecture": "amd64", "machineID": "",
                         "systemUUID": "", "bootID": ""},
        },
    }


def container(name: str = "main", *, image: str = "registry.k8s.io/pause:3.10",
              requests: dict[str, str] | None = None, limits: dict[str, str] | None = None) -> dict:
    """One container spec; requests/limits like {"cpu": "100m", "memory": "64Mi"}."""
    spec: dict = {"name": name, "image": image, "resources": {}}
    if requests:
        spec["resources"]["requests"] = dict(requests)
    if limits:
        spec["resources"]["limits"] = dict(limits)
    return spec


def _container_spec(spec: dict, index: int) -> dict:
    """A full container spec from either a container() dict or the short requests/limits form."""
    if "requests" not in spec and "limits" not in spec:
        return {"name": f"c{index}", "image": "registry.k8s.io/pause:3.10", **spec}
    return container(spec.get("name", f"c{index}"), image=spec.get("image", "registry.k8s.io/pause:3.10"),
                     requests=spec.get("requests"), limits=spec.get("limits"))


def pod(name: str, namespace: str, *, node: str | None, uid: str | None = None, owner: dict | None = None,
        labels: dict[str, str] | None = None, containers: Sequence[dict] | None = None,
        host_network: bool = False, phase: str = "Running", pod_ip: str | None = None) -> dict:
    """A v1 Pod bound to `node` (None = unscheduled); `owner` is an object or an owner_ref() dict.

    `containers` are container() specs, or short dicts like {"name": "app", "requests": {"cpu": "1"}}.
    """
    containers = [_container_spec(c, i) for i, c in enumerate(containers)] if containers is not None \
        else [container()]
    meta = _meta(name, namespace, uid=uid or str(uuid.uuid4()), labels=labels)
    if owner is not None:
        meta["ownerReferences"] = [owner if "metadata" not in owner else owner_ref(owner)]
    spec: dict = {"containers": containers, "restartPolicy": "Always", "schedulerName": "default-scheduler",
                  "serviceAccountName": "default", "hostNetwork": host_network}
    if node is not None:
        spec["nodeName"] = node
    running = phase == "Running"
    status: dict = {
        "phase": phase,
        "qosClass": "BestEffort",
        "containerStatuses": [
            {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": running,
             "restartCount": 0, "started": running, "containerID": f"containerd://{uuid.uuid4().hex}",
             "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}} if running else {"waiting": {}}}
            for c in containers
        ],
    }
    if node is not None and pod_ip is not None:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def deployment(name: str, namespace: str, *, uid: str | None = None, replicas: int = 1,
               labels: dict[str, str] | None = None) -> dict:
    """An apps/v1 Deployment selecting `app=<name>`."""
    selector = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _meta(name, namespace, uid=uid or str(uuid.uuid4()), labels=labels or selector),
        "spec": {"replicas": replicas, "selector": {"matchLabels": selector},
                 "template": {"metadata": {"labels": selector}, "spec": {"containers": [container()]}}},
        "status": {"replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas,
                   "availableReplicas": replicas},
    }


def replicaset(name: str, namespace: str, *, deployment: dict | None = None, uid: str | None = None,
               replicas: int = 1) -> dict:
    """An apps/v1 ReplicaSet, owned by `deployment` when given (as the deployment controller does)."""
    selector = {"app": deployment["metadata"]["name"] if deployment else name}
    meta = _meta(name, namespace, uid=uid or str(uuid.uuid4()), labels=selector)
    if deployment is not None:
        meta["ownerReferences"] = [owner_ref(deployment)]
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta,
        "spec": {"replicas": replicas, "selector": {"matchLabels": selector},
                 "template": {"metadata": {"labels": selector}, "spec": {"containers": [container()]}}},
        "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas},
    }


def service(name: str, namespace: str, *, selector: dict[str, str] | None = None, port: int = 9100,
            port_name: str = "metrics", headless: bool = True, node_port: int | None = None) -> dict:
    """A v1 Service; headless (clusterIP None) by default like the exporter's Service."""
    port_spec: dict = {"name": port_name, "port": port, "targetPort": port, "protocol": "TCP"}
    spec: dict = {"selector": dict(selector or {"app.kubernetes.io/name": name}), "ports": [port_spec],
                  "type": "ClusterIP", "clusterIP": "None" if headless else "10.96.0.10"}
    if node_port is not None:
        spec["type"] = "NodePort"
        port_spec["nodePort"] = node_port
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, namespace), "spec": spec}


def _endpoint_address(ip: str, node_name: str) -> dict:
    return {"ip": ip, "nodeName": node_name,
            "targetRef": {"kind": "Pod", "namespace": "", "name": f"pod-{ip.replace('.', '-')}"}}


def endpoints(name: str, namespace: str, *, addresses: Iterable[Address] = (),
              not_ready: Iterable[Address] = (), port: int = 9100, port_name: str = "metrics",
              truncated: bool = False) -> dict:
    """v1 Endpoints with one subset; `truncated` adds the over-capacity annotation (over 1000 addresses)."""
    ready = [_endpoint_address(ip, n) for ip, n in addresses]
    waiting = [_endpoint_address(ip, n) for ip, n in not_ready]
    for addr in ready + waiting:
        addr["targetRef"]["namespace"] = namespace
    meta = _meta(name, namespace)
    if truncated:
        meta["annotations"] = {"endpoints.kubernetes.io/over-capacity": "truncated"}
    subsets = []
    if ready or waiting:
        subset: dict = {"ports": [{"name": port_name, "port": port, "protocol": "TCP"}]}
        if ready:
            subset["addresses"] = ready
        if waiting:
            subset["notReadyAddresses"] = waiting
        subsets.append(subset)
    obj: dict = {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta}
    if subsets:
        obj["subsets"] = subsets
    return obj


def endpointslice(name: str, namespace: str, *, service: str,
                  endpoints: Iterable[tuple[str, str, bool]] = (), port: int = 9100,
                  port_name: str = "metrics") -> dict:
    """A discovery.k8s.io/v1 EndpointSlice labelled for `service`; endpoints are (ip, node, ready)."""
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": _meta(name, namespace, labels={"kubernetes.io/service-name": service,
                                                   "endpointslice.kubernetes.io/managed-by":
                                                   "endpointslice-controller.k8s.io"}),
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [ip], "nodeName": node_name,
             "conditions": {"ready": ready, "serving": ready, "terminating": False},
             "targetRef": {"kind": "Pod", "namespace": namespace, "name": f"pod-{ip.replace('.', '-')}"}}
            for ip, node_name, ready in endpoints
        ],
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
    }
