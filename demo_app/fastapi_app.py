"""The demo chat app on FastAPI, with chatobs added as the README says (``chatobs.init()`` + the middleware)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse

from . import api, web
from .chat import ToolUsed, TurnFailed, openai_clients, run_turn_async
from .history import ConversationStore, TurnRejected
from .settings import DemoConfig
from .tools import McpToolbox, ToolsUnavailable

logger = logging.getLogger("demo_app")


def tools_lifespan(toolbox: McpToolbox, llm: Any, on_ready: Callable[[], None] | None) -> Callable[[Any], Any]:
    """The app's lifespan: the MCP tools come up with the app (chat works without them), and go down with it."""

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        try:
            await toolbox.start()
        except ToolsUnavailable as exc:
            logger.warning("chat works without tools for now: %s", exc)
        if on_ready is not None:
            on_ready()
        yield
        await toolbox.stop()
        await llm.close()

    return lifespan


def create_app(cfg: DemoConfig | None = None, on_ready: Callable[[], None] | None = None) -> FastAPI:
    import chatobs

    cfg = cfg or DemoConfig()
    chatobs.init(**web.chatobs_overrides())
    _, llm = openai_clients(cfg)
    toolbox = McpToolbox(web.mcp_target(cfg), timeout_s=cfg.tool_timeout_s)
    store = ConversationStore()

    app = FastAPI(title="chatobs demo", lifespan=tools_lifespan(toolbox, llm, on_ready), docs_url=None, redoc_url=None)
    app.add_middleware(chatobs.ChatObsMiddleware)
    web.mount_feedback_asgi(app)
    viewer_url = web.mount_viewer_asgi(app, cfg)

    def bad(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message, "trace_id": api.current_trace_id()}, status_code=status)

    @app.get("/")
    async def index() -> FileResponse:
        return FileResponse(web.STATIC / "index.html", headers={"cache-control": "no-store"})

    @app.get("/static/{name}")
    async def static(name: str) -> Any:
        path = web.static_file(name)
        return FileResponse(path) if path else JSONResponse({"error": "not found"}, status_code=404)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/config")
    async def config() -> dict[str, Any]:
        return web.public_config(cfg, viewer_url)

    @app.get("/api/conversations")
    async def conversations(request: Request) -> Any:
        try:
            return {"conversations": store.list(api.user_of(request.headers))}
        except api.BadRequest as exc:
            return bad(400, str(exc))

    @app.get("/api/conversations/{conversation_id}")
    async def conversation(conversation_id: str, request: Request) -> Any:
        try:
            conv = store.get(conversation_id, api.user_of(request.headers))
        except api.BadRequest as exc:
            return bad(400, str(exc))
        return conv.to_json() if conv else bad(404, "no such conversation")

    async def start_turn(request: Request) -> tuple[api.ChatRequest, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise api.BadRequest("body: expected JSON") from None
        req = api.parse_chat_request(body, request.headers)
        return req, store.begin(req.conversation_id, req.user_id, req.message, req.action, req.message_id)

    @app.post("/api/chat")
    async def chat(request: Request) -> Any:
        try:
            req, turn = await start_turn(request)
        except api.BadRequest as exc:
            return bad(400, str(exc))
        except TurnRejected as exc:
            return bad(exc.status, str(exc))
        with api.turn_scope(req, turn):
            trace_id = api.current_trace_id()
            reply, tools = [], []
            try:
                async for event in run_turn_async(
                    cfg, llm, toolbox, turn.llm_messages, stream=False, conversation_id=turn.conversation.id
                ):
                    if isinstance(event, ToolUsed):
                        tools.append(event.result.to_json())
                    else:
                        reply.append(event.text)
            except TurnFailed as exc:
                api.mark_failed(exc.error_type, str(exc))
                store.finish(turn, "", trace_id, tools, error=str(exc))
                return JSONResponse(
                    {"conversation_id": turn.conversation.id, "error": str(exc), "trace_id": trace_id}, status_code=502
                )
            answer = store.finish(turn, "".join(reply), trace_id, tools)
            return {
                "conversation_id": turn.conversation.id,
                "reply": answer.content,
                "trace_id": trace_id,
                "message_id": answer.id,
                "user_message_id": turn.user_message.id,
                "tools": tools,
            }

    @app.post("/api/chat/stream")
    async def chat_stream(request: Request) -> Any:
        try:
            req, turn = await start_turn(request)
        except api.BadRequest as exc:
            return bad(400, str(exc))
        except TurnRejected as exc:
            return bad(exc.status, str(exc))

        async def events() -> AsyncIterator[str]:
            # Runs while the response streams, still inside the request's span (the middleware ends it after).
            with api.turn_scope(req, turn):
                trace_id = api.current_trace_id()
                reply, tools = [], []
                try:
                    async for event in run_turn_async(
                        cfg, llm, toolbox, turn.llm_messages, stream=True, conversation_id=turn.conversation.id
                    ):
                        if isinstance(event, ToolUsed):
                            tools.append(event.result.to_json())
                        else:
                            reply.append(event.text)
                        yield api.sse(api.event_json(event))
                except TurnFailed as exc:
                    api.mark_failed(exc.error_type, str(exc))
                    store.finish(turn, "".join(reply), trace_id, tools, error=str(exc))
                    yield api.sse(
                        {
                            "type": "error",
                            "error": str(exc),
                            "conversation_id": turn.conversation.id,
                            "trace_id": trace_id,
                        }
                    )
                    return
                answer = store.finish(turn, "".join(reply), trace_id, tools)
                yield api.sse(api.done_payload(turn, answer.id, trace_id))

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"cache-control": "no-cache", "x-accel-buffering": "no"}
        )

    return app
