"""What the exporter says and the aggregator reads beyond the metric names (those are docs/metrics.md)."""

# An exporter answers /metrics with 503 and this body (text/plain) until its first sample is taken;
# the aggregator shows such a target as not ready with this reason, not as a parse error.
NO_SAMPLE_YET = "exporter has no sample yet"
