"""A fake Kubernetes API server for tests: the real kubernetes client and kubectl talk to it over HTTP.

    from tests.kube import FakeKube, objects
    with FakeKube() as kube:
        kube.create(objects.node("n1"))
        with kube.api_client() as api:
            CoreV1Api(api).list_node()

Modules: resources (what is served, discovery), store (objects, resourceVersion, history),
selectors, listing (list/paging/writes), watching (watch streams), tables (kubectl's Table),
server (HTTP routing), state (calls, faults, connections), fake (the FakeKube handle), objects (builders).
"""

from tests.kube import objects
from tests.kube.fake import FakeKube
from tests.kube.state import Call
from tests.kube.store import StatusError

__all__ = ["Call", "FakeKube", "StatusError", "objects"]
