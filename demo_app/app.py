"""First cut of the demo chat app: echo replies, traced by chatobs."""

from __future__ import annotations

from typing import Any


def create_fastapi_app() -> Any:
    from fastapi import FastAPI, Request

    import chatobs

    chatobs.init()
    app = FastAPI(title="chatobs demo")
    if hasattr(chatobs, "ChatObsMiddleware"):
        try:
            app.add_middleware(chatobs.ChatObsMiddleware)
        except Exception:  # noqa: BLE001 - first cut: middleware may not exist yet
            pass

    @app.post("/api/chat")
    async def chat(request: Request) -> dict[str, Any]:
        body = await request.json()
        return {"conversation_id": body.get("conversation_id"), "reply": f"You said: {body.get('message', '')}", "trace_id": chatobs.current_trace_id()}

    @app.get("/")
    async def index() -> dict[str, str]:
        return {"hello": "POST /api/chat with {\"message\": \"hi\"}"}

    return app


def run(framework: str, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(create_fastapi_app(), host=host, port=port)
