"""mcp 2.x, for real: a FastAPI chat endpoint under chatobs calls the demo MCP server running as its own process (stdio
and streamable HTTP on 127.0.0.1). The app's spans come from chatobs's in-memory exporter; the server process
exports over OTLP/HTTP to a receiver in this test that decodes the protobuf bytes."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from opentelemetry import propagate
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import chatobs
from chatobs.core import semconv
from chatobs.runtime.wiring import get_tracer
from tests.mcp.conftest import server_env
from tests.mcp.otlp_receiver import OtlpReceiver, RSpan

pytest.importorskip("mcp.shared._otel", reason="mcp 2.x not installed")
from mcp import Client, StdioServerParameters

pytestmark = pytest.mark.timeout(60)

LLM_SPAN = "chat fake-model"


def make_app(target: Callable[[], Any]) -> Any:
    """A chat endpoint that, like an agent loop, lets a (fake) LLM turn ask for tools and runs them in parallel."""
    from fastapi import FastAPI

    app = FastAPI()
    app.add_middleware(chatobs.ChatObsMiddleware)

    @app.post("/api/chat")
    async def chat(body: dict[str, Any]) -> dict[str, Any]:
        async with Client(target()) as client:
            with get_tracer().start_as_current_span(LLM_SPAN):

                async def one(name: str, args: dict[str, Any]) -> dict[str, Any]:
                    try:
                        r = await client.call_tool(name, args, read_timeout_seconds=body.get("timeout"))
                        return {"text": r.content[0].text if r.content else "", "is_error": r.is_error}
                    except Exception as exc:  # noqa: BLE001 - the endpoint reports a failed tool like an agent would
                        return {"error": type(exc).__name__}

                results = await asyncio.gather(*(one(n, a) for n, a in body["calls"]))
        return {"results": results}

    return app


async def post_chat(app: Any, body: dict[str, Any], conversation: str, user: str = "user-7") -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://chat.test") as http:
        r = await http.post("/api/chat", json=body, headers={"X-Conversation-Id": conversation, "X-User-Id": user})
    assert r.status_code == 200, r.text
    return r


def hex_ids(span: Any) -> tuple[str, str, str | None]:
    return (
        format(span.context.trace_id, "032x"),
        format(span.context.span_id, "016x"),
        format(span.parent.span_id, "016x") if span.parent else None,
    )


def tool_spans(spans: list[Any], tool: str) -> list[Any]:
    return [s for s in spans if s.name == f"MCP send tools/call {tool}"]


def server_tool_span(receiver: OtlpReceiver, trace_id: str, tool: str, count: int = 1) -> list[RSpan]:
    return receiver.wait_for(lambda s: s.trace_id == trace_id and s.name == f"tools/call {tool}", count=count)


def stdio_params(receiver: OtlpReceiver) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "demo_app.mcp_server", "--transport", "stdio"], env=server_env(receiver)
    )


async def test_stdio_tool_call_is_one_trace_across_processes(make_capture, receiver: OtlpReceiver) -> None:
    cap = make_capture()
    app = make_app(lambda: stdio_params(receiver))
    r = await post_chat(app, {"calls": [["kb_lookup", {"query": "refunds"}]]}, conversation="conv-stdio")
    assert "Refunds" in r.json()["results"][0]["text"]
    trace_id = r.headers["x-trace-id"]

    spans = cap.spans()
    clients = tool_spans(spans, "kb_lookup")
    assert len(clients) == 1, "exactly one client span per call (the SDK's, enriched; none added)"
    client = clients[0]
    c_trace, c_span, c_parent = hex_ids(client)
    assert c_trace == trace_id
    assert client.kind is SpanKind.CLIENT
    attrs = client.attributes
    assert attrs[semconv.GEN_AI_TOOL_NAME] == "kb_lookup"
    assert attrs[semconv.GEN_AI_OPERATION_NAME] == "execute_tool"
    assert attrs[semconv.OBSERVATION_TYPE] == "tool"
    assert attrs[semconv.MCP_SERVER_NAME] == "chatobs-demo-tools"
    assert attrs[semconv.NETWORK_TRANSPORT] == "pipe"
    assert attrs[semconv.MCP_SERVER_COMMAND] == "python -m demo_app.mcp_server --transport stdio"
    assert attrs[semconv.GEN_AI_CONVERSATION_ID] == "conv-stdio"
    assert attrs[semconv.USER_ID] == "user-7"
    assert semconv.GEN_AI_TOOL_CALL_ARGUMENTS not in attrs  # tool I/O capture is opt-in
    assert semconv.GEN_AI_TOOL_CALL_RESULT not in attrs

    # The client span hangs under the LLM turn, which hangs (via FastAPI's own endpoint span) under the request's
    # SERVER span: the root of the trace.
    by_id = {hex_ids(s)[1]: s for s in spans}
    llm = by_id[c_parent]
    assert llm.name == LLM_SPAN
    ancestor = llm
    while hex_ids(ancestor)[2] is not None:
        ancestor = by_id[hex_ids(ancestor)[2]]
    assert ancestor.attributes.get(semconv.CHAT_REQUEST) is True

    server = server_tool_span(receiver, trace_id, "kb_lookup")
    assert len(server) == 1
    s = server[0]
    assert s.parent_span_id == c_span, "the server span's parent is the client span"
    assert s.kind == 2  # SERVER
    assert s.service == "demo-mcp-server"
    assert s.attributes[semconv.GEN_AI_CONVERSATION_ID] == "conv-stdio"
    assert s.attributes[semconv.USER_ID] == "user-7"
    assert s.attributes[semconv.MCP_SERVER_NAME] == "chatobs-demo-tools"
    assert s.attributes[semconv.NETWORK_TRANSPORT] == "pipe"
    assert s.attributes[semconv.OBSERVATION_TYPE] == "tool"
    # The session-level connect span is chatobs's own; the handshake's SDK spans nest under it.
    connect = [x for x in spans if x.name.startswith("MCP connect ")]
    assert len(connect) == 1 and connect[0].attributes[semconv.MCP_SERVER_NAME] == "chatobs-demo-tools"
    discover = [x for x in spans if x.name in ("MCP send server/discover", "MCP send initialize")]
    assert discover and hex_ids(discover[0])[2] == hex_ids(connect[0])[1]


async def test_http_parallel_calls_errors_slowness_and_tool_io(
    make_capture, receiver: OtlpReceiver, http_server: str
) -> None:
    cap = make_capture(capture_tool_io=True, slow_tool_ms=500)
    app = make_app(lambda: http_server)
    calls = [
        ["calculator", {"expression": "(2 + 3) * 4"}],
        ["kb_lookup", {"query": "shipping"}],
        ["calculator", {"expression": "__import__('os').getcwd()"}],
        ["slow_lookup", {"query": "pricing"}],
    ]
    r = await post_chat(app, {"calls": calls}, conversation="conv-http", user="user-9")
    results = r.json()["results"]
    assert results[0]["text"] == "20" and results[2]["is_error"] is True
    trace_id = r.headers["x-trace-id"]

    spans = cap.spans()
    llm = [s for s in spans if s.name == LLM_SPAN][0]
    calc = tool_spans(spans, "calculator")
    kb = tool_spans(spans, "kb_lookup")
    slow = tool_spans(spans, "slow_lookup")
    assert (len(calc), len(kb), len(slow)) == (2, 1, 1)
    all_calls = calc + kb + slow
    # Parallel calls are siblings under the LLM turn that asked for them.
    assert {hex_ids(s)[2] for s in all_calls} == {hex_ids(llm)[1]}
    for s in all_calls:
        assert s.attributes[semconv.NETWORK_TRANSPORT] == "tcp"
        assert s.attributes[semconv.SERVER_ADDRESS] == "127.0.0.1"
        assert s.attributes[semconv.SERVER_PORT] == int(http_server.rsplit(":", 1)[1].split("/")[0])
        assert s.attributes[semconv.GEN_AI_CONVERSATION_ID] == "conv-http"

    failed = [
        s for s in calc if s.attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS].startswith('{"expression":"__import__')
    ][0]
    ok = [s for s in calc if s is not failed][0]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes[semconv.ERROR_TYPE] == "tool_error"
    assert '"isError":true' in failed.attributes[semconv.GEN_AI_TOOL_CALL_RESULT]
    assert ok.status.status_code is not StatusCode.ERROR and semconv.ERROR_TYPE not in ok.attributes
    assert '"20"' in ok.attributes[semconv.GEN_AI_TOOL_CALL_RESULT]
    assert slow[0].attributes.get(semconv.SLOW) is True
    assert semconv.SLOW not in ok.attributes

    server = receiver.wait_for(lambda s: s.trace_id == trace_id and s.name.startswith("tools/call "), count=4)
    assert len(server) == 4
    client_ids = {hex_ids(s)[1]: s for s in all_calls}
    for s in server:
        parent = client_ids[s.parent_span_id]  # each server span's parent is its own client span
        assert s.attributes[semconv.GEN_AI_TOOL_NAME] == parent.attributes[semconv.GEN_AI_TOOL_NAME]
        assert s.attributes[semconv.JSONRPC_REQUEST_ID] == parent.attributes[semconv.JSONRPC_REQUEST_ID]
        assert s.attributes[semconv.GEN_AI_CONVERSATION_ID] == "conv-http"
        assert s.attributes[semconv.USER_ID] == "user-9"
        assert s.attributes[semconv.NETWORK_TRANSPORT] == "tcp"
        assert s.attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS]  # server process runs with CHATOBS_CAPTURE_TOOL_IO
    s_failed = [s for s in server if s.parent_span_id == hex_ids(failed)[1]][0]
    assert s_failed.status_code == 2 and s_failed.attributes[semconv.ERROR_TYPE] == "tool_error"
    s_slow = [s for s in server if s.name == "tools/call slow_lookup"][0]
    assert s_slow.attributes.get(semconv.SLOW) is True


async def test_http_timeout_is_recorded_on_the_one_client_span(
    make_capture, receiver: OtlpReceiver, http_server: str
) -> None:
    cap = make_capture()
    app = make_app(lambda: http_server)
    r = await post_chat(
        app, {"calls": [["slow_lookup", {"query": "refunds"}]], "timeout": 0.1}, conversation="conv-timeout"
    )
    assert r.json()["results"][0]["error"] == "MCPError"
    trace_id = r.headers["x-trace-id"]
    clients = tool_spans(cap.spans(), "slow_lookup")
    assert len(clients) == 1
    c = clients[0]
    assert c.status.status_code is StatusCode.ERROR
    assert c.attributes[semconv.ERROR_TYPE] == "TimeoutError"
    # The server saw the call (and the client's courtesy cancel); its span is still in the caller's trace.
    server = server_tool_span(receiver, trace_id, "slow_lookup")
    assert server[0].parent_span_id == hex_ids(c)[1]
    assert server[0].attributes[semconv.GEN_AI_CONVERSATION_ID] == "conv-timeout"


async def test_session_level_spans_resources_and_prompts(
    make_capture, receiver: OtlpReceiver, http_server: str
) -> None:
    cap = make_capture()
    with chatobs.scope(conversation_id="conv-session", user_id="u-s"), get_tracer().start_as_current_span("turn"):
        async with Client(http_server) as client:
            tools = await client.list_tools()
            await client.read_resource("kb://topics")
            await client.get_prompt("support_answer", {"question": "Where is my refund?"})
    assert {t.name for t in tools.tools} == {"calculator", "kb_lookup", "slow_lookup"}
    spans = cap.spans()
    trace_id = hex_ids(spans[0])[0]
    names = {s.name: s for s in spans}
    assert names["MCP send tools/list"].attributes[semconv.MCP_SERVER_NAME] == "chatobs-demo-tools"
    assert names["MCP send resources/read"].attributes[semconv.MCP_RESOURCE_URI] == "kb://topics"
    assert names["MCP send prompts/get support_answer"].attributes[semconv.GEN_AI_PROMPT_NAME] == "support_answer"
    connect = [s for s in spans if s.name.startswith("MCP connect ")]
    assert connect[0].attributes[semconv.SERVER_ADDRESS] == "127.0.0.1"
    assert connect[0].attributes[semconv.MCP_PROTOCOL_VERSION]
    read = receiver.wait_for(lambda s: s.trace_id == trace_id and s.name == "resources/read")[0]
    assert read.attributes[semconv.MCP_RESOURCE_URI] == "kb://topics"
    assert read.attributes[semconv.GEN_AI_CONVERSATION_ID] == "conv-session"
    prompt = receiver.wait_for(lambda s: s.trace_id == trace_id and s.name == "prompts/get support_answer")[0]
    assert prompt.attributes[semconv.GEN_AI_PROMPT_NAME] == "support_answer"


async def test_identity_crosses_even_when_the_app_propagates_only_tracecontext(
    make_capture, receiver: OtlpReceiver, http_server: str
) -> None:
    """With ``OTEL_PROPAGATORS=tracecontext`` the SDK's ``_meta`` has no baggage; chatobs adds it."""
    cap = make_capture()
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator()]))
    try:
        with chatobs.scope(conversation_id="conv-tc-only", user_id="u-tc"), get_tracer().start_as_current_span("turn"):
            async with Client(http_server) as client:
                await client.call_tool("kb_lookup", {"query": "opening hours"})
    finally:
        propagate.set_global_textmap(previous)
    trace_id = hex_ids(cap.spans()[0])[0]
    s = server_tool_span(receiver, trace_id, "kb_lookup")[0]
    assert s.attributes[semconv.GEN_AI_CONVERSATION_ID] == "conv-tc-only"
    assert s.attributes[semconv.USER_ID] == "u-tc"


