"""Real chat turns through a FastAPI app with ChatObsMiddleware land in the local store and show up in the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from opentelemetry.trace import SpanKind

import chatobs
from chatobs.core import semconv
from chatobs.runtime import wiring as runtime
from chatobs.tools.cli.main import main


def make_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(chatobs.ChatObsMiddleware)

    @app.post("/api/chat")
    async def chat(request: Request) -> dict[str, str]:
        body = await request.json()
        tracer = runtime.get_tracer()
        with tracer.start_as_current_span(
            "chat fake-model",
            kind=SpanKind.CLIENT,
            attributes={
                semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT,
                semconv.GEN_AI_PROVIDER_NAME: "fake",
                semconv.GEN_AI_REQUEST_MODEL: "fake-model",
                semconv.GEN_AI_USAGE_INPUT_TOKENS: 9,
                semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 3,
            },
        ):
            pass
        with tracer.start_as_current_span(
            "execute_tool lookup",
            attributes={
                semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL,
                semconv.GEN_AI_TOOL_NAME: "lookup",
                semconv.MCP_SERVER_NAME: "kb",
            },
        ):
            pass
        return {"reply": "echo: " + body["message"]}

    return app


async def test_chat_turns_through_the_middleware(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "mw.db"
    rt = chatobs.init(exporters="local", local_db=str(db), export_interval_ms=20)
    assert rt is not None
    app = make_app()
    trace_ids = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        for i, (conv, user) in enumerate([("c-1", "ann"), ("c-1", "ann"), ("c-2", "ben")]):
            r = await client.post(
                "/api/chat", json={"message": f"hello {i}", "conversation_id": conv}, headers={"X-User-Id": user}
            )
            assert r.status_code == 200
            trace_ids.append(r.headers["x-trace-id"])
    assert rt.force_flush(10)
    runtime.shutdown(timeout_s=5)

    assert main(["traces", "--db", str(db), "--json"]) == 0
    rows = {r["trace_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(trace_ids)
    first = rows[trace_ids[0]]
    assert (first["conversation_id"], first["user_id"], first["route"]) == ("c-1", "ann", "/api/chat")
    # FastAPI adds its own spans (dependencies, endpoint, serialization) to the same trace.
    assert first["span_count"] >= 3
    assert (first["llm_calls"], first["tool_calls"], first["input_tokens"], first["output_tokens"]) == (1, 1, 9, 3)

    assert main(["stats", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "3 chat turns (+0 other traces), 2 conversations, 2 users, 3 LLM calls, 3 tool calls" in out
    assert "/api/chat" in out and "lookup" in out

    assert main(["show", trace_ids[2], "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "conversation=c-2" in out and "user=ben" in out and "■ execute_tool lookup" in out
