# syntax=docker/dockerfile:1
# k8s-monitor aggregator image. Build from the repository root:
#   docker build -f Dockerfiles/aggregator.Dockerfile -t k8s-monitor-aggregator:0.1.0 .
# Pin the base image by digest for reproducible builds (see the README, "Deploying to a cluster"):
#   --build-arg BASE_IMAGE=python:3.11-slim-bookworm@sha256:<digest>
ARG BASE_IMAGE=python:3.11-slim-bookworm
#checkov:skip=CKV_DOCKER_7:FROM uses ${BASE_IMAGE}, whose default above is the fixed tag (tests/test_dockerfiles.py asserts it)

# --- build: one wheel for k8s-monitor plus wheels for its dependencies (all ship binary wheels,
# so no compiler is needed here either) ---------------------------------------------------------
FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY setup.py pyproject.toml README.md ./
COPY k8smon_common/ k8smon_common/
COPY exporter/ exporter/
COPY aggregator/ aggregator/
COPY k8smon_cli/ k8smon_cli/
RUN pip wheel --no-cache-dir --disable-pip-version-check --wheel-dir /wheels .

# --- runtime: the wheels installed from a bind mount, so they never land in a layer -------------
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --disable-pip-version-check --no-index --find-links=/wheels k8s-monitor
# A fixed non-root UID without a passwd entry; the manifest runs it as the same UID.
USER 10001:10001
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/healthz', timeout=4)"]
ENTRYPOINT ["k8smon-aggregator"]
