"""Dispatch settings: the exporters and their queues: OTLP, Langfuse and Opik."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings

from .fields import CSV, env_field, split_csv

EXPORTER_NAMES = ("otlp", "langfuse", "opik", "local", "console", "none")


class DispatchSettings(BaseSettings):
    """Dispatch: the exporters and their queues: OTLP, Langfuse and Opik."""

    exporters: CSV | None = env_field(
        "CHATOBS_EXPORTERS",
        default=None,
        doc="Where spans go: comma list of `otlp`, `langfuse`, `opik`, `local`, `console`, `none`. Unset: chosen from the keys that are set, else `local`.",
        example="otlp,langfuse",
    )
    max_queue_size: int = env_field(
        "CHATOBS_MAX_QUEUE_SIZE",
        default=8192,
        ge=16,
        doc="Spans waiting for the background pipeline; past it new spans are dropped and counted.",
        example="2048",
    )
    export_queue_size: int = env_field(
        "CHATOBS_EXPORT_QUEUE_SIZE",
        default=4096,
        ge=16,
        doc="Spans waiting per exporter; past it that exporter's spans are dropped and counted.",
        example="2048",
    )
    export_batch_size: int = env_field(
        "CHATOBS_EXPORT_BATCH_SIZE", default=256, ge=1, doc="Largest batch handed to an exporter.", example="512"
    )
    export_interval_ms: int = env_field(
        "CHATOBS_EXPORT_INTERVAL_MS",
        default=1000,
        ge=10,
        doc="Longest a span waits in the pipeline before its batch is processed.",
        example="500",
    )
    export_timeout_s: float = env_field(
        "CHATOBS_EXPORT_TIMEOUT_S", default=10.0, gt=0, doc="Timeout of one export call.", example="5"
    )
    export_max_retry_s: float = env_field(
        "CHATOBS_EXPORT_MAX_RETRY_S",
        default=30.0,
        ge=0,
        doc="How long a failed batch is retried (exponential backoff) before it is dropped and counted.",
        example="60",
    )
    shutdown_timeout_s: float = env_field(
        "CHATOBS_SHUTDOWN_TIMEOUT",
        default=5.0,
        gt=0,
        doc="Total time `shutdown()` waits for all exporters to flush (in parallel).",
        example="10",
    )
    llm_backends_all_spans: bool = env_field(
        "CHATOBS_LLM_BACKENDS_ALL_SPANS",
        default=False,
        doc="Also send the app's unrelated spans (database, HTTP) to Langfuse/Opik, not only chat traces.",
        example="true",
    )
    otlp_chat_only: bool = env_field(
        "CHATOBS_OTLP_CHAT_ONLY",
        default=False,
        doc="Send only chat traces over OTLP (default: everything the app traces).",
        example="true",
    )
    # OTLP: the standard variables; passed to the OTLP exporter explicitly so init() overrides work too.
    otlp_endpoint: str | None = env_field(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        default=None,
        doc="OTLP base endpoint (`/v1/traces` is appended for HTTP).",
        example="http://127.0.0.1:4318",
    )
    otlp_traces_endpoint: str | None = env_field(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        default=None,
        doc="OTLP traces endpoint, used as is.",
        example="https://cloud.langfuse.com/api/public/otel/v1/traces",
    )
    otlp_headers: SecretStr | None = env_field(
        "OTEL_EXPORTER_OTLP_HEADERS",
        default=None,
        secret=True,
        doc="Headers for every OTLP request, `key=value` pairs separated by commas (URL-encoded values).",
        example="Authorization=Basic%20cGs6c2s=",
    )
    otlp_traces_headers: SecretStr | None = env_field(
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        default=None,
        secret=True,
        doc="Headers for OTLP trace requests; override `OTEL_EXPORTER_OTLP_HEADERS`.",
        example="x-honeycomb-team=KEY",
    )
    otlp_protocol: Literal["http/protobuf", "grpc", "http/json"] = env_field(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        default="http/protobuf",
        doc="OTLP protocol: `http/protobuf` or `grpc`.",
        example="grpc",
    )
    otlp_compression: Literal["none", "gzip", "deflate"] | None = env_field(
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        default=None,
        doc="OTLP compression: `gzip`, `deflate` or `none`.",
        example="gzip",
    )
    otlp_timeout_s: float | None = env_field(
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        default=None,
        doc="OTLP request timeout (the spec's value is in milliseconds when > 100, seconds otherwise).",
        example="10000",
    )
    otlp_certificate: Path | None = env_field(
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        default=None,
        doc="CA certificate file to verify the OTLP server.",
        example="/etc/ssl/collector-ca.pem",
    )
    otel_metrics_exporter: str | None = env_field(
        "OTEL_METRICS_EXPORTER",
        default=None,
        doc="`otlp` to push metrics over OTLP, `prometheus` for a scrape endpoint on 127.0.0.1 (port `CHATOBS_PROMETHEUS_PORT`, default 9464), `console` to print them, `none` to keep them in process; comma list allowed.",
        example="otlp",
    )
    otlp_metrics_endpoint: str | None = env_field(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        default=None,
        doc="OTLP metrics endpoint, used as is.",
        example="http://127.0.0.1:4318/v1/metrics",
    )
    # Langfuse: the variables its SDK reads.
    langfuse_enabled: bool = env_field(
        "LANGFUSE_ENABLED",
        "LANGFUSE_TRACING_ENABLED",
        default=True,
        doc="`false` keeps Langfuse out of the automatic exporter choice.",
        example="false",
    )
    langfuse_public_key: str | None = env_field(
        "LANGFUSE_PUBLIC_KEY", default=None, doc="Langfuse project public key.", example="pk-lf-..."
    )
    langfuse_secret_key: SecretStr | None = env_field(
        "LANGFUSE_SECRET_KEY", default=None, secret=True, doc="Langfuse project secret key.", example="sk-lf-..."
    )
    langfuse_base_url: str | None = env_field(
        "LANGFUSE_BASE_URL",
        "LANGFUSE_HOST",
        default=None,
        doc="Langfuse server URL (`LANGFUSE_HOST` is the older name).",
        example="https://cloud.langfuse.com",
    )
    langfuse_flush_interval_s: float | None = env_field(
        "LANGFUSE_FLUSH_INTERVAL", default=None, gt=0, doc="Seconds between Langfuse flushes.", example="5"
    )
    langfuse_flush_at: int | None = env_field(
        "LANGFUSE_FLUSH_AT", default=None, ge=1, doc="Batch size of Langfuse flushes.", example="512"
    )
    langfuse_flush_at_shutdown: bool = env_field(
        "LANGFUSE_FLUSH_AT_SHUTDOWN", default=True, doc="Flush Langfuse when the process stops.", example="false"
    )
    langfuse_timeout_s: float | None = env_field(
        "LANGFUSE_TIMEOUT", default=None, gt=0, doc="Timeout of Langfuse requests, seconds.", example="10"
    )
    # Opik: the variables its SDK reads.
    opik_url: str | None = env_field(
        "OPIK_URL_OVERRIDE",
        default=None,
        doc="Opik server URL (self-hosted or Comet).",
        example="http://127.0.0.1:5173/api",
    )
    opik_api_key: SecretStr | None = env_field(
        "OPIK_API_KEY", default=None, secret=True, doc="Opik API key (Comet cloud).", example="..."
    )
    opik_workspace: str | None = env_field("OPIK_WORKSPACE", default=None, doc="Opik workspace.", example="my-team")
    opik_project_name: str | None = env_field(
        "OPIK_PROJECT_NAME", default=None, doc="Opik project that receives the traces.", example="support-bot"
    )
    opik_allow_telemetry: bool = env_field(
        "CHATOBS_OPIK_ALLOW_TELEMETRY",
        default=False,
        doc="Let the Opik SDK keep its own error reporting and usage analytics (chatobs turns both off otherwise).",
        example="true",
    )

    @field_validator(
        "exporters",
        mode="before",
    )
    @classmethod
    def _csv_dispatch(cls, value: Any) -> Any:
        return split_csv(value)

    @field_validator("exporters")
    @classmethod
    def _known_exporters(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        names = [v.lower() for v in value]
        bad = [v for v in names if v not in EXPORTER_NAMES]
        if bad:
            raise ValueError(f"unknown exporter {bad[0]!r}; expected a comma list of {', '.join(EXPORTER_NAMES)}")
        return names

    @field_validator(
        "otlp_protocol",
        "otlp_compression",
        mode="before",
    )
    @classmethod
    def _lower_dispatch(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("otel_metrics_exporter")
    @classmethod
    def _known_metrics_exporter(cls, value: str | None) -> str | None:
        if value is None:
            return None
        names = [v.strip().lower() for v in value.split(",") if v.strip()]
        bad = [v for v in names if v not in ("otlp", "prometheus", "console", "none")]
        if bad:
            raise ValueError(
                f"unknown metrics exporter {bad[0]!r}; expected a comma list of otlp, prometheus, console, none"
            )
        return ",".join(names)
