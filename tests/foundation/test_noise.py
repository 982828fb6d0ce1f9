"""Framework noise and non-chat routes, through real FastAPI (native telemetry active), OpenTelemetry's ASGI/WSGI
instrumentation, Flask and uvicorn: only chat turns become traces, excluded paths make no span at all."""

from __future__ import annotations

from typing import Annotated, Any

import flask
import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.wsgi import (
    OpenTelemetryMiddleware as OpenTelemetryWSGIMiddleware,
)
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from pydantic import BaseModel

import chatobs
from chatobs import ConfigError
from chatobs.core import semconv
from chatobs.processing.metrics import stage as metrics
from tests.metrics.helpers import count, wait_for

NOISE = ("fastapi.dependencies", "fastapi.endpoint", "fastapi.serialization")


class Reply(BaseModel):
    text: str
    user: str


def app_settings() -> dict[str, int]:
    return {"limit": 3}


async def current_user(request: Request, cfg: Annotated[dict[str, int], Depends(app_settings)]) -> str:
    return request.headers.get("x-user-id", "anon")


def fastapi_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(chatobs.ChatObsMiddleware)

    @app.post("/api/chat", response_model=Reply)
    async def chat(body: dict[str, Any], user: Annotated[str, Depends(current_user)]) -> Reply:
        with chatobs.get_tracer().start_as_current_span("child"):
            pass
        return Reply(text=str(body.get("message")), user=user)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return "<html>chat</html>"

    @app.get("/static/app.js", response_class=PlainTextResponse)
    async def asset() -> str:
        return "console.log(1)"

    @app.get("/config")
    async def config(cfg: Annotated[dict[str, int], Depends(app_settings)]) -> dict[str, int]:
        return cfg

    @app.post("/gradio_api/heartbeat/{session}")
    async def heartbeat(session: str) -> dict[str, str]:
        return {"session": session}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/broken")
    async def broken() -> JSONResponse:
        return JSONResponse({"x": 1}, status_code=500)

    return app


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t")


async def chat_turn(c: httpx.AsyncClient, **kw: Any) -> httpx.Response:
    r = await c.post("/api/chat", json={"message": "hi", "conversation_id": "c-1"}, headers={"X-User-Id": "u-1"}, **kw)
    assert r.status_code == 200 and r.json() == {"text": "hi", "user": "u-1"}
    return r


async def test_fastapi_operation_spans_are_not_recorded_by_default(capture: Any) -> None:
    async with client(fastapi_app()) as c:
        r = await chat_turn(c)
    spans = capture.spans()
    assert sorted(s.name for s in spans) == ["POST /api/chat", "child"]
    server = next(s for s in spans if s.kind == trace.SpanKind.SERVER)
    child = next(s for s in spans if s.name == "child")
    # FastAPI's server span is kept (chatobs joined it); what ran in the endpoint hangs on it directly.
    assert server.instrumentation_scope.name == "fastapi" and server.attributes[semconv.CHAT_REQUEST] is True
    assert child.parent.span_id == server.context.span_id
    assert format(server.context.trace_id, "032x") == r.headers["x-trace-id"]


async def test_framework_spans_setting_keeps_them(make_capture: Any) -> None:
    cap = make_capture(framework_spans=True)
    async with client(fastapi_app()) as c:
        await chat_turn(c)
    spans = cap.spans()
    names = [s.name for s in spans]
    for noise in NOISE:
        assert noise in names, names
    endpoint = next(s for s in spans if s.name == "fastapi.endpoint")
    child = next(s for s in spans if s.name == "child")
    assert child.parent.span_id == endpoint.context.span_id


async def test_asgi_instrumentation_send_receive_spans_dropped_but_server_span_kept(capture: Any) -> None:
    app = OpenTelemetryMiddleware(fastapi_app())
    async with client(app) as c:
        await chat_turn(c)
    spans = capture.spans()
    scopes = {s.instrumentation_scope.name for s in spans}
    assert scopes == {"opentelemetry.instrumentation.asgi", "fastapi", "chatobs"}, scopes
    assert all(s.kind == trace.SpanKind.SERVER for s in spans if s.instrumentation_scope.name != "chatobs")
    assert not [s for s in spans if s.name.endswith((" send", " receive"))]


