"""Scripted chat turns built from real spans (the LLM/MCP adapters build the same attributes), and a webhook receiver.

The spans get explicit start/end times so durations are exact without sleeping.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace import SpanKind, Status, StatusCode

import chatobs
from chatobs.core import semconv
from chatobs.recording.light_spans import start_span  # how chatobs's middleware and recorders start spans

MS = 1_000_000  # ns


class Clock:
    """Span timestamps in ns, advancing on demand: windows and durations without sleeping."""

    def __init__(self, start_s: float | None = None) -> None:
        self.now = int((start_s if start_s is not None else time.time()) * 1e9)

    def advance(self, ms: float) -> int:
        self.now += int(ms * MS)
        return self.now


def llm_call(
    clock: Clock,
    *,
    model: str = "gpt-4o-2024-08-06",
    provider: str = "openai",
    input_tokens: int = 100,
    output_tokens: int = 20,
    cost: float | None = 0.001,
    duration_ms: float = 300,
    ttfc_s: float | None = None,
    error: str | None = None,
) -> trace.Span:
    start = clock.now
    span = start_span(
        f"chat {model}",
        kind=SpanKind.CLIENT,
        start_time=start,
        attributes={
            semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT,
            semconv.GEN_AI_PROVIDER_NAME: provider,
            semconv.GEN_AI_REQUEST_MODEL: model,
            semconv.GEN_AI_RESPONSE_MODEL: model,
            semconv.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
            semconv.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
        },
    )
    if cost is not None:
        span.set_attribute(semconv.COST_USD, cost)  # what the cost stage adds (its module is still a placeholder)
    if ttfc_s is not None:
        span.set_attribute(semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, ttfc_s)
    if error:
        span.set_attribute(semconv.ERROR_TYPE, error)
        span.set_status(Status(StatusCode.ERROR, error))
    span.end(end_time=clock.advance(duration_ms))
    return span


def tool_call(
    clock: Clock,
    *,
    tool: str = "search_kb",
    server: str = "kb",
    duration_ms: float = 40,
    error: str | None = None,
    with_server_span: bool = False,
    request_id: int = 1,
) -> trace.Span:
    """An MCP tools/call CLIENT span; optionally the SERVER span of the same call (an in-process MCP server), marked
    as the MCP instrumentation marks it when the request came from a chatobs client."""
    attrs = {
        semconv.MCP_METHOD_NAME: "tools/call",
        semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL,
        semconv.GEN_AI_TOOL_NAME: tool,
        semconv.MCP_SERVER_NAME: server,
        semconv.JSONRPC_REQUEST_ID: str(request_id),
    }
    start = clock.now
    client = start_span(f"tools/call {tool}", kind=SpanKind.CLIENT, start_time=start, attributes=attrs)
    if with_server_span:
        ctx = trace.set_span_in_context(client)
        srv = start_span(
            f"tools/call {tool}",
            context=ctx,
            kind=SpanKind.SERVER,
            start_time=start + MS,
            attributes={**attrs, semconv.MCP_CALLER_TRACED: True},
        )
        srv.end(end_time=start + int((duration_ms - 1) * MS))
    if error:
        client.set_attribute(semconv.ERROR_TYPE, error)
        client.set_status(Status(StatusCode.ERROR, error))
    client.end(end_time=clock.advance(duration_ms))
    return client


def server_tool_call(
    clock: Clock, *, tool: str = "search_kb", server: str = "kb", duration_ms: float = 40, caller_traced: bool = False
) -> trace.Span:
    """The SERVER span of a tools/call as an MCP server running chatobs records it (its caller's span is elsewhere)."""
    attrs: dict[str, Any] = {
        semconv.MCP_METHOD_NAME: "tools/call",
        semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL,
        semconv.GEN_AI_TOOL_NAME: tool,
        semconv.MCP_SERVER_NAME: server,
    }
    if caller_traced:
        attrs[semconv.MCP_CALLER_TRACED] = True
    srv = start_span(f"tools/call {tool}", kind=SpanKind.SERVER, start_time=clock.now, attributes=attrs)
    srv.end(end_time=clock.advance(duration_ms))
    return srv


@contextmanager
def chat_turn(
    clock: Clock,
    *,
    route: str = "/api/chat",
    status: int = 200,
    conversation_id: str = "conv-1",
    user_id: str = "user-1",
    tenant_id: str = "acme",
) -> Iterator[trace.Span]:
    """A chat request: the SERVER span the middleware makes, in a chat scope; children go inside the block."""
    with chatobs.scope(conversation_id=conversation_id, user_id=user_id, tenant_id=tenant_id, route=route):
        root = start_span(
            f"POST {route}",
            kind=SpanKind.SERVER,
            start_time=clock.now,
            attributes={
                semconv.CHAT_REQUEST: True,
                semconv.HTTP_REQUEST_METHOD: "POST",
                semconv.HTTP_ROUTE: route,
            },
        )
        with trace.use_span(root, end_on_exit=False):
            yield root
        root.set_attribute(semconv.HTTP_RESPONSE_STATUS_CODE, status)
        if status >= 500:
            root.set_status(Status(StatusCode.ERROR))
        root.end(end_time=clock.advance(5))


# --- reading metrics ----------------------------------------------------------------------------------------------
def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    found: list[Any] = []
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    found.extend(m.data.data_points)
    return found


def total(reader: InMemoryMetricReader, name: str, **attrs: Any) -> float:
    """Sum of counter values, or of histogram sums, over the points whose attributes include ``attrs``."""
    result = 0.0
    for p in points(reader, name):
        if all(p.attributes.get(k) == v for k, v in attrs.items()):
            result += p.sum if hasattr(p, "sum") else p.value
    return result


def count(reader: InMemoryMetricReader, name: str, **attrs: Any) -> int:
    return sum(p.count for p in points(reader, name) if all(p.attributes.get(k) == v for k, v in attrs.items()))


# --- a webhook receiver on 127.0.0.1 ------------------------------------------------------------------------------
class WebhookReceiver:
    """Records JSON POSTs. ``status`` answers them; ``gate`` (an Event) holds every request until it is set."""

    def __init__(self, status: int = 200, fail_first: int = 0) -> None:
        self.received: list[dict[str, Any]] = []
        self.attempts = 0
        self.status = status
        self.fail_first = fail_first
        self.gate: threading.Event | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if outer.gate is not None:
                    outer.gate.wait(10)
                outer.attempts += 1
                code = 500 if outer.attempts <= outer.fail_first else outer.status
                if code == 200:
                    outer.received.append(json.loads(body))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        if self.gate is not None:
            self.gate.set()
        self.server.shutdown()
        self.server.server_close()


def wait_for(predicate: Any, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())
