"""Metrics stage: turns finished spans into OpenTelemetry metrics (tokens, cost, latency, tool health, requests).

It runs on the pipeline thread after the cost stage and before sampling, so every span is counted whether or not its
trace is kept: chatobs's own spans of a dropped trace still reach the pipeline (as light spans, see chatobs.recording.light_spans, or
recorded in full with ``CHATOBS_RECORD_UNSAMPLED=full``) and the sampling stage discards them only after this one. The request path pays nothing for metrics.

chatobs owns its ``MeterProvider`` and never replaces the app's global one. Readers: OTLP push when
``OTEL_METRICS_EXPORTER`` contains ``otlp``; a Prometheus registry (private, not ``prometheus_client.REGISTRY``) served on
127.0.0.1 when ``CHATOBS_PROMETHEUS_PORT`` is set or ``OTEL_METRICS_EXPORTER`` contains ``prometheus``, and always
mountable in the app via :func:`asgi_app` / :func:`wsgi_app`; readers handed to :func:`register_reader` (tests).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from ... import __version__
from ...core import semconv
from ...core.guard import guard, log_limited
from ...core.hashing import user_id_hasher
from ...core.spans import attributes_of, owns_tool_call
from ...core.stats import STATS
from .series import Direct, Series

if TYPE_CHECKING:
    from ...config import Settings

logger = logging.getLogger("chatobs")

__all__ = [
    "INSTRUMENTS",
    "MetricsStage",
    "Recorder",
    "asgi_app",
    "build",
    "current",
    "normalize_model",
    "register_reader",
    "render_prometheus",
    "wsgi_app",
]

LLM_OPERATIONS = frozenset(
    {semconv.OP_CHAT, semconv.OP_TEXT_COMPLETION, semconv.OP_EMBEDDINGS, semconv.OP_GENERATE_CONTENT}
)
TOOL_CALL_METHOD = "tools/call"
OTHER = "_OTHER"

# Bucket boundaries recommended by the GenAI semantic conventions.
DURATION_BUCKETS_S = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
TTFC_BUCKETS_S = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96)
TOOL_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)

# name -> (kind, unit, description). docs/metrics.md and the dashboard test are checked against this table.
INSTRUMENTS: dict[str, tuple[str, str, str]] = {
    "gen_ai.client.token.usage": (
        "histogram",
        "{token}",
        "Tokens per LLM call, by gen_ai.token.type (input/output), model, provider.",
    ),
    "gen_ai.client.operation.duration": (
        "histogram",
        "s",
        "Duration of LLM calls, by operation, model, provider and error.type.",
    ),
    "gen_ai.client.operation.time_to_first_chunk": (
        "histogram",
        "s",
        "Time to the first streamed chunk of streamed LLM calls.",
    ),
    "chatobs.cost.usd": ("counter", "{USD}", "LLM cost in US dollars, by model, provider and tenant."),
    "mcp.client.operation.duration": (
        "histogram",
        "s",
        "Duration of MCP requests made by the app, by method, tool, server and error.type.",
    ),
    "mcp.server.operation.duration": (
        "histogram",
        "s",
        "Duration of MCP requests handled by an instrumented MCP server.",
    ),
    "mcp.tool.invocations": (
        "counter",
        "{invocation}",
        "MCP tool calls, each counted once by the span that owns it, by tool, server and chatobs.tool.status (ok/error).",
    ),
    "mcp.tool.errors": ("counter", "{invocation}", "Failed MCP tool calls, by tool, server and error.type."),
    "mcp.tool.duration": (
        "histogram",
        "ms",
        "Duration of MCP tool calls, each counted once by the span that owns it, by tool, server and status.",
    ),
    "http.server.request.duration": (
        "histogram",
        "s",
        "Duration of chat requests, by method, route, status code and error.type.",
    ),
    "chatobs.pipeline.queue.size": ("gauge", "{span}", "Spans waiting for the background pipeline."),
    "chatobs.exporter.queue.size": ("gauge", "{span}", "Spans waiting per exporter, by chatobs.exporter."),
    "chatobs.pipeline.spans.received": ("observable_counter", "{span}", "Spans handed to the pipeline."),
    "chatobs.pipeline.spans.exported": ("observable_counter", "{span}", "Spans exported, by chatobs.exporter."),
    "chatobs.pipeline.spans.dropped": (
        "observable_counter",
        "{span}",
        "Spans dropped, by chatobs.drop.where (pipeline or exporter) and chatobs.drop.reason.",
    ),
    "chatobs.pipeline.export.failures": ("observable_counter", "{call}", "Failed export calls, by chatobs.exporter."),
    "chatobs.pipeline.masking.failures": (
        "observable_counter",
        "{span}",
        "Spans whose masking failed (dropped, never exported unmasked).",
    ),
    "chatobs.alerts": (
        "counter",
        "{alert}",
        "Alerts fired, by chatobs.alert.rule and chatobs.alert.type (including ones held back by the cooldown).",
    ),
}

# Distinct values kept per metric attribute before new ones are folded into "_OTHER": the SDK has no cardinality limit.
_LIMITS = {
    semconv.GEN_AI_REQUEST_MODEL: 200,
    semconv.GEN_AI_PROVIDER_NAME: 50,
    semconv.TENANT_ID: 1000,
    semconv.USER_ID: 2000,
    semconv.GEN_AI_TOOL_NAME: 500,
    semconv.MCP_SERVER_NAME: 100,
    semconv.MCP_METHOD_NAME: 50,
    semconv.HTTP_ROUTE: 200,
    semconv.ERROR_TYPE: 100,
    semconv.ALERT_RULE: 200,
}
_MAX_VALUE_LEN = 128
_LABEL_CACHE_SIZE = 2048  # distinct raw label sets remembered per kind of span; cleared (and rebuilt) when full

# Date and version-pin suffixes that make one model look like many: gpt-4o-2024-08-06, claude-3-5-sonnet-20241022,
# claude-3-5-sonnet@20240620 (Vertex), gpt-4-0613 / gpt-3.5-turbo-0125 (OpenAI's MMDD pins).
_DATE_SUFFIX = re.compile(r"(?:[-@_](?:20\d{2}-?[01]\d-?[0-3]\d)|-(?:0[1-9]|1[0-2])[0-3]\d)$")


def normalize_model(name: Any) -> str:
    """Model name as a metric attribute: lower case, without provider path prefixes or date pins."""
    if not name:
        return ""
    model = str(name).strip().lower()
    if model.startswith("models/"):  # Gemini's resource names
        model = model[len("models/") :]
    model = _DATE_SUFFIX.sub("", model) or model
    return model[:_MAX_VALUE_LEN]


class _Cardinality:
    """Keeps the first N distinct values of each attribute; later ones become "_OTHER" (memory stays bounded)."""

    def __init__(self) -> None:
        self._seen: dict[str, set[str]] = {}

    def __call__(self, key: str, value: Any) -> str:
        v = str(value)[:_MAX_VALUE_LEN]
        limit = _LIMITS.get(key)
        if limit is None:
            return v
        seen = self._seen.setdefault(key, set())
        if v in seen:
            return v
        if len(seen) >= limit:
            return OTHER
        seen.add(v)
        return v


# --- readers contributed from outside (tests, embedding apps) --------------------------------------------------------
_extra_readers: list[MetricReader] = []
_current: Recorder | None = None
_current_lock = threading.Lock()


def register_reader(reader: MetricReader) -> Callable[[], None]:
    """Add ``reader`` (e.g. the SDK's ``InMemoryMetricReader``) to chatobs's MeterProvider from the next ``init()`` on.

    Returns a function that removes it again. A reader belongs to one provider: pass a fresh one per ``init()``.
    """
    _extra_readers.append(reader)

    def remove() -> None:
        if reader in _extra_readers:
            _extra_readers.remove(reader)

    return remove


def current() -> Recorder | None:
    """The running metrics recorder, or ``None`` when chatobs (or its metrics) is not running."""
    return _current


def _exporter_names(settings: Settings) -> set[str]:
    return set((settings.otel_metrics_exporter or "").split(",")) - {""}


class Recorder:
    """chatobs's MeterProvider, its readers and instruments; ``record(span)`` turns one finished span into measurements."""

    def __init__(self, settings: Settings, readers: Iterable[MetricReader] = ()) -> None:
        from ...runtime.wiring import _build_resource

        self.settings = settings
        self._with_user = settings.metrics_user_attribute
        self._user = user_id_hasher(settings)
        self._attr = _Cardinality()
        # Raw span values -> ready series, per kind of span; and raw user ID -> its (maybe hashed) label.
        self._llm_labels: dict[Any, Any] = {}
        self._cost_labels: dict[Any, Any] = {}
        self._mcp_labels: dict[Any, Any] = {}
        self._request_labels: dict[Any, Any] = {}
        self._users: dict[Any, str] = {}
        self.prometheus_registry: Any = None
        self._http_server: Any = None
        self.prometheus_port: int | None = None
        all_readers = list(readers) + self._build_readers(settings)
        self.provider = MeterProvider(resource=_build_resource(settings), metric_readers=all_readers)
        self._direct = Direct(self.provider)
        meter = self.provider.get_meter("chatobs", __version__)
        hist, counter = meter.create_histogram, meter.create_counter

        def d(name: str) -> dict[str, str]:
            return {"name": name, "unit": INSTRUMENTS[name][1], "description": INSTRUMENTS[name][2]}

        self.token_usage = hist(**d("gen_ai.client.token.usage"), explicit_bucket_boundaries_advisory=TOKEN_BUCKETS)
        self.llm_duration = hist(
            **d("gen_ai.client.operation.duration"), explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S
        )
        self.ttfc = hist(
            **d("gen_ai.client.operation.time_to_first_chunk"), explicit_bucket_boundaries_advisory=TTFC_BUCKETS_S
        )
        self.cost = counter(**d("chatobs.cost.usd"))
        self.mcp_client_duration = hist(
            **d("mcp.client.operation.duration"), explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S
        )
        self.mcp_server_duration = hist(
            **d("mcp.server.operation.duration"), explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S
        )
        self.tool_invocations = counter(**d("mcp.tool.invocations"))
        self.tool_errors = counter(**d("mcp.tool.errors"))
        self.tool_duration = hist(**d("mcp.tool.duration"), explicit_bucket_boundaries_advisory=TOOL_BUCKETS_MS)
        self.request_duration = hist(
            **d("http.server.request.duration"), explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S
        )
        self.alerts = counter(**d("chatobs.alerts"))
        meter.create_observable_gauge(**d("chatobs.pipeline.queue.size"), callbacks=[self._observe_queue])
        meter.create_observable_gauge(**d("chatobs.exporter.queue.size"), callbacks=[self._observe_exporter_queues])
        meter.create_observable_counter(**d("chatobs.pipeline.spans.received"), callbacks=[self._observe_received])
        meter.create_observable_counter(**d("chatobs.pipeline.spans.exported"), callbacks=[self._observe_exported])
        meter.create_observable_counter(**d("chatobs.pipeline.spans.dropped"), callbacks=[self._observe_dropped])
        meter.create_observable_counter(**d("chatobs.pipeline.export.failures"), callbacks=[self._observe_failures])
        meter.create_observable_counter(**d("chatobs.pipeline.masking.failures"), callbacks=[self._observe_masking])
        self._start_prometheus_server(settings)

    # --- readers --------------------------------------------------------------------------------------------------
    def _build_readers(self, settings: Settings) -> list[MetricReader]:
        readers: list[MetricReader] = []
        names = _exporter_names(settings)
        if "otlp" in names:
            with guard("OTLP metrics exporter"):
                readers.append(self._otlp_reader(settings))
        if "console" in names:
            from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader

            readers.append(
                PeriodicExportingMetricReader(
                    ConsoleMetricExporter(), export_interval_millis=settings.metrics_export_interval_ms
                )
            )
        try:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
            from prometheus_client import CollectorRegistry
        except ImportError:
            if settings.prometheus_port or "prometheus" in names:
                logger.warning(
                    "chatobs: Prometheus metrics need `pip install chatobs[prometheus]` (opentelemetry-exporter-prometheus)"
                )
            return readers
        # A private registry: the app's own prometheus_client metrics stay out of chatobs's endpoint and vice versa.
        self.prometheus_registry = CollectorRegistry(auto_describe=True)
        readers.append(PrometheusMetricReader(registry=self.prometheus_registry))
        return readers

    @staticmethod
    def _otlp_reader(settings: Settings) -> MetricReader:
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        from ...export.otlp import _timeout_s, parse_headers

        headers = parse_headers(settings.otlp_headers.get_secret_value() if settings.otlp_headers else None)
        timeout = _timeout_s(settings)
        if settings.otlp_protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter

            endpoint = settings.otlp_metrics_endpoint or settings.otlp_endpoint or "http://localhost:4317"
            exporter: Any = GrpcMetricExporter(
                endpoint=endpoint, headers=headers or None, timeout=timeout, insecure=endpoint.startswith("http://")
            )
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            if settings.otlp_metrics_endpoint:
                endpoint = settings.otlp_metrics_endpoint
            elif settings.otlp_endpoint:
                endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/metrics"
            else:
                endpoint = "http://localhost:4318/v1/metrics"
            exporter = OTLPMetricExporter(
                endpoint=endpoint,
                headers=headers or None,
                timeout=timeout,
                certificate_file=str(settings.otlp_certificate) if settings.otlp_certificate else None,
            )
        return PeriodicExportingMetricReader(exporter, export_interval_millis=settings.metrics_export_interval_ms)

    def _start_prometheus_server(self, settings: Settings) -> None:
        port = settings.prometheus_port
        if port is None and "prometheus" in _exporter_names(settings):
            port = 9464  # the OTel spec's default Prometheus exporter port
        if port is None or self.prometheus_registry is None:
            return
        from prometheus_client import start_http_server

        try:
            # Loopback only: metrics name models, tools and tenants; exposing them is the operator's explicit choice.
            self._http_server, _ = start_http_server(port, addr="127.0.0.1", registry=self.prometheus_registry)
            self.prometheus_port = self._http_server.server_address[1]
        except OSError as exc:
            logger.warning(
                "chatobs: CHATOBS_PROMETHEUS_PORT=%s: cannot serve Prometheus metrics (%s); mount chatobs.processing.metrics.recorder.asgi_app instead",
                port,
                exc,
            )

    # --- observable instruments (run when a reader collects, on the reader's thread) -----------------------------
    @staticmethod
    def _runtime() -> Any:
        from ...runtime.wiring import get_runtime

        return get_runtime()

    def _observe_queue(self, _: CallbackOptions) -> Iterator[Observation]:
        rt = self._runtime()
        if rt is not None:
            yield Observation(len(getattr(rt.pipeline, "_inbox", ())))

    def _observe_exporter_queues(self, _: CallbackOptions) -> Iterator[Observation]:
        rt = self._runtime()
        for ch in getattr(rt, "channels", None) or ():
            yield Observation(ch.pending(), {semconv.EXPORTER: ch.name})

    def _observe_received(self, _: CallbackOptions) -> Iterator[Observation]:
        yield Observation(STATS.received)

    def _observe_exported(self, _: CallbackOptions) -> Iterator[Observation]:
        for name, n in list(STATS.exported.items()):
            yield Observation(n, {semconv.EXPORTER: name})

    def _observe_dropped(self, _: CallbackOptions) -> Iterator[Observation]:
        for (where, reason), n in list(STATS.dropped.items()):
            yield Observation(n, {semconv.DROP_WHERE: where, semconv.DROP_REASON: reason})

    def _observe_failures(self, _: CallbackOptions) -> Iterator[Observation]:
        for name, n in list(STATS.failed.items()):
            yield Observation(n, {semconv.EXPORTER: name})

    def _observe_masking(self, _: CallbackOptions) -> Iterator[Observation]:
        yield Observation(masking_failures())

    # --- recording ------------------------------------------------------------------------------------------------
    # A turn records the same few attribute sets again and again: each distinct set of raw span values maps, through a
    # bounded cache, to its ready-made series (attributes built, cardinality-limited and hashed once). A cache entry
    # only ever repeats what recomputing it would give: the cardinality limiter's answer for a value never changes.
    def record(self, span: ReadableSpan) -> None:
        attrs = attributes_of(span)  # the span's own dict: read, never changed
        end, start = span.end_time, span.start_time
        if end is None or start is None:
            return
        if attrs.get(semconv.MCP_METHOD_NAME) is not None:
            self._record_mcp(span, attrs, max(0.0, (end - start) / 1e9))
        elif _is_llm(attrs):
            self._record_llm(span, attrs, max(0.0, (end - start) / 1e9))
        elif attrs.get(semconv.CHAT_REQUEST):
            self._record_request(span, attrs, max(0.0, (end - start) / 1e9))

    def _series(self, instrument: Any, attributes: dict[str, Any], counter: bool = False) -> Series:
        return Series(instrument, attributes, self._direct, counter=counter)

    def _cached(self, cache: dict[Any, Any], key: Any, build: Callable[[], Any]) -> Any:
        try:
            found = cache.get(key)
        except TypeError:  # an unhashable attribute value (a list from a custom processor): not cached
            return build()
        if found is None:
            found = build()
            if len(cache) >= _LABEL_CACHE_SIZE:
                cache.clear()
            cache[key] = found
        return found

    def _user_label(self, user: Any) -> str:
        return self._cached(self._users, user, lambda: self._attr(semconv.USER_ID, self._user(user)))

    def _identity(self, attrs: Any, out: dict[str, Any]) -> None:
        if attrs.get(semconv.TENANT_ID):
            out[semconv.TENANT_ID] = self._attr(semconv.TENANT_ID, attrs[semconv.TENANT_ID])
        if self._with_user and attrs.get(semconv.USER_ID):
            out[semconv.USER_ID] = self._user_label(attrs[semconv.USER_ID])

    def _llm_base(self, attrs: Any) -> dict[str, Any]:
        a = self._attr
        base: dict[str, Any] = {
            semconv.GEN_AI_OPERATION_NAME: a(
                semconv.GEN_AI_OPERATION_NAME, attrs.get(semconv.GEN_AI_OPERATION_NAME) or semconv.OP_CHAT
            ),
            semconv.GEN_AI_PROVIDER_NAME: a(semconv.GEN_AI_PROVIDER_NAME, provider_of(attrs)),
            semconv.GEN_AI_REQUEST_MODEL: a(semconv.GEN_AI_REQUEST_MODEL, model_of(attrs)),
        }
        if self._with_user and attrs.get(semconv.USER_ID):
            base[semconv.USER_ID] = self._user_label(attrs[semconv.USER_ID])
        return base

    def _record_llm(self, span: ReadableSpan, attrs: Any, duration_s: float) -> None:
        user = attrs.get(semconv.USER_ID) if self._with_user else None
        err = error_type(span, attrs)
        labels = (
            attrs.get(semconv.GEN_AI_OPERATION_NAME),
            attrs.get(semconv.GEN_AI_PROVIDER_NAME),
            attrs.get(semconv.GEN_AI_SYSTEM),
            attrs.get(semconv.GEN_AI_REQUEST_MODEL),
            attrs.get(semconv.GEN_AI_RESPONSE_MODEL),
            user,
        )

        def build() -> tuple[Series, Series, Series, Series]:
            base = self._llm_base(attrs)
            duration = {**base, semconv.ERROR_TYPE: self._attr(semconv.ERROR_TYPE, err)} if err else base
            return (
                self._series(self.llm_duration, duration),
                self._series(self.token_usage, {**base, semconv.GEN_AI_TOKEN_TYPE: "input"}),
                self._series(self.token_usage, {**base, semconv.GEN_AI_TOKEN_TYPE: "output"}),
                self._series(self.ttfc, base),
            )

        duration, tokens_in, tokens_out, ttfc_series = self._cached(self._llm_labels, (labels, err), build)
        duration.record(duration_s)
        n = _number(attrs.get(semconv.GEN_AI_USAGE_INPUT_TOKENS))
        if n is not None and n >= 0:
            tokens_in.record(n)
        n = _number(attrs.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS))
        if n is not None and n >= 0:
            tokens_out.record(n)
        ttfc = _number(attrs.get(semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK))
        if ttfc is not None and ttfc >= 0:
            ttfc_series.record(ttfc)
        cost = _number(attrs.get(semconv.COST_USD))
        if cost is not None and cost > 0:
            # Its own cache: the tenant enters the cardinality limiter only with a cost, as it always has.
            def build_cost() -> Series:
                cost_attrs = self._llm_base(attrs)
                self._identity(attrs, cost_attrs)
                return self._series(self.cost, cost_attrs, counter=True)

            self._cached(self._cost_labels, (labels, attrs.get(semconv.TENANT_ID)), build_cost).record(cost)

    def _record_mcp(self, span: ReadableSpan, attrs: Any, duration_s: float) -> None:
        err = error_type(span, attrs)
        server_side = span.kind == SpanKind.SERVER
        method = attrs.get(semconv.MCP_METHOD_NAME)
        owns = owns_tool_call(span, attrs)
        key = (
            method,
            attrs.get(semconv.GEN_AI_TOOL_NAME),
            attrs.get(semconv.MCP_SERVER_NAME),
            attrs.get(semconv.NETWORK_TRANSPORT),
            err,
            server_side,
            owns,
        )

        def build() -> tuple[Series, Series | None, Series | None, Series | None]:
            a = self._attr
            out: dict[str, Any] = {semconv.MCP_METHOD_NAME: a(semconv.MCP_METHOD_NAME, str(method))}
            tool = attrs.get(semconv.GEN_AI_TOOL_NAME)
            if tool:
                out[semconv.GEN_AI_TOOL_NAME] = a(semconv.GEN_AI_TOOL_NAME, tool)
            server = attrs.get(semconv.MCP_SERVER_NAME)
            if server:
                out[semconv.MCP_SERVER_NAME] = a(semconv.MCP_SERVER_NAME, server)
            if attrs.get(semconv.NETWORK_TRANSPORT):
                out[semconv.NETWORK_TRANSPORT] = str(attrs[semconv.NETWORK_TRANSPORT])[:32]
            with_err = {**out, semconv.ERROR_TYPE: a(semconv.ERROR_TYPE, err)} if err else out
            operation = self._series(self.mcp_server_duration if server_side else self.mcp_client_duration, with_err)
            if not owns:
                # Not a tool call, or the server side of one a chatobs client already counts (spans.owns_tool_call).
                return operation, None, None, None
            tool_attrs = {
                semconv.GEN_AI_TOOL_NAME: out.get(semconv.GEN_AI_TOOL_NAME, ""),
                semconv.MCP_SERVER_NAME: out.get(semconv.MCP_SERVER_NAME, ""),
                semconv.TOOL_STATUS: "error" if err else "ok",
            }
            errors = (
                self._series(
                    self.tool_errors, {**tool_attrs, semconv.ERROR_TYPE: with_err[semconv.ERROR_TYPE]}, counter=True
                )
                if err
                else None
            )
            return (
                operation,
                self._series(self.tool_invocations, tool_attrs, counter=True),
                self._series(self.tool_duration, tool_attrs),
                errors,
            )

        duration, invocations, tool_duration, errors = self._cached(self._mcp_labels, key, build)
        duration.record(duration_s)
        if invocations is None or tool_duration is None:
            return
        invocations.record(1)
        tool_duration.record(duration_s * 1000.0)
        if errors is not None:
            errors.record(1)

    def _record_request(self, span: ReadableSpan, attrs: Any, duration_s: float) -> None:
        err = error_type(span, attrs)
        route_attr = attrs.get(semconv.HTTP_ROUTE)
        user = attrs.get(semconv.USER_ID) if self._with_user else None
        key = (
            route_attr,
            None if route_attr else (attrs.get(semconv.ROUTE), attrs.get(semconv.URL_PATH)),
            attrs.get(semconv.HTTP_REQUEST_METHOD),
            attrs.get(semconv.HTTP_RESPONSE_STATUS_CODE),
            err,
            user,
        )

        def build() -> Series:
            a = self._attr
            route = route_attr or template_path(attrs.get(semconv.ROUTE) or attrs.get(semconv.URL_PATH) or "")
            out: dict[str, Any] = {semconv.HTTP_ROUTE: a(semconv.HTTP_ROUTE, route)}
            if attrs.get(semconv.HTTP_REQUEST_METHOD):
                out[semconv.HTTP_REQUEST_METHOD] = str(attrs[semconv.HTTP_REQUEST_METHOD])[:16]
            status = attrs.get(semconv.HTTP_RESPONSE_STATUS_CODE)
            if status is not None:
                out[semconv.HTTP_RESPONSE_STATUS_CODE] = _int_or_none(status) or 0
            if err:
                out[semconv.ERROR_TYPE] = a(semconv.ERROR_TYPE, err)
            if user:
                out[semconv.USER_ID] = self._user_label(user)
            return self._series(self.request_duration, out)

        self._cached(self._request_labels, key, build).record(duration_s)

    def count_alert(self, rule: str, kind: str) -> None:
        # Alerts are rare (and counted from another thread): the public API, no cache.
        self.alerts.add(1, {semconv.ALERT_RULE: self._attr(semconv.ALERT_RULE, rule), semconv.ALERT_TYPE: kind})

    # --- lifecycle ------------------------------------------------------------------------------------------------
    def force_flush(self, timeout_s: float = 5.0) -> bool:
        return self.provider.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        if self._http_server is not None:
            with guard("Prometheus endpoint shutdown"):
                self._http_server.shutdown()
                self._http_server.server_close()
            self._http_server = None
        with guard("metrics shutdown"):
            self.provider.shutdown(timeout_millis=2000)


