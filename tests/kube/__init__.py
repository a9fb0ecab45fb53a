"""A fake Kubernetes API server for tests: the real kubernetes client and kubectl talk to it over HTTP.

    from tests.kube import FakeKube, objects
    with FakeKube() as kube:                       # 127.0.0.1:<free port>, a thread; or start()/stop()
        kube.create(objects.node("n1"))            # create/update/delete/get/list on the store
        with kube.api_client() as api:             # an ApiClient from the generated kubeconfig
            CoreV1Api(api).list_node()
        kube.kubeconfig                            # Path: plain HTTP + bearer token, for --kubeconfig

Served: core/v1 namespaces, nodes, pods, endpoints, services; apps/v1 replicasets, deployments;
discovery.k8s.io/v1 endpointslices; /version, /api, /apis and the APIResourceLists (legacy
discovery: kubectl falls back to it), Tables for kubectl get. List (limit/continue, current state),
get (404 Status), watch (chunked JSON lines; resourceVersion resume; allowWatchBookmarks;
timeoutSeconds; sendInitialEvents; 410 Expired as an ERROR event), labelSelector/fieldSelector on
both, HTTP POST/PUT/PATCH (merge)/DELETE.

Faithful details worth knowing:
- resourceVersion is one global counter (starts at 1000); list items carry no kind/apiVersion.
- Each resource keeps its own bounded history (`history=` events); compact() expires every
  version older than now, for watches and continue tokens.
- A selector watch reports an object that starts matching as ADDED and one that stops matching as
  DELETED, as the API server's watch cache does.
- Requests without a token are served (kubectl never sends kubeconfig credentials over plain HTTP);
  a wrong token is 401. FakeKube(require_auth=True) makes a missing token 401 as well.

Faults: fail_next(n, status, path_contains, retry_after=) (a huge n: failing forever), drop_watches(),
limit_watches(seconds) (0: every watch ends at once), compact(), pause()/resume() (same port).
Recording: kube.calls (Call: verb, group, version, resource, namespace, name, user_agent, status,
path, user, at = monotonic time answered), reset_calls(), open_watches.

Aggregation layer: FakeKube(aggregation=True); see aggregation.py (APIServices, TLS proxy with a front-proxy
client certificate and X-Remote-*, the extension-apiserver-authentication ConfigMap, TokenReview and
SubjectAccessReview answers set by tests) and pki.py (CAs and certificates).

Modules: resources (what is served, discovery), store (objects, versions, history), selectors,
listing (list/paging/writes), watching (watch streams), tables (kubectl's Table), server (HTTP
routing), state (calls, faults, connections), fake (the FakeKube handle), objects (builders).
"""

from tests.kube import objects
from tests.kube.fake import FakeKube
from tests.kube.state import Call
from tests.kube.store import StatusError

__all__ = ["Call", "FakeKube", "StatusError", "objects"]
