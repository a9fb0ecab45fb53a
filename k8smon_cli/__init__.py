"""`k8smon`: a terminal client of the aggregator's JSON API (`k8smon top nodes|pods|namespaces|deployments`).

Standard library only, so it installs with the package and adds nothing to the images.
"""