# --- span classification (shared with the alerts stage) -------------------------------------------------------------
def _is_llm(attrs: Any) -> bool:
    op = attrs.get(semconv.GEN_AI_OPERATION_NAME)
    if op is not None:
        return op in LLM_OPERATIONS
    # Spans from other GenAI instrumentations that predate gen_ai.operation.name.
    return attrs.get(semconv.GEN_AI_REQUEST_MODEL) is not None and (
        attrs.get(semconv.GEN_AI_PROVIDER_NAME) is not None or attrs.get(semconv.GEN_AI_SYSTEM) is not None
    )


def is_llm_span(span: ReadableSpan) -> bool:
    attrs = span.attributes or {}
    return attrs.get(semconv.MCP_METHOD_NAME) is None and _is_llm(attrs)


def is_tool_call(span: ReadableSpan) -> bool:
    """An MCP ``tools/call`` span (either side)."""
    return (span.attributes or {}).get(semconv.MCP_METHOD_NAME) == TOOL_CALL_METHOD


def provider_of(attrs: Any) -> str:
    return str(attrs.get(semconv.GEN_AI_PROVIDER_NAME) or attrs.get(semconv.GEN_AI_SYSTEM) or "unknown")


def model_of(attrs: Any) -> str:
    return (
        normalize_model(attrs.get(semconv.GEN_AI_REQUEST_MODEL) or attrs.get(semconv.GEN_AI_RESPONSE_MODEL))
        or "unknown"
    )