async def test_asgi_instrumentation_send_receive_spans_kept_with_the_setting(make_capture: Any) -> None:
    cap = make_capture(framework_spans=True)
    async with client(OpenTelemetryMiddleware(fastapi_app())) as c:
        await chat_turn(c)
    assert [s for s in cap.spans() if s.name.endswith(" send")]


def test_excluded_path_makes_no_span_at_all_over_uvicorn(capture: Any, uvicorn_server: Any) -> None:
    # OTel's ASGI instrumentation outermost, then FastAPI's native telemetry, then chatobs's middleware.
    base = uvicorn_server(OpenTelemetryMiddleware(fastapi_app()))
    with httpx.Client(base_url=base) as c:
        assert c.get("/health").json() == {"ok": "yes"}
        assert c.get("/static/app.js").status_code == 200
        # A sampled incoming trace does not bring an excluded path back.
        assert c.get("/health", headers={"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"}).status_code == 200
        assert capture.spans() == []
        c.post("/api/chat", json={"message": "hi"}).raise_for_status()
    # The server spans end just after the client has the response (uvicorn runs in another thread).
    want = {"opentelemetry.instrumentation.asgi", "fastapi", "chatobs"}
    assert wait_for(lambda: {s.instrumentation_scope.name for s in capture.spans()} == want), capture.spans()
    # By now the excluded requests' spans would have ended too.
    paths = {
        s.attributes.get(semconv.URL_PATH) or s.attributes.get("http.target")
        for s in capture.spans()
        if s.kind == trace.SpanKind.SERVER
    }
    assert paths == {"/api/chat"}


@pytest.mark.parametrize("record_unsampled", ["light", "full"])
async def test_only_chat_turns_become_traces_while_metrics_count_every_request(
    make_capture: Any, record_unsampled: str
) -> None:
    reader = InMemoryMetricReader()
    remove = metrics.register_reader(reader)
    try:
        cap = make_capture(record_unsampled=record_unsampled)
        async with client(fastapi_app()) as c:
            assert (await c.get("/")).status_code == 200
            assert (await c.get("/static/app.js")).status_code == 200
            assert (await c.get("/config")).json() == {"limit": 3}
            assert (await c.get("/broken")).status_code == 500  # an error on a non-chat route: not kept either
            assert cap.spans() == []
            await chat_turn(c)
        spans = cap.spans()
        assert {s.attributes.get(semconv.URL_PATH) for s in spans if s.kind == trace.SpanKind.SERVER} == {"/api/chat"}
        assert all(semconv.CHAT_TURN not in s.attributes for s in spans)
        cap.runtime.force_flush(10)
        for route in ("/", "/config", "/broken", "/api/chat"):
            assert count(reader, "http.server.request.duration", **{semconv.HTTP_ROUTE: route}) == 1, route
    finally:
        remove()


async def test_chat_routes_and_trace_all_routes_settings(make_capture: Any) -> None:
    cap = make_capture(chat_routes="GET /config")
    async with client(fastapi_app()) as c:
        await c.get("/config")
        await chat_turn(c)  # POST is no longer a chat route
    assert [s.name for s in cap.spans() if s.kind == trace.SpanKind.SERVER] == ["GET /config"]
    cap = make_capture(trace_all_routes=True)
    async with client(fastapi_app()) as c:
        await c.get("/")
        await c.get("/health")  # excluded paths stay excluded
    assert [s.name for s in cap.spans() if s.kind == trace.SpanKind.SERVER] == ["GET /"]


