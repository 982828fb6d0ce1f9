"""OTLP to any collector or backend, configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from opentelemetry.sdk.trace.export import SpanExporter

from ..config import ConfigError

if TYPE_CHECKING:
    from ..config import Settings


def parse_headers(raw: str | None) -> dict[str, str]:
    """The spec's ``key=value,key2=value2`` format with URL-encoded values."""
    headers: dict[str, str] = {}
    for part in (raw or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError("OTEL_EXPORTER_OTLP_HEADERS: expected comma-separated key=value pairs")
        headers[unquote(key.strip()).lower()] = unquote(value.strip())
    return headers


def _timeout_s(settings: Settings) -> float:
    t = settings.otlp_timeout_s
    if t is None:
        return settings.export_timeout_s
    # The spec says milliseconds; the Python SDK has long read seconds. A value above 100 can only mean milliseconds.
    return t / 1000 if t > 100 else t


def build(settings: Settings) -> SpanExporter:
    # As in the SDK: the traces-specific variable replaces the generic one (it is not merged key by key).
    raw = settings.otlp_traces_headers or settings.otlp_headers
    headers = parse_headers(raw.get_secret_value() if raw else None)
    timeout = _timeout_s(settings)
    if settings.otlp_protocol == "grpc":
        from grpc import Compression
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        endpoint = settings.otlp_traces_endpoint or settings.otlp_endpoint or "http://localhost:4317"
        compression = {"gzip": Compression.Gzip, "deflate": Compression.Deflate}.get(
            settings.otlp_compression or "none", Compression.NoCompression
        )
        credentials = None
        if settings.otlp_certificate:
            import grpc

            try:
                credentials = grpc.ssl_channel_credentials(
                    root_certificates=Path(settings.otlp_certificate).read_bytes()
                )
            except OSError as exc:
                raise ConfigError(
                    f"OTEL_EXPORTER_OTLP_CERTIFICATE={str(settings.otlp_certificate)!r}: cannot read the CA file ({exc.strerror})"
                ) from None
        # http:// means plaintext, https:// TLS; a bare host:port follows the SDK (OTEL_EXPORTER_OTLP_INSECURE).
        insecure = True if endpoint.startswith("http://") else False if endpoint.startswith("https://") else None
        return GrpcExporter(
            endpoint=endpoint,
            headers=headers or None,
            timeout=timeout,
            compression=compression,
            insecure=insecure,
            credentials=credentials,
        )
    if settings.otlp_protocol == "http/json":
        raise ConfigError(
            "OTEL_EXPORTER_OTLP_PROTOCOL='http/json': not supported by the OpenTelemetry Python exporter; use http/protobuf or grpc"
        )
    from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    if settings.otlp_traces_endpoint:
        endpoint = settings.otlp_traces_endpoint
    elif settings.otlp_endpoint:
        endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
    else:
        endpoint = "http://localhost:4318/v1/traces"
    compression = {"gzip": HttpCompression.Gzip, "deflate": HttpCompression.Deflate}.get(
        settings.otlp_compression or "none", HttpCompression.NoCompression
    )
    if settings.otlp_certificate and not Path(settings.otlp_certificate).is_file():
        raise ConfigError(
            f"OTEL_EXPORTER_OTLP_CERTIFICATE={str(settings.otlp_certificate)!r}: no such CA certificate file"
        )
    return HttpExporter(
        endpoint=endpoint,
        headers=headers or None,
        timeout=timeout,
        compression=compression,
        certificate_file=str(settings.otlp_certificate) if settings.otlp_certificate else None,
    )
