"""Redaction stage CPU per chat turn, on the spans of realistic conversations.

    python -m benchmarks redaction                 # short; figures into benchmarks/results.json
    python -m benchmarks.bench_redaction           # the same, printed only
    python -m benchmarks.bench_redaction --dump F  # also write every redacted span's attributes to F (JSON), to
                                                   # check that a change to the stage leaves its output unchanged

Each turn is what the demo app produces under `benchmarks/bench_turn.py`: the request span, FastAPI's three internal
spans, an LLM call that asks for a tool (input: system prompt + the whole history + the new message; tool
definitions), the MCP tool call (whose error echoes the request, PII included), and a second LLM call that resends all
of it plus the tool call and its result; identity attributes on every span. Conversations of 10 turns (and of 5, as
bench_turn starts a new one every 5 turns), so the history grows.
The spans are made by chatobs's own LLM instrumentation helpers (the same JSON as in production) and run through a
`RedactionStage` one turn per batch, as the pipeline thread does.

Presidio is replaced by a stub backend (a regex for e-mails and phones): it runs in the masking worker process in
production, so what this measures is the pipeline thread's own share -- the JSON walk, secret scrubbing, caches and
truncation. CPU time of this thread (``time.thread_time``), best of several rounds; each round starts with empty
caches.
"""

from __future__ import annotations

import gc
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

from chatobs.config import load_settings  # noqa: E402
from chatobs.core import semconv  # noqa: E402
from chatobs.core.json_text import to_json  # noqa: E402
from chatobs.processing import secrets  # noqa: E402
from chatobs.processing.masking.masker import Masker  # noqa: E402
from chatobs.processing.pii.engine import PiiConfig  # noqa: E402
from chatobs.processing.redaction import RedactionStage  # noqa: E402
from chatobs.recording.instrument.messages import normalize_messages, normalize_output  # noqa: E402

SYSTEM = (
    "You are the support assistant of the chatobs demo. Answer briefly. Use the calculator tool for arithmetic, "
    "kb_lookup for support questions, and slow_lookup only when asked for it."
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "Evaluate an arithmetic expression, e.g. "
            "'(2 + 3) * 4 / 7'. Numbers and + - * / // % ** only.",
            "parameters": {
                "type": "object",
                "properties": {"expression": {"type": "string", "title": "Expression"}},
                "required": ["expression"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "kb_lookup",
            "description": "Look up a support topic in the knowledge base (refunds, shipping, opening hours, ...).",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string", "title": "Query"}},
                "required": ["query"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "slow_lookup",
            "description": "Like kb_lookup, but slow (a backend that takes several seconds).",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string", "title": "Query"}},
                "required": ["query"],
            },
        },
    },
]


class StubBackend:
    """Stands in for Presidio (which runs in the worker process in production): e-mails and phones only."""

    _PII = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+|\+?\d[\d ()-]{8,}\d")

    def mask_many(self, items: list[tuple[str, str | None]], timeout_s: float) -> list[str | bool | None]:
        return [self._PII.sub("<PII>", text) for text, _ in items]

    def close(self) -> None:
        pass


