"""Code shared by the exporter and the aggregator (configuration parsing, logging, version)."""

__version__ = "0.1.0"
