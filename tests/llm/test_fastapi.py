"""Done-when check: a FastAPI app with the chatobs middleware using the OpenAI SDK, streaming and not, gives one request
span with LLM child spans carrying model, tokens, cost and time to first token."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from opentelemetry.trace import SpanKind

import chatobs
from chatobs.core import semconv as sc

from .conftest import llm_spans, loads

pytestmark = pytest.mark.timeout(60)


def make_app(base_url: str) -> FastAPI:
    app = FastAPI()
    app.add_middleware(chatobs.ChatObsMiddleware)
    client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="test-key", max_retries=0)

    @app.post("/api/chat")
    async def chat(request: Request) -> dict[str, Any]:
        body = await request.json()
        reply = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": body["message"]}]
        )
        return {"reply": reply.choices[0].message.content}

    @app.post("/api/chat/stream")
    async def chat_stream(request: Request) -> StreamingResponse:
        body = await request.json()
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": body["message"]}]
        )

        async def relay():  # type: ignore[no-untyped-def]
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content

        return StreamingResponse(relay(), media_type="text/plain")

    return app


async def test_fastapi_turns_with_llm_child_spans(capture, fake) -> None:
    app = make_app(fake.base_url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        plain = await c.post(
            "/api/chat", json={"message": "hello there"}, headers={"X-Conversation-Id": "conv-42", "X-User-Id": "u-1"}
        )
        streamed = await c.post(
            "/api/chat/stream", json={"message": "stream please"}, headers={"X-Conversation-Id": "conv-42"}
        )
    assert plain.json() == {"reply": "You said: hello there"}
    assert streamed.text == "You said: stream please"
    spans = capture.spans()
    servers = {s.context.trace_id: s for s in spans if s.kind == SpanKind.SERVER and s.attributes.get(sc.CHAT_REQUEST)}
    assert len(servers) == 2
    by_id = {s.context.span_id: s for s in spans}
    llm = llm_spans(capture)
    assert len(llm) == 2
    for span in llm:
        server = servers[span.context.trace_id]  # one LLM span in each request's trace...
        parent = by_id.get(span.parent.span_id)
        while parent is not None and parent is not server:  # ...below that request's SERVER span
            parent = by_id.get(parent.parent.span_id) if parent.parent else None
        assert parent is server
        a = span.attributes
        assert a[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini" and a[sc.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini"
        assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 2 and a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 4
        assert (
            a[sc.GEN_AI_USAGE_COST] > 0 and a[sc.COST_USD] == a[sc.GEN_AI_USAGE_COST]
        )  # genai-prices knows gpt-4o-mini
        assert a[sc.GEN_AI_CONVERSATION_ID] == "conv-42"
    stream_span = next(s for s in llm if s.attributes.get(sc.GEN_AI_REQUEST_STREAM))
    assert stream_span.attributes[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert loads(stream_span, sc.GEN_AI_OUTPUT_MESSAGES)[0]["parts"][0]["content"] == "You said: stream please"
