"""The demo chat app as a Gradio ``ChatInterface`` mounted on FastAPI, with chatobs added as for any FastAPI app
(``chatobs.init()`` + the middleware): Gradio runs the chat function on its queue, and chatobs's Gradio integration
puts that run in the trace of the request that submitted it, with the chat's session as the conversation. Every
reply has thumbs up/down and an optional comment, recorded with ``chatobs.feedback()`` (``gradio_thumbs``)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI

from . import web
from .chat import ToolUsed, TurnFailed, openai_clients, run_turn_async
from .fastapi_app import tools_lifespan
from .history import SYSTEM_PROMPT
from .settings import DemoConfig
from .tools import McpToolbox


def _text(content: Any) -> str:
    # Gradio 6 gives a message's content as a string or a list of parts ({"type": "text", "text": ...}).
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


def llm_messages(message: str, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The whole conversation for the LLM: the demo's system prompt, Gradio's history, the new message."""
    past = [
        {"role": m["role"], "content": _text(m.get("content"))}
        for m in history
        if m.get("role") in ("user", "assistant")
    ]
    return [{"role": "system", "content": SYSTEM_PROMPT}, *past, {"role": "user", "content": message}]


def create_app(cfg: DemoConfig | None = None, on_ready: Callable[[], None] | None = None) -> FastAPI:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the demo makes no calls to the outside
    import gradio as gr

    import chatobs

    from .gradio_thumbs import Replies, chat_with_thumbs, remember_turn

    cfg = cfg or DemoConfig(framework="gradio")
    overrides = web.chatobs_overrides()
    if "instrument" in overrides:
        overrides["instrument"] = [*overrides["instrument"], "gradio"]
    chatobs.init(**overrides)
    _, llm = openai_clients(cfg)
    toolbox = McpToolbox(web.mcp_target(cfg), timeout_s=cfg.tool_timeout_s)

    app = FastAPI(
        title="chatobs demo (Gradio)", lifespan=tools_lifespan(toolbox, llm, on_ready), docs_url=None, redoc_url=None
    )
    app.add_middleware(chatobs.ChatObsMiddleware)
    web.mount_viewer_asgi(app, cfg)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    async def respond(
        message: str, history: list[dict[str, Any]], replies: Replies | None
    ) -> AsyncIterator[tuple[str, Replies]]:
        # chatobs's Gradio integration made the chat's session the conversation of this run's scope.
        scope = chatobs.current()
        conversation_id = (scope.conversation_id if scope else None) or "gradio"
        # This turn's reply becomes the chat message after the history and the user's message.
        replies = remember_turn(replies, len(history) + 1)
        reply, tools = "", []
        try:
            async for event in run_turn_async(
                cfg, llm, toolbox, llm_messages(message, history), stream=True, conversation_id=conversation_id
            ):
                if isinstance(event, ToolUsed):
                    tools.append(event.result.name)
                else:
                    reply += event.text
                yield (f"*(used {', '.join(tools)})*\n\n" if tools else "") + reply, replies
        except TurnFailed as exc:
            yield f"**Error:** {exc}", replies

    demo = chat_with_thumbs(respond, title="chatobs demo (Gradio)", api_name="chat")
    return gr.mount_gradio_app(app, demo, path="/")
