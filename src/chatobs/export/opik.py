"""Native Opik export: one Opik trace per chat turn, its LLM/tool calls as typed spans, sent with the ``opik`` SDK's
REST client.

Why not the SDK's ``Opik().trace()/span()`` queue: its background streamer parks messages it could not send in a local
replay database, ``flush()`` then reports success, and the parked data is deleted when the client ends. chatobs
already has a bounded queue and retries per exporter, so it calls the SDK's batch-create endpoints synchronously: an
export returns SUCCESS only when the server accepted the data, and everything else is counted as failed or dropped.

IDs: Opik wants UUIDv7. Each one is 74 bits of the OTel trace/span ID plus a 48-bit millisecond time that is fixed
per trace and the same in every process of the trace: the Opik server refuses IDs whose time lies outside its
ingestion window around the present (12 hours to 45 days, configurable), so the time cannot come from the random
trace ID bits; the first process picks it (the earliest start it sees) and passes it on in chatobs's ``tracestate``
entry (``middleware.tracecontext.trace_time_ms``). A span's ``parent_span_id`` and ``trace_id`` therefore name the
objects its parent and trace were sent as, whichever process and batch sent them.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ..config import ConfigError
from ..core import semconv as sc
from ..core.guard import log_limited
from ..recording.middleware.tracecontext import CHATOBS_KEY, stamp_trace_time, trace_time_ms
from .observation import Shape, shape, trace_facts, trace_name, trace_tags

if TYPE_CHECKING:
    from ..config import Settings

logger = logging.getLogger("chatobs")

# The Opik SDK reads these (pydantic-settings, prefix OPIK_) for its Sentry error reporting and usage analytics.
TELEMETRY_ENV = {"OPIK_SENTRY_ENABLE": "false", "OPIK_ANALYTICS_ENABLE": "false"}
_SPAN_TYPE = {"llm": "llm", "embedding": "llm", "tool": "tool"}
# Traces whose end this exporter remembers (to extend an Opik trace when later work of it arrives); oldest dropped.
MAX_TRACKED_TRACES = 4096


def quiet_opik_telemetry(settings: Settings) -> None:
    """Switch off the Opik SDK's own error reporting and analytics before it is imported (unless allowed)."""
    if settings.opik_allow_telemetry:
        return
    if "opik" in sys.modules:
        # Sentry is set up at import time; analytics read the config on every event, so the variable still helps.
        log_limited(
            "opik-telemetry",
            "chatobs: the opik package was imported before chatobs.init(); its error reporting may already be on (set OPIK_SENTRY_ENABLE=false)",
        )
    for key, value in TELEMETRY_ENV.items():
        os.environ.setdefault(key, value)  # an explicit OPIK_*_ENABLE set by the user wins


def uuid7_from(ts_ms: int, bits74: int) -> str:
    """A version-7, RFC 4122-variant UUID: 48-bit timestamp, then 74 chosen bits around the version/variant fields."""
    rand_a = (bits74 >> 62) & 0xFFF
    rand_b = bits74 & ((1 << 62) - 1)
    value = ((ts_ms & ((1 << 48) - 1)) << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


def _dt(ns: int | None) -> datetime | None:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC) if ns else None


def _io(value: Any, kind: str) -> Any:
    """Opik shows dicts best; a message list becomes ``{"messages": [...]}``, anything else ``{"value": ...}``."""
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, list) and kind in ("llm", "embedding"):
        return {"messages": value}
    return {"value": value}


