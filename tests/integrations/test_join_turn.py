"""Work a turn starts but that runs elsewhere -- a Starlette/FastAPI background task, an asyncio task, a thread pool,
``loop.run_in_executor``, ``anyio.to_thread`` -- joins the turn: same trace, under the request span, with its identity;
and the turn's duration in the local store is the extent of that work, not of the request span that returned first.
A real FastAPI app served by uvicorn, the real openai SDK against the fake provider."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

import anyio.to_thread
import httpx
import openai
import pytest
from fastapi import BackgroundTasks, FastAPI

import chatobs
from chatobs.core import semconv as sc
from chatobs.export.local import queries
from chatobs.export.local.store import connect

pytestmark = pytest.mark.timeout(60)

KINDS = ("background", "task", "pool", "executor", "anyio")


class _Countdown:
    def __init__(self, n: int) -> None:
        self.n, self.lock, self.done = n, threading.Lock(), threading.Event()
        self.errors: list[str] = []

    def tick(self) -> None:
        with self.lock:
            self.n -= 1
            if self.n == 0:
                self.done.set()


def _app(base_url: str, done: _Countdown) -> FastAPI:
    app = FastAPI()
    app.add_middleware(chatobs.ChatObsMiddleware)
    sync = openai.OpenAI(base_url=base_url + "/v1", api_key="test-key", max_retries=0)
    # One call first: the SDK imports parts of its HTTP stack on first use, and five threads racing through that
    # import can see a partially initialised module (a Python import-lock deadlock break, not what is tested here).
    sync.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "warm-up"}])
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    tasks: set[asyncio.Task[Any]] = set()

    def llm(kind: str) -> None:
        try:
            sync.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": kind}])
        except Exception as exc:  # noqa: BLE001 - reported by the test
            done.errors.append(f"{kind}: {exc!r}")
        finally:
            done.tick()

    async def later(kind: str) -> None:
        await asyncio.sleep(0.05)  # still running after the response went out
        if kind == "task":
            await asyncio.to_thread(llm, kind)
        elif kind == "executor":
            await asyncio.get_running_loop().run_in_executor(None, llm, kind)
        else:
            await anyio.to_thread.run_sync(llm, kind)

    @app.post("/api/chat")
    async def chat(background: BackgroundTasks) -> dict[str, str]:
        background.add_task(llm, "background")
        pool.submit(llm, "pool")
        for kind in ("task", "executor", "anyio"):
            t = asyncio.create_task(later(kind))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        return {"reply": "accepted"}

    return app


def test_background_work_joins_the_turn(make_capture, fake, uvicorn_server) -> None:
    cap = make_capture(exporters="local")
    done = _Countdown(len(KINDS))
    url = uvicorn_server(_app(fake.base_url, done))
    cap.clear()  # the warm-up call
    r = httpx.post(
        url + "/api/chat", json={"message": "go"}, headers={"X-Conversation-Id": "c-bg", "X-User-Id": "u-bg"}
    )
    assert r.status_code == 200
    assert done.done.wait(20), done.errors
    assert not done.errors
    spans = cap.spans()
    (request,) = [s for s in spans if s.attributes.get(sc.CHAT_REQUEST)]
    llm = {
        s.attributes[sc.GEN_AI_INPUT_MESSAGES].split('"content":"')[1].split('"')[0]: s
        for s in spans
        if s.attributes.get(sc.OBSERVATION_TYPE) == "llm"
    }
    assert sorted(llm) == sorted(KINDS)
    for kind, span in llm.items():
        assert span.context.trace_id == request.context.trace_id, kind
        assert span.attributes[sc.GEN_AI_CONVERSATION_ID] == "c-bg", kind
        assert span.attributes[sc.USER_ID] == "u-bg", kind
    last_end = max(s.end_time for s in llm.values())
    assert last_end > request.end_time  # some of it outlived the request span
    trace_id = format(request.context.trace_id, "032x")
    with connect(cap.runtime.settings.local_db, readonly=True) as conn:
        (row,) = [t for t in queries.list_traces(conn) if t["trace_id"] == trace_id]
    assert row["duration_ms"] == pytest.approx((last_end - request.start_time) / 1e6, abs=0.01)
    assert row["llm_calls"] == len(KINDS)
