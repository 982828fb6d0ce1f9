"""Handlers triggered over a socket get a parent in the chat's trace, not none: each message of a plain FastAPI
websocket chat is one turn (its own trace, its LLM call inside), and a python-socketio handler for an event naming a
chat runs in that chat's latest turn. Real FastAPI and python-socketio servers under uvicorn, real websocket and
socket.io clients, the real openai SDK against the fake provider."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import openai
import pytest
import simple_websocket
import socketio
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

import chatobs
from chatobs.core import semconv as sc

pytestmark = pytest.mark.timeout(60)


def _llm_spans(spans: list[Any]) -> list[Any]:
    return [s for s in spans if s.attributes.get(sc.OBSERVATION_TYPE) == "llm"]


def _wait(cap: Any, predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate(cap.spans()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_each_websocket_message_is_a_turn(make_capture: Any, fake: Any, uvicorn_server: Any) -> None:
    cap = make_capture(exporters="local")
    app = FastAPI()
    app.add_middleware(chatobs.ChatObsMiddleware)
    client = openai.AsyncOpenAI(base_url=fake.base_url + "/v1", api_key="test-key", max_retries=0)

    @app.websocket("/ws/chat")
    async def chat(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                msg = json.loads(await ws.receive_text())
                r = await client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": msg["message"]}]
                )
                await ws.send_text(r.choices[0].message.content or "")
        except WebSocketDisconnect:
            pass

    url = uvicorn_server(app).replace("http://", "ws://")

    ws = simple_websocket.Client.connect(url + "/ws/chat", headers={"X-User-Id": "u-ws"})
    replies = []
    try:
        for i, text in enumerate(("hello", "again")):
            ws.send(json.dumps({"message": text, "conversation_id": "c-ws", "message_id": f"m-{i}"}))
            replies.append(ws.receive(timeout=10))
    finally:
        ws.close()
    assert replies == ["You said: hello", "You said: again"]
    assert _wait(cap, lambda spans: len(_llm_spans(spans)) == 2 and len(spans) >= 4)
    spans = cap.spans()
    turns = sorted((s for s in spans if s.attributes.get(sc.CHAT_REQUEST)), key=lambda s: s.start_time)
    assert [t.name for t in turns] == ["WS /ws/chat", "WS /ws/chat"]
    assert turns[0].context.trace_id != turns[1].context.trace_id  # one trace per message
    for i, turn in enumerate(turns):
        (llm,) = [s for s in _llm_spans(spans) if s.context.trace_id == turn.context.trace_id]
        assert llm.parent is not None and llm.parent.span_id == turn.context.span_id
        assert llm.attributes[sc.GEN_AI_CONVERSATION_ID] == "c-ws"  # from the message's JSON
        assert llm.attributes[sc.USER_ID] == "u-ws"  # from the handshake
        assert llm.attributes[sc.MESSAGE_ID] == f"m-{i}"
        assert turn.end_time >= llm.end_time  # the turn ends when the app asks for the next message


def test_socketio_event_of_a_chat_joins_its_turn(make_capture: Any, fake: Any, uvicorn_server: Any) -> None:
    cap = make_capture(exporters="local")
    client = openai.AsyncOpenAI(base_url=fake.base_url + "/v1", api_key="test-key", max_retries=0)
    sio = socketio.AsyncServer(async_mode="asgi")
    api = FastAPI()
    results: dict[str, Any] = {}

    @api.post("/api/chat")
    async def chat() -> dict[str, str]:
        return {"reply": "ok"}

    @sio.on("regenerate-title")
    async def regenerate_title(sid: str, data: dict[str, Any]) -> str:
        r = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"title for {data['chat_id']}"}]
        )
        return r.choices[0].message.content or ""

    app = chatobs.ChatObsMiddleware(socketio.ASGIApp(sio, other_asgi_app=api))
    url = uvicorn_server(app)
    turn = httpx.post(
        url + "/api/chat", json={"message": "hi"}, headers={"X-Conversation-Id": "c-sio", "X-User-Id": "u-1"}
    )
    assert turn.status_code == 200

    async def emit() -> None:
        c = socketio.AsyncClient()
        await c.connect(url, transports=["websocket"])
        results["title"] = await c.call("regenerate-title", {"chat_id": "c-sio"}, timeout=20)
        results["other"] = await c.call("regenerate-title", {"chat_id": "c-unknown"}, timeout=20)
        await c.disconnect()

    asyncio.run(emit())
    assert results["title"] == "You said: title for c-sio"
    assert _wait(cap, lambda spans: len(_llm_spans(spans)) == 2)
    spans = cap.spans()
    (request,) = [s for s in spans if s.attributes.get(sc.CHAT_REQUEST)]  # socket.io packets are not turns
    assert request.context.trace_id == int(turn.headers["x-trace-id"], 16)
    joined = next(s for s in _llm_spans(spans) if "c-sio" in s.attributes[sc.GEN_AI_INPUT_MESSAGES])
    assert joined.context.trace_id == request.context.trace_id
    assert joined.parent is not None and joined.parent.span_id == request.context.span_id
    assert joined.attributes[sc.GEN_AI_CONVERSATION_ID] == "c-sio"
    assert joined.attributes[sc.USER_ID] == "u-1"
    # A chat this process has no turn of: the handler still labels its work with the chat.
    other = next(s for s in _llm_spans(spans) if "c-unknown" in s.attributes[sc.GEN_AI_INPUT_MESSAGES])
    assert other.attributes[sc.GEN_AI_CONVERSATION_ID] == "c-unknown"
