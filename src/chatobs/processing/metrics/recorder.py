"""The metrics recorder: turns finished spans into OpenTelemetry metrics (tokens, cost, latency, tool health, requests).

It runs on the pipeline thread after the cost stage and before sampling, so every span is counted whether or not its
trace is kept: chatobs's own spans of a dropped trace still reach the pipeline (as light spans, see chatobs.recording.light_spans, or
recorded in full with ``CHATOBS_RECORD_UNSAMPLED=full``) and the sampling stage discards them only after this one. The request path pays nothing for metrics.

chatobs owns its ``MeterProvider`` and never replaces the app's global one. Readers: OTLP push when
``OTEL_METRICS_EXPORTER`` contains ``otlp``; a Prometheus registry (private, not ``prometheus_client.REGISTRY``) served on
127.0.0.1 when ``CHATOBS_PROMETHEUS_PORT`` is set or ``OTEL_METRICS_EXPORTER`` contains ``prometheus``, and always
mountable in the app via :mod:`.prometheus`; readers handed to :func:`.stage.register_reader` (tests).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from ... import __version__
from ...core import semconv, span_types
from ...core.guard import guard
from ...core.hashing import user_id_hasher
from ...core.numbers import as_float, as_int
from ...core.spans import attributes_of, owns_tool_call
from ...core.stats import STATS
from .series import Direct, Series

if TYPE_CHECKING:
    from ...config import Settings
from .instruments import DURATION_BUCKETS_S, INSTRUMENTS, TOKEN_BUCKETS, TOOL_BUCKETS_MS, TTFC_BUCKETS_S
from .labels import (
    LABEL_CACHE_SIZE,
    Cardinality,
    error_type,
    model_of,
    provider_of,
    template_path,
)

logger = logging.getLogger("chatobs")


def _exporter_names(settings: Settings) -> set[str]:
    return set((settings.otel_metrics_exporter or "").split(",")) - {""}


class Recorder:
    """chatobs's MeterProvider, its readers and instruments; ``record(span)`` turns one finished span into measurements."""

    def __init__(self, settings: Settings, readers: Iterable[MetricReader] = ()) -> None:
        from ...recording.resource import build_resource

        self.settings = settings
        self._with_user = settings.metrics_user_attribute
        self._user = user_id_hasher(settings)
        self._attr = Cardinality()
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
        self.provider = MeterProvider(resource=build_resource(settings), metric_readers=all_readers)
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

        from ...config.otlp import endpoint as signal_endpoint
        from ...config.otlp import headers as signal_headers
        from ...config.otlp import timeout_s

        headers = signal_headers(settings, "metrics")
        timeout = timeout_s(settings)
        endpoint = signal_endpoint(settings, "metrics")
        if settings.otlp_protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter

            exporter: Any = GrpcMetricExporter(
                endpoint=endpoint, headers=headers or None, timeout=timeout, insecure=endpoint.startswith("http://")
            )
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

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
        from ...recording.installed import runtime_or_none

        return runtime_or_none()

    def _observe_queue(self, _: CallbackOptions) -> Iterator[Observation]:
        rt = self._runtime()
        if rt is not None:
            yield Observation(rt.pipeline.pending())

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
        found = span_types.classify(attrs)
        if found in span_types.MCP_TYPES:
            # MCP metrics are labelled by method; a connection span has none and is not an MCP request.
            if attrs.get(semconv.MCP_METHOD_NAME) is not None:
                self._record_mcp(span, attrs, max(0.0, (end - start) / 1e9))
        elif found in span_types.LLM_TYPES:
            self._record_llm(span, attrs, max(0.0, (end - start) / 1e9))
        elif found == span_types.REQUEST:
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
            if len(cache) >= LABEL_CACHE_SIZE:
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
        n = as_float(attrs.get(semconv.GEN_AI_USAGE_INPUT_TOKENS))
        if n is not None and n >= 0:
            tokens_in.record(n)
        n = as_float(attrs.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS))
        if n is not None and n >= 0:
            tokens_out.record(n)
        ttfc = as_float(attrs.get(semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK))
        if ttfc is not None and ttfc >= 0:
            ttfc_series.record(ttfc)
        cost = as_float(attrs.get(semconv.COST_USD))
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
                out[semconv.HTTP_RESPONSE_STATUS_CODE] = as_int(status) or 0
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


def masking_failures() -> int:
    """Spans the masking stage could not mask: counted by it in ``STATS.events`` or as the stage's dropped batches."""
    n = sum(v for k, v in list(STATS.events.items()) if "mask" in k or "redact" in k)
    n += sum(v for (where, reason), v in list(STATS.dropped.items()) if reason == "stage_error:redaction")
    return n
