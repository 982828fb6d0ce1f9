"""Alerting: rules over finished spans (``rules``) and where fired alerts go (``sinks``)."""
