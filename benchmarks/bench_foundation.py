"""Import time of `chatobs`, and the bare middleware's cost per request against the same app without it.

The request cost is measured in process (ASGI/WSGI called directly, no network), in CPU time per request, so the
figure is the middleware's own work: span, scope, identity, and the background pipeline (exporters off).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import async_cpu_per_op, cpu_per_op, interleaved, table

REPO = Path(__file__).resolve().parent.parent
N = int(os.environ.get("BENCH_N", "2000"))


def import_time(rounds: int = 7) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    times = []
    for _ in range(rounds):
        out = subprocess.run(
            [sys.executable, "-c", "import time; t=time.perf_counter(); import chatobs; print(time.perf_counter()-t)"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(float(out.stdout))
    return statistics.median(times)


def init_time() -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "CHATOBS_EXPORTERS": "none"}
    code = "import time; t=time.perf_counter(); import chatobs; chatobs.init(); print(time.perf_counter()-t)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout)


def _asgi_apps() -> tuple[Any, Any]:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    import chatobs

    async def chat(request: Any) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"reply": "You said: " + body["message"]})

    bare = Starlette(routes=[Route("/api/chat", chat, methods=["POST"])])
    traced = Starlette(routes=[Route("/api/chat", chat, methods=["POST"])])
    traced.add_middleware(chatobs.ChatObsMiddleware)
    return bare, traced


def _asgi_call(app: Any) -> Any:
    body = b'{"conversation_id": "conv-1", "message": "hello there"}'
    headers = [
        (b"content-type", b"application/json"),
        (b"x-user-id", b"u-1"),
        (b"content-length", str(len(body)).encode()),
    ]

    async def call() -> None:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            pass

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/api/chat",
            "headers": headers,
            "query_string": b"",
            "scheme": "http",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 5000),
            "http_version": "1.1",
            "asgi": {"version": "3.0"},
        }
        await app(scope, receive, send)

    return call


def _fastapi_apps() -> tuple[Any, Any]:
    """FastAPI with a dependency and a response model; the bare app has its native telemetry off (it would otherwise
    trace through chatobs's provider)."""
    from fastapi import Depends, FastAPI, Request
    from pydantic import BaseModel

    import chatobs

    class Reply(BaseModel):
        reply: str

    def user(request: Request) -> str:
        return request.headers.get("x-user-id", "anon")

    def make(**kw: Any) -> Any:
        app = FastAPI(**kw)

        @app.post("/api/chat", response_model=Reply)
        async def chat(body: dict[str, Any], who: str = Depends(user)) -> Reply:
            return Reply(reply="You said: " + body["message"])

        return app

    bare = make(telemetry={"tracing": False, "metrics": False, "logs": False})
    traced = make()
    traced.add_middleware(chatobs.ChatObsMiddleware)
    return bare, traced


def _wsgi_apps() -> tuple[Any, Any]:
    import flask

    import chatobs

    def make() -> Any:
        app = flask.Flask("bench")

        @app.post("/api/chat")
        def chat() -> Any:
            return {"reply": "You said: " + flask.request.get_json()["message"]}

        return app

    bare, traced = make(), make()
    chatobs.ChatObs(traced)
    return bare.test_client(), traced.test_client()


def main() -> dict[str, Any]:
    import chatobs

    results: dict[str, Any] = {}
    results["import_chatobs_s"] = round(import_time(), 4)
    results["import_plus_init_s"] = round(init_time(), 4)

    chatobs.init(exporters="none", capture_content=True)
    loop = asyncio.new_event_loop()
    bare, traced = _asgi_apps()
    bare_call, traced_call = _asgi_call(bare), _asgi_call(traced)
    for fn in (bare_call, traced_call):  # warm up
        loop.run_until_complete(fn())
    asgi = interleaved(
        {
            "bare": lambda: async_cpu_per_op(bare_call, N, loop),
            "chatobs": lambda: async_cpu_per_op(traced_call, N, loop),
        }
    )
    # FastAPI's native telemetry: chatobs as shipped (its dependency/endpoint/serialization spans not created) against
    # the same app with CHATOBS_FRAMEWORK_SPANS=true, switched between interleaved rounds.
    from chatobs.recording import framework_spans

    fbare, ftraced = _fastapi_apps()
    fbare_call, ftraced_call = _asgi_call(fbare), _asgi_call(ftraced)
    for fn in (fbare_call, ftraced_call):
        loop.run_until_complete(fn())

    def with_framework_spans(keep: bool) -> float:
        framework_spans.configure(keep)
        try:
            return async_cpu_per_op(ftraced_call, N, loop)
        finally:
            framework_spans.configure(False)

    fastapi = interleaved(
        {
            "bare": lambda: async_cpu_per_op(fbare_call, N, loop),
            "chatobs": lambda: with_framework_spans(False),
            "framework_spans": lambda: with_framework_spans(True),
        }
    )
    runtime = chatobs.runtime.wiring.get_runtime()
    assert runtime is not None
    runtime.force_flush(10)

    wbare, wtraced = _wsgi_apps()
    payload = {"conversation_id": "conv-1", "message": "hello there"}
    wsgi = interleaved(
        {
            "bare": lambda: cpu_per_op(lambda: wbare.post("/api/chat", json=payload), N // 2),
            "chatobs": lambda: cpu_per_op(lambda: wtraced.post("/api/chat", json=payload), N // 2),
        }
    )
    chatobs.shutdown()
    loop.close()
    rows = []
    for name, m in (("ASGI (Starlette)", asgi), ("WSGI (Flask)", wsgi)):
        added = (m["chatobs"] - m["bare"]) * 1000
        rows.append(
            (
                name,
                f"{m['bare'] * 1e6:.0f} us",
                f"{m['chatobs'] * 1e6:.0f} us",
                f"+{added:.3f} ms",
                f"{m['chatobs'] / m['bare']:.2f}x",
            )
        )
        results[f"{name.split()[0].lower()}_cpu_per_request_bare_us"] = round(m["bare"] * 1e6, 1)
        results[f"{name.split()[0].lower()}_cpu_per_request_chatobs_us"] = round(m["chatobs"] * 1e6, 1)
        results[f"{name.split()[0].lower()}_added_cpu_ms"] = round(added, 4)
        results[f"{name.split()[0].lower()}_ratio"] = round(m["chatobs"] / m["bare"], 3)
    noise = (fastapi["framework_spans"] - fastapi["chatobs"]) * 1000
    rows.append(
        (
            "ASGI (FastAPI native telemetry)",
            f"{fastapi['bare'] * 1e6:.0f} us",
            f"{fastapi['chatobs'] * 1e6:.0f} us",
            f"+{(fastapi['chatobs'] - fastapi['bare']) * 1000:.3f} ms",
            f"{fastapi['chatobs'] / fastapi['bare']:.2f}x",
        )
    )
    rows.append(
        (
            "  same, CHATOBS_FRAMEWORK_SPANS=true",
            "",
            f"{fastapi['framework_spans'] * 1e6:.0f} us",
            f"+{(fastapi['framework_spans'] - fastapi['bare']) * 1000:.3f} ms",
            f"{fastapi['framework_spans'] / fastapi['bare']:.2f}x",
        )
    )
    results["fastapi_cpu_per_request_bare_us"] = round(fastapi["bare"] * 1e6, 1)
    results["fastapi_cpu_per_request_chatobs_us"] = round(fastapi["chatobs"] * 1e6, 1)
    results["fastapi_cpu_per_request_framework_spans_us"] = round(fastapi["framework_spans"] * 1e6, 1)
    results["fastapi_framework_spans_saved_ms"] = round(noise, 4)
    print(
        f"import chatobs: {results['import_chatobs_s'] * 1000:.0f} ms (target <= 300 ms); import + init(): {results['import_plus_init_s'] * 1000:.0f} ms"
    )
    table(rows, ("app", "bare CPU/req", "with chatobs", "added", "ratio"))
    return results


if __name__ == "__main__":
    main()