class OpikExporter(SpanExporter):
    def __init__(self, rest_client: Any, *, project_name: str, environment: str | None, timeout_s: float) -> None:
        from opik.rest_api.types import ErrorInfoWrite, FeedbackScoreBatchItem, SpanWrite, TraceWrite

        self._Score = FeedbackScoreBatchItem
        self._rest = rest_client
        self._project = project_name
        self._environment = environment
        self._timeout_s = timeout_s
        self._TraceWrite, self._SpanWrite, self._ErrorInfo = TraceWrite, SpanWrite, ErrorInfoWrite
        # OTel trace ID -> (latest end sent or seen in ns, whether the Opik trace was sent). Opik shows a trace's
        # duration from its own start and end, not from its spans, so work that ends after the chat request span
        # (a background task, Open WebUI's follow-ups) must move the trace's end: see extend().
        self._ends: OrderedDict[int, tuple[int, bool]] = OrderedDict()
        self._ends_lock = threading.Lock()

    # --- IDs --------------------------------------------------------------------------------------------------------
    def trace_uuid(self, trace_id: int, ts_ms: int) -> str:
        return uuid7_from(ts_ms, trace_id >> 54)

    def span_uuid(self, trace_id: int, span_id: int, ts_ms: int) -> str:
        return uuid7_from(ts_ms, ((trace_id & 0x3FF) << 64) | span_id)

    # --- translation ------------------------------------------------------------------------------------------------
    def _error(self, s: Shape) -> Any:
        if not s.error:
            return None
        return self._ErrorInfo(
            exception_type=s.error_type or "error", message=s.error_message, traceback=s.error_stack or ""
        )

    def _usage(self, s: Shape) -> dict[str, int] | None:
        u = s.usage
        if not u:
            return None
        out = {
            "prompt_tokens": u.get("input", 0),
            "completion_tokens": u.get("output", 0),
            "total_tokens": u.get("total", 0),
        }
        out.update({k: v for k, v in u.items() if k not in ("input", "output", "total")})
        return out

    def translate(self, spans: Sequence[ReadableSpan]) -> tuple[list[Any], list[Any]]:
        # The trace's time: what upstream passed on in the tracestate, else what this process fixed earlier, else the
        # earliest start in this batch.
        earliest: dict[int, tuple[int, Any]] = {}
        for span in spans:
            tid = span.context.trace_id
            start = span.start_time or 0
            prev = earliest.get(tid)
            if prev is None or start < prev[0]:
                earliest[tid] = (start, span.context.trace_state)
        ts_of = {tid: trace_time_ms(tid, start // 1_000_000, state) for tid, (start, state) in earliest.items()}
        latest: dict[int, int] = {}
        for span in spans:
            tid = span.context.trace_id
            latest[tid] = max(latest.get(tid, 0), span.end_time or 0)
        with self._ends_lock:
            for tid, end in latest.items():
                seen = self._ends.get(tid)
                if seen is not None:
                    latest[tid] = max(end, seen[0])
        traces: list[Any] = []
        out: list[Any] = []
        for span in spans:
            s = shape(span)
            a = span.attributes or {}
            tid, sid = span.context.trace_id, span.context.span_id
            ts = ts_of[tid]
            trace_uuid = self.trace_uuid(tid, ts)
            meta: dict[str, Any] = {
                k: v if not isinstance(v, tuple) else list(v)
                for k, v in a.items()
                if not k.startswith(("gen_ai.input", "gen_ai.output", "chatobs.input", "chatobs.output"))
            }
            meta["otel.trace_id"] = format(tid, "032x")
            meta["otel.span_id"] = format(sid, "016x")
            user = a.get(sc.USER_ID)
            tags = [f"user:{user}"] if user else []
            if s.is_root or span.parent is None:
                facts = trace_facts(span)
                trace_meta = {**facts, "user_id": user, "conversation_id": a.get(sc.GEN_AI_CONVERSATION_ID)}
                traces.append(
                    self._TraceWrite(
                        id=trace_uuid,
                        project_name=self._project,
                        name=trace_name(span) if s.is_root else span.name,
                        start_time=_dt(span.start_time),  # type: ignore[arg-type]  # a finished span has a start time
                        # The extent of the turn's work so far, not only of the request span that returned first.
                        end_time=_dt(max(span.end_time or 0, latest[tid])),
                        input=_io(s.input, s.kind),
                        output=_io(s.output, s.kind),
                        metadata={k: v for k, v in trace_meta.items() if v is not None},
                        tags=(trace_tags(span) + tags) if s.is_root else tags or None,
                        error_info=self._error(s),
                        thread_id=a.get(sc.GEN_AI_CONVERSATION_ID),  # type: ignore[arg-type]  # set from ChatScope, a str
                        environment=self._environment,
                    )
                )
            parent = None
            if (
                span.parent is not None and not s.is_root
            ):  # a chat root's remote parent (browser, gateway) is not in Opik
                parent = self.span_uuid(tid, span.parent.span_id, ts)
            out.append(
                self._SpanWrite(
                    id=self.span_uuid(tid, sid, ts),
                    project_name=self._project,
                    trace_id=trace_uuid,
                    parent_span_id=parent,
                    name=span.name,
                    type=_SPAN_TYPE.get(s.kind, "general"),
                    start_time=_dt(span.start_time),  # type: ignore[arg-type]  # a finished span has a start time
                    end_time=_dt(span.end_time),
                    input=_io(s.input, s.kind),
                    output=_io(s.output, s.kind),
                    metadata=meta,
                    model=s.model if s.kind in ("llm", "embedding") else None,
                    provider=s.provider if s.kind in ("llm", "embedding") else None,
                    tags=tags or None,
                    usage=self._usage(s),
                    error_info=self._error(s),
                    total_estimated_cost=s.cost.get("total"),
                    ttft=s.ttfc_s * 1000 if s.ttfc_s is not None else None,
                    environment=self._environment,
                )
            )
        return traces, out

    def extend(self, spans: Sequence[ReadableSpan], sent: Sequence[Any]) -> list[tuple[str, datetime]]:
        """Remember how far each trace of the batch reaches, and return (Opik trace ID, new end) for the traces sent
        earlier that this batch's spans outlast. A trace not sent yet keeps the latest end for when it is."""
        sent_now = {t.id for t in sent}
        updates: list[tuple[str, datetime]] = []
        by_trace: dict[int, ReadableSpan] = {}
        for span in spans:
            prev = by_trace.get(span.context.trace_id)
            if prev is None or (span.end_time or 0) > (prev.end_time or 0):
                by_trace[span.context.trace_id] = span
        with self._ends_lock:
            for tid, span in by_trace.items():
                end = span.end_time or 0
                ts = trace_time_ms(tid, (span.start_time or 0) // 1_000_000, span.context.trace_state)
                trace_uuid = self.trace_uuid(tid, ts)
                seen_end, was_sent = self._ends.get(tid, (0, False))
                if trace_uuid in sent_now:
                    self._ends[tid] = (max(end, seen_end), True)
                elif was_sent and end > seen_end:
                    self._ends[tid] = (end, True)
                    updates.append((trace_uuid, _dt(end)))  # type: ignore[arg-type]  # end > 0
                else:
                    self._ends[tid] = (max(end, seen_end), was_sent)
                self._ends.move_to_end(tid)
            while len(self._ends) > MAX_TRACKED_TRACES:
                self._ends.popitem(last=False)
        return updates

    def feedback_scores(self, spans: Sequence[ReadableSpan]) -> list[Any]:
        """Feedback spans as Opik feedback scores on their traces. The trace's Opik time comes from the span's
        tracestate (the feedback token carried it), taken as is: a rating may come days after its turn, beyond the
        slack allowed to a time passed between the processes of one live trace."""
        scores = []
        for span in spans:
            a = span.attributes or {}
            tid = span.context.trace_id
            ts = _stamped_ms(span) or trace_time_ms(tid, (span.start_time or 0) // 1_000_000, span.context.trace_state)
            label = a.get(sc.GEN_AI_EVALUATION_SCORE_LABEL)
            value = a.get(sc.GEN_AI_EVALUATION_SCORE_VALUE)
            if value is None:  # a category: Opik wants a number beside the category name
                value = 0.0 if a.get(sc.FEEDBACK_NEGATIVE) else 1.0
            comment = a.get(sc.GEN_AI_EVALUATION_EXPLANATION)
            scores.append(
                self._Score(
                    id=self.trace_uuid(tid, ts),
                    project_name=self._project,
                    name=str(a.get(sc.GEN_AI_EVALUATION_NAME, "user_feedback")),
                    value=float(value),  # type: ignore[arg-type]  # a number: the feedback span was validated
                    category_name=str(label)
                    if label is not None and a.get(sc.FEEDBACK_TYPE) == "categorical"
                    else None,
                    reason=str(comment) if comment else None,
                    source="sdk",
                )
            )
        return scores

    # --- SpanExporter ---------------------------------------------------------------------------------------------
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ratings = [s for s in spans if (s.attributes or {}).get(sc.FEEDBACK)]
        if ratings:
            spans = [s for s in spans if not (s.attributes or {}).get(sc.FEEDBACK)]
        traces, out = self.translate(spans)
        later = self.extend(spans, traces)
        # No SDK-side retries: the chatobs channel retries with backoff, bounded, and counts what it gives up on.
        opts = {"timeout_in_seconds": self._timeout_s, "max_retries": 0}
        try:
            if out:
                self._rest.spans.create_spans(spans=out, request_options=opts)
            if traces:
                self._rest.traces.create_traces(traces=traces, request_options=opts)
            for trace_uuid, end in later:
                # Only the end moves; the rest of the trace (name, input, output, thread) stays as first sent.
                self._rest.traces.update_trace(
                    trace_uuid, project_name=self._project, end_time=end, request_options=opts
                )
            if ratings:
                # After the traces (a quick rating may share their batch). Opik keeps one score per trace and name:
                # a retried batch overwrites, never duplicates.
                self._rest.traces.score_batch_of_traces(scores=self.feedback_scores(ratings), request_options=opts)
        except Exception as exc:  # noqa: BLE001 - any transport/HTTP error means "not delivered"
            log_limited("opik-export", "chatobs: Opik export failed: %s: %s", type(exc).__name__, str(exc)[:200])
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # export() is synchronous: nothing is ever parked

    def shutdown(self) -> None:
        stamp_trace_time(False)
        try:
            self._rest._client_wrapper.httpx_client.httpx_client.close()
        except Exception:  # noqa: BLE001 - best effort; the client is garbage either way
            pass


def _stamped_ms(span: ReadableSpan) -> int | None:
    state = span.context.trace_state
    if state is None or CHATOBS_KEY not in state:
        return None
    value = state[CHATOBS_KEY]
    if not (value.startswith("t") and 1 < len(value) <= 13):
        return None
    try:
        return int(value[1:], 16)
    except ValueError:
        return None


def build(settings: Settings) -> SpanExporter:
    if not (settings.opik_url or settings.opik_api_key):
        raise ConfigError(
            "CHATOBS_EXPORTERS=opik: set OPIK_URL_OVERRIDE (self-hosted, e.g. http://127.0.0.1:5173/api) or OPIK_API_KEY (Comet cloud)"
        )
    quiet_opik_telemetry(settings)
    from opik import config as opik_config  # ImportError -> "pip install chatobs[opik]"
    from opik import httpx_client
    from opik.rest_api.client import OpikApi

    cfg = opik_config.get_from_user_inputs(
        project_name=settings.opik_project_name,
        workspace=settings.opik_workspace,
        url_override=settings.opik_url,
        api_key=settings.opik_api_key.get_secret_value() if settings.opik_api_key else None,
    )
    if not cfg.url_override.startswith(("http://", "https://")):
        raise ConfigError(
            f"OPIK_URL_OVERRIDE={cfg.url_override!r}: expected an http(s):// URL such as http://127.0.0.1:5173/api"
        )
    client = httpx_client.get(
        workspace=cfg.workspace,
        api_key=cfg.api_key,
        check_tls_certificate=cfg.check_tls_certificate,
        compress_json_requests=cfg.enable_json_request_compression,
    )
    rest = OpikApi(base_url=cfg.url_override, httpx_client=client)
    stamp_trace_time(True)  # outgoing calls carry the trace's Opik time, so downstream processes use the same IDs
    return OpikExporter(
        rest, project_name=cfg.project_name, environment=settings.environment, timeout_s=settings.export_timeout_s
    )
