"""The one settings object: every chatobs setting, read from the environment.

Each field's first alias is the variable users set; further aliases are the names other tools use for the same thing
(the ``OTEL_*`` spec variables, the Langfuse and Opik SDK variables, the seed documents' ``MCP_*`` names).
``init(**overrides)`` takes the field names as keyword arguments. ``docs/configuration.md`` is generated from this
module (``python -m chatobs.config > docs/configuration.md``) and a test keeps the two identical.

Validation happens once, in ``load_settings()`` (called by ``chatobs.init``): a bad value raises ``ConfigError`` naming
the variable, the value and what was expected, so nothing can fail later inside a request.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["ConfigError", "Settings", "env_name", "load_settings"]

EXPORTER_NAMES = ("otlp", "langfuse", "opik", "local", "console", "none")
INSTRUMENT_NAMES = ("openai", "anthropic", "mcp", "httpx", "requests", "aiohttp", "gradio", "threads")

CSV = Annotated[list[str], NoDecode]


class ConfigError(ValueError):
    """A setting has a value chatobs cannot use. The message names the variable, the value and what is expected."""


def _env(
    *names: str, default: Any = None, doc: str, example: str | None = None, secret: bool = False, **kw: Any
) -> Any:
    """A field read from the first of ``names`` that is set; the field's own name also works as an ``init()`` kwarg."""
    extra: dict[str, Any] = {"doc": doc, "example": example, "env": list(names), "secret": secret}
    return Field(default=default, validation_alias=AliasChoices(*names), json_schema_extra=extra, **kw)


