"""Packaging for k8s-monitor: a node exporter and a cluster aggregator."""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="k8s-monitor",
    version="0.1.0",
    description="Lightweight real-time resource monitor for Kubernetes (exporter + aggregator)",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["exporter*", "aggregator*", "k8smon_common*", "k8smon_cli*"]),
    # The dashboard's files (aggregator/ui/, served at /ui/) travel in the wheel: no build step, no CDN.
    package_data={"aggregator": ["openapi.json", "ui/*.*", "ui/vendor/*"]},
    install_requires=[
        "prometheus-client>=0.20,<1",
        "kubernetes>=29,<38",
        "psutil>=5.9,<8",
        "falcon>=4.0,<5",
        "waitress>=3.0,<4",
        "orjson>=3.9,<4",  # aggregator JSON API: ~6x faster than json on large listings
        "cheroot>=10,<12",  # the metrics.k8s.io listener: a WSGI server that speaks TLS (waitress does not)
        "cryptography>=42,<51",  # its self-signed certificate when none is given
        "zstandard>=0.22,<1",  # the store's closed history chunks (aggregator/store/chunks.py)
    ],
    extras_require={
        "test": [
            "pytest>=8,<10",
            "pytest-timeout>=2.3,<3",
            "hypothesis>=6.100,<7",
            "schemathesis>=3.30,<5",
            "kubernetes-validate>=1.30,<2",
            "checkov>=3,<4",
            "ruff>=0.6,<1",
            "requests>=2.31,<3",
            "mutmut>=3.8,<4",  # `make mutation` and the bounded mutation check in the suite
            # The dashboard's browser tests drive the system Chromium (never `playwright install`).
            "playwright>=1.40,<2",
            # deploy/grafana/generate.py; pinned because the committed dashboards must equal its output.
            # The epoch is the SDK's release stamp; 11.6.0 is the Grafana schema it targets.
            "grafana-foundation-sdk==1769699379!11.6.0",
        ],
    },
    entry_points={
        "console_scripts": [
            "k8smon-exporter=exporter.__main__:main",
            "k8smon-aggregator=aggregator.__main__:main",
            "k8smon=k8smon_cli.main:main",  # the `k8smon top` client: standard library only
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3.11",
        "Topic :: System :: Monitoring",
    ],
)
