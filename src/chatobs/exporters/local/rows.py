"""Turn a finished OTel span into one row of the local store: the columns people filter on, the rest as JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from ... import semconv

# Column order of the ``spans`` table (current schema). ``attributes``/``events``/``resource`` are JSON text.
SPAN_COLUMNS: tuple[str, ...] = (
    "trace_id", "span_id", "parent_id", "name", "kind", "span_type", "start_ns", "end_ns", "duration_ms",
    "status", "status_message", "conversation_id", "user_id", "tenant_id", "message_id", "route", "model",
    "provider", "operation", "tool_name", "mcp_server", "input_tokens", "output_tokens", "cost_usd", "ttft_ms",
    "service_name", "attributes", "events", "resource",
)

_LLM_OPERATIONS = {semconv.OP_CHAT, semconv.OP_TEXT_COMPLETION, semconv.OP_GENERATE_CONTENT, semconv.OP_EMBEDDINGS}


def span_type(attrs: Mapping[str, Any]) -> str:
    """request | llm | tool | mcp | agent | workflow | task | other: how the CLI and viewer group and colour spans."""
    if attrs.get(semconv.CHAT_REQUEST):
        return "request"
    op = attrs.get(semconv.GEN_AI_OPERATION_NAME)
    obs = attrs.get(semconv.OBSERVATION_TYPE)
    if op in _LLM_OPERATIONS or obs == "llm":
        return "llm"
    if op == semconv.OP_EXECUTE_TOOL or obs == "tool" or attrs.get(semconv.MCP_METHOD_NAME) == "tools/call":
        return "tool"
    if op == semconv.OP_INVOKE_AGENT:
        return "agent"
    if op == semconv.OP_INVOKE_WORKFLOW:
        return "workflow"
    if attrs.get(semconv.MCP_METHOD_NAME):
        return "mcp"
    if isinstance(obs, str) and obs:
        return obs
    return "other"


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _num(value: Any, kind: type) -> Any:
    if value is None or isinstance(value, bool):
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        return None


def _str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def span_row(span: ReadableSpan) -> tuple[Any, ...]:
    """The row for ``span``, in ``SPAN_COLUMNS`` order."""
    attrs: Mapping[str, Any] = span.attributes or {}
    ctx = span.context
    start = span.start_time or 0
    end = span.end_time or start
    failed = span.status.status_code == StatusCode.ERROR or bool(attrs.get(semconv.ERROR_TYPE))
    ttft_s = _num(attrs.get(semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK), float)
    cost = _num(attrs.get(semconv.COST_USD), float)
    if cost is None:
        cost = _num(attrs.get(semconv.GEN_AI_USAGE_COST), float)
    resource = dict(span.resource.attributes) if span.resource is not None else {}
    events = [
        {"name": e.name, "time_ns": e.timestamp, "attributes": {k: _jsonable(v) for k, v in (e.attributes or {}).items()}}
        for e in span.events
    ]
    return (
        format(ctx.trace_id, "032x") if ctx else "",
        format(ctx.span_id, "016x") if ctx else "",
        format(span.parent.span_id, "016x") if span.parent else None,
        span.name,
        (span.kind or SpanKind.INTERNAL).name.lower(),
        span_type(attrs),
        start,
        end,
        (end - start) / 1e6,
        "error" if failed else "ok",
        (span.status.description or _str(attrs.get(semconv.ERROR_TYPE))) if failed else None,
        _str(attrs.get(semconv.GEN_AI_CONVERSATION_ID) or attrs.get(semconv.SESSION_ID)),
        _str(attrs.get(semconv.USER_ID)),
        _str(attrs.get(semconv.TENANT_ID)),
        _str(attrs.get(semconv.MESSAGE_ID)),
        _str(attrs.get(semconv.ROUTE) or attrs.get(semconv.HTTP_ROUTE)),
        _str(attrs.get(semconv.GEN_AI_RESPONSE_MODEL) or attrs.get(semconv.GEN_AI_REQUEST_MODEL)),
        _str(attrs.get(semconv.GEN_AI_PROVIDER_NAME) or attrs.get(semconv.GEN_AI_SYSTEM)),
        _str(attrs.get(semconv.GEN_AI_OPERATION_NAME)),
        _str(attrs.get(semconv.GEN_AI_TOOL_NAME)),
        _str(attrs.get(semconv.MCP_SERVER_NAME)),
        _num(attrs.get(semconv.GEN_AI_USAGE_INPUT_TOKENS), int),
        _num(attrs.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS), int),
        cost,
        ttft_s * 1000 if ttft_s is not None else None,
        _str(resource.get(semconv.SERVICE_NAME)),
        dumps({k: _jsonable(v) for k, v in attrs.items()}),
        dumps(events) if events else None,
        dumps({k: _jsonable(v) for k, v in resource.items()}),
    )
