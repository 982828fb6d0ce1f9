"""The ASGI middleware through real FastAPI/Starlette apps (httpx ASGITransport) and a real uvicorn server."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from opentelemetry import trace
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient

import chatobs
from chatobs.core import semconv

TID = "12345678901234567890123456789012"


def chat_app(**mw: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(chatobs.ChatObsMiddleware, **mw)

    @app.post("/api/chat")
    async def chat(request: Request) -> dict[str, Any]:
        raw = await request.body()
        with chatobs.get_tracer().start_as_current_span("child"):
            outgoing = chatobs.inject({})
        s = chatobs.current()
        return {
            "scope": None
            if s is None
            else {
                k: getattr(s, k)
                for k in ("conversation_id", "user_id", "tenant_id", "message_id", "parent_message_id", "trace_id")
            },
            "raw": raw.decode("latin-1"),
            "outgoing": outgoing,
        }

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("handler failed")

    @app.get("/fail500")
    async def fail500() -> JSONResponse:
        return JSONResponse({"x": 1}, status_code=500)

    return app


async def post(app: Any, path: str = "/api/chat", **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://testserver"
    ) as c:
        return await c.post(path, **kw)


def server_spans(cap: Any) -> list[Any]:
    """The chat request spans (FastAPI's native telemetry may add SERVER spans of its own for excluded paths)."""
    return [s for s in cap.spans() if s.kind == trace.SpanKind.SERVER and s.attributes.get(semconv.CHAT_REQUEST)]


async def test_headers_identity_on_every_span_and_trace_id_returned(capture: Any) -> None:
    r = await post(
        chat_app(),
        json={"message": "hi"},
        headers={
            "X-Conversation-Id": "conv-1",
            "X-User-Id": "u-1",
            "X-Tenant-Id": "t-1",
            "X-Message-Id": "m-1",
            "X-Parent-Message-Id": "m-0",
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert body["scope"] == {
        "conversation_id": "conv-1",
        "user_id": "u-1",
        "tenant_id": "t-1",
        "message_id": "m-1",
        "parent_message_id": "m-0",
        "trace_id": r.headers["x-trace-id"],
    }
    spans = capture.spans()
    # FastAPI's native telemetry opens the SERVER span first; chatobs joins it instead of opening a second.
    (server,) = [s for s in spans if s.kind == trace.SpanKind.SERVER]
    assert server.instrumentation_scope.name == "fastapi"
    assert format(server.context.trace_id, "032x") == r.headers["x-trace-id"]
    assert server.name == "POST /api/chat"
    assert server.attributes[semconv.CHAT_REQUEST] is True
    assert server.attributes[semconv.HTTP_RESPONSE_STATUS_CODE] == 200
    assert server.attributes[semconv.HTTP_ROUTE] == "/api/chat"
    for span in spans:
        assert span.attributes[semconv.GEN_AI_CONVERSATION_ID] == "conv-1", span.name
        assert span.attributes[semconv.SESSION_ID] == "conv-1"
        assert span.attributes[semconv.USER_ID] == "u-1"
        assert span.attributes[semconv.TENANT_ID] == "t-1"
        assert span.attributes[semconv.MESSAGE_ID] == "m-1"


@pytest.mark.parametrize(
    "field_names",
    [
        ("conversation_id", "user_id", "message_id", "parent_message_id"),
        ("conversationId", "userId", "messageId", "parentMessageId"),
    ],
)
async def test_identity_from_json_body_and_body_intact(capture: Any, field_names: tuple[str, ...]) -> None:
    payload = dict(zip(field_names, ["c-9", "u-9", "m-9", "m-8"], strict=True)) | {"message": "héllo"}
    raw = json.dumps(payload)
    r = await post(chat_app(), content=raw.encode(), headers={"content-type": "application/json; charset=utf-8"})
    assert r.json()["raw"].encode("latin-1") == raw.encode()
    assert r.json()["scope"]["conversation_id"] == "c-9"
    assert r.json()["scope"]["user_id"] == "u-9"
    assert r.json()["scope"]["parent_message_id"] == "m-8"


async def test_headers_win_over_body_then_extractors_fill_gaps(capture: Any) -> None:
    def broken(_: Any) -> dict[str, str]:
        raise ValueError("user code bug")

    app = chat_app(extractors=[broken, lambda req: {"tenant_id": "from-auth", "user_id": "ignored"}])
    r = await post(app, json={"conversation_id": "body-c", "user_id": "body-u"}, headers={"X-Conversation-Id": "hdr-c"})
    s = r.json()["scope"]
    assert (s["conversation_id"], s["user_id"], s["tenant_id"]) == ("hdr-c", "body-u", "from-auth")


async def test_configurable_names(make_capture: Any) -> None:
    make_capture(conversation_header="X-Chat", user_fields="account")
    r = await post(chat_app(), json={"account": "acc-1"}, headers={"X-Chat": "chat-1"})
    assert r.json()["scope"]["conversation_id"] == "chat-1" and r.json()["scope"]["user_id"] == "acc-1"


@pytest.mark.parametrize("bad", ["x" * 300, "bad\x01id", "   ", ""])
async def test_bad_ids_dropped_not_errors(capture: Any, bad: str) -> None:
    r = await post(chat_app(), json={"conversation_id": bad, "user_id": "ok"})
    assert r.status_code == 200
    assert r.json()["scope"]["conversation_id"] is None and r.json()["scope"]["user_id"] == "ok"


async def test_non_json_and_binary_bodies_not_read(capture: Any) -> None:
    r = await post(
        chat_app(), content=b"conversation_id=c1", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert r.json()["scope"]["conversation_id"] is None and r.json()["raw"] == "conversation_id=c1"
    blob = bytes(range(256)) * 10
    r = await post(chat_app(), content=blob, headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["raw"].encode("latin-1") == blob
    r = await post(chat_app(), content=b"[1,2]", headers={"content-type": "application/json"})
    assert r.json()["scope"]["conversation_id"] is None


async def test_large_body_is_not_buffered(capture: Any) -> None:
    """A 10 MB chunked JSON body: chatobs reads at most the limit plus one chunk, the app still gets every byte."""
    chunk = b"x" * (1024 * 1024)
    sent: list[int] = []
    pulled_before_app: list[int] = []
    got = bytearray()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        pulled_before_app.append(len(sent))
        while True:
            m = await receive()
            got.extend(m.get("body", b""))
            if not m.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict[str, Any]:
        sent.append(1)
        return {"type": "http.request", "body": chunk, "more_body": len(sent) < 10}

    async def send(_: Any) -> None:
        pass

    mw = chatobs.ChatObsMiddleware(app)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/chat",
        "headers": [(b"content-type", b"application/json")],
        "query_string": b"",
    }
    await mw(scope, receive, send)
    assert pulled_before_app == [1]  # 64 KiB limit: one 1 MiB chunk read, no more
    assert len(got) == 10 * len(chunk)

    # With a Content-Length above the limit, chatobs does not read at all.
    sent.clear(), pulled_before_app.clear(), got.clear()
    scope["headers"] = [(b"content-type", b"application/json"), (b"content-length", str(10 * len(chunk)).encode())]
    await chatobs.ChatObsMiddleware(app)(scope, receive, send)
    assert pulled_before_app == [0] and len(got) == 10 * len(chunk)


async def test_remote_parent_tracestate_and_baggage(capture: Any) -> None:
    r = await post(
        chat_app(),
        json={"conversation_id": "c-b"},
        headers={
            "traceparent": f"00-{TID}-1234567890123456-01",
            "tracestate": "vendor=1,BAD KEY=2",
            "baggage": "team=blue",
            "X-User-Id": "u-b",
        },
    )
    assert r.headers["x-trace-id"] == TID
    out = r.json()["outgoing"]
    assert out["traceparent"].split("-")[1] == TID
    assert "tracestate" not in out  # one invalid member discards the whole list (W3C suite, strict level 2)
    entries = dict(e.split("=") for e in out["baggage"].split(","))
    assert entries == {"team": "blue", "gen_ai.conversation.id": "c-b", "user.id": "u-b"}
    (server,) = server_spans(capture)
    assert (
        server.parent is not None
        and server.parent.is_remote
        and format(server.parent.span_id, "016x") == "1234567890123456"
    )
    r2 = await post(
        chat_app(),
        json={},
        headers={"traceparent": f"00-{TID}-1234567890123456-01", "tracestate": "vendor=1,tenant@vendor=2"},
    )
    assert r2.json()["outgoing"]["tracestate"] == "vendor=1,tenant@vendor=2"


@pytest.mark.parametrize(
    "headers",
    [
        [("traceparent", f"00-{TID}-1234567890123456-01"), ("traceparent", f"00-{TID[:-1]}3-1234567890123456-01")],
        [("traceparent", f"00-{TID}-0000000000000000-01")],
        [("traceparent", "x" * 70000)],
    ],
)
async def test_invalid_or_duplicated_traceparent_starts_new_trace(capture: Any, headers: list[tuple[str, str]]) -> None:
    r = await post(chat_app(), json={}, headers=httpx.Headers(headers))
    assert r.status_code == 200
    assert len(r.headers["x-trace-id"]) == 32 and r.headers["x-trace-id"] not in (TID, TID[:-1] + "3")
    (server,) = server_spans(capture)
    assert server.parent is None


async def test_identity_not_propagated_when_disabled(make_capture: Any) -> None:
    make_capture(propagate_identity=False)
    r = await post(chat_app(), json={"conversation_id": "secret-c"}, headers={"X-User-Id": "u"})
    assert "baggage" not in r.json()["outgoing"]
    assert r.json()["scope"]["conversation_id"] == "secret-c"


async def test_excluded_paths_untraced(capture: Any) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=chat_app()), base_url="http://t") as c:
        r = await c.get("/health")
    assert r.status_code == 200 and "x-trace-id" not in r.headers
    assert server_spans(capture) == []
    assert all(semconv.GEN_AI_CONVERSATION_ID not in s.attributes for s in capture.spans())


async def test_disabled_is_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATOBS_ENABLED", "false")
    r = await post(chat_app(), json={"conversation_id": "c"})
    assert r.status_code == 200 and "x-trace-id" not in r.headers and r.json()["scope"] is None


async def test_otel_sdk_disabled_is_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    r = await post(chat_app(), json={"conversation_id": "c"})
    assert "x-trace-id" not in r.headers


async def test_app_errors_recorded_and_reraised_unchanged(make_capture: Any) -> None:
    capture = make_capture(trace_all_routes=True)  # GET routes are not chat turns by default
    app = chat_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/fail500")
    assert r.status_code == 500
    # Without the `with` block: TestClient's lifespan end would shut chatobs down (by design, see lifespan test).
    with pytest.raises(RuntimeError, match="handler failed"):
        TestClient(app, raise_server_exceptions=True).get("/boom")
    spans = {s.attributes[semconv.URL_PATH]: s for s in server_spans(capture)}
    assert spans["/boom"].status.status_code == trace.StatusCode.ERROR
    assert spans["/boom"].attributes[semconv.ERROR_TYPE] == "RuntimeError"
    assert spans["/fail500"].status.status_code == trace.StatusCode.ERROR
    assert spans["/fail500"].attributes[semconv.HTTP_RESPONSE_STATUS_CODE] == 500


async def test_chatobs_failure_never_reaches_the_app(capture: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from chatobs.recording.middleware import request as request_mod

    def explode(*a: Any, **k: Any) -> None:
        raise RuntimeError("chatobs bug")

    monkeypatch.setattr(request_mod.RequestSpan, "open", explode)
    monkeypatch.setattr(request_mod.RequestSpan, "set_status", explode)
    r = await post(chat_app(), json={"conversation_id": "c"})
    assert r.status_code == 200 and r.json()["raw"] == '{"conversation_id":"c"}'


async def test_concurrent_requests_keep_their_own_identity(capture: Any) -> None:
    app = FastAPI()
    app.add_middleware(chatobs.ChatObsMiddleware)

    @app.post("/api/chat")
    async def chat(request: Request) -> dict[str, str]:
        body = await request.json()
        await asyncio.sleep(0.001 * (hash(body["conversation_id"]) % 5))
        with chatobs.get_tracer().start_as_current_span("work") as span:
            span.set_attribute("expected", body["conversation_id"])
            await asyncio.sleep(0)
        task = asyncio.create_task(_in_task())
        in_thread = await asyncio.to_thread(lambda: chatobs.current().conversation_id)  # type: ignore[union-attr]
        return {"task": await task, "thread": in_thread}

    async def _in_task() -> str:
        await asyncio.sleep(0)
        return chatobs.current().conversation_id  # type: ignore[union-attr]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        responses = await asyncio.gather(
            *(c.post("/api/chat", json={"conversation_id": f"conv-{i}"}) for i in range(200))
        )
    for i, r in enumerate(responses):
        assert r.json() == {"task": f"conv-{i}", "thread": f"conv-{i}"}
    work = [s for s in capture.spans() if s.name == "work"]
    assert len(work) == 200
    for span in work:
        assert span.attributes[semconv.GEN_AI_CONVERSATION_ID] == span.attributes["expected"]


def test_threads_via_wrap_and_otel_threading_instrumentation(capture: Any) -> None:
    from opentelemetry.instrumentation.threading import ThreadingInstrumentor

    seen: dict[str, Any] = {}
    with chatobs.scope(conversation_id="c-thr"):
        t = threading.Thread(target=chatobs.wrap(lambda: seen.setdefault("wrap", chatobs.current())))
        t.start(), t.join()
        ThreadingInstrumentor().instrument()
        try:
            t = threading.Thread(target=lambda: seen.setdefault("otel", chatobs.current()))
            t.start(), t.join()
        finally:
            ThreadingInstrumentor().uninstrument()
    assert seen["wrap"].conversation_id == "c-thr" and seen["otel"].conversation_id == "c-thr"


def test_websocket_keeps_scope(capture: Any) -> None:
    async def ws(websocket: Any) -> None:
        await websocket.accept()
        for _ in range(2):
            await websocket.receive_text()
            await websocket.send_text(chatobs.current().conversation_id)  # type: ignore[union-attr]
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/ws", ws)])
    app.add_middleware(chatobs.ChatObsMiddleware)
    with TestClient(app) as client, client.websocket_connect("/ws", headers={"X-Conversation-Id": "ws-conv"}) as conn:
        conn.send_text("a")
        assert conn.receive_text() == "ws-conv"
        conn.send_text("b")
        assert conn.receive_text() == "ws-conv"


async def test_joins_otel_asgi_server_span_never_two(capture: Any) -> None:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    inner = Starlette(routes=[Route("/api/chat", hello, methods=["POST"])])
    inner.add_middleware(chatobs.ChatObsMiddleware)
    app = OpenTelemetryMiddleware(inner)  # OTel's instrumentation outermost, as `opentelemetry-instrument` does it
    r = await post(app, json={"conversation_id": "c-j"})
    servers = [s for s in capture.spans() if s.kind == trace.SpanKind.SERVER]
    assert len(servers) == 1
    (server,) = servers
    assert server.instrumentation_scope.name.startswith("opentelemetry.instrumentation.asgi")
    assert server.attributes[semconv.CHAT_REQUEST] is True
    assert server.attributes[semconv.GEN_AI_CONVERSATION_ID] == "c-j"
    assert r.headers["x-trace-id"] == format(server.context.trace_id, "032x")


async def test_plain_starlette_app(capture: Any) -> None:
    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse(chatobs.current().user_id or "")  # type: ignore[union-attr]

    app = Starlette(routes=[Route("/api/chat", hello, methods=["POST"])])
    app.add_middleware(chatobs.ChatObsMiddleware)
    r = await post(app, json={"user_id": "star"})
    assert r.text == "star" and r.headers["x-trace-id"]
    (server,) = server_spans(capture)
    assert server.attributes[semconv.USER_ID] == "star"


def test_lifespan_shutdown_flushes(make_capture: Any) -> None:
    cap = make_capture(export_interval_ms=60000)  # nothing would be exported before shutdown without the hook
    app = chat_app()
    with TestClient(app) as client:
        client.post("/api/chat", json={"conversation_id": "c-l"})
    assert chatobs.runtime.wiring.get_runtime() is None  # lifespan end shut chatobs down ...
    assert any(s.kind == trace.SpanKind.SERVER for s in cap.exporter.get_finished_spans())  # ... after delivering


def test_streaming_through_real_uvicorn(capture: Any, uvicorn_server: Any) -> None:
    """The first SSE chunk reaches the client while the handler is still blocked waiting for the client."""
    release = asyncio.Event()
    loop_holder: dict[str, Any] = {}

    async def stream(request: Any) -> StreamingResponse:
        loop_holder["loop"] = asyncio.get_running_loop()

        async def gen() -> Any:
            yield "data: first\n\n"
            await asyncio.wait_for(release.wait(), timeout=10)
            yield "data: second\n\n"

        return StreamingResponse(gen(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/api/chat/stream", stream, methods=["POST"])])
    app.add_middleware(chatobs.ChatObsMiddleware)
    base = uvicorn_server(app)
    with (
        httpx.Client(timeout=5) as client,
        client.stream("POST", f"{base}/api/chat/stream", json={"conversation_id": "c-s"}) as r,
    ):
        assert r.headers["x-trace-id"]
        chunks = r.iter_text()
        assert next(chunks) == "data: first\n\n"  # would time out if the middleware buffered
        loop_holder["loop"].call_soon_threadsafe(release.set)
        assert "".join(chunks) == "data: second\n\n"
    # The server ends the span after the last byte went out, on its own thread: wait for it briefly.
    deadline = time.monotonic() + 5
    while not server_spans(capture) and time.monotonic() < deadline:
        time.sleep(0.02)
    (server,) = server_spans(capture)
    assert server.attributes[semconv.GEN_AI_CONVERSATION_ID] == "c-s"
    assert server.end_time - server.start_time > 0


async def test_hashed_user_ids_on_spans_and_baggage_but_not_in_scope(make_capture: Any) -> None:
    cap = make_capture(hash_user_ids=True, hash_secret="k" * 32)
    r = await post(chat_app(), json={"conversation_id": "c-h"}, headers={"X-User-Id": "alice@example.com"})
    assert r.json()["scope"]["user_id"] == "alice@example.com"  # the app still sees who it serves
    outgoing = dict(e.split("=", 1) for e in r.json()["outgoing"]["baggage"].split(","))
    hashed = outgoing["user.id"]
    assert hashed.startswith("uh_") and "alice" not in hashed
    spans = cap.spans()
    assert spans and all(s.attributes[semconv.USER_ID] == hashed for s in spans)


async def test_request_span_reachable_inside_framework_spans(capture: Any) -> None:
    app = FastAPI()
    app.add_middleware(chatobs.ChatObsMiddleware)

    @app.post("/api/chat")
    async def chat() -> dict[str, bool]:
        with chatobs.get_tracer().start_as_current_span("inner"):
            chatobs.request_span().set_attribute("app.feedback", "thumbs_up")
        return {"outside": chatobs.request_span().is_recording()}

    r = await post(app, json={})
    assert r.json() == {"outside": True}
    assert not chatobs.request_span().is_recording()  # outside any request
    (server,) = server_spans(capture)
    assert server.attributes["app.feedback"] == "thumbs_up"
