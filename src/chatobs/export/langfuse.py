"""Native Langfuse export: chatobs's GenAI/MCP spans translated to what the Langfuse server maps, sent by the
``langfuse`` SDK's own OTLP transport.

The SDK normally installs itself on the global tracer provider (taking it over, or re-exporting every span the app
makes). chatobs never lets it: the SDK's span processor gets a private ``TracerProvider`` that nothing else uses, and
chatobs calls the processor's exporter directly from its own channel, so each export returns a real success or
failure (counted per exporter) instead of disappearing into a second background queue.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ..config import ConfigError
from ..core import semconv as sc
from ..core.guard import log_limited
from ..core.spans import with_changes
from .observation import Shape, shape, trace_facts, trace_name, trace_tags

if TYPE_CHECKING:
    from ..config import Settings

logger = logging.getLogger("chatobs")

_OBSERVATION_TYPE = {
    "llm": "generation",
    "embedding": "embedding",
    "tool": "tool",
    "agent": "agent",
    "chain": "chain",
    "span": "span",
}
DEFAULT_BASE_URL = "https://cloud.langfuse.com"


def _json(value: Any) -> str:
    return (
        value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
    )


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat()


def translate(span: ReadableSpan, *, environment: str | None = None, release: str | None = None) -> ReadableSpan:
    """``span`` with the ``langfuse.*`` attributes its server reads added (the OTel originals stay, as metadata)."""
    s: Shape = shape(span)
    attrs: dict[str, Any] = dict(span.attributes or {})
    add = attrs.__setitem__
    add(sc.LF_OBSERVATION_TYPE, _OBSERVATION_TYPE[s.kind])
    if environment:
        add(sc.LF_ENVIRONMENT, environment)
    if release:
        add(sc.LF_RELEASE, release)
    if s.input is not None:
        add(sc.LF_OBSERVATION_INPUT, _json(s.input))
    if s.output is not None:
        add(sc.LF_OBSERVATION_OUTPUT, _json(s.output))
    if s.error:
        add(sc.LF_OBSERVATION_LEVEL, "ERROR")
        if s.error_message:
            add(sc.LF_OBSERVATION_STATUS_MESSAGE, s.error_message)
    if s.kind in ("llm", "embedding"):
        prompt_name = attrs.get(sc.GEN_AI_PROMPT_NAME)
        if prompt_name:
            # Langfuse links the generation to its prompt when a prompt of that name and (integer) version exists
            # in the project; otherwise both stay visible as metadata.
            add(sc.LF_PROMPT_NAME, str(prompt_name))
            version = str(attrs.get(sc.GEN_AI_PROMPT_VERSION, "")).removeprefix("v")
            if version.isdigit():
                add(sc.LF_PROMPT_VERSION, int(version))
        if s.model:
            add(sc.LF_MODEL, s.model)
        if s.params:
            add(sc.LF_MODEL_PARAMETERS, _json(s.params))
        if s.usage:
            add(sc.LF_USAGE_DETAILS, _json(s.usage))
        if s.cost:
            add(sc.LF_COST_DETAILS, _json(s.cost))
        if s.ttfc_s is not None and span.start_time:
            # The SDK sends this JSON-encoded (a quoted ISO string); the server parses exactly that.
            add(sc.LF_COMPLETION_START_TIME, json.dumps(_iso(span.start_time + int(s.ttfc_s * 1e9))))
        if s.provider:
            add(f"{sc.LF_OBSERVATION_METADATA}.provider", json.dumps(s.provider))
    if s.is_root:
        name = trace_name(span)
        add(sc.LF_TRACE_NAME, name)
        add(sc.LF_IS_APP_ROOT, True)
        add(sc.LF_TRACE_TAGS, tuple(trace_tags(span)))
        for key, value in trace_facts(span).items():
            add(f"{sc.LF_TRACE_METADATA}.{key}", json.dumps(value, default=str))
        if s.input is not None:
            add(sc.LF_TRACE_INPUT, _json(s.input))
        if s.output is not None:
            add(sc.LF_TRACE_OUTPUT, _json(s.output))
    return with_changes(span, attributes=attrs)


_DATA_TYPE = {"boolean": "BOOLEAN", "numeric": "NUMERIC", "categorical": "CATEGORICAL"}


def score_of(span: ReadableSpan, environment: str | None) -> dict[str, Any]:
    """A feedback span as a Langfuse score on its trace (a body of ``POST /api/public/scores``). The score ID is the
    span's, so a retried export updates the same score instead of adding one."""
    a = span.attributes or {}
    kind = str(a.get(sc.FEEDBACK_TYPE, "numeric"))
    value: Any = (
        a.get(sc.GEN_AI_EVALUATION_SCORE_LABEL) if kind == "categorical" else a.get(sc.GEN_AI_EVALUATION_SCORE_VALUE)
    )
    score: dict[str, Any] = {
        "id": f"{span.context.trace_id:032x}-{span.context.span_id:016x}",
        "traceId": format(span.context.trace_id, "032x"),
        "name": str(a.get(sc.GEN_AI_EVALUATION_NAME, "user_feedback")),
        "value": value,
        "dataType": _DATA_TYPE.get(kind, "NUMERIC"),
        "timestamp": _iso(span.start_time or 0),
        "metadata": {"source": "chatobs", "negative": bool(a.get(sc.FEEDBACK_NEGATIVE))},
    }
    comment = a.get(sc.GEN_AI_EVALUATION_EXPLANATION)
    if comment:
        score["comment"] = str(comment)
    if a.get(sc.USER_ID):
        score["metadata"]["user_id"] = str(a[sc.USER_ID])
    if environment:
        score["environment"] = environment
    return score


