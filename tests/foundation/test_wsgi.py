"""The WSGI middleware and the Flask extension through real Flask apps (Werkzeug test client)."""

from __future__ import annotations

import io
import json
from typing import Any

import flask
import pytest
from opentelemetry import trace

import chatobs
from chatobs.core import semconv

TID = "12345678901234567890123456789012"


def flask_app(**kw: Any) -> flask.Flask:
    app = flask.Flask(__name__)
    chatobs.ChatObs(app, **kw)

    @app.post("/api/chat")
    def chat() -> Any:
        raw = flask.request.get_data()
        with chatobs.get_tracer().start_as_current_span("child"):
            outgoing = chatobs.inject({})
        s = chatobs.current()
        return {
            "conversation_id": s and s.conversation_id,
            "user_id": s and s.user_id,
            "raw": raw.decode("latin-1"),
            "outgoing": outgoing,
        }

    @app.get("/stream")
    def stream() -> Any:
        def gen() -> Any:
            for i in range(3):
                with chatobs.get_tracer().start_as_current_span(f"chunk-{i}"):
                    yield f"data: {i} {chatobs.current().conversation_id}\n\n"  # type: ignore[union-attr]

        return flask.Response(gen(), mimetype="text/event-stream")

    @app.get("/boom")
    def boom() -> Any:
        raise ValueError("flask handler failed")

    @app.get("/health")
    def health() -> Any:
        return "ok"

    return app


def chat_spans(cap: Any) -> list[Any]:
    return [s for s in cap.spans() if s.kind == trace.SpanKind.SERVER]


def test_identity_trace_id_and_route(capture: Any) -> None:
    c = flask_app().test_client()
    r = c.post("/api/chat", json={"conversation_id": "fc-1", "message": "hi"}, headers={"X-User-Id": "fu-1"})
    assert r.json["conversation_id"] == "fc-1" and r.json["user_id"] == "fu-1"
    assert json.loads(r.json["raw"]) == {"conversation_id": "fc-1", "message": "hi"}
    (server,) = chat_spans(capture)
    assert r.headers["X-Trace-Id"] == format(server.context.trace_id, "032x")
    assert server.name == "POST /api/chat" and server.attributes[semconv.HTTP_ROUTE] == "/api/chat"
    for span in capture.spans():
        assert span.attributes[semconv.GEN_AI_CONVERSATION_ID] == "fc-1"
        assert span.attributes[semconv.USER_ID] == "fu-1"


def test_streaming_chunk_by_chunk_with_scope(make_capture: Any) -> None:
    capture = make_capture(chat_routes="POST *,GET /stream")  # a GET chat stream, declared a chat route
    c = flask_app().test_client()
    r = c.get("/stream", headers={"X-Conversation-Id": "fs"}, buffered=False)
    it = r.response
    first = next(iter(it))
    assert first == b"data: 0 fs\n\n"
    assert chat_spans(capture) == []  # the request is still open while the stream is
    rest = b"".join(it)
    r.close()
    assert rest == b"data: 1 fs\n\ndata: 2 fs\n\n"
    (server,) = chat_spans(capture)
    chunks = [s for s in capture.spans() if s.name.startswith("chunk-")]
    assert len(chunks) == 3 and all(s.parent.span_id == server.context.span_id for s in chunks)


def test_remote_parent_and_duplicates(capture: Any) -> None:
    c = flask_app().test_client()
    r = c.post(
        "/api/chat",
        json={},
        headers={"traceparent": f"00-{TID}-1234567890123456-01", "tracestate": "a=1,b=2,a=3", "baggage": "k=v"},
    )
    assert r.headers["X-Trace-Id"] == TID
    assert r.json["outgoing"]["tracestate"] == "a=1,b=2"  # a duplicated key is passed on once, its first value
    assert "k=v" in r.json["outgoing"]["baggage"]
    # Two traceparent headers arrive joined by the server ("a, b"): invalid, so a new trace starts.
    r = c.post(
        "/api/chat",
        json={},
        headers=[("traceparent", f"00-{TID}-1234567890123456-01"), ("traceparent", f"00-{TID}-1234567890123457-01")],
    )
    assert r.headers["X-Trace-Id"] != TID


def test_body_limit_and_non_json(make_capture: Any) -> None:
    make_capture(max_body_bytes=100)
    c = flask_app().test_client()
    big = {"conversation_id": "too-far", "pad": "x" * 500}
    r = c.post("/api/chat", json=big)
    assert r.json["conversation_id"] is None and json.loads(r.json["raw"]) == big
    r = c.post("/api/chat", data="conversation_id=c", content_type="application/x-www-form-urlencoded")
    assert r.json["conversation_id"] is None and r.json["raw"] == "conversation_id=c"


def test_unterminated_input_without_length_is_not_read(capture: Any) -> None:
    """Reading a body with no Content-Length could block: the middleware leaves it to the app."""
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        seen["body"] = environ["wsgi.input"].read()
        seen["scope"] = chatobs.current()
        start_response("200 OK", [])
        return [b"ok"]

    mw = chatobs.ChatObsWSGIMiddleware(app)
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/chat",
        "CONTENT_TYPE": "application/json",
        "wsgi.input": io.BytesIO(b'{"conversation_id": "c"}'),
        "wsgi.url_scheme": "http",
        "SERVER_NAME": "x",
        "SERVER_PORT": "80",
    }
    body = b"".join(mw(environ, lambda *a: None))
    assert body == b"ok" and seen["body"] == b'{"conversation_id": "c"}' and seen["scope"].conversation_id is None
    environ.update({"wsgi.input": io.BytesIO(b'{"conversation_id": "c"}'), "wsgi.input_terminated": True})
    b"".join(mw(environ, lambda *a: None))
    assert seen["body"] == b'{"conversation_id": "c"}' and seen["scope"].conversation_id == "c"


def test_errors_recorded_and_reraised(make_capture: Any) -> None:
    capture = make_capture(trace_all_routes=True)  # GET routes are not chat turns by default
    app = flask_app()
    app.testing = True
    with pytest.raises(ValueError, match="flask handler failed"):
        app.test_client().get("/boom")
    (server,) = chat_spans(capture)
    assert server.status.status_code == trace.StatusCode.ERROR


def test_excluded_and_disabled(capture: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    r = flask_app().test_client().get("/health")
    assert "X-Trace-Id" not in r.headers and chat_spans(capture) == []
    chatobs.shutdown()
    monkeypatch.setenv("CHATOBS_ENABLED", "false")
    r = flask_app().test_client().post("/api/chat", json={"conversation_id": "c"})
    assert "X-Trace-Id" not in r.headers and r.json["conversation_id"] is None


def test_extension_is_idempotent_and_init_app(capture: Any) -> None:
    app = flask.Flask(__name__)
    ext = chatobs.ChatObs()
    ext.init_app(app)
    wrapped = app.wsgi_app
    chatobs.ChatObs(app)
    assert app.wsgi_app is wrapped and app.extensions["chatobs"] is ext


def test_chatobs_failure_never_reaches_flask(capture: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from chatobs.recording.middleware import request as request_mod

    def explode(*a: Any, **k: Any) -> None:
        raise RuntimeError("chatobs bug")

    monkeypatch.setattr(request_mod.RequestSpan, "open", explode)
    r = flask_app().test_client().post("/api/chat", json={"conversation_id": "c"})
    assert r.status_code == 200 and json.loads(r.json["raw"]) == {"conversation_id": "c"}
