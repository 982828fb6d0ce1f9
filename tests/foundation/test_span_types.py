"""One span classifier: metrics, alerts, Langfuse, Opik and the local store all map from ``core.span_types.classify``.

Each row is a set of attributes as some instrumentation writes it; every consumer is run for real on a span carrying
it (the metrics recorder with an SDK reader, the alert rules' facts, the Langfuse translation, the Opik kind table,
the local store's row builder) and must give the row's answer. The last test checks they can never disagree on the
two facts they share: whether a span is an LLM call and whether it is a tool call.
"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from chatobs.config import load_settings
from chatobs.core import semconv as sc
from chatobs.core import span_types
from chatobs.export import opik
from chatobs.export.langfuse import translate
from chatobs.export.local.rows import SPAN_COLUMNS, span_row
from chatobs.export.observation import shape
from chatobs.processing.alerts.rules import Facts
from chatobs.processing.metrics.recorder import Recorder

pytestmark = pytest.mark.timeout(60)

_LLM = {sc.GEN_AI_PROVIDER_NAME: "openai", sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini"}
_MCP_TOOL = {  # as instrument/mcp writes a tools/call span
    sc.MCP_METHOD_NAME: "tools/call",
    sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL,
    sc.OBSERVATION_TYPE: "tool",
    sc.GEN_AI_TOOL_NAME: "weather",
    sc.MCP_SERVER_NAME: "tools",
}

# name, OTel span kind, attributes, then the answers: classify, metrics, alerts, Langfuse, Opik, store column.
CASES: list[tuple[str, SpanKind, dict[str, Any], str, str, str | None, str, str, str]] = [
    ("chat", SpanKind.CLIENT, {**_LLM, sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT}, "llm", "llm", "llm", "generation", "llm", "llm"),
    (
        "text completion",
        SpanKind.CLIENT,
        {**_LLM, sc.GEN_AI_OPERATION_NAME: sc.OP_TEXT_COMPLETION},
        "llm", "llm", "llm", "generation", "llm", "llm",
    ),
    (
        "generate_content",
        SpanKind.CLIENT,
        {**_LLM, sc.GEN_AI_OPERATION_NAME: sc.OP_GENERATE_CONTENT},
        "llm", "llm", "llm", "generation", "llm", "llm",
    ),
    (
        "embeddings",
        SpanKind.CLIENT,
        {**_LLM, sc.GEN_AI_OPERATION_NAME: sc.OP_EMBEDDINGS},
        "embedding", "llm", "llm", "embedding", "llm", "llm",
    ),
    ("SDK adapter LLM span", SpanKind.CLIENT, {sc.OBSERVATION_TYPE: "llm"}, "llm", "llm", "llm", "generation", "llm", "llm"),
    (
        "older instrumentation's LLM span (no operation)",
        SpanKind.CLIENT,
        {sc.GEN_AI_SYSTEM: "openai", sc.GEN_AI_REQUEST_MODEL: "gpt-4o"},
        "llm", "llm", "llm", "generation", "llm", "llm",
    ),
    (
        "unknown operation with a model",
        SpanKind.CLIENT,
        {**_LLM, sc.GEN_AI_OPERATION_NAME: "rerank"},
        "other", "none", None, "span", "general", "other",
    ),
    ("MCP tools/call, client side", SpanKind.CLIENT, _MCP_TOOL, "mcp_tool", "tool", "tool", "tool", "tool", "tool"),
    (
        "MCP tools/call, server side of an untraced caller",
        SpanKind.SERVER,
        _MCP_TOOL,
        "mcp_tool", "tool", "tool", "tool", "tool", "tool",
    ),
    (
        "MCP tools/call, server side of a chatobs client (counted by the client)",
        SpanKind.SERVER,
        {**_MCP_TOOL, sc.MCP_CALLER_TRACED: True},
        "mcp_tool", "mcp", None, "tool", "tool", "tool",
    ),
    (
        "MCP tools/list",
        SpanKind.CLIENT,
        {sc.MCP_METHOD_NAME: "tools/list", sc.OBSERVATION_TYPE: "mcp"},
        "mcp", "mcp", None, "span", "general", "mcp",
    ),
    ("MCP connection", SpanKind.CLIENT, {sc.OBSERVATION_TYPE: "mcp"}, "mcp", "none", None, "span", "general", "mcp"),
    (
        "@tool function",
        SpanKind.INTERNAL,
        {sc.OBSERVATION_TYPE: "tool", sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: "f"},
        "tool", "none", None, "tool", "tool", "tool",
    ),
    (
        "@agent function",
        SpanKind.INTERNAL,
        {sc.OBSERVATION_TYPE: "agent", sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT},
        "agent", "none", None, "agent", "general", "agent",
    ),
    (
        "@workflow function",
        SpanKind.INTERNAL,
        {sc.OBSERVATION_TYPE: "workflow", sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_WORKFLOW},
        "workflow", "none", None, "chain", "general", "workflow",
    ),
    ("@task function", SpanKind.INTERNAL, {sc.OBSERVATION_TYPE: "task"}, "task", "none", None, "span", "general", "task"),
    (
        "chat request",
        SpanKind.SERVER,
        {sc.CHAT_REQUEST: True, sc.HTTP_ROUTE: "/chat", sc.HTTP_REQUEST_METHOD: "POST"},
        "request", "request", "request", "span", "general", "request",
    ),
    (
        "feedback",
        SpanKind.INTERNAL,
        {sc.FEEDBACK: True, sc.FEEDBACK_TYPE: "boolean"},
        "feedback", "none", "feedback", "span", "general", "feedback",
    ),
    ("plain span", SpanKind.INTERNAL, {"db.system": "sqlite"}, "other", "none", None, "span", "general", "other"),
]  # fmt: skip


def _span(kind: SpanKind, attrs: dict[str, Any]) -> ReadableSpan:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("s", kind=kind, attributes=attrs):
        pass
    (span,) = exporter.get_finished_spans()
    return span


def _metrics_view(span: ReadableSpan) -> str:
    """What the metrics recorder made of the span, read back from the instruments it recorded to."""
    reader = InMemoryMetricReader()
    rec = Recorder(load_settings(exporters="none"), readers=[reader])
    try:
        rec.record(span)
        data = reader.get_metrics_data()
        names = {
            m.name
            for rm in (data.resource_metrics if data else ())
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.data.data_points
        }
    finally:
        rec.shutdown()
    if "mcp.tool.invocations" in names:
        return "tool"
    if names & {"mcp.client.operation.duration", "mcp.server.operation.duration"}:
        return "mcp"
    if "gen_ai.client.operation.duration" in names:
        return "llm"
    if "http.server.request.duration" in names:
        return "request"
    return "none"


def _answers(kind: SpanKind, attrs: dict[str, Any]) -> tuple[str, str, str | None, str, str, str]:
    span = _span(kind, attrs)
    backend_kind = shape(span).kind
    return (
        span_types.classify(span.attributes or {}),
        _metrics_view(span),
        Facts(span).target,
        str((translate(span).attributes or {})[sc.LF_OBSERVATION_TYPE]),
        opik._SPAN_TYPE.get(backend_kind, "general"),
        span_row(span)[SPAN_COLUMNS.index("span_type")],
    )


@pytest.mark.parametrize(
    ("name", "kind", "attrs", "expected"), [(*c[:3], c[3:]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_every_consumer_maps_from_the_one_classifier(
    name: str, kind: SpanKind, attrs: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    # (classify, metrics, alerts, Langfuse observation type, Opik span type, store span_type)
    assert _answers(kind, attrs) == expected


def test_consumers_never_disagree_on_llm_or_tool() -> None:
    """Whether a span is an LLM call, and whether it is a tool call, is one answer for every consumer (metrics and
    alerts may ignore a span, e.g. a @tool function they have no series for, but never call it something else)."""
    llm = {"metrics": "llm", "alerts": "llm", "langfuse": ("generation", "embedding"), "opik": "llm", "store": "llm"}
    tool = {"metrics": "tool", "alerts": "tool", "langfuse": "tool", "opik": "tool", "store": "tool"}
    for name, kind, attrs, *_ in CASES:
        found = _answers(kind, attrs)
        views = dict(zip(("metrics", "alerts", "langfuse", "opik", "store"), found[1:], strict=True))
        is_llm = {k: (v in llm[k] if isinstance(llm[k], tuple) else v == llm[k]) for k, v in views.items()}
        is_tool = {k: v == tool[k] for k, v in views.items()}
        classified = found[0]
        # The store and the backends see every span: they say exactly what the classifier says.
        for k in ("langfuse", "opik", "store"):
            assert is_llm[k] == (classified in span_types.LLM_TYPES), (name, k)
            assert is_tool[k] == (classified in span_types.TOOL_TYPES), (name, k)
        # Metrics and alerts only count some spans, but never count a span as the wrong thing.
        for k in ("metrics", "alerts"):
            assert not is_llm[k] or classified in span_types.LLM_TYPES, (name, k)
            assert not is_tool[k] or classified in span_types.TOOL_TYPES, (name, k)
