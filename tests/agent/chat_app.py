"""A small chat app for the agent tests: Starlette with chatobs's middleware, one LLM-like span and one tool span per
turn, and the metrics route mounted. Served by uvicorn or gunicorn in a subprocess; ``chatobs.init()`` reads the
environment (``CHATOBS_AGENT`` defaults to ``auto``)."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

import chatobs
from chatobs.core import semconv as sc
from chatobs.processing.metrics.recorder import asgi_app as metrics_app
from chatobs.runtime.wiring import get_tracer

chatobs.init()


async def chat(request: Request) -> JSONResponse:
    body = await request.json()
    tracer = get_tracer()
    with tracer.start_as_current_span("chat fake-model") as llm:
        llm.set_attribute(sc.GEN_AI_OPERATION_NAME, sc.OP_CHAT)
        llm.set_attribute(sc.GEN_AI_PROVIDER_NAME, "openai")
        llm.set_attribute(sc.GEN_AI_REQUEST_MODEL, "gpt-4o-mini")
        llm.set_attribute(sc.GEN_AI_USAGE_INPUT_TOKENS, 10)
        llm.set_attribute(sc.GEN_AI_USAGE_OUTPUT_TOKENS, 4)
    return JSONResponse({"reply": f"you said {body.get('message', '')}", "pid": os.getpid()})


async def pid(request: Request) -> JSONResponse:
    return JSONResponse({"pid": os.getpid()})


app = Starlette(routes=[Route("/api/chat", chat, methods=["POST"]), Route("/pid", pid), Mount("/metrics", metrics_app)])
app = chatobs.ChatObsMiddleware(app)