def error_type(span: ReadableSpan, attrs: Any = None) -> str | None:
    """``error.type`` of a failed span: its attribute, a 5xx status, or ``_OTHER`` for an ERROR status."""
    if attrs is None:
        attrs = span.attributes or {}
    if attrs.get(semconv.ERROR_TYPE):
        return str(attrs[semconv.ERROR_TYPE])
    status = _int_or_none(attrs.get(semconv.HTTP_RESPONSE_STATUS_CODE))
    if status is not None and status >= 500:
        return str(status)
    if span.status is not None and span.status.status_code == StatusCode.ERROR:
        return OTHER
    return None


_ID_SEGMENT = re.compile(r"^(?!v\d+$)(?=.*\d).+$|^.{20,}$")  # "v1", "v2": API versions, not IDs


def template_path(path: str) -> str:
    """A raw path as a low-cardinality route when the framework gave no template: ID-like segments become ``{id}``.

    Segments with a digit or of 20+ characters (UUIDs, conversation IDs, hashes) would otherwise make a series each.
    """
    if not path:
        return ""
    parts = str(path).split("?", 1)[0].split("/")
    return "/".join("{id}" if _ID_SEGMENT.match(p) else p for p in parts)


def masking_failures() -> int:
    """Spans the masking stage could not mask: counted by it in ``STATS.events`` or as the stage's dropped batches."""
    n = sum(v for k, v in list(STATS.events.items()) if "mask" in k or "redact" in k)
    n += sum(v for (where, reason), v in list(STATS.dropped.items()) if reason == "stage_error:redaction")
    return n


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


