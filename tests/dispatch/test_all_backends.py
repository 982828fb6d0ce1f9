"""The same chat turn, through a real FastAPI app with the chatobs middleware, lands correctly shaped in the OTLP,
Langfuse and Opik captures of the recording server in one run."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.trace import SpanKind

import chatobs
from chatobs.core import semconv as sc
from chatobs.runtime.wiring import get_tracer
from tests.recording_server import RecordingServer

from .turns import INPUT, OUTPUT

pytestmark = pytest.mark.timeout(60)


def _app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(chatobs.ChatObsMiddleware)

    @app.post("/chat")
    async def chat(body: dict) -> dict:  # type: ignore[type-arg]
        # Stands in for an instrumented OpenAI call (the instrumentation is another module's job).
        with get_tracer().start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT) as llm:
            llm.set_attributes(
                {
                    sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT,
                    sc.GEN_AI_PROVIDER_NAME: "openai",
                    sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
                    sc.GEN_AI_INPUT_MESSAGES: json.dumps(INPUT),
                    sc.GEN_AI_OUTPUT_MESSAGES: json.dumps(OUTPUT),
                    sc.GEN_AI_USAGE_INPUT_TOKENS: 12,
                    sc.GEN_AI_USAGE_OUTPUT_TOKENS: 5,
                    sc.COST_USD: 0.0000048,
                }
            )
        return {"reply": "Sunny, 21 C."}

    return app


async def test_one_turn_everywhere() -> None:
    with RecordingServer() as srv:
        chatobs.init(**srv.all_backends())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://test") as client:
            r = await client.post(
                "/chat", json={"message": "weather?"}, headers={"X-Conversation-Id": "conv-9", "X-User-Id": "alice"}
            )
        assert r.status_code == 200
        trace_id = r.headers["x-trace-id"]
        assert srv.wait_for(
            lambda s: (
                len(s.otlp_spans("/v1/traces")) >= 2
                and len(s.otlp_spans("/api/public/otel/v1/traces")) >= 2
                and len(s.opik_traces()) >= 1
                and len(s.opik_spans()) >= 2
            )
        )
        chatobs.shutdown()

        otlp = {s["name"]: s for s in srv.otlp_spans("/v1/traces") if s["traceId"] == trace_id}
        root = next(s for s in otlp.values() if s["attributes"].get(sc.CHAT_REQUEST))
        # OTLP gets every span, FastAPI's own included (it may put the LLM call under its endpoint span).
        by_id = {s["spanId"]: s for s in otlp.values()}
        up = otlp["chat gpt-4o-mini"]
        while up.get("parentSpanId") and up is not root:
            up = by_id[up["parentSpanId"]]
        assert up is root
        assert otlp["chat gpt-4o-mini"]["attributes"][sc.USER_ID] == "alice"

        lf = {s["name"]: s["attributes"] for s in srv.otlp_spans("/api/public/otel/v1/traces")}
        lf_root = next(a for a in lf.values() if a.get(sc.CHAT_REQUEST))
        assert (
            lf_root[sc.LF_TRACE_NAME] == "POST /chat"
            and lf_root[sc.SESSION_ID] == "conv-9"
            and lf_root[sc.USER_ID] == "alice"
        )
        assert lf["chat gpt-4o-mini"][sc.LF_OBSERVATION_TYPE] == "generation"
        # Langfuse gets chat spans only, re-parented past FastAPI's spans, so nothing points at a missing parent.
        lf_spans = {s["name"]: s for s in srv.otlp_spans("/api/public/otel/v1/traces")}
        assert not any(n.startswith("fastapi.") for n in lf_spans)
        assert lf_spans["chat gpt-4o-mini"]["parentSpanId"] == lf_spans["POST /chat"]["spanId"]

        [trace] = srv.opik_traces()
        assert trace["name"] == "POST /chat" and trace["thread_id"] == "conv-9" and "user:alice" in trace["tags"]
        llm = next(s for s in srv.opik_spans() if s["type"] == "llm")
        assert llm["trace_id"] == trace["id"] and llm["usage"]["total_tokens"] == 17
        opik_root = next(s for s in srv.opik_spans() if s["name"] == "POST /chat")
        assert llm["parent_span_id"] == opik_root["id"] and len(srv.opik_spans()) == 2