def _split_csv(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every chatobs setting. Read the docs for each in ``docs/configuration.md``."""

    model_config = SettingsConfigDict(
        populate_by_name=True,
        extra="forbid",
        case_sensitive=False,
        env_ignore_empty=True,
        validate_default=False,
    )

    # --- General ------------------------------------------------------------------------------------------------
    enabled: bool = _env(
        "CHATOBS_ENABLED",
        default=True,
        doc="Master switch. `false` makes every middleware a pass-through and installs nothing.",
        example="false",
    )
    sdk_disabled: bool = _env(
        "OTEL_SDK_DISABLED",
        default=False,
        doc="The OpenTelemetry spec's kill switch; `true` disables chatobs the same way as `CHATOBS_ENABLED=false`.",
        example="true",
    )
    service_name: str = _env(
        "OTEL_SERVICE_NAME",
        "CHATOBS_SERVICE_NAME",
        default="chat-app",
        doc="`service.name` of every span.",
        example="support-bot",
    )
    resource_attributes: str = _env(
        "OTEL_RESOURCE_ATTRIBUTES",
        default="",
        doc="Extra resource attributes, `key=value` pairs separated by commas (OTel spec format).",
        example="deployment.environment=prod,service.version=1.4.2",
    )
    environment: str | None = _env(
        "CHATOBS_ENVIRONMENT",
        "LANGFUSE_TRACING_ENVIRONMENT",
        default=None,
        doc="Deployment environment, sent as `deployment.environment.name` and to Langfuse/Opik as their environment.",
        example="production",
    )
    release: str | None = _env(
        "CHATOBS_RELEASE",
        "LANGFUSE_RELEASE",
        default=None,
        doc="Release or version of the app, sent as `service.version` and Langfuse's release.",
        example="2026.11.1",
    )
    debug: bool = _env(
        "CHATOBS_DEBUG",
        "LANGFUSE_DEBUG",
        default=False,
        doc="Log chatobs's own decisions at DEBUG level (dropped IDs, exporter choice, retries).",
        example="true",
    )

    # --- Request scope and middleware ---------------------------------------------------------------------------
    exclude_paths: CSV = _env(
        "CHATOBS_EXCLUDE_PATHS",
        default=[
            "/health",
            "/healthz",
            "/livez",
            "/readyz",
            "/ready",
            "/metrics",
            "/favicon.ico",
            "/static/*",
            "/_chatobs/*",
        ],
        doc="Paths the middleware does not trace, comma separated; a trailing `*` matches a prefix.",
        example="/health,/static/*,/assets/*",
    )
    chat_routes: CSV = _env(
        "CHATOBS_CHAT_ROUTES",
        default=["POST *"],
        doc="Requests that are chat turns and become traces, comma separated: `METHOD /path` or `/path` (any method), a trailing `*` matches a prefix, `*` alone every path. Other requests are counted in metrics but not stored or exported (see docs/middleware.md).",
        example="POST /api/chat*,POST /gradio_api/queue/join,GET /api/chat/stream",
    )
    trace_all_routes: bool = _env(
        "CHATOBS_TRACE_ALL_ROUTES",
        default=False,
        doc="Trace every request that is not excluded (page loads, config, assets...), not only `CHATOBS_CHAT_ROUTES`.",
        example="true",
    )
    framework_spans: bool = _env(
        "CHATOBS_FRAMEWORK_SPANS",
        default=False,
        doc="Keep the internal spans web frameworks open when a tracer provider exists (FastAPI's dependency, endpoint, serialization and background-task spans; OpenTelemetry ASGI's send/receive spans). Their server spans are always kept.",
        example="true",
    )
    conversation_header: str = _env(
        "CHATOBS_CONVERSATION_HEADER",
        default="X-Conversation-Id",
        doc="Request header carrying the conversation ID.",
        example="X-Chat-Id",
    )
    user_header: str = _env(
        "CHATOBS_USER_HEADER", default="X-User-Id", doc="Request header carrying the user ID.", example="X-Auth-User"
    )
    tenant_header: str = _env(
        "CHATOBS_TENANT_HEADER", default="X-Tenant-Id", doc="Request header carrying the tenant ID.", example="X-Org-Id"
    )
    message_header: str = _env(
        "CHATOBS_MESSAGE_HEADER",
        default="X-Message-Id",
        doc="Request header carrying the message ID.",
        example="X-Msg-Id",
    )
    parent_message_header: str = _env(
        "CHATOBS_PARENT_MESSAGE_HEADER",
        default="X-Parent-Message-Id",
        doc="Request header carrying the parent message ID (edits and regenerations).",
        example="X-Parent-Msg-Id",
    )
    conversation_fields: CSV = _env(
        "CHATOBS_CONVERSATION_FIELDS",
        default=["conversation_id", "conversationId"],
        doc="Top-level JSON body fields read for the conversation ID, in order.",
        example="conversation_id,chat_id",
    )
    user_fields: CSV = _env(
        "CHATOBS_USER_FIELDS",
        default=["user_id", "userId"],
        doc="Top-level JSON body fields read for the user ID, in order.",
        example="user_id,user",
    )
    tenant_fields: CSV = _env(
        "CHATOBS_TENANT_FIELDS",
        default=["tenant_id", "tenantId"],
        doc="Top-level JSON body fields read for the tenant ID, in order.",
        example="org_id",
    )
    message_fields: CSV = _env(
        "CHATOBS_MESSAGE_FIELDS",
        default=["message_id", "messageId"],
        doc="Top-level JSON body fields read for the message ID, in order.",
        example="message_id",
    )
    parent_message_fields: CSV = _env(
        "CHATOBS_PARENT_MESSAGE_FIELDS",
        default=["parent_message_id", "parentMessageId"],
        doc="Top-level JSON body fields read for the parent message ID, in order.",
        example="parent_message_id",
    )
    user_jwt_claim: str | None = _env(
        "CHATOBS_USER_JWT_CLAIM",
        default=None,
        doc="Take the user ID from this claim of the `Authorization: Bearer` JWT when no header or body field named it. The token is decoded WITHOUT verifying its signature (needs PyJWT), only to label spans: never use it for anything else. A malformed token is ignored.",
        example="sub",
    )
    max_body_bytes: int = _env(
        "CHATOBS_MAX_BODY_BYTES",
        default=65536,
        ge=0,
        doc="Largest JSON request body inspected for IDs; a larger body is passed to the app untouched and not parsed. 0 disables body inspection.",
        example="16384",
    )
    max_id_length: int = _env(
        "CHATOBS_MAX_ID_LENGTH",
        default=256,
        ge=1,
        le=4096,
        doc="Longest accepted ID; longer or non-printable IDs are dropped (debug log).",
        example="128",
    )
    propagate_identity: bool = _env(
        "CHATOBS_PROPAGATE_IDENTITY",
        default=True,
        doc="Send conversation and user IDs in W3C `baggage` on outgoing calls (HTTP, MCP).",
        example="false",
    )
    trace_id_header: str = _env(
        "CHATOBS_TRACE_ID_HEADER",
        default="X-Trace-Id",
        doc="Response header that returns the trace ID to the client; empty disables it.",
        example="X-Request-Trace",
    )

    # --- LLM calls ----------------------------------------------------------------------------------------------
    instrument: CSV = _env(
        "CHATOBS_INSTRUMENT",
        default=list(INSTRUMENT_NAMES),
        doc="What to auto-instrument when importable: the `openai`, `anthropic` and `mcp` SDKs; the HTTP clients `httpx`, `requests`, `aiohttp` (their calls to LLM endpoints become LLM spans); `gradio` (a queued function runs in the trace of the request that submitted it, see docs/integrations.md) and `threads` (`concurrent.futures.ThreadPoolExecutor.submit` and `loop.run_in_executor` keep the turn's scope and span); empty for none.",
        example="openai,mcp",
    )
    capture_content: bool = _env(
        "CHATOBS_CAPTURE_CONTENT",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
        default=True,
        doc="Record prompts, replies and decorator inputs/outputs on spans (masked before export).",
        example="false",
    )
    openai_stream_usage: bool = _env(
        "CHATOBS_OPENAI_STREAM_USAGE",
        default=True,
        doc="Ask OpenAI for token usage on streamed chat completions (`stream_options.include_usage`) and hide the extra usage-only chunk from the app.",
        example="false",
    )
    http_llm_hosts: CSV = _env(
        "CHATOBS_HTTP_LLM_HOSTS",
        default=[],
        doc="Hosts whose LLM-shaped HTTP requests (`httpx`, `requests`, `aiohttp`) become LLM spans, comma separated; a leading `*.` matches subdomains; empty means any host.",
        example="api.openai.com,*.openai.azure.com,llm.internal",
    )
    http_llm_providers: CSV = _env(
        "CHATOBS_HTTP_LLM_PROVIDERS",
        default=[],
        doc="`host=provider` pairs naming the `gen_ai.provider.name` of LLM calls made over plain HTTP to that host (well-known hosts are named already; others get the host name).",
        example="llm.internal=openai,127.0.0.1:8765=vllm",
    )
    http_llm_max_body_bytes: int = _env(
        "CHATOBS_HTTP_LLM_MAX_BODY_BYTES",
        default=4 * 1024 * 1024,
        ge=0,
        doc="Largest LLM request or non-streamed response body read over plain HTTP; a larger one is passed on untouched and its span has no content or usage. Streams are parsed as they pass whatever their length.",
        example="1048576",
    )
    pricing_file: Path | None = _env(
        "CHATOBS_PRICING_FILE",
        "MCP_TOKEN_PRICING_CONFIG",
        default=None,
        doc="YAML file of prices per 1K tokens that overrides or adds models (`default:` and `models:` keys).",
        example="./pricing.yaml",
    )

    # --- MCP ----------------------------------------------------------------------------------------------------
    capture_tool_io: bool = _env(
        "CHATOBS_CAPTURE_TOOL_IO",
        "MCP_TRACE_TOOL_IO",
        default=False,
        doc="Record MCP tool arguments and results on spans (masked before export).",
        example="true",
    )
    slow_tool_ms: float = _env(
        "CHATOBS_SLOW_TOOL_MS",
        default=5000.0,
        gt=0,
        doc="A tool call slower than this is marked `chatobs.slow=true` and fires the slow-tool alert.",
        example="2000",
    )
    mcp_server_name: str | None = _env(
        "CHATOBS_MCP_SERVER_NAME",
        default=None,
        doc="Name an instrumented MCP server reports for itself (defaults to the server's own name).",
        example="kb-tools",
    )

    # --- Privacy ------------------------------------------------------------------------------------------------
    pii: Literal["patterns", "ner", "off"] = _env(
        "CHATOBS_PII",
        default="patterns",
        doc="PII masking engine: `patterns` (Presidio pattern recognizers, no model), `ner` (adds a spaCy model for names and places), `off`.",
        example="ner",
    )
    sanitize_pii: bool = _env(
        "MCP_TRACE_SANITIZE_PII",
        default=True,
        doc="Seed-compatible switch: `false` is the same as `CHATOBS_PII=off`. Secrets are scrubbed either way.",
        example="false",
    )
    pii_entities: CSV = _env(
        "CHATOBS_PII_ENTITIES",
        default=[],
        doc="Presidio entity types to mask; empty means chatobs's default set.",
        example="EMAIL_ADDRESS,PHONE_NUMBER,CREDIT_CARD",
    )
    pii_operator: str = _env(
        "CHATOBS_PII_OPERATOR",
        default="replace",
        doc="How found PII is masked: `replace` (`<EMAIL_ADDRESS>`), `mask`, `redact` or `hash`; per entity as `ENTITY:op` pairs, e.g. `replace,EMAIL_ADDRESS:hash`.",
        example="replace,EMAIL_ADDRESS:hash",
    )
    pii_score_threshold: float = _env(
        "CHATOBS_PII_SCORE_THRESHOLD",
        default=0.4,
        ge=0.0,
        le=1.0,
        doc="Minimum Presidio score for a finding to be masked.",
        example="0.5",
    )
    pii_allow_list: CSV = _env(
        "CHATOBS_PII_ALLOW_LIST",
        default=[],
        doc="Values never masked (e.g. your support e-mail address).",
        example="support@example.com,ACME",
    )
    pii_recognizers_file: Path | None = _env(
        "CHATOBS_PII_RECOGNIZERS_FILE",
        default=None,
        doc="YAML file of extra pattern recognizers (name, entity, regex, score, context words).",
        example="./recognizers.yaml",
    )
    pii_ner_model: str = _env(
        "CHATOBS_PII_NER_MODEL",
        default="en_core_web_sm",
        doc="spaCy model used when `CHATOBS_PII=ner`.",
        example="en_core_web_md",
    )
    redact_attributes: CSV = _env(
        "CHATOBS_REDACT_ATTRIBUTES",
        default=[],
        doc="Extra span attribute names whose values are masked like message content.",
        example="app.search.query,app.ticket.body",
    )
    capture_headers: CSV = _env(
        "CHATOBS_CAPTURE_HEADERS",
        default=[],
        doc="Request headers recorded on the request span (allow-list; secrets are never recorded).",
        example="user-agent,accept-language",
    )
    hash_secret: SecretStr | None = _env(
        "CHATOBS_HASH_SECRET",
        default=None,
        secret=True,
        doc="Key for the `hash` operator and user-ID hashing (HMAC-SHA256); required by either.",
        example="change-me-32-random-bytes",
    )
    hash_user_ids: bool = _env(
        "CHATOBS_HASH_USER_IDS",
        default=False,
        doc="Replace user IDs by their keyed hash in every exporter and metric.",
        example="true",
    )
    max_attribute_length: int = _env(
        "CHATOBS_MAX_ATTRIBUTE_LENGTH",
        default=1000,
        ge=0,
        doc="Longest string attribute exported, cut after masking with a marker; 0 means no limit.",
        example="4000",
    )
    masking_worker: Literal["auto", "thread", "process"] = _env(
        "CHATOBS_MASKING_WORKER",
        default="auto",
        doc="Where masking runs: a background `thread`, a separate `process` (keeps Presidio off the app's GIL), or `auto`.",
        example="process",
    )
    masking_timeout_s: float = _env(
        "CHATOBS_MASKING_TIMEOUT_S",
        default=10.0,
        gt=0,
        doc="Longest wait for masking one batch; content not masked in time is dropped (replaced by a marker), never exported unmasked.",
        example="30",
    )

    # --- Sampling -----------------------------------------------------------------------------------------------
    sample_rate: float = _env(
        "CHATOBS_SAMPLE_RATE",
        default=1.0,
        ge=0.0,
        le=1.0,
        doc="Fraction of conversations kept, in [0, 1].",
        example="0.25",
    )
    sample_by: Literal["conversation", "trace"] = _env(
        "CHATOBS_SAMPLE_BY",
        default="conversation",
        doc="Key of the sampling decision: every turn of a `conversation` is kept or dropped together; `trace` decides per turn.",
        example="trace",
    )
    sample_ignore_remote_parent: bool = _env(
        "CHATOBS_SAMPLE_IGNORE_REMOTE_PARENT",
        default=False,
        doc="Ignore the sampled flag of an incoming `traceparent` (public endpoints).",
        example="true",
    )
    otel_traces_sampler: str | None = _env(
        "OTEL_TRACES_SAMPLER",
        default=None,
        doc="OTel spec sampler: `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio`.",
        example="parentbased_traceidratio",
    )
    otel_traces_sampler_arg: str | None = _env(
        "OTEL_TRACES_SAMPLER_ARG",
        default=None,
        doc="Argument of `OTEL_TRACES_SAMPLER` (the ratio for the ratio samplers).",
        example="0.1",
    )
    keep_errors: bool = _env(
        "CHATOBS_KEEP_ERRORS",
        default=True,
        doc="Keep a trace that head sampling dropped when any of its spans failed.",
        example="false",
    )
    keep_slow_ms: float | None = _env(
        "CHATOBS_KEEP_SLOW_MS",
        default=None,
        gt=0,
        doc="Keep a trace that head sampling dropped when the request took longer than this.",
        example="10000",
    )
    keep_cost_usd: float | None = _env(
        "CHATOBS_KEEP_COST_USD",
        default=None,
        ge=0,
        doc="Keep a trace that head sampling dropped when its LLM cost exceeds this.",
        example="0.50",
    )
    record_unsampled: Literal["light", "full"] = _env(
        "CHATOBS_RECORD_UNSAMPLED",
        default="light",
        doc="What is recorded of a trace head sampling dropped, for metrics and the tail rules: `light` = chatobs's own spans (request, LLM, MCP, decorators) with their attributes but without message or tool content, and no other instrumentation's spans (almost free on the request path; a trace a tail rule keeps has no content); `full` = every span with content until the request ends (a kept trace is complete; costs what a sampled trace costs).",
        example="full",
    )
    tail_max_traces: int = _env(
        "CHATOBS_TAIL_MAX_TRACES",
        default=10000,
        ge=1,
        doc="Open traces held for the tail rules; past it the oldest is decided early (counted).",
        example="2000",
    )
    tail_max_spans_per_trace: int = _env(
        "CHATOBS_TAIL_MAX_SPANS_PER_TRACE",
        default=512,
        ge=1,
        doc="Spans held per open trace; past it the trace is decided early (counted).",
        example="128",
    )
    tail_max_bytes: int = _env(
        "CHATOBS_TAIL_MAX_BYTES",
        default=64 * 1024 * 1024,
        ge=1024,
        doc="Approximate bytes held for the tail rules across all open traces.",
        example="16777216",
    )
    tail_max_age_s: float = _env(
        "CHATOBS_TAIL_MAX_AGE_S",
        default=300.0,
        gt=0,
        doc="Longest an open trace is held for the tail rules; past it the trace is decided on what arrived (counted).",
        example="60",
    )
    langfuse_sample_rate: float | None = _env(
        "LANGFUSE_SAMPLE_RATE",
        "CHATOBS_LANGFUSE_SAMPLE_RATE",
        default=None,
        ge=0.0,
        le=1.0,
        doc="Fraction of conversations sent to Langfuse; the same hash is compared with every rate, so they nest (effective rate: the smaller of this and `CHATOBS_SAMPLE_RATE`). Traces kept by a tail rule are always sent.",
        example="0.1",
    )
    opik_sample_rate: float | None = _env(
        "CHATOBS_OPIK_SAMPLE_RATE",
        default=None,
        ge=0.0,
        le=1.0,
        doc="Fraction of conversations sent to Opik (nested like `LANGFUSE_SAMPLE_RATE`).",
        example="0.1",
    )
    otlp_sample_rate: float | None = _env(
        "CHATOBS_OTLP_SAMPLE_RATE",
        default=None,
        ge=0.0,
        le=1.0,
        doc="Fraction of conversations sent over OTLP (nested like `LANGFUSE_SAMPLE_RATE`).",
        example="0.5",
    )
    local_sample_rate: float | None = _env(
        "CHATOBS_LOCAL_SAMPLE_RATE",
        default=None,
        ge=0.0,
        le=1.0,
        doc="Fraction of conversations written to the local store (nested like `LANGFUSE_SAMPLE_RATE`).",
        example="1.0",
    )

    # --- Dispatch -----------------------------------------------------------------------------------------------
    exporters: CSV | None = _env(
        "CHATOBS_EXPORTERS",
        default=None,
        doc="Where spans go: comma list of `otlp`, `langfuse`, `opik`, `local`, `console`, `none`. Unset: chosen from the keys that are set, else `local`.",
        example="otlp,langfuse",
    )
    max_queue_size: int = _env(
        "CHATOBS_MAX_QUEUE_SIZE",
        default=8192,
        ge=16,
        doc="Spans waiting for the background pipeline; past it new spans are dropped and counted.",
        example="2048",
    )
    export_queue_size: int = _env(
        "CHATOBS_EXPORT_QUEUE_SIZE",
        default=4096,
        ge=16,
        doc="Spans waiting per exporter; past it that exporter's spans are dropped and counted.",
        example="2048",
    )
    export_batch_size: int = _env(
        "CHATOBS_EXPORT_BATCH_SIZE", default=256, ge=1, doc="Largest batch handed to an exporter.", example="512"
    )
    export_interval_ms: int = _env(
        "CHATOBS_EXPORT_INTERVAL_MS",
        default=1000,
        ge=10,
        doc="Longest a span waits in the pipeline before its batch is processed.",
        example="500",
    )
    export_timeout_s: float = _env(
        "CHATOBS_EXPORT_TIMEOUT_S", default=10.0, gt=0, doc="Timeout of one export call.", example="5"
    )
    export_max_retry_s: float = _env(
        "CHATOBS_EXPORT_MAX_RETRY_S",
        default=30.0,
        ge=0,
        doc="How long a failed batch is retried (exponential backoff) before it is dropped and counted.",
        example="60",
    )
    shutdown_timeout_s: float = _env(
        "CHATOBS_SHUTDOWN_TIMEOUT",
        default=5.0,
        gt=0,
        doc="Total time `shutdown()` waits for all exporters to flush (in parallel).",
        example="10",
    )
    llm_backends_all_spans: bool = _env(
        "CHATOBS_LLM_BACKENDS_ALL_SPANS",
        default=False,
        doc="Also send the app's unrelated spans (database, HTTP) to Langfuse/Opik, not only chat traces.",
        example="true",
    )
    otlp_chat_only: bool = _env(
        "CHATOBS_OTLP_CHAT_ONLY",
        default=False,
        doc="Send only chat traces over OTLP (default: everything the app traces).",
        example="true",
    )

    # OTLP: the standard variables; passed to the OTLP exporter explicitly so init() overrides work too.
    otlp_endpoint: str | None = _env(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        default=None,
        doc="OTLP base endpoint (`/v1/traces` is appended for HTTP).",
        example="http://127.0.0.1:4318",
    )
    otlp_traces_endpoint: str | None = _env(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        default=None,
        doc="OTLP traces endpoint, used as is.",
        example="https://cloud.langfuse.com/api/public/otel/v1/traces",
    )
    otlp_headers: SecretStr | None = _env(
        "OTEL_EXPORTER_OTLP_HEADERS",
        default=None,
        secret=True,
        doc="Headers for every OTLP request, `key=value` pairs separated by commas (URL-encoded values).",
        example="Authorization=Basic%20cGs6c2s=",
    )
    otlp_traces_headers: SecretStr | None = _env(
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        default=None,
        secret=True,
        doc="Headers for OTLP trace requests; override `OTEL_EXPORTER_OTLP_HEADERS`.",
        example="x-honeycomb-team=KEY",
    )
    otlp_protocol: Literal["http/protobuf", "grpc", "http/json"] = _env(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        default="http/protobuf",
        doc="OTLP protocol: `http/protobuf` or `grpc`.",
        example="grpc",
    )
    otlp_compression: Literal["none", "gzip", "deflate"] | None = _env(
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        default=None,
        doc="OTLP compression: `gzip`, `deflate` or `none`.",
        example="gzip",
    )
    otlp_timeout_s: float | None = _env(
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        default=None,
        doc="OTLP request timeout (the spec's value is in milliseconds when > 100, seconds otherwise).",
        example="10000",
    )
    otlp_certificate: Path | None = _env(
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        default=None,
        doc="CA certificate file to verify the OTLP server.",
        example="/etc/ssl/collector-ca.pem",
    )
    otel_metrics_exporter: str | None = _env(
        "OTEL_METRICS_EXPORTER",
        default=None,
        doc="`otlp` to push metrics over OTLP, `prometheus` for a scrape endpoint on 127.0.0.1 (port `CHATOBS_PROMETHEUS_PORT`, default 9464), `console` to print them, `none` to keep them in process; comma list allowed.",
        example="otlp",
    )
    otlp_metrics_endpoint: str | None = _env(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        default=None,
        doc="OTLP metrics endpoint, used as is.",
        example="http://127.0.0.1:4318/v1/metrics",
    )

    # Langfuse: the variables its SDK reads.
    langfuse_enabled: bool = _env(
        "LANGFUSE_ENABLED",
        "LANGFUSE_TRACING_ENABLED",
        default=True,
        doc="`false` keeps Langfuse out of the automatic exporter choice.",
        example="false",
    )
    langfuse_public_key: str | None = _env(
        "LANGFUSE_PUBLIC_KEY", default=None, doc="Langfuse project public key.", example="pk-lf-..."
    )
    langfuse_secret_key: SecretStr | None = _env(
        "LANGFUSE_SECRET_KEY", default=None, secret=True, doc="Langfuse project secret key.", example="sk-lf-..."
    )
    langfuse_base_url: str | None = _env(
        "LANGFUSE_BASE_URL",
        "LANGFUSE_HOST",
        default=None,
        doc="Langfuse server URL (`LANGFUSE_HOST` is the older name).",
        example="https://cloud.langfuse.com",
    )
    langfuse_flush_interval_s: float | None = _env(
        "LANGFUSE_FLUSH_INTERVAL", default=None, gt=0, doc="Seconds between Langfuse flushes.", example="5"
    )
    langfuse_flush_at: int | None = _env(
        "LANGFUSE_FLUSH_AT", default=None, ge=1, doc="Batch size of Langfuse flushes.", example="512"
    )
    langfuse_flush_at_shutdown: bool = _env(
        "LANGFUSE_FLUSH_AT_SHUTDOWN", default=True, doc="Flush Langfuse when the process stops.", example="false"
    )
    langfuse_timeout_s: float | None = _env(
        "LANGFUSE_TIMEOUT", default=None, gt=0, doc="Timeout of Langfuse requests, seconds.", example="10"
    )

    # Opik: the variables its SDK reads.
    opik_url: str | None = _env(
        "OPIK_URL_OVERRIDE",
        default=None,
        doc="Opik server URL (self-hosted or Comet).",
        example="http://127.0.0.1:5173/api",
    )
    opik_api_key: SecretStr | None = _env(
        "OPIK_API_KEY", default=None, secret=True, doc="Opik API key (Comet cloud).", example="..."
    )
    opik_workspace: str | None = _env("OPIK_WORKSPACE", default=None, doc="Opik workspace.", example="my-team")
    opik_project_name: str | None = _env(
        "OPIK_PROJECT_NAME", default=None, doc="Opik project that receives the traces.", example="support-bot"
    )
    opik_allow_telemetry: bool = _env(
        "CHATOBS_OPIK_ALLOW_TELEMETRY",
        default=False,
        doc="Let the Opik SDK keep its own error reporting and usage analytics (chatobs turns both off otherwise).",
        example="true",
    )

    # --- Local store and viewer ---------------------------------------------------------------------------------
    local_db: Path = _env(
        "CHATOBS_LOCAL_DB",
        default=Path(".chatobs/traces.db"),
        doc="SQLite file of the local trace store (relative to the working directory).",
        example="/var/lib/chat/traces.db",
    )
    local_retention_days: float = _env(
        "CHATOBS_LOCAL_RETENTION_DAYS",
        default=7.0,
        gt=0,
        doc="Traces older than this are removed from the local store.",
        example="30",
    )
    local_max_mb: float = _env(
        "CHATOBS_LOCAL_MAX_MB",
        default=500.0,
        gt=0,
        doc="Size cap of the local store; the oldest traces go first.",
        example="2000",
    )
    viewer_token: SecretStr | None = _env(
        "CHATOBS_VIEWER_TOKEN",
        default=None,
        secret=True,
        doc="Token the viewer requires when served on a non-loopback address (`?token=` or `Authorization: Bearer`).",
        example="a-long-random-string",
    )
    viewer_url: str | None = _env(
        "CHATOBS_VIEWER_URL",
        default=None,
        doc="Base URL of the trace viewer, used for links in alerts and responses.",
        example="http://127.0.0.1:8000/_chatobs",
    )

    # --- Metrics and alerts -------------------------------------------------------------------------------------
    metrics: bool = _env(
        "CHATOBS_METRICS",
        default=True,
        doc="Record OTel metrics (tokens, cost, latency, tool health, pipeline health).",
        example="false",
    )
    prometheus_port: int | None = _env(
        "CHATOBS_PROMETHEUS_PORT",
        default=None,
        ge=1,
        le=65535,
        doc="Serve a Prometheus scrape endpoint on 127.0.0.1 at this port.",
        example="9464",
    )
    metrics_user_attribute: bool = _env(
        "CHATOBS_METRICS_USER_ATTRIBUTE",
        default=False,
        doc="Add `user.id` to metric attributes (only for small deployments: unbounded cardinality).",
        example="true",
    )
    alerts_file: Path | None = _env(
        "CHATOBS_ALERTS_FILE",
        default=None,
        doc="YAML file of alert rules (see docs/metrics.md).",
        example="./alerts.yaml",
    )
    alert_webhook_url: SecretStr | None = _env(
        "CHATOBS_ALERT_WEBHOOK_URL",
        default=None,
        secret=True,
        doc="Alerts are POSTed as JSON to this URL.",
        example="http://127.0.0.1:9000/hooks/chatobs",
    )
    alert_cooldown_s: float = _env(
        "CHATOBS_ALERT_COOLDOWN_S",
        default=300.0,
        ge=0,
        doc="The same alert (rule and subject) is sent at most once per cooldown.",
        example="60",
    )
    metrics_export_interval_ms: int = _env(
        "OTEL_METRIC_EXPORT_INTERVAL",
        "CHATOBS_METRICS_EXPORT_INTERVAL_MS",
        default=60000,
        ge=100,
        doc="Milliseconds between OTLP metric pushes (the OTel spec variable).",
        example="15000",
    )
    alerts: bool = _env(
        "CHATOBS_ALERTS",
        default=True,
        doc="Evaluate alert rules in process (slow tool, error rate, budget, spike, latency).",
        example="false",
    )
    alert_window_s: float = _env(
        "CHATOBS_ALERT_WINDOW_S",
        default=300.0,
        gt=0,
        doc="Window of the error-rate, latency and spike rules defined by settings (a YAML rule sets its own).",
        example="600",
    )
    alert_error_rate: float | None = _env(
        "CHATOBS_ALERT_ERROR_RATE",
        default=None,
        gt=0,
        le=1,
        doc="Alert when the LLM or the tool error rate over the window exceeds this fraction (at least 10 calls).",
        example="0.2",
    )
    alert_budget_usd: float | None = _env(
        "CHATOBS_ALERT_BUDGET_USD",
        default=None,
        gt=0,
        doc="Alert when the LLM cost of one conversation, user or tenant (`CHATOBS_ALERT_BUDGET_BY`) over `CHATOBS_ALERT_BUDGET_WINDOW_S` exceeds this.",
        example="2.50",
    )
    alert_budget_by: Literal["conversation", "user", "tenant"] = _env(
        "CHATOBS_ALERT_BUDGET_BY",
        default="conversation",
        doc="Whose cost `CHATOBS_ALERT_BUDGET_USD` limits: `conversation`, `user` or `tenant`.",
        example="tenant",
    )
    alert_budget_window_s: float = _env(
        "CHATOBS_ALERT_BUDGET_WINDOW_S",
        default=86400.0,
        gt=0,
        doc="Window of the budget rule, seconds.",
        example="3600",
    )
    alert_spike_factor: float | None = _env(
        "CHATOBS_ALERT_SPIKE_FACTOR",
        default=None,
        gt=1,
        doc="Alert when cost or tokens in the current window exceed this multiple of the average of the previous 12 windows.",
        example="3",
    )
    alert_latency_p95_ms: float | None = _env(
        "CHATOBS_ALERT_LATENCY_P95_MS",
        default=None,
        gt=0,
        doc="Alert when the 95th percentile LLM call duration over the window exceeds this.",
        example="8000",
    )
    alert_webhook_max_per_minute: int = _env(
        "CHATOBS_ALERT_WEBHOOK_MAX_PER_MINUTE",
        default=20,
        ge=1,
        doc="Most webhook POSTs per minute; further alerts are dropped and counted (the log still has them).",
        example="60",
    )
    alert_webhook_timeout_s: float = _env(
        "CHATOBS_ALERT_WEBHOOK_TIMEOUT_S",
        default=5.0,
        gt=0,
        doc="Timeout of one webhook POST; a failed POST is retried three times with backoff.",
        example="2",
    )

    alert_negative_feedback: float | None = _env(
        "CHATOBS_ALERT_NEGATIVE_FEEDBACK",
        default=None,
        gt=0,
        le=1,
        doc="Alert when the share of negative user feedback (thumbs down, a number <= 0, a negative category) over `CHATOBS_ALERT_NEGATIVE_FEEDBACK_WINDOW_S` exceeds this fraction (see docs/feedback.md).",
        example="0.3",
    )
    alert_negative_feedback_window_s: float = _env(
        "CHATOBS_ALERT_NEGATIVE_FEEDBACK_WINDOW_S",
        default=3600.0,
        gt=0,
        doc="Window of the negative-feedback alert: ratings given in the last this many seconds.",
        example="86400",
    )
    alert_negative_feedback_min_count: int = _env(
        "CHATOBS_ALERT_NEGATIVE_FEEDBACK_MIN_COUNT",
        default=10,
        ge=1,
        doc="Fewest ratings in the window before the negative-feedback alert can fire.",
        example="20",
    )

    # --- User feedback ------------------------------------------------------------------------------------------
    feedback_key: SecretStr | None = _env(
        "CHATOBS_FEEDBACK_KEY",
        default=None,
        secret=True,
        doc="Key that signs the feedback tokens handed out beside trace IDs. Unset: a random key kept in `feedback.key` (mode 0600) in the agent directory, shared by every worker of the host; set it (the same everywhere) when several hosts serve one app.",
        example="a-long-random-string",
    )
    feedback_token_header: str = _env(
        "CHATOBS_FEEDBACK_TOKEN_HEADER",
        default="X-Feedback-Token",
        doc="Response header carrying a chat turn's feedback token (beside the trace ID header); empty disables it (`chatobs.feedback_token()` still works).",
        example="X-Rating-Token",
    )
    feedback_max_age_hours: float = _env(
        "CHATOBS_FEEDBACK_MAX_AGE_HOURS",
        default=24.0,
        gt=0,
        doc="How long after a turn the feedback route accepts a rating of it.",
        example="168",
    )
    feedback_max_comment_chars: int = _env(
        "CHATOBS_FEEDBACK_MAX_COMMENT_CHARS",
        default=2000,
        ge=0,
        le=100000,
        doc="Longest feedback comment accepted (longer: 400 from the route, ValueError from `chatobs.feedback()`).",
        example="500",
    )
    feedback_max_body_bytes: int = _env(
        "CHATOBS_FEEDBACK_MAX_BODY_BYTES",
        default=8192,
        ge=256,
        doc="Largest body the feedback route reads (larger: 413, unread).",
        example="4096",
    )
    feedback_rate_per_minute: float = _env(
        "CHATOBS_FEEDBACK_RATE_PER_MINUTE",
        default=20.0,
        gt=0,
        doc="Ratings the feedback route accepts per client address and minute (bursts of as many; then 429).",
        example="60",
    )

    # --- Agent --------------------------------------------------------------------------------------------------
    agent: Literal["auto", "connect", "inprocess"] = _env(
        "CHATOBS_AGENT",
        default="auto",
        doc="Where the pipeline runs: `auto` = in the chatobs agent for this configuration, started detached when none answers (one per host, user and configuration); `connect` = in an agent the user runs (`chatobs agent`: sidecar, systemd), never started by the app; `inprocess` = on a thread of this process (single-process scripts, tests). `init()` with exporters passed in always runs in process.",
        example="connect",
    )
    agent_dir: Path | None = _env(
        "CHATOBS_AGENT_DIR",
        default=None,
        doc="Directory of the agent's socket; default `$XDG_RUNTIME_DIR/chatobs`, else `/tmp/chatobs-<uid>`. Created with mode 0700; one owned by another user or open to group/other is refused (spans are then dropped and counted).",
        example="/run/chatobs",
    )
    agent_queue_size: int = _env(
        "CHATOBS_AGENT_QUEUE_SIZE",
        default=8192,
        ge=16,
        doc="Finished spans an app process holds for the agent (while it is slow, restarting or unreachable); past it new spans are dropped and counted.",
        example="20000",
    )
    agent_idle_exit_s: float = _env(
        "CHATOBS_AGENT_IDLE_EXIT_S",
        default=300.0,
        ge=0,
        doc="An agent started by an app exits after this long without connected processes; 0 = never. A user-run `chatobs agent` does not exit unless given `--idle-exit`.",
        example="60",
    )

    # --- validation ---------------------------------------------------------------------------------------------
    @field_validator(
        "exclude_paths",
        "chat_routes",
        "conversation_fields",
        "user_fields",
        "tenant_fields",
        "message_fields",
        "parent_message_fields",
        "instrument",
        "pii_entities",
        "pii_allow_list",
        "redact_attributes",
        "capture_headers",
        "exporters",
        "http_llm_hosts",
        "http_llm_providers",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("chat_routes")
    @classmethod
    def _chat_routes(cls, value: list[str]) -> list[str]:
        from .middleware.routes import parse_route

        for entry in value:
            parse_route(entry)
        return value

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

    @field_validator("user_jwt_claim")
    @classmethod
    def _jwt_claim(cls, value: str | None) -> str | None:
        value = (value or "").strip() or None
        if value is not None:
            import importlib.util

            if importlib.util.find_spec("jwt") is None:
                raise ValueError("needs PyJWT to read the token: pip install pyjwt, or unset it")
        return value

    @field_validator("instrument")
    @classmethod
    def _known_instruments(cls, value: list[str]) -> list[str]:
        names = [v.lower() for v in value]
        bad = [v for v in names if v not in INSTRUMENT_NAMES]
        if bad:
            raise ValueError(f"unknown SDK {bad[0]!r}; expected a comma list of {', '.join(INSTRUMENT_NAMES)}")
        return names

    @field_validator("http_llm_providers")
    @classmethod
    def _host_pairs(cls, value: list[str]) -> list[str]:
        for pair in value:
            host, _, provider = pair.partition("=")
            if not host.strip() or not provider.strip():
                raise ValueError(f"expected host=provider pairs separated by commas, got {pair!r}")
        return value

    @field_validator(
        "pii",
        "sample_by",
        "otlp_protocol",
        "otlp_compression",
        "masking_worker",
        "alert_budget_by",
        "agent",
        mode="before",
    )
    @classmethod
    def _lower(cls, value: Any) -> Any:
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

    @field_validator("otel_traces_sampler")
    @classmethod
    def _known_sampler(cls, value: str | None) -> str | None:
        if value is None:
            return None
        known = (
            "always_on",
            "always_off",
            "traceidratio",
            "parentbased_always_on",
            "parentbased_always_off",
            "parentbased_traceidratio",
        )
        v = value.strip().lower()
        if v not in known:
            raise ValueError(f"expected one of {', '.join(known)}")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        if self.otel_traces_sampler_arg is not None and self.otel_traces_sampler in (
            "traceidratio",
            "parentbased_traceidratio",
        ):
            try:
                ratio = float(self.otel_traces_sampler_arg)
            except ValueError:
                raise ValueError("OTEL_TRACES_SAMPLER_ARG: expected a number in [0, 1]") from None
            if not 0.0 <= ratio <= 1.0:
                raise ValueError("OTEL_TRACES_SAMPLER_ARG: expected a number in [0, 1]")
        if self.hash_user_ids and self.hash_secret is None:
            raise ValueError(
                "CHATOBS_HASH_SECRET: required when CHATOBS_HASH_USER_IDS=true (the key of the user-ID hash)"
            )
        if "hash" in self.pii_operator and self.hash_secret is None:
            raise ValueError("CHATOBS_HASH_SECRET: required when CHATOBS_PII_OPERATOR uses `hash`")
        for path_field in ("pricing_file", "pii_recognizers_file", "alerts_file"):
            path = getattr(self, path_field)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{env_name(path_field)}: file {str(path)!r} does not exist")
        if self.alerts_file is not None:
            from .pipeline.alerts import load_rules

            load_rules(self.alerts_file)  # a bad rule fails init() here, naming the file, the rule and the field
        if self.alert_webhook_url is not None and not self.alert_webhook_url.get_secret_value().startswith(
            ("http://", "https://")
        ):
            raise ValueError("CHATOBS_ALERT_WEBHOOK_URL: expected an http:// or https:// URL")
        return self

    # --- derived values -----------------------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.enabled and not self.sdk_disabled

    @property
    def pii_mode(self) -> str:
        return "off" if not self.sanitize_pii else self.pii


def field_meta(info: FieldInfo | None) -> dict[str, Any]:
    """What ``_env`` put in a field's ``json_schema_extra`` (doc, example, env, secret); pydantic types it loosely."""
    extra = info.json_schema_extra if info is not None else None
    return extra if isinstance(extra, dict) else {}


def env_name(field: str) -> str:
    """The variable a user sets for a field (its first alias)."""
    extra = field_meta(Settings.model_fields.get(field))
    if not extra:
        return field
    return str(extra["env"][0])


def _describe_error(err: ErrorDetails, env_values: dict[str, str], overrides: dict[str, Any]) -> str:
    loc = [str(p) for p in err.get("loc", ())]
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    if not loc:
        # Model-level checks already start with the variable name.
        return msg
    field = _ALIAS_TO_FIELD.get(loc[0].upper(), loc[0])
    if field in overrides:
        name, value = f"{field} (init argument)", overrides[field]
    else:
        name = env_name(field)
        info = Settings.model_fields.get(field)
        extra = field_meta(info)
        names = extra["env"] if extra else [field]
        name = next((n for n in names if n.upper() in env_values), name)
        value = env_values.get(name.upper(), err.get("input"))
        if field not in Settings.model_fields:
            return f"{field}: unknown setting"
    info = Settings.model_fields.get(field)
    if info is not None and info.json_schema_extra and info.json_schema_extra.get("secret"):  # type: ignore[union-attr]
        value = "***"
    return f"{name}={value!r}: {msg}"


_ALIAS_TO_FIELD = {
    alias.upper(): name for name, info in Settings.model_fields.items() for alias in field_meta(info).get("env", [])
}


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (plus ``overrides``) and validate everything, or raise one ``ConfigError``."""
    env_values = {k.upper(): v for k, v in os.environ.items()}
    unknown = [k for k in overrides if k not in Settings.model_fields]
    if unknown:
        raise ConfigError(f"chatobs.init(): unknown setting {unknown[0]!r}; see docs/configuration.md for the names")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = [_describe_error(e, env_values, overrides) for e in exc.errors()]
        raise ConfigError("invalid chatobs configuration: " + "; ".join(problems)) from None


def render_markdown() -> str:
    """docs/configuration.md, generated from the fields above."""
    lines = [
        "# Configuration",
        "",
        "Every setting is read from the environment when `chatobs.init()` runs; `chatobs.init(name=value)` overrides",
        "it (use the *init name*). A bad value makes `init()` raise `chatobs.ConfigError` naming the variable, the value",
        "and what is expected. Secrets are never logged. This page is generated from `chatobs/config.py`",
        "(`python -m chatobs.config > docs/configuration.md`) and a test checks it is current.",
        "",
    ]
    section = None
    sections = _sections()
    for name, info in Settings.model_fields.items():
        extra = field_meta(info)
        if sections.get(name) and sections[name] != section:
            section = sections[name]
            lines += [
                "",
                f"## {section}",
                "",
                "| Variable | init name | Default | Example | Meaning |",
                "|---|---|---|---|---|",
            ]
        env = " / ".join(f"`{n}`" for n in extra["env"])
        default = info.default
        if isinstance(default, list):
            default = ",".join(default) if default else ""
        shown = "" if default is None or default == "" else f"`{default}`"
        example = f"`{extra.get('example')}`" if extra.get("example") else ""
        lines.append(f"| {env} | `{name}` | {shown} | {example} | {extra['doc']} |")
    return "\n".join(lines) + "\n"


def _sections() -> dict[str, str]:
    """Map the first field of each section to the section's title, from the comment headers above."""
    import inspect
    import re

    source = inspect.getsource(Settings)
    result: dict[str, str] = {}
    pending: str | None = None
    for line in source.splitlines():
        header = re.match(r"\s*# --- (.+?) -+$", line)
        if header:
            pending = header.group(1)
            continue
        field = re.match(r"\s*(\w+): .+ = _env\(", line)
        if field and pending:
            result[field.group(1)] = pending
            pending = None
    return result


if __name__ == "__main__":
    print(render_markdown(), end="")
