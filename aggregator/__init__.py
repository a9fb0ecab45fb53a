"""Cluster aggregator: discovers exporters, scrapes them into bounded series, serves JSON and /metrics."""
