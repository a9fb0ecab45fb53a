"""The pods of the recorded node trees (tests/fixtures/nodes/<node>) as API objects on a fake API server,
for end-to-end tests whose exporters read those trees."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from tests.kube import FakeKube, objects
from tests.support.cgroups import NODE_TREES


def fixture_uids(node: str) -> list[str]:
    """Pod UIDs in a recorded cgroup tree (systemd drivers write them with underscores)."""
    found = {m.group(1).replace("_", "-") for p in (NODE_TREES / node / "cgroup").rglob("*pod*")
             for m in [re.search(r"pod([0-9a-f_-]{36})", p.name)] if m}
    return sorted(found)


def create_fixture_pods(kube: FakeKube, nodes: Iterable[str], *, web_containers: Sequence[dict] | None = None,
                        api_containers: Sequence[dict] | None = None) -> None:
    """Every recorded pod of `nodes`, in turn shop/web-* (Deployment web), shop/debug-* (bare) and
    search/api-* (Deployment api); `*_containers` as objects.pod() takes them (None: its default)."""
    kube.create(objects.namespace("shop"))
    kube.create(objects.namespace("search"))
    web = kube.create(objects.deployment("web", "shop"))
    api = kube.create(objects.deployment("api", "search"))
    web_rs = kube.create(objects.replicaset("web-5d4f8", "shop", deployment=web))
    api_rs = kube.create(objects.replicaset("api-7c9b2", "search", deployment=api))
    for node in nodes:
        for i, uid in enumerate(fixture_uids(node)):
            if i % 3 == 0:
                kube.create(objects.pod(f"web-5d4f8-{node}-{i}", "shop", node=node, uid=uid, owner=web_rs,
                                        containers=web_containers))
            elif i % 3 == 1:
                kube.create(objects.pod(f"debug-{node}-{i}", "shop", node=node, uid=uid))
            else:
                kube.create(objects.pod(f"api-7c9b2-{node}-{i}", "search", node=node, uid=uid, owner=api_rs,
                                        containers=api_containers))
