"""Real chat apps (FastAPI and Flask) with ChatObsMiddleware and chatobs's feedback route mounted beside them."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from flask import Flask, jsonify
from flask import request as flask_request
from werkzeug.middleware.dispatcher import DispatcherMiddleware

import chatobs

FEEDBACK_PATH = "/_chatobs/feedback"  # under /_chatobs/*, which the middleware does not trace by default


def _llm_span(model: str = "fake-model") -> None:
    with chatobs.llm_call(provider="fake", model=model, messages="hi") as call:
        call.record(output="echo: hi", usage={"input_tokens": 9, "output_tokens": 3})


def fastapi_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(chatobs.ChatObsMiddleware)
    app.add_route(FEEDBACK_PATH, chatobs.feedback_asgi_app, methods=["POST", "GET"])

    @app.post("/api/chat")
    async def chat(request: Request) -> dict[str, Any]:
        body = await request.json()
        with chatobs.prompt("support", version=body.get("prompt_version", "2")):
            _llm_span()
        return {"reply": "echo: " + body["message"], "token": chatobs.feedback_token()}

    return app


def flask_app() -> Any:
    app = Flask(__name__)
    chatobs.ChatObs(app)

    @app.post("/api/chat")
    def chat() -> Any:
        _llm_span()
        return jsonify({"reply": "echo: " + flask_request.get_json()["message"]})

    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {FEEDBACK_PATH: chatobs.feedback_wsgi_app})  # type: ignore[method-assign]
    return app
