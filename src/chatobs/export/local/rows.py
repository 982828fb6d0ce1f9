"""Turn a finished OTel span into one row of the local store: the columns people filter on, the rest as JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from ...core import semconv, span_types
from ...core.numbers import as_float, as_int

# Column order of the ``spans`` table (current schema). ``attributes``/``events``/``resource`` are JSON text.
SPAN_COLUMNS: tuple[str, ...] = (
    "trace_id",
    "span_id",
    "parent_id",
    "name",
    "kind",
    "span_type",
    "start_ns",
    "end_ns",
    "duration_ms",
    "status",
    "status_message",
    "conversation_id",
    "user_id",
    "tenant_id",
    "message_id",
    "route",
    "model",
    "provider",
    "operation",
    "tool_name",
    "mcp_server",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "ttft_ms",
    "service_name",
    "attributes",
    "events",
    "resource",
)

# core.span_types' answer as the ``span_type`` column: how the CLI and viewer group and colour spans. Embeddings
# count as LLM calls there (one colour, one "LLM calls" figure); both kinds of tool call are tools.
_COLUMN: dict[str, str] = {
    span_types.EMBEDDING: "llm",
    span_types.MCP_TOOL: "tool",
}


def span_type(attrs: Mapping[str, Any]) -> str:
    """request | feedback | llm | tool | mcp | agent | workflow | task | other."""
    found = span_types.classify(attrs)
    return _COLUMN.get(found, found)


# The tool spans that count a call (pipeline.spans.owns_tool_call): the server half of a call a chatobs client made
# is stored (the tree shows it) but not counted again; an MCP server writing to the same file is common.
OWNED_TOOL_SQL = (
    f"(span_type = 'tool' AND NOT (kind = 'server' AND "
    f"json_extract(attributes, '$.\"{semconv.MCP_CALLER_TRACED}\"') IS 1))"
)


def owns_tool_row(span_type_: str | None, kind: str | None, attributes_json: str | None) -> bool:
    """``OWNED_TOOL_SQL`` for a row in hand (the Python summary must give what the SQL one gives)."""
    if span_type_ != "tool":
        return False
    if kind != "server" or not attributes_json:
        return True
    try:
        return json.loads(attributes_json).get(semconv.MCP_CALLER_TRACED) is not True
    except (ValueError, AttributeError):
        return True


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
# ASCII-only output for what the fast path refuses: integers past 64 bits, lone surrogates (which SQLite could not
# take as UTF-8 text either).
_SAFE_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), default=str)

try:  # orjson (the ``fast`` extra) encodes span attributes about 3x faster than the json module
    import orjson

    def dumps(value: Any) -> str:
        try:
            return orjson.dumps(value, default=str).decode()
        except (TypeError, ValueError):
            return _SAFE_ENCODER.encode(value)

except ImportError:  # pragma: no cover - depends on the installation

    def dumps(value: Any) -> str:
        try:
            return _ENCODER.encode(value)
        except (TypeError, ValueError):
            return _SAFE_ENCODER.encode(value)


def _str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if type(value) is str else str(value)


_KIND_NAMES = {k: k.name.lower() for k in SpanKind}
# Resources are shared by every span of a process: serialise each one once.
_resource_cache: dict[int, tuple[Any, str, str | None]] = {}


def _resource(span: ReadableSpan) -> tuple[str, str | None]:
    res = span.resource
    hit = _resource_cache.get(id(res))
    if hit is not None and hit[0] is res:
        return hit[1], hit[2]
    attrs = dict(res.attributes) if res is not None else {}
    entry = (res, dumps(attrs), _str(attrs.get(semconv.SERVICE_NAME)))
    if len(_resource_cache) > 64:
        _resource_cache.clear()
    _resource_cache[id(res)] = entry
    return entry[1], entry[2]


def span_row(span: ReadableSpan) -> tuple[Any, ...]:
    """The row for ``span``, in ``SPAN_COLUMNS`` order."""
    attrs: Mapping[str, Any] = span.attributes or {}
    get = attrs.get
    ctx = span.context
    status = span.status
    start = span.start_time or 0
    end = span.end_time or start
    failed = status.status_code == StatusCode.ERROR or bool(get(semconv.ERROR_TYPE))
    ttft_s = as_float(get(semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK))
    cost = as_float(get(semconv.COST_USD))
    if cost is None:
        cost = as_float(get(semconv.GEN_AI_USAGE_COST))
    resource_json, service = _resource(span)
    events = (
        [{"name": e.name, "time_ns": e.timestamp, "attributes": dict(e.attributes or {})} for e in span.events]
        if span.events
        else None
    )
    return (
        format(ctx.trace_id, "032x") if ctx else "",
        format(ctx.span_id, "016x") if ctx else "",
        format(span.parent.span_id, "016x") if span.parent else None,
        span.name,
        _KIND_NAMES.get(span.kind, "internal"),
        span_type(attrs),
        start,
        end,
        (end - start) / 1e6,
        "error" if failed else "ok",
        (status.description or _str(get(semconv.ERROR_TYPE))) if failed else None,
        _str(get(semconv.GEN_AI_CONVERSATION_ID) or get(semconv.SESSION_ID)),
        _str(get(semconv.USER_ID)),
        _str(get(semconv.TENANT_ID)),
        _str(get(semconv.MESSAGE_ID)),
        _str(get(semconv.ROUTE) or get(semconv.HTTP_ROUTE)),
        _str(get(semconv.GEN_AI_RESPONSE_MODEL) or get(semconv.GEN_AI_REQUEST_MODEL)),
        _str(get(semconv.GEN_AI_PROVIDER_NAME) or get(semconv.GEN_AI_SYSTEM)),
        _str(get(semconv.GEN_AI_OPERATION_NAME)),
        _str(get(semconv.GEN_AI_TOOL_NAME)),
        _str(get(semconv.MCP_SERVER_NAME)),
        as_int(get(semconv.GEN_AI_USAGE_INPUT_TOKENS)),
        as_int(get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS)),
        cost,
        ttft_s * 1000 if ttft_s is not None else None,
        service,
        dumps(dict(attrs)),  # json writes the SDK's attribute tuples as arrays
        dumps(events) if events else None,
        resource_json,
    )
