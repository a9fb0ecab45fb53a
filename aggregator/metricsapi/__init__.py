"""The Resource Metrics API (`metrics.k8s.io` v1beta1 and v1) that `kubectl top` and the HPA read.

Served from the aggregator's store on its own TLS listener, shaped as metrics-server shapes it:
`quantity.py` (canonical quantity and duration strings), `selectors.py` (label and field selectors),
`status.py` (errors as Kubernetes Status objects), `metadata.py` (pod and node labels from a
metadata-only watch), `objects.py` (NodeMetrics/PodMetrics from store views), `resources.py` (the
Falcon resources), `discovery.py` (APIResourceList and group documents), `app.py` (the app factory),
`tls.py` (certificate and the cheroot TLS server).
"""
