"""OTLP to any collector or backend, configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace.export import SpanExporter

from ..config import ConfigError
from ..config.otlp import endpoint as signal_endpoint
from ..config.otlp import headers as signal_headers
from ..config.otlp import timeout_s

if TYPE_CHECKING:
    from ..config import Settings


def build(settings: Settings) -> SpanExporter:
    headers = signal_headers(settings, "traces")
    timeout = timeout_s(settings)
    endpoint = signal_endpoint(settings, "traces")
    if settings.otlp_protocol == "grpc":
        from grpc import Compression
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

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