async def test_a_failing_chatobs_hook_never_breaks_the_tool_call(make_capture, monkeypatch, http_server: str) -> None:
    from chatobs.recording.instrument.mcp import v2

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("chatobs bug")

    cap = make_capture()
    monkeypatch.setattr(v2, "method_attributes", broken)
    monkeypatch.setattr(v2, "tool_result", broken)
    with chatobs.scope(conversation_id="conv-broken"):
        async with Client(http_server) as client:
            result = await client.call_tool("calculator", {"expression": "6*7"})
    assert result.content[0].text == "42"
    assert len(tool_spans(cap.spans(), "calculator")) == 1  # the SDK's span is still there, just not enriched


def test_instrument_mcp_server_is_idempotent_and_undone_by_shutdown(make_capture) -> None:
    from mcp.server._otel import OpenTelemetryMiddleware

    from demo_app.mcp_server import build_server

    make_capture()
    server = build_server()
    assert chatobs.instrument_mcp_server(server) is server
    chatobs.instrument_mcp_server(server)
    chain = server.middleware
    ours = [i for i, m in enumerate(chain) if getattr(m, "chatobs_middleware", False)]
    assert len(ours) == 1
    assert isinstance(chain[ours[0] - 1], OpenTelemetryMiddleware), "inside the SDK's span middleware"
    chatobs.shutdown()
    assert not any(getattr(m, "chatobs_middleware", False) for m in server.middleware)
    from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher

    assert not getattr(JSONRPCDispatcher._write, "_chatobs", False), "shutdown restores the SDK"


