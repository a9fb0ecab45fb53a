"""Node exporter: samples the host and its pods and serves Prometheus metrics."""
