"""A dropped trace with real parts: a FastAPI chat endpoint under chatobs, the real ``openai`` SDK against the fake
provider on 127.0.0.1, and the demo MCP server (mcp 2.x, in process). At sample rate 0 the request path builds no
content and records no other instrumentation's spans (light spans, see chatobs/recording/light_spans.py), yet metrics count every
request, LLM call and tool call, and an error still keeps the trace (as one connected tree, without content)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import chatobs
from chatobs.core import semconv
from chatobs.processing.metrics import recorder as metrics
from demo_app.fake_llm import FakeLLM
from tests.metrics.helpers import count, total

pytestmark = pytest.mark.timeout(60)
mcp_client = pytest.importorskip("mcp.shared._otel", reason="mcp 2.x not installed")


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    r = InMemoryMetricReader()
    remove = metrics.register_reader(r)
    yield r
    remove()


@pytest.fixture
def normalised(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the openai adapter's message normalisation: the content work a dropped trace must not do."""
    import chatobs.recording.instrument.openai as adapter

    calls: list[int] = []
    original = adapter.normalize_messages

    def counting(messages: Any) -> Any:
        calls.append(1)
        return original(messages)

    monkeypatch.setattr(adapter, "normalize_messages", counting)
    return calls


def make_app(fake: FakeLLM) -> Any:
    import openai
    from fastapi import FastAPI
    from mcp import Client

    from demo_app.mcp_server import build_server

    app = FastAPI()
    app.add_middleware(chatobs.ChatObsMiddleware)
    llm = openai.AsyncOpenAI(base_url=fake.base_url + "/v1", api_key="test-key", max_retries=0, timeout=10)
    server = build_server()

    @app.post("/api/chat")
    async def chat(body: dict[str, Any]) -> dict[str, Any]:
        async with Client(server) as tools:
            result = await tools.call_tool("calculator", {"expression": body.get("expression", "6*7")})
        # "error" in the message: the fake provider answers 429 (and the client does not retry).
        text = body["message"] + (" -- error please" if body.get("fail") else "")
        try:
            reply = await llm.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
        except openai.APIError as exc:
            return {"error": type(exc).__name__}
        return {"reply": reply.choices[0].message.content, "tool": result.content[0].text}

    return app


async def chat(app: Any, conversation: str, **body: Any) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://chat.test") as http:
        r = await http.post(
            "/api/chat",
            json={"message": "hi, I am jane.doe@example.com", **body},
            headers={"X-Conversation-Id": conversation, "X-User-Id": "u-1"},
        )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_a_dropped_turn_builds_no_content_but_metrics_count_it(
    make_capture: Any, reader: InMemoryMetricReader, fake: FakeLLM, normalised: list[int]
) -> None:
    cap = make_capture(sample_rate=0.0)  # defaults otherwise: metrics on, keep errors on, light
    app = make_app(fake)
    for i in range(3):
        out = await chat(app, f"dropped-{i}")
        assert out["tool"] == "42"
    assert cap.spans() == []  # nothing kept: no rule matched
    assert normalised == []  # no message was normalised (nor encoded) for a trace nobody keeps
    assert (
        chatobs.runtime.wiring.get_runtime().pipeline.stats.received >= 3 * 3
    )  # request, LLM, MCP: light spans reached it

    assert count(reader, "http.server.request.duration") == 3
    assert count(reader, "gen_ai.client.operation.duration", **{semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini"}) == 3
    assert total(reader, "gen_ai.client.token.usage", **{semconv.GEN_AI_TOKEN_TYPE: "input"}) > 0
    assert total(reader, "chatobs.cost.usd") > 0  # priced from the light span's model and tokens
    # The in-process MCP server's side of each tool call (an in-memory Client sends no JSON-RPC, so it has no client
    # span; tests/mcp/test_mcp_v2.py checks the client side over HTTP).
    assert count(reader, "mcp.server.operation.duration", **{semconv.MCP_METHOD_NAME: "tools/call"}) == 3


async def test_a_sampled_turn_builds_content(make_capture: Any, fake: FakeLLM, normalised: list[int]) -> None:
    """The counterpart of the test above (so its "nothing normalised" check can fail)."""
    cap = make_capture(sample_rate=1.0)
    await chat(make_app(fake), "kept")
    span = cap.by_name("chat gpt-4o-mini")[0]  # after the pipeline ran: its content stage normalises the messages
    assert normalised and span.attributes.get(semconv.GEN_AI_INPUT_MESSAGES)


async def test_an_error_keeps_a_dropped_trace_as_one_tree_without_content(make_capture: Any, fake: FakeLLM) -> None:
    cap = make_capture(sample_rate=0.0)
    out = await chat(make_app(fake), "dropped-error", fail=True)
    assert "error" in out
    spans = cap.spans()
    by_type = {s.name.split(" ")[0]: s for s in spans}
    request = next(s for s in spans if (s.attributes or {}).get(semconv.CHAT_REQUEST))
    llm = next(s for s in spans if s.name.startswith("chat "))
    tool = next(s for s in spans if s.name == "tools/call calculator")  # the in-process server's span
    assert {s.attributes[semconv.SAMPLING_REASON] for s in spans} == {"error"}
    assert len({s.context.trace_id for s in spans}) == 1
    # FastAPI's own spans were not recorded: chatobs's spans hang on the request span, so the tree has no hole.
    ids = {s.context.span_id for s in spans}
    assert request.parent is None and llm.parent.span_id == request.context.span_id and tool.parent.span_id in ids
    assert llm.status.status_code.name == "ERROR" and llm.attributes[semconv.ERROR_TYPE]
    assert any(e.name == "exception" for e in llm.events)
    assert (
        llm.attributes[semconv.GEN_AI_CONVERSATION_ID] == "dropped-error" and llm.attributes[semconv.USER_ID] == "u-1"
    )
    assert not any(
        k in (s.attributes or {})
        for s in spans
        for k in (semconv.GEN_AI_INPUT_MESSAGES, semconv.GEN_AI_TOOL_CALL_ARGUMENTS)
    )
    assert by_type  # every kept span is one of chatobs's


async def test_full_recording_keeps_content_of_a_trace_kept_by_a_rule(make_capture: Any, fake: FakeLLM) -> None:
    cap = make_capture(sample_rate=0.0, record_unsampled="full")
    await chat(make_app(fake), "dropped-error-full", fail=True)
    llm = next(s for s in cap.spans() if s.name.startswith("chat "))
    assert llm.attributes[semconv.SAMPLING_REASON] == "error"
    assert "jane.doe" not in llm.attributes[semconv.GEN_AI_INPUT_MESSAGES]  # captured, and masked
    assert "hi, I am" in llm.attributes[semconv.GEN_AI_INPUT_MESSAGES]
