"""The demo chat app on Flask, with chatobs added as the README says (``chatobs.ChatObs(app)``).

Same API and page as the FastAPI app; the LLM is called with the sync ``OpenAI`` client, the MCP tools through a
background event loop (``SyncToolbox``).
"""

from __future__ import annotations

import atexit
import contextvars
import logging
from collections.abc import Iterator
from typing import Any

from . import api, web
from .chat import ToolUsed, TurnFailed, openai_clients, run_turn_sync
from .history import ConversationStore, TurnRejected
from .settings import DemoConfig
from .tools import LoopThread, McpToolbox, SyncToolbox, ToolsUnavailable

logger = logging.getLogger("demo_app")


def _in_context(ctx: contextvars.Context, items: Iterator[str]) -> Iterator[str]:
    """Iterate ``items`` inside ``ctx``: the WSGI server pulls a streamed body after the view returned, and the
    spans made while streaming (LLM, tools) must still be children of the request's span."""
    while True:
        try:
            yield ctx.run(next, items)
        except StopIteration:
            return


def create_app(cfg: DemoConfig | None = None) -> Any:
    from flask import Flask, Response, jsonify, request, send_from_directory

    import chatobs

    cfg = cfg or DemoConfig(framework="flask")
    chatobs.init(**web.chatobs_overrides())
    llm, _ = openai_clients(cfg)
    loop = LoopThread()
    tools = SyncToolbox(McpToolbox(web.mcp_target(cfg), timeout_s=cfg.tool_timeout_s), loop)
    try:
        tools.start()
    except ToolsUnavailable as exc:
        logger.warning("chat works without tools for now: %s", exc)

    closed = False

    def close() -> None:
        nonlocal closed
        if closed:
            return
        closed = True
        tools.stop()
        loop.stop()
        llm.close()

    atexit.register(close)
    store = ConversationStore()

    app = Flask(__name__, static_folder=None)
    chatobs.ChatObs(app)
    app.extensions["demo_close"] = close
    viewer_url = web.mount_viewer_wsgi(app, cfg, loop)

    def bad(status: int, message: str) -> Any:
        return jsonify({"error": message, "trace_id": api.current_trace_id()}), status

    @app.get("/")
    def index() -> Any:
        response = send_from_directory(web.STATIC, "index.html")
        response.headers["cache-control"] = "no-store"
        return response

    @app.get("/static/<name>")
    def static(name: str) -> Any:
        path = web.static_file(name)
        return send_from_directory(web.STATIC, name) if path else bad(404, "not found")

    @app.get("/healthz")
    def healthz() -> Any:
        return {"status": "ok"}

    @app.get("/api/config")
    def config() -> Any:
        return web.public_config(cfg, viewer_url)

    @app.get("/api/conversations")
    def conversations() -> Any:
        try:
            return {"conversations": store.list(api.user_of(request.headers))}
        except api.BadRequest as exc:
            return bad(400, str(exc))

    @app.get("/api/conversations/<conversation_id>")
    def conversation(conversation_id: str) -> Any:
        try:
            conv = store.get(conversation_id, api.user_of(request.headers))
        except api.BadRequest as exc:
            return bad(400, str(exc))
        return conv.to_json() if conv else bad(404, "no such conversation")

    def start_turn() -> tuple[api.ChatRequest, Any]:
        body = request.get_json(silent=True)
        if body is None:
            raise api.BadRequest("body: expected JSON")
        req = api.parse_chat_request(body, request.headers)
        return req, store.begin(req.conversation_id, req.user_id, req.message, req.action, req.message_id)

    @app.post("/api/chat")
    def chat() -> Any:
        try:
            req, turn = start_turn()
        except api.BadRequest as exc:
            return bad(400, str(exc))
        except TurnRejected as exc:
            return bad(exc.status, str(exc))
        with api.turn_scope(req, turn):
            trace_id = api.current_trace_id()
            reply, used = [], []
            try:
                for event in run_turn_sync(
                    cfg, llm, tools, turn.llm_messages, stream=False, conversation_id=turn.conversation.id
                ):
                    if isinstance(event, ToolUsed):
                        used.append(event.result.to_json())
                    else:
                        reply.append(event.text)
            except TurnFailed as exc:
                api.mark_failed(exc.error_type, str(exc))
                store.finish(turn, "", trace_id, used, error=str(exc))
                return jsonify({"conversation_id": turn.conversation.id, "error": str(exc), "trace_id": trace_id}), 502
            answer = store.finish(turn, "".join(reply), trace_id, used)
            return {
                "conversation_id": turn.conversation.id,
                "reply": answer.content,
                "trace_id": trace_id,
                "message_id": answer.id,
                "user_message_id": turn.user_message.id,
                "tools": used,
            }

    @app.post("/api/chat/stream")
    def chat_stream() -> Any:
        try:
            req, turn = start_turn()
        except api.BadRequest as exc:
            return bad(400, str(exc))
        except TurnRejected as exc:
            return bad(exc.status, str(exc))

        def events() -> Iterator[str]:
            with api.turn_scope(req, turn):
                trace_id = api.current_trace_id()
                reply, used = [], []
                try:
                    for event in run_turn_sync(
                        cfg, llm, tools, turn.llm_messages, stream=True, conversation_id=turn.conversation.id
                    ):
                        if isinstance(event, ToolUsed):
                            used.append(event.result.to_json())
                        else:
                            reply.append(event.text)
                        yield api.sse(api.event_json(event))
                except TurnFailed as exc:
                    api.mark_failed(exc.error_type, str(exc))
                    store.finish(turn, "".join(reply), trace_id, used, error=str(exc))
                    yield api.sse(
                        {
                            "type": "error",
                            "error": str(exc),
                            "conversation_id": turn.conversation.id,
                            "trace_id": trace_id,
                        }
                    )
                    return
                answer = store.finish(turn, "".join(reply), trace_id, used)
                yield api.sse(api.done_payload(turn, answer.id, trace_id))

        body = _in_context(contextvars.copy_context(), events())
        return Response(
            body, mimetype="text/event-stream", headers={"cache-control": "no-cache", "x-accel-buffering": "no"}
        )

    return app