class LangfuseExporter(SpanExporter):
    """Translate, then hand the batch to the Langfuse SDK's exporter (synchronously, so failures are counted)."""

    def __init__(
        self,
        transport: SpanExporter,
        *,
        processor: Any = None,
        environment: str | None = None,
        release: str | None = None,
        api: Any = None,
    ) -> None:
        self._transport = transport
        self._api = api  # langfuse.api.LangfuseAPI: feedback goes to the scores endpoint
        self._processor = processor
        self._environment = environment
        self._release = release

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        scores = [score_of(s, self._environment) for s in spans if (s.attributes or {}).get(sc.FEEDBACK)]
        out = [
            translate(s, environment=self._environment, release=self._release)
            for s in spans
            if not (s.attributes or {}).get(sc.FEEDBACK)
        ]
        if scores and not self._send_scores(scores):
            return SpanExportResult.FAILURE  # the channel retries the batch; spans re-sent are deduplicated by ID
        return self._transport.export(out) if out else SpanExportResult.SUCCESS

    def _send_scores(self, scores: list[dict[str, Any]]) -> bool:
        if self._api is None:
            return True
        try:
            # No SDK retries: the chatobs channel retries with backoff and counts what it gives up on.
            result = self._api.scores.create(request=scores, request_options={"max_retries": 0})
        except Exception as exc:  # noqa: BLE001 - any transport/HTTP error means "not delivered"
            log_limited(
                "langfuse-scores", "chatobs: Langfuse scores failed: %s: %s", type(exc).__name__, str(exc)[:200]
            )
            return False
        rejected = getattr(result, "rejected", 0)
        if rejected:
            # A 207: Langfuse says the rejected ones must not be sent again; logged, never retried.
            errors = "; ".join(str(getattr(e, "message", e)) for e in getattr(result, "errors", []))
            log_limited("langfuse-scores", "chatobs: Langfuse rejected %d feedback scores: %s", rejected, errors[:300])
        return True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # nothing is buffered here: export() is synchronous

    def shutdown(self) -> None:
        if self._api is not None:
            try:
                self._api._client_wrapper.httpx_client.httpx_client.close()
            except Exception:  # noqa: BLE001 - best effort; the client is garbage either way
                pass
        # Stops the SDK processor's idle worker thread and its exporter (aborts any retry backoff in flight).
        if self._processor is not None:
            self._processor.shutdown()
        else:
            self._transport.shutdown()


def build(settings: Settings) -> SpanExporter:
    if not settings.langfuse_public_key:
        raise ConfigError(
            "CHATOBS_EXPORTERS=langfuse: LANGFUSE_PUBLIC_KEY is not set (the project's public key, pk-lf-...)"
        )
    if not settings.langfuse_secret_key:
        raise ConfigError(
            "CHATOBS_EXPORTERS=langfuse: LANGFUSE_SECRET_KEY is not set (the project's secret key, sk-lf-...)"
        )
    from langfuse._client.span_processor import LangfuseSpanProcessor  # ImportError -> "pip install chatobs[langfuse]"

    base_url = (settings.langfuse_base_url or DEFAULT_BASE_URL).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"LANGFUSE_BASE_URL={base_url!r}: expected an http(s):// URL such as https://cloud.langfuse.com"
        )
    timeout = settings.langfuse_timeout_s or settings.export_timeout_s
    processor = LangfuseSpanProcessor(
        public_key=settings.langfuse_public_key,
        secret_key=settings.langfuse_secret_key.get_secret_value(),
        base_url=base_url,
        timeout=timeout,  # type: ignore[arg-type]  # seconds; a float works (the OTLP exporter takes float)
        flush_at=settings.langfuse_flush_at,
        flush_interval=settings.langfuse_flush_interval_s,
    )
    # A private provider owns the processor: the SDK is never registered globally and never sees the app's spans.
    private = TracerProvider(shutdown_on_exit=False)
    private.add_span_processor(processor)
    from langfuse import __version__ as langfuse_version
    from langfuse.api import LangfuseAPI

    api = LangfuseAPI(
        base_url=base_url,
        username=settings.langfuse_public_key,
        password=settings.langfuse_secret_key.get_secret_value(),
        x_langfuse_sdk_name="python",
        x_langfuse_sdk_version=langfuse_version,
        x_langfuse_public_key=settings.langfuse_public_key,
        timeout=timeout,
    )
    exporter = LangfuseExporter(
        processor.span_exporter,
        processor=processor,
        environment=settings.environment,
        release=settings.release,
        api=api,
    )
    exporter.private_provider = private  # type: ignore[attr-defined]  # kept alive with the exporter; tests look at it
    return exporter