async def test_bare_client_session_over_stdio_client_knows_its_server(make_capture, receiver: OtlpReceiver) -> None:
    """Not every app uses ``mcp.Client``: a ``ClientSession`` over ``stdio_client`` still gets the server identified."""
    from mcp import ClientSession, stdio_client

    cap = make_capture()
    with chatobs.scope(conversation_id="conv-bare", user_id="u-bare"), get_tracer().start_as_current_span("turn"):
        async with stdio_client(stdio_params(receiver)) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool("calculator", {"expression": "2 ** 10"})
    assert result.content[0].text == "1024"
    spans = cap.spans()
    client = tool_spans(spans, "calculator")
    assert len(client) == 1
    attrs = client[0].attributes
    assert attrs[semconv.NETWORK_TRANSPORT] == "pipe"
    assert attrs[semconv.MCP_SERVER_COMMAND] == "python -m demo_app.mcp_server --transport stdio"
    assert attrs[semconv.MCP_SERVER_NAME] == "chatobs-demo-tools"
    trace_id, span_id, _ = hex_ids(client[0])
    server = server_tool_span(receiver, trace_id, "calculator")[0]
    assert server.parent_span_id == span_id
    assert server.attributes[semconv.GEN_AI_CONVERSATION_ID] == "conv-bare"


