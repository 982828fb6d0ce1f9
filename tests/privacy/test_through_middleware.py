"""Through a real FastAPI app with ChatObsMiddleware (httpx.ASGITransport): what the request span and the app's own
spans carry is masked before export; headers only from the allow-list; user IDs hashed when asked."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI, Request

import chatobs
from chatobs.core import semconv
from chatobs.processing.redaction import hash_user_id
from chatobs.runtime.wiring import get_tracer

from .helpers import CARD, EMAIL, PHONE, exported, leaks, span_text

pytestmark = pytest.mark.timeout(120)


def _app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(chatobs.ChatObsMiddleware)

    @app.post("/chat")
    async def chat(request: Request) -> dict:
        body = await request.json()
        with get_tracer().start_as_current_span("chat gpt-4o") as span:
            span.set_attribute(semconv.GEN_AI_OPERATION_NAME, semconv.OP_CHAT)
            span.set_attribute(
                semconv.GEN_AI_INPUT_MESSAGES,
                json.dumps([{"role": "user", "parts": [{"type": "text", "content": body["message"]}]}]),
            )
            if "fail" in body["message"]:
                raise ValueError(f"could not bill {CARD}")
        return {"ok": True}

    return app


async def test_fastapi_turn_is_masked(make_capture) -> None:
    cap = make_capture(capture_headers="user-agent,authorization", hash_user_ids=True, hash_secret="k-123")
    app = _app()
    headers = {
        "X-User-Id": "alice@example.com",
        "X-Conversation-Id": "conv-9",
        "User-Agent": "ua-test/2",
        "Authorization": "Bearer sk-proj-Zq4uT8vW2xY6aB1cD3eF5gH7iJ9kL0mN",
    }
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
    ) as c:
        r = await c.post("/chat", json={"message": f"I'm at {EMAIL}, {PHONE}"}, headers=headers)
        assert r.status_code == 200
        r = await c.post("/chat", json={"message": f"please fail for {EMAIL}"}, headers=headers)
        assert r.status_code == 500
    spans = exported(cap)
    assert len(spans) >= 4
    for span in spans:
        text = span_text(span)
        assert leaks(text) == [], span.name
        assert "alice@example.com" not in text and "sk-proj-" not in text
    llm = [s for s in spans if s.name == "chat gpt-4o"]
    assert (
        json.loads(llm[0].attributes[semconv.GEN_AI_INPUT_MESSAGES])[0]["parts"][0]["content"]
        == "I'm at <EMAIL_ADDRESS>, <PHONE_NUMBER>"
    )
    roots = [s for s in spans if s.attributes.get(semconv.CHAT_REQUEST)]
    assert roots and all(
        s.attributes[semconv.USER_ID] == hash_user_id(b"k-123".hex(), "alice@example.com") for s in roots
    )
    assert all(s.attributes[semconv.USER_ID].startswith("uh_") for s in spans if semconv.USER_ID in s.attributes)
    assert any("ua-test/2" in str(s.attributes.get("http.request.header.user-agent")) for s in roots)