def make_turns(conversations: int = 3, turns: int = 10) -> list[list[ReadableSpan]]:
    """One batch of finished spans per chat turn."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    batches: list[list[ReadableSpan]] = []
    n = 0
    for c in range(conversations):
        history: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
        for t in range(turns):
            n += 1
            ids = {
                semconv.USER_ID: "bench-user",
                "gen_ai.conversation.id": f"{c:032x}",
                "session.id": f"{c:032x}",
                "chatobs.message.id": f"{n:032x}",
            }
            # As in the demo under bench_turn: the fake model passes the whole request to the calculator, whose error
            # echoes it (PII included) into the tool result and the answer.
            expression = (
                f"{12 + t}*7 please, and send the result to jane.doe{c}@example.com or call +1 415 555 01{t:02d}"
            )
            history.append({"role": "user", "content": f"calculate {expression}"})
            with tracer.start_as_current_span(
                "POST /api/chat",
                kind=SpanKind.SERVER,
                attributes={
                    semconv.CHAT_REQUEST: True,
                    "chatobs.route": "/api/chat",
                    "http.request.method": "POST",
                    "url.path": "/api/chat",
                    "url.scheme": "http",
                    "http.route": "/api/chat",
                    "server.address": "127.0.0.1",
                    "server.port": 8000,
                    "client.address": "127.0.0.1",
                    "user_agent.original": "python-httpx/0.28.1",
                    "network.protocol.version": "1.1",
                    "http.request.header.content_type": "application/json",
                    **ids,
                },
            ) as request:
                for name in ("fastapi.dependencies", "fastapi.endpoint"):
                    with tracer.start_as_current_span(name, attributes={"code.function.name": "demo_app.chat", **ids}):
                        pass
                call = {
                    "id": f"call_fake_{n}",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": json.dumps({"expression": expression})},
                }
                _llm(
                    tracer, history, {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls", n, ids
                )
                history.append({"role": "assistant", "content": None, "tool_calls": [call]})
                result = f"Error executing tool calculator: not an arithmetic expression: '{expression}'"
                with tracer.start_as_current_span(
                    "MCP send tools/call calculator",
                    kind=SpanKind.CLIENT,
                    attributes={
                        "mcp.method.name": "tools/call",
                        "jsonrpc.request.id": str(n),
                        **ids,
                        semconv.GEN_AI_OPERATION_NAME: "execute_tool",
                        "chatobs.observation.type": "tool",
                        semconv.GEN_AI_TOOL_NAME: "calculator",
                        "network.transport": "pipe",
                        "chatobs.mcp.server.command": "python -m demo_app.mcp_server --transport stdio",
                        "chatobs.mcp.server.name": "chatobs-demo-tools",
                        "mcp.protocol.version": "2025-06-18",
                        semconv.GEN_AI_TOOL_CALL_ARGUMENTS: to_json({"expression": expression}),
                        "error.type": "tool_error",
                        semconv.GEN_AI_TOOL_CALL_RESULT: to_json(
                            {"content": [{"text": result, "type": "text"}], "isError": True}
                        ),
                    },
                ):
                    pass
                history.append({"role": "tool", "tool_call_id": call["id"], "content": f"Error: {result}"})
                answer = f"The result is Error: {result}"
                _llm(tracer, history, answer, "stop", n, ids)
                history.append({"role": "assistant", "content": answer})
                with tracer.start_as_current_span(
                    "fastapi.serialization", attributes={"code.function.name": "demo_app.chat", **ids}
                ):
                    pass
                request.set_attribute("http.response.status_code", 200)
            batches.append(list(exporter.get_finished_spans()))
            exporter.clear()
    return batches


def _llm(tracer: Any, history: list[dict[str, Any]], output: Any, finish: str, n: int, ids: dict[str, str]) -> None:
    with tracer.start_as_current_span(
        "chat gpt-4o-mini",
        kind=SpanKind.CLIENT,
        attributes={
            semconv.GEN_AI_OPERATION_NAME: "chat",
            semconv.GEN_AI_PROVIDER_NAME: "openai",
            "chatobs.observation.type": "llm",
            semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
            "server.address": "127.0.0.1",
            "server.port": 8123,
            semconv.GEN_AI_INPUT_MESSAGES: to_json(normalize_messages(history)),
            semconv.GEN_AI_TOOL_DEFINITIONS: to_json(TOOLS),
            **ids,
        },
    ) as span:
        span.set_attributes(
            {
                semconv.GEN_AI_USAGE_INPUT_TOKENS: 43,
                semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 15,
                "gen_ai.response.model": "gpt-4o-mini",
                "gen_ai.response.id": f"chatcmpl-fake-{n}",
                "gen_ai.response.finish_reasons": [finish],
                semconv.GEN_AI_OUTPUT_MESSAGES: to_json(normalize_output(output, finish)),
                "chatobs.cost.usd": 1.5e-05,
                "chatobs.cost.input_usd": 6.4e-06,
                "chatobs.cost.output_usd": 9e-06,
                "gen_ai.usage.cost": 1.5e-05,
                "chatobs.cost.source": "genai-prices",
            }
        )


def new_stage(**overrides: Any) -> RedactionStage:
    settings = load_settings(**overrides)
    masker = Masker(
        PiiConfig(), StubBackend(), max_length=settings.max_attribute_length, timeout_s=settings.masking_timeout_s
    )
    return RedactionStage(settings, masker)


def run(batches: list[list[ReadableSpan]], **overrides: Any) -> tuple[float, list[list[ReadableSpan]]]:
    """(CPU seconds of this thread for all batches, the redacted batches), starting from empty caches."""
    stage = new_stage(**overrides)
    secrets._scrub_cached.cache_clear()
    out = []
    start = time.thread_time()
    for batch in batches:
        out.append(stage.process(batch))
    return time.thread_time() - start, out


def dump(batches: list[list[ReadableSpan]]) -> list[Any]:
    return [
        [{"name": s.name, "attributes": dict(s.attributes or {}), "status": s.status.description} for s in b]
        for b in batches
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    rounds = int(os.environ.get("BENCH_ROUNDS", "15"))
    batches = make_turns()
    short = make_turns(conversations=6, turns=5)  # like benchmarks/bench_turn.py: a new conversation every 5 turns
    variants: dict[str, tuple[list[list[ReadableSpan]], dict[str, Any]]] = {
        "10-turn conversations, default 1000-char limit": (batches, {}),
        "10-turn conversations, no length limit": (batches, {"max_attribute_length": 0}),
        "5-turn conversations, default 1000-char limit": (short, {}),
    }
    best = {label: float("inf") for label in variants}
    for _ in range(rounds):  # interleaved: a burst of load on the shared machine hits every variant alike
        for label, (turns, overrides) in variants.items():
            gc.collect()
            best[label] = min(best[label], run(turns, **overrides)[0] / len(turns))
    results: dict[str, Any] = {}
    for label, cpu in best.items():
        print(f"redaction stage, {label}: {cpu * 1e6:.0f} µs CPU per turn (best of {rounds})")
        results[label] = round(cpu * 1e6, 1)
    if "--dump" in argv:
        path = argv[argv.index("--dump") + 1]
        out = dump(run(batches)[1]) + dump(run(batches, max_attribute_length=0)[1])
        Path(path).write_text(json.dumps(out, indent=1, ensure_ascii=False, default=list))
        print(f"wrote {path}")
    return {"cpu_us_per_turn": results}


if __name__ == "__main__":
    main()