async def test_a_call_the_caller_gives_up_on_is_marked_cancelled(make_capture, http_server: str) -> None:
    cap = make_capture()
    with chatobs.scope(conversation_id="conv-cancel"):
        async with Client(http_server) as client:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.call_tool("slow_lookup", {"query": "refunds"}), timeout=0.2)
            assert (await client.call_tool("calculator", {"expression": "1 + 1"})).content[0].text == "2"
    spans = cap.spans()
    cancelled = tool_spans(spans, "slow_lookup")
    assert len(cancelled) == 1
    assert cancelled[0].status.status_code is StatusCode.ERROR
    assert cancelled[0].attributes[semconv.ERROR_TYPE] == "cancelled"
    assert semconv.ERROR_TYPE not in tool_spans(spans, "calculator")[0].attributes


async def test_a_dropped_trace_still_counts_tool_calls_and_keeps_a_failed_one(
    make_capture, receiver: OtlpReceiver, http_server: str
) -> None:
    """Sample rate 0: the SDK's client spans become chatobs light spans (no tool I/O), the tool metrics count every
    call, and the trace with a failed tool is kept by the error rule -- in the app and in the server process."""
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from chatobs.processing.metrics import recorder as metrics
    from tests.metrics.helpers import total

    reader = InMemoryMetricReader()
    remove = metrics.register_reader(reader)
    try:
        cap = make_capture(sample_rate=0.0, capture_tool_io=True)
        app = make_app(lambda: http_server)
        await post_chat(app, {"calls": [["calculator", {"expression": "1 + 1"}]]}, conversation="dropped-ok")
        assert cap.spans() == []
        r = await post_chat(app, {"calls": [["calculator", {"expression": "1 +"}]]}, conversation="dropped-failed")
        assert r.json()["results"][0]["is_error"] is True
        spans = cap.spans()
        calc = tool_spans(spans, "calculator")
        assert len(calc) == 1 and calc[0].attributes[semconv.ERROR_TYPE] == "tool_error"
        assert calc[0].attributes[semconv.SAMPLING_REASON] == "error"
        assert semconv.GEN_AI_TOOL_CALL_ARGUMENTS not in calc[0].attributes  # light: no tool I/O, even opted in
        request = next(s for s in spans if s.attributes.get(semconv.CHAT_REQUEST))
        assert calc[0].parent.span_id == request.context.span_id  # the app's unrecorded LLM span is skipped
        assert LLM_SPAN not in {s.name for s in spans}
        tools = {semconv.GEN_AI_TOOL_NAME: "calculator"}
        assert total(reader, "mcp.tool.invocations", **tools) == 2
        assert total(reader, "mcp.tool.errors", **tools) == 1
        trace_id = r.headers["x-trace-id"]
        server = server_tool_span(receiver, trace_id, "calculator")
        assert server[0].attributes[semconv.ERROR_TYPE] == "tool_error"
    finally:
        remove()
