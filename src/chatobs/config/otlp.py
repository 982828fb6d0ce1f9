"""What the ``OTEL_EXPORTER_OTLP_*`` settings mean, by the spec's rules, for the span and the metric exporter alike:
the endpoint of each signal, the headers and the timeout."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote

from . import ConfigError

if TYPE_CHECKING:
    from . import Settings

__all__ = ["endpoint", "headers", "parse_headers", "timeout_s"]

_GRPC_DEFAULT = "http://localhost:4317"
_HTTP_DEFAULT = "http://localhost:4318"


def parse_headers(raw: str | None) -> dict[str, str]:
    """The spec's ``key=value,key2=value2`` format with URL-encoded values."""
    found: dict[str, str] = {}
    for part in (raw or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError("OTEL_EXPORTER_OTLP_HEADERS: expected comma-separated key=value pairs")
        found[unquote(key.strip()).lower()] = unquote(value.strip())
    return found


def headers(settings: Settings, signal: Literal["traces", "metrics"]) -> dict[str, str]:
    # As in the SDK: a signal's own variable replaces the generic one (it is not merged key by key).
    raw = (settings.otlp_traces_headers if signal == "traces" else None) or settings.otlp_headers
    return parse_headers(raw.get_secret_value() if raw else None)


def timeout_s(settings: Settings) -> float:
    t = settings.otlp_timeout_s
    if t is None:
        return settings.export_timeout_s
    # The spec says milliseconds; the Python SDK has long read seconds. A value above 100 can only mean milliseconds.
    return t / 1000 if t > 100 else t


def endpoint(settings: Settings, signal: Literal["traces", "metrics"]) -> str:
    """The signal's own endpoint as given; else the generic one (gRPC: as is; HTTP: plus ``/v1/<signal>``)."""
    own = settings.otlp_traces_endpoint if signal == "traces" else settings.otlp_metrics_endpoint
    if own:
        return own
    if settings.otlp_protocol == "grpc":
        return settings.otlp_endpoint or _GRPC_DEFAULT
    return (settings.otlp_endpoint or _HTTP_DEFAULT).rstrip("/") + f"/v1/{signal}"