# --- the stage ----------------------------------------------------------------------------------------------------
class MetricsStage:
    """Records every span; passes the batch on unchanged. A metrics failure never costs a span."""

    name = "metrics"
    pass_on_error = True

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def process(self, spans: list[ReadableSpan]) -> list[ReadableSpan]:
        record = self.recorder.record
        for span in spans:
            try:
                record(span)
            except Exception as exc:  # noqa: BLE001 - one odd span must not stop the rest of the batch
                log_limited(
                    "metrics-record",
                    "chatobs: could not record metrics for span %r: %s: %s",
                    span.name,
                    type(exc).__name__,
                    exc,
                )
        return spans

    def flush(self) -> list[ReadableSpan]:
        return []

    def shutdown(self) -> None:
        global _current
        with _current_lock:
            if _current is self.recorder:
                _current = None
        self.recorder.shutdown()


def build(settings: Settings) -> MetricsStage | None:
    global _current
    if not settings.metrics:
        return None
    recorder = Recorder(settings, readers=list(_extra_readers))
    with _current_lock:
        previous, _current = _current, recorder
    if previous is not None:
        # A leftover from an init() whose shutdown never ran (e.g. a failed init): free its port and threads.
        previous.shutdown()
    return MetricsStage(recorder)


# --- Prometheus text for a route mounted in the app -----------------------------------------------------------------
_NOT_RUNNING = b"# chatobs metrics are not running (chatobs.init() not called, or CHATOBS_METRICS=false)\n"