async def test_a_framework_integration_narrows_the_default_chat_routes(make_capture: Any) -> None:
    # Open WebUI itself runs in `make e2e` (tests/e2e/test_openwebui.py asserts no trace beyond its turns); here its
    # integration patches a stand-in `open_webui.main` holding only a FastAPI app, as it patches the real one.
    import types

    from chatobs.recording.instrument import openwebui

    main = types.ModuleType("open_webui.main")
    main.app = fastapi_app()  # type: ignore[attr-defined]
    cap = make_capture()
    try:
        openwebui._patch_main(main)
        async with client(main.app) as c:  # type: ignore[attr-defined]
            await chat_turn(c)  # POST /api/chat: a chat turn under `POST *`, not one of Open WebUI's
            r = await c.post("/api/chat/completions", json={"message": "hi"})
        assert r.status_code == 404  # the stand-in has no such endpoint; the request is still a turn
        server = [s.attributes.get(semconv.URL_PATH) for s in cap.spans() if s.kind == trace.SpanKind.SERVER]
        assert server == ["/api/chat/completions"]
        # A CHATOBS_CHAT_ROUTES the user set wins over the framework's.
        cap = make_capture(chat_routes="POST /api/chat")
        async with client(fastapi_app()) as c:
            await chat_turn(c)
            await c.post("/api/chat/completions", json={"message": "hi"})
        assert [s.name for s in cap.spans() if s.kind == trace.SpanKind.SERVER] == ["POST /api/chat"]
    finally:
        openwebui.uninstrument()
    cap = make_capture()  # and without the framework, the default `POST *` again
    async with client(fastapi_app()) as c:
        await chat_turn(c)
    assert [s.name for s in cap.spans() if s.kind == trace.SpanKind.SERVER] == ["POST /api/chat"]


async def test_non_chat_route_called_from_a_sampled_upstream_trace_joins_it(capture: Any) -> None:
    tid = "12345678901234567890123456789012"
    async with client(fastapi_app()) as c:
        await c.get("/config", headers={"traceparent": f"00-{tid}-{'cd' * 8}-01"})
    (server,) = capture.spans()
    assert format(server.context.trace_id, "032x") == tid


def test_bad_chat_routes_setting_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATOBS_CHAT_ROUTES", "POST api/chat")
    with pytest.raises(ConfigError, match=r"CHATOBS_CHAT_ROUTES='POST api/chat'.*must start with /"):
        chatobs.init()


# --- Flask (WSGI) ---------------------------------------------------------------------------------------------------
def flask_app(otel: bool = False) -> flask.Flask:
    app = flask.Flask(__name__)

    @app.post("/api/chat")
    def chat() -> dict[str, str]:
        with chatobs.get_tracer().start_as_current_span("child"):
            pass
        return {"ok": "yes"}

    @app.get("/")
    def page() -> str:
        return "<html>chat</html>"

    @app.get("/health")
    def health() -> str:
        return "ok"

    chatobs.ChatObs(app)
    if otel:
        app.wsgi_app = OpenTelemetryWSGIMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    return app


@pytest.mark.parametrize("otel", [False, True])
def test_flask_only_chat_turns_and_no_span_for_excluded_paths(capture: Any, otel: bool) -> None:
    c = flask_app(otel).test_client()
    # The span ends when the response has been read (the WSGI iterable is exhausted).
    assert c.get("/").get_data() == b"<html>chat</html>"
    assert c.get("/health").get_data() == b"ok"
    assert capture.spans() == []
    assert c.post("/api/chat", json={"conversation_id": "f-1"}).get_json() == {"ok": "yes"}
    spans = capture.spans()
    servers = [s for s in spans if s.kind == trace.SpanKind.SERVER]
    assert [s.attributes.get(semconv.HTTP_ROUTE) for s in servers if s.attributes.get(semconv.CHAT_REQUEST)] == [
        "/api/chat"
    ]
    assert len(servers) == 1 and servers[0].instrumentation_scope.name == (
        "opentelemetry.instrumentation.wsgi" if otel else "chatobs"
    )
    assert {s.attributes[semconv.GEN_AI_CONVERSATION_ID] for s in spans} == {"f-1"}
