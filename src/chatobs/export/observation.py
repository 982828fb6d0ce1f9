"""What an OTel GenAI/MCP span *is* for an LLM backend: shared by the Langfuse and Opik translations.

Both backends want the same facts (observation kind, model, parameters, usage, cost, input/output, error) under
different names; reading them once here keeps the two translations consistent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from ..core import semconv as sc
from ..core import span_types
from ..core.numbers import as_float, as_int

Kind = Literal["llm", "embedding", "tool", "agent", "chain", "span"]

# core.span_types' answer as an LLM backend's observation kind. An MCP request that is not a tool call (initialize,
# tools/list, a connection) is a plain span: the backends count "tool" observations as tool calls.
_KIND: dict[str, Kind] = {
    span_types.LLM: "llm",
    span_types.EMBEDDING: "embedding",
    span_types.MCP_TOOL: "tool",
    span_types.TOOL: "tool",
    span_types.AGENT: "agent",
    span_types.WORKFLOW: "chain",
}


def kind_of(attrs: Mapping[str, Any]) -> Kind:
    return _KIND.get(span_types.classify(attrs), "span")


def parse_json(value: Any) -> Any:
    """Attribute values holding JSON (messages, decorator I/O) as Python objects; anything else unchanged."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, tuple):
        return list(value)
    return value


@dataclass
class Shape:
    kind: Kind
    name: str
    is_root: bool
    model: str | None = None
    provider: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    input: Any = None
    output: Any = None
    usage: dict[str, int] = field(default_factory=dict)  # input/output/total/cache_read/cache_creation/reasoning
    cost: dict[str, float] = field(default_factory=dict)  # input/output/total (USD)
    ttfc_s: float | None = None
    error: bool = False
    error_type: str | None = None
    error_message: str | None = None
    error_stack: str | None = None


def shape(span: ReadableSpan) -> Shape:
    a = span.attributes or {}
    kind = kind_of(a)
    s = Shape(kind=kind, name=span.name, is_root=bool(a.get(sc.CHAT_REQUEST)))
    s.model = a.get(sc.GEN_AI_RESPONSE_MODEL) or a.get(sc.GEN_AI_REQUEST_MODEL)  # type: ignore[assignment]
    s.provider = a.get(sc.GEN_AI_PROVIDER_NAME) or a.get(sc.GEN_AI_SYSTEM)  # type: ignore[assignment]
    s.params = {name: parse_json(a[key]) for key, name in sc.REQUEST_PARAMETERS.items() if key in a}
    if kind in ("llm", "embedding"):
        msgs = parse_json(a.get(sc.GEN_AI_INPUT_MESSAGES))
        system = parse_json(a.get(sc.GEN_AI_SYSTEM_INSTRUCTIONS))
        if system is not None and isinstance(msgs, list):
            msgs = [{"role": "system", "parts": system if isinstance(system, list) else [system]}, *msgs]
        s.input = msgs if msgs is not None else system
        s.output = parse_json(a.get(sc.GEN_AI_OUTPUT_MESSAGES))
    elif kind == "tool":
        s.input = parse_json(a.get(sc.GEN_AI_TOOL_CALL_ARGUMENTS, a.get(sc.INPUT)))
        s.output = parse_json(a.get(sc.GEN_AI_TOOL_CALL_RESULT, a.get(sc.OUTPUT)))
    else:
        s.input = parse_json(a.get(sc.INPUT))
        s.output = parse_json(a.get(sc.OUTPUT))
    usage = {
        "input": as_int(a.get(sc.GEN_AI_USAGE_INPUT_TOKENS)),
        "output": as_int(a.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS)),
        "cache_read_input_tokens": as_int(a.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)),
        "cache_creation_input_tokens": as_int(a.get(sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)),
        "reasoning_tokens": as_int(a.get(sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)),
    }
    s.usage = {k: v for k, v in usage.items() if v is not None}
    if "input" in s.usage or "output" in s.usage:
        s.usage["total"] = s.usage.get("input", 0) + s.usage.get("output", 0)
    total = as_float(a.get(sc.COST_USD, a.get(sc.GEN_AI_USAGE_COST)))
    cost = {"input": as_float(a.get(sc.COST_INPUT_USD)), "output": as_float(a.get(sc.COST_OUTPUT_USD)), "total": total}
    s.cost = {k: v for k, v in cost.items() if v is not None}
    s.ttfc_s = as_float(a.get(sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK))
    if span.status.status_code == StatusCode.ERROR:
        s.error = True
        s.error_type = str(a.get(sc.ERROR_TYPE) or "error")
        s.error_message = span.status.description or None
        for ev in span.events or ():
            if ev.name == "exception":
                ea = ev.attributes or {}
                s.error_type = str(ea.get(sc.EXCEPTION_TYPE) or s.error_type)
                s.error_message = s.error_message or (
                    str(ea[sc.EXCEPTION_MESSAGE]) if sc.EXCEPTION_MESSAGE in ea else None
                )
                s.error_stack = str(ea[sc.EXCEPTION_STACKTRACE]) if sc.EXCEPTION_STACKTRACE in ea else None
                break
        s.error_message = s.error_message or s.error_type
    return s


def trace_name(span: ReadableSpan) -> str:
    """A chat turn is named after its route (``POST /chat``), falling back to the span name."""
    a = span.attributes or {}
    route = a.get(sc.ROUTE) or a.get(sc.HTTP_ROUTE)
    if route:
        method = a.get(sc.HTTP_REQUEST_METHOD)
        return f"{method} {route}" if method and not str(route).startswith(str(method)) else str(route)
    return span.name


def trace_facts(span: ReadableSpan) -> dict[str, Any]:
    """Identity and turn flags of a chat root, for trace metadata and tags."""
    a = span.attributes or {}
    facts = {
        "route": a.get(sc.ROUTE) or a.get(sc.HTTP_ROUTE),
        "tenant_id": a.get(sc.TENANT_ID),
        "message_id": a.get(sc.MESSAGE_ID),
        "parent_message_id": a.get(sc.PARENT_MESSAGE_ID),
        "edit": a.get(sc.EDIT),
        "regenerate": a.get(sc.REGENERATE),
        "http_status": a.get(sc.HTTP_RESPONSE_STATUS_CODE),
    }
    return {k: v for k, v in facts.items() if v not in (None, False, "")}


def trace_tags(span: ReadableSpan) -> list[str]:
    f = trace_facts(span)
    tags = ["chatobs"]
    if f.get("route"):
        tags.append(f"route:{f['route']}")
    if f.get("tenant_id"):
        tags.append(f"tenant:{f['tenant_id']}")
    if f.get("edit"):
        tags.append("edit")
    if f.get("regenerate"):
        tags.append("regenerate")
    return tags
