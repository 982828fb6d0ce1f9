"""A realistic chat turn made of OTel spans with the GenAI/MCP conventions (as the middleware and instrumentation
will produce them), for exporter tests that must not depend on those modules."""

from __future__ import annotations

import json

from opentelemetry.trace import SpanKind, Status, StatusCode

import chatobs
from chatobs.core import semconv as sc
from chatobs.runtime.wiring import get_tracer

INPUT = [{"role": "user", "parts": [{"type": "text", "content": "What is the weather in Paris?"}]}]
OUTPUT = [{"role": "assistant", "parts": [{"type": "text", "content": "Sunny, 21 C."}], "finish_reason": "stop"}]


def chat_turn(conversation_id: str = "conv-1", user_id: str = "user-1", *, fail_llm: bool = False, n: int = 0) -> str:
    """Emit one turn (request span, one LLM call, one MCP tool call); returns its trace ID (hex)."""
    tracer = get_tracer()
    with (
        chatobs.scope(
            conversation_id=conversation_id,
            user_id=user_id,
            tenant_id="acme",
            message_id=f"m-{n}",
            parent_message_id=f"m-{n - 1}" if n else None,
        ),
        tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER) as root,
    ):
        root.set_attribute(sc.CHAT_REQUEST, True)
        root.set_attribute(sc.ROUTE, "/chat")
        root.set_attribute(sc.HTTP_ROUTE, "/chat")
        root.set_attribute(sc.HTTP_REQUEST_METHOD, "POST")
        root.set_attribute(sc.INPUT, json.dumps({"message": "What is the weather in Paris?"}))
        if n:
            root.set_attribute(sc.REGENERATE, True)
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT) as llm:
            llm.set_attribute(sc.GEN_AI_OPERATION_NAME, sc.OP_CHAT)
            llm.set_attribute(sc.GEN_AI_PROVIDER_NAME, "openai")
            llm.set_attribute(sc.GEN_AI_REQUEST_MODEL, "gpt-4o-mini")
            llm.set_attribute(sc.GEN_AI_REQUEST_TEMPERATURE, 0.2)
            llm.set_attribute(sc.GEN_AI_REQUEST_MAX_TOKENS, 256)
            llm.set_attribute(sc.GEN_AI_INPUT_MESSAGES, json.dumps(INPUT))
            if fail_llm:
                llm.set_attribute(sc.ERROR_TYPE, "RateLimitError")
                llm.set_status(Status(StatusCode.ERROR, "429 rate limited"))
            else:
                llm.set_attribute(sc.GEN_AI_RESPONSE_MODEL, "gpt-4o-mini-2024-07-18")
                llm.set_attribute(sc.GEN_AI_OUTPUT_MESSAGES, json.dumps(OUTPUT))
                llm.set_attribute(sc.GEN_AI_USAGE_INPUT_TOKENS, 12)
                llm.set_attribute(sc.GEN_AI_USAGE_OUTPUT_TOKENS, 5)
                llm.set_attribute(sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, 0.25)
                llm.set_attribute(sc.COST_USD, 0.0000048)
                llm.set_attribute(sc.COST_INPUT_USD, 0.0000018)
                llm.set_attribute(sc.COST_OUTPUT_USD, 0.000003)
        with tracer.start_as_current_span("tools/call get_weather", kind=SpanKind.CLIENT) as tool:
            tool.set_attribute(sc.MCP_METHOD_NAME, "tools/call")
            tool.set_attribute(sc.GEN_AI_OPERATION_NAME, sc.OP_EXECUTE_TOOL)
            tool.set_attribute(sc.GEN_AI_TOOL_NAME, "get_weather")
            tool.set_attribute(sc.GEN_AI_TOOL_CALL_ARGUMENTS, json.dumps({"city": "Paris"}))
            tool.set_attribute(sc.GEN_AI_TOOL_CALL_RESULT, json.dumps({"temp_c": 21}))
        root.set_attribute(sc.OUTPUT, json.dumps({"reply": "Sunny, 21 C."}))
        return format(root.get_span_context().trace_id, "032x")


def unrelated_span() -> None:
    """A span the app makes outside any chat turn (a DB call in a background job)."""
    with get_tracer().start_as_current_span("SELECT users") as s:
        s.set_attribute("db.system.name", "postgresql")