def render_prometheus() -> tuple[int, bytes, str]:
    """(status, body, content type) of the Prometheus exposition of chatobs's metrics."""
    rec = _current
    if rec is None:
        # With an agent the metrics live there, counting every process: ask it (the hand-off knows its socket).
        from ...runtime.wiring import get_runtime

        remote = getattr(getattr(get_runtime(), "pipeline", None), "prometheus_text", None)
        reply = remote() if remote is not None else None
        if reply is not None:
            return reply
    if rec is None or rec.prometheus_registry is None:
        return 503, _NOT_RUNNING, "text/plain; charset=utf-8"
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return 200, generate_latest(rec.prometheus_registry), CONTENT_TYPE_LATEST


async def asgi_app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    """ASGI app serving chatobs's metrics for Prometheus, e.g. ``app.mount("/metrics", asgi_app)``."""
    if scope.get("type") != "http":
        return
    try:
        status, body, ctype = render_prometheus()
    except Exception as exc:  # noqa: BLE001
        log_limited("metrics-route", "chatobs: metrics route failed: %s", exc)
        status, body, ctype = 500, b"# chatobs metrics failed\n", "text/plain; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """WSGI app serving chatobs's metrics for Prometheus (Flask: mount with ``DispatcherMiddleware``)."""
    try:
        status, body, ctype = render_prometheus()
    except Exception as exc:  # noqa: BLE001
        log_limited("metrics-route", "chatobs: metrics route failed: %s", exc)
        status, body, ctype = 500, b"# chatobs metrics failed\n", "text/plain; charset=utf-8"
    reason = {200: "OK", 500: "Internal Server Error", 503: "Service Unavailable"}[status]
    start_response(f"{status} {reason}", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]
