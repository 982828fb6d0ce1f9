"""What feedback costs the app: the token on every chat turn's response (in CPU time per request, the middleware
with the token header against the same middleware with it off, interleaved), and one rating through the feedback
route (token check, validation, the feedback span). Exporters off, in process, ASGI called directly."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from benchmarks.bench_foundation import _asgi_call
from benchmarks.common import async_cpu_per_op, interleaved, table

N = 2000


def _apps(settings: Any) -> tuple[Any, Any]:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    import chatobs

    async def chat(request: Any) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"reply": "You said: " + body["message"]})

    apps = []
    for header in (settings.feedback_token_header, ""):
        app = Starlette(routes=[Route("/api/chat", chat, methods=["POST"])])
        app.add_middleware(
            chatobs.ChatObsMiddleware, settings=settings.model_copy(update={"feedback_token_header": header})
        )
        apps.append(app)
    return apps[0], apps[1]


def _rating_call(route: Any, body: bytes) -> Any:
    headers = [(b"content-type", b"application/json"), (b"x-user-id", b"u-1")]

    async def call() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] != 200:
                raise AssertionError(f"feedback route answered {message['status']}")

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/_chatobs/feedback",
            "headers": headers,
            "client": ("127.0.0.1", 1),
        }
        await route(scope, receive, send)

    return call


def main() -> dict[str, Any]:
    import chatobs
    from chatobs.recording.feedback import route
    from chatobs.runtime.wiring import get_runtime

    chatobs.init(exporters="none", feedback_rate_per_minute=1e9)
    rt = get_runtime()
    assert rt is not None
    loop = asyncio.new_event_loop()
    with_token, without = _apps(rt.settings)
    on, off = _asgi_call(with_token), _asgi_call(without)
    for fn in (on, off):
        loop.run_until_complete(fn())
    turns = interleaved(
        {"token": lambda: async_cpu_per_op(on, N, loop), "no_token": lambda: async_cpu_per_op(off, N, loop)}
    )

    # A real token for a real trace: capture the header of one traced turn.
    captured: dict[str, str] = {}

    async def one_turn() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b'{"conversation_id": "c", "message": "hi"}', "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                captured.update({k.decode(): v.decode() for k, v in message["headers"]})

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/api/chat",
            "query_string": b"",
            "client": ("127.0.0.1", 1),
            "headers": [(b"content-type", b"application/json"), (b"x-user-id", b"u-1")],
        }
        await with_token(scope, receive, send)

    loop.run_until_complete(one_turn())
    body = json.dumps(
        {
            "trace_id": captured["x-trace-id"],
            "value": False,
            "token": captured["x-feedback-token"],
            "comment": "wrong answer",
        }
    ).encode()
    rating = _rating_call(route.asgi_app, body)
    per_rating = interleaved({"rating": lambda: async_cpu_per_op(rating, N // 4, loop)})["rating"]
    rt.force_flush(10)
    chatobs.shutdown()
    loop.close()
    added_us = (turns["token"] - turns["no_token"]) * 1e6
    table(
        [
            ("chat turn, token header off", f"{turns['no_token'] * 1e6:.0f} us", ""),
            ("chat turn, X-Feedback-Token (default)", f"{turns['token'] * 1e6:.0f} us", f"{added_us:+.1f} us"),
            ("one rating through the route", f"{per_rating * 1e6:.0f} us", ""),
        ],
        ("request", "CPU/request", "added"),
    )
    return {
        "turn_cpu_no_token_us": round(turns["no_token"] * 1e6, 1),
        "turn_cpu_token_us": round(turns["token"] * 1e6, 1),
        "token_added_us": round(added_us, 2),
        "rating_cpu_us": round(per_rating * 1e6, 1),
    }


if __name__ == "__main__":
    main()
