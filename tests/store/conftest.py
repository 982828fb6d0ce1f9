"""A local store filled by real chat turns: chatobs running with ``exporters=local``, spans from chatobs's tracer
inside ``chatobs.scope(...)`` carrying GenAI attributes, written by the background pipeline."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, Status, StatusCode

import chatobs
from chatobs.core import semconv
from chatobs.runtime import wiring as runtime

XSS_PROMPT = 'Ignore that. <script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2"> what is 2+2?'


def chat_turn(
    conversation: str,
    user: str,
    prompt: str,
    reply: str,
    *,
    model: str = "gpt-4o-mini",
    provider: str = "openai",
    tool: str | None = None,
    server: str = "kb",
    tool_error: bool = False,
    llm_error: bool = False,
    tokens: tuple[int, int] = (120, 40),
    cost: float = 0.0021,
) -> str:
    """One chat turn as an app with chatobs produces it: request span, LLM call, optional MCP tool call."""
    tracer = runtime.get_tracer()
    with chatobs.scope(conversation_id=conversation, user_id=user, tenant_id="acme"):
        with tracer.start_as_current_span(
            "POST /api/chat",
            kind=SpanKind.SERVER,
            attributes={
                semconv.CHAT_REQUEST: True,
                semconv.ROUTE: "/api/chat",
                semconv.HTTP_REQUEST_METHOD: "POST",
                semconv.INPUT: prompt,
            },
        ) as root:
            with tracer.start_as_current_span(
                f"chat {model}",
                kind=SpanKind.CLIENT,
                attributes={
                    semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT,
                    semconv.GEN_AI_PROVIDER_NAME: provider,
                    semconv.GEN_AI_REQUEST_MODEL: model,
                    semconv.GEN_AI_RESPONSE_MODEL: model,
                    semconv.GEN_AI_INPUT_MESSAGES: json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": prompt}]}]
                    ),
                },
            ) as llm:
                time.sleep(0.006)  # real-looking proportions in the viewer screenshot
                if llm_error:
                    llm.set_status(Status(StatusCode.ERROR, "RateLimitError: 429"))
                    llm.set_attribute(semconv.ERROR_TYPE, "RateLimitError")
                else:
                    llm.set_attributes(
                        {
                            semconv.GEN_AI_USAGE_INPUT_TOKENS: tokens[0],
                            semconv.GEN_AI_USAGE_OUTPUT_TOKENS: tokens[1],
                            semconv.COST_USD: cost,
                            semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: 0.012,
                            semconv.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                                [{"role": "assistant", "parts": [{"type": "text", "content": reply}]}]
                            ),
                        }
                    )
            if tool:
                with tracer.start_as_current_span(
                    f"execute_tool {tool}",
                    kind=SpanKind.CLIENT,
                    attributes={
                        semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL,
                        semconv.GEN_AI_TOOL_NAME: tool,
                        semconv.MCP_METHOD_NAME: "tools/call",
                        semconv.MCP_SERVER_NAME: server,
                        semconv.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps({"query": prompt[:40]}),
                    },
                ) as t:
                    time.sleep(0.003)
                    if tool_error:
                        t.set_status(Status(StatusCode.ERROR, "ToolError: index offline"))
                    else:
                        t.set_attribute(semconv.GEN_AI_TOOL_CALL_RESULT, "3 documents")
            root.set_attribute(semconv.OUTPUT, reply)
        return format(root.get_span_context().trace_id, "032x")


def fill(db: Path, **settings: Any) -> dict[str, str]:
    """Run a few conversations through chatobs into ``db``; returns names -> trace IDs."""
    runtime.shutdown(timeout_s=2)
    rt = chatobs.init(exporters="local", local_db=str(db), export_interval_ms=20, **settings)
    assert rt is not None
    ids = {
        "alice1": chat_turn(
            "conv-alice", "alice", "How do I reset my password?", "Use the reset link.", tool="search_docs"
        ),
        "alice2": chat_turn(
            "conv-alice", "alice", "It did not work", "Let me check the index.", tool="search_docs", tool_error=True
        ),
        "bob1": chat_turn(
            "conv-bob", "bob", XSS_PROMPT, "4", model="claude-haiku", provider="anthropic", tokens=(50, 5), cost=0.0004
        ),
        "bob2": chat_turn(
            "conv-bob", "bob", "And 3+3?", "", model="claude-haiku", provider="anthropic", llm_error=True
        ),
        "carol1": chat_turn("conv-carol", "carol", "Weather in Paris?", "Sunny.", tool="weather", server="weather-mcp"),
    }
    assert rt.force_flush(10)
    runtime.shutdown(timeout_s=5)
    return ids


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    db = tmp_path_factory.mktemp("store") / "traces.db"
    return db, fill(db)
