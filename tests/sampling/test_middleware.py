"""Sampling through a real FastAPI app and chatobs's middleware (httpx ASGITransport)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

import chatobs
from chatobs.core import semconv
from tests.sampling.util import key_between, position


def app() -> FastAPI:
    api = FastAPI()
    api.add_middleware(chatobs.ChatObsMiddleware)

    @api.post("/api/chat")
    async def chat(request: Request) -> Any:
        body = await request.json()
        with chatobs.get_tracer().start_as_current_span(
            "chat gpt-4o-mini", attributes={semconv.GEN_AI_OPERATION_NAME: "chat"}
        ):
            pass
        if body.get("fail"):
            return JSONResponse({"error": "upstream"}, status_code=500)
        return {"ok": True}

    return api


async def _chat(client: httpx.AsyncClient, conv: str, **extra: Any) -> httpx.Response:
    headers = extra.pop("headers", {})
    return await client.post("/api/chat", json={"conversation_id": conv, "message": "hi", **extra}, headers=headers)


def _client(api: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://testserver")


def _traces(spans: list[Any]) -> dict[str, set[int]]:
    out: dict[str, set[int]] = defaultdict(set)
    for s in spans:
        out[s.attributes.get(semconv.GEN_AI_CONVERSATION_ID)].add(s.context.trace_id)
    return out


async def test_whole_conversations_through_fastapi(make_capture) -> None:  # type: ignore[no-untyped-def]
    cap = make_capture(sample_rate=0.5)
    convs = [f"fa-{i}" for i in range(60)]
    async with _client(app()) as client:
        for c in convs:
            for _ in range(3):
                assert (await _chat(client, c)).status_code == 200
    spans = cap.spans()
    traces = _traces(spans)
    assert set(traces) == {c for c in convs if position(c) < 0.5}
    assert all(len(t) == 3 for t in traces.values())  # every turn of a kept conversation
    assert 15 < len(traces) < 45
    # Each kept turn is complete: the SERVER span and the LLM span.
    per_trace = defaultdict(set)
    for s in spans:
        per_trace[s.context.trace_id].add(s.name)
    assert all({"chat gpt-4o-mini"} < names for names in per_trace.values())


async def test_failed_turn_kept_at_rate_zero_and_remote_flag(make_capture) -> None:  # type: ignore[no-untyped-def]
    cap = make_capture(sample_rate=0.0)
    async with _client(app()) as client:
        await _chat(client, "ok-turn")
        r = await _chat(client, "bad-turn", fail=True)
        # An upstream service sampled this trace: followed even at rate 0.
        await _chat(client, "upstream", headers={"traceparent": f"00-{'12' * 16}-{'34' * 8}-01"})
    spans = cap.spans()
    traces = _traces(spans)
    assert set(traces) == {"bad-turn", "upstream"}
    bad = [s for s in spans if s.attributes.get(semconv.GEN_AI_CONVERSATION_ID) == "bad-turn"]
    assert {s.attributes.get(semconv.SAMPLING_REASON) for s in bad} == {"error"}
    assert format(bad[0].context.trace_id, "032x") == r.headers["x-trace-id"]

    conv = key_between(0.0, 0.5)
    cap = make_capture(sample_rate=1.0)
    async with _client(app()) as client:
        await _chat(client, conv, headers={"traceparent": f"00-{'56' * 16}-{'78' * 8}-00"})
    assert cap.spans() == []  # the upstream's "not sampled" is followed too

    cap = make_capture(sample_rate=1.0, sample_ignore_remote_parent=True)
    async with _client(app()) as client:
        await _chat(client, conv, headers={"traceparent": f"00-{'56' * 16}-{'78' * 8}-00"})
    assert set(_traces(cap.spans())) == {conv}
