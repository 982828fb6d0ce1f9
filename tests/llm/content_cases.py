"""LLM calls whose exported spans must not change when content is normalised in the pipeline instead of on the request
path: real OpenAI/Anthropic SDKs and httpx against the fake provider, and ``chatobs.llm_call``, streamed and not.

Only public APIs are used, so the same cases run against an older checkout of chatobs. The golden file
``data/content_golden.json`` holds what the recorder wrote when it normalised on the request path (main at cde39de);
regenerate it from such a checkout with ``PYTHONPATH=<old checkout>/src:. python -m tests.llm.content_cases``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).parent / "data" / "content_golden.json"
# Values that differ from run to run (ports, timings, generated IDs, the cost data's version): compared by key only.
VOLATILE = ("server.port", "gen_ai.response.time_to_first_chunk", "gen_ai.response.id", "chatobs.cost.")

CALCULATOR = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression",
        "strict": True,
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
    },
}
CHAT_HISTORY: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief. Prix: 5 €"},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is on this picture?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "calculator", "arguments": '{"expression": "2+3"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "5"},
    {"role": "user", "content": "thanks, and 7*6?", "name": "ann"},
]
RESPONSES_INPUT: list[dict[str, Any]] = [
    {"role": "user", "content": [{"type": "input_text", "text": "calculate 2+3"}]},
    {"type": "function_call", "call_id": "call_9", "name": "calculator", "arguments": '{"expression": "2+3"}'},
    {"type": "function_call_output", "call_id": "call_9", "output": "5"},
    {"role": "user", "content": "and now?"},
]
ANTHROPIC_MESSAGES: list[dict[str, Any]] = [
    {"role": "user", "content": "calculate 2+3"},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "use the tool", "signature": "x"},
            {"type": "tool_use", "id": "tu_1", "name": "calculator", "input": {"expression": "2+3"}},
        ],
    },
    {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": [{"type": "text", "text": "5"}]}],
    },
    {"role": "user", "content": "hello there"},
]
ANTHROPIC_TOOLS = [{"name": "calculator", "description": "math", "input_schema": {"type": "object"}}]


def _cases(base: str) -> dict[str, Callable[[], Any]]:
    import anthropic
    import httpx
    import openai

    import chatobs

    oai = openai.OpenAI(base_url=base + "/v1", api_key="test-key", max_retries=0, timeout=10)
    claude = anthropic.Anthropic(base_url=base, api_key="test-key", max_retries=0, timeout=10)

    def openai_chat(stream: bool) -> Callable[[], Any]:
        def run() -> Any:
            r = oai.chat.completions.create(
                model="gpt-4o-mini", messages=CHAT_HISTORY, tools=[CALCULATOR], temperature=0.2, stream=stream
            )
            return list(r) if stream else r

        return run

    def responses(stream: bool) -> Callable[[], Any]:
        def run() -> Any:
            r = oai.responses.create(
                model="gpt-4o-mini",
                input=RESPONSES_INPUT,
                instructions="Be brief.",
                tools=[{"type": "function", "name": "calculator", "parameters": {"type": "object"}}],
                stream=stream,
            )
            return list(r) if stream else r

        return run

    def anthropic_messages(stream: bool) -> Callable[[], Any]:
        def run() -> Any:
            r = claude.messages.create(
                model="claude-haiku-4-5",
                max_tokens=100,
                messages=ANTHROPIC_MESSAGES,
                system=[{"type": "text", "text": "Be brief."}],
                tools=ANTHROPIC_TOOLS,
                stream=stream,
            )
            return list(r) if stream else r

        return run

    def http(path: str, body: dict[str, Any]) -> Callable[[], Any]:
        def run() -> Any:
            with httpx.Client(timeout=10) as c:
                return c.post(base + path, json=body).content

        return run

    def llm_call(stream: bool) -> Callable[[], Any]:
        def run() -> Any:
            with chatobs.llm_call(
                "mistral",
                "mistral-small",
                CHAT_HISTORY,
                system="Be brief.",
                tools=[CALCULATOR],
                stream=stream,
                temperature=0.1,
            ) as call:
                if stream:
                    call.chunk("Hel")
                    call.chunk("lo")
                    call.record(usage={"input_tokens": 3, "output_tokens": 2}, finish_reason="stop")
                else:
                    call.record(
                        output={"role": "assistant", "content": "Hello"},
                        usage={"input_tokens": 3, "output_tokens": 2},
                        finish_reason="stop",
                    )

        return run

    return {
        "openai chat": openai_chat(False),
        "openai chat stream": openai_chat(True),
        "openai responses": responses(False),
        "openai responses stream": responses(True),
        "anthropic messages": anthropic_messages(False),
        "anthropic messages stream": anthropic_messages(True),
        "httpx chat": http(
            "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": CHAT_HISTORY, "tools": [CALCULATOR]}
        ),
        "httpx chat stream": http(
            "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": CHAT_HISTORY, "stream": True}
        ),
        "httpx anthropic": http(
            "/v1/messages",
            {
                "model": "claude-haiku-4-5",
                "max_tokens": 50,
                "system": "Be brief.",
                "messages": ANTHROPIC_MESSAGES,
                "tools": ANTHROPIC_TOOLS,
            },
        ),
        "llm_call": llm_call(False),
        "llm_call stream": llm_call(True),
    }


def _shown(attributes: Any) -> list[list[Any]]:
    """The span's attributes in order, volatile values blanked."""
    out = []
    for key, value in (attributes or {}).items():
        if key.startswith(VOLATILE):
            value = "<volatile>"
        out.append([key, list(value) if isinstance(value, tuple) else value])
    return out


def run_cases(base: str) -> dict[str, list[list[Any]]]:
    """Each case run once with chatobs on (content captured, exporters none), its LLM span's attributes as exported."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import chatobs
    from chatobs.runtime import wiring as runtime

    exporter = InMemorySpanExporter()
    rt = chatobs.init(_span_exporters=[exporter], exporters="none", export_interval_ms=20, capture_content=True)
    assert rt is not None
    shown: dict[str, list[list[Any]]] = {}
    try:
        for name, case in _cases(base).items():
            exporter.clear()
            case()
            rt.force_flush(10)
            llm = [
                s
                for s in exporter.get_finished_spans()
                if (s.attributes or {}).get("chatobs.observation.type") == "llm"
            ]
            assert len(llm) == 1, (name, [s.name for s in exporter.get_finished_spans()])
            shown[name] = _shown(llm[0].attributes)
    finally:
        runtime.shutdown(timeout_s=2)
    return shown


if __name__ == "__main__":
    from demo_app.fake_llm import FakeLLM

    with FakeLLM() as fake:
        result = run_cases(fake.base_url)
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {GOLDEN} ({len(result)} cases)", file=sys.stderr)
