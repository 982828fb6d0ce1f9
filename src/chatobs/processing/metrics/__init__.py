"""Metrics from finished spans: OpenTelemetry instruments, label limits and the Prometheus route."""
