"""A turn lasts as long as its work: an asyncio task the chat request starts makes its LLM call after the response
went out (and after the request span ended); the local store, Langfuse and Opik all see the turn reach that far.

What each backend computes from what chatobs sends: the local store and ``chatobs stats`` take a trace's extent from
its spans; Langfuse computes a trace's latency from its observations (first start to last end), so sending the late
span in the trace is enough; Opik shows a trace's own ``start_time``/``end_time``, so chatobs moves the Opik trace's
end (a trace update) when later work of it arrives. A real FastAPI app under uvicorn, the real openai SDK against the
fake provider, the real Langfuse and Opik SDKs sending to the recording server."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI

import chatobs
from chatobs.core import semconv as sc
from chatobs.export.local import queries
from chatobs.export.local.store import connect
from tests.recording_server import RecordingServer

pytestmark = pytest.mark.timeout(60)
LF_PATH = "/api/public/otel/v1/traces"
LATE_S = 0.4


def _app(base_url: str, done: threading.Event) -> FastAPI:
    app = FastAPI()
    app.add_middleware(chatobs.ChatObsMiddleware)
    client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="test-key", max_retries=0)
    tasks: set[asyncio.Task[Any]] = set()

    async def follow_up() -> None:
        try:
            await asyncio.sleep(LATE_S)  # long after the response went out
            await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "later"}])
        finally:
            done.set()

    @app.post("/api/chat")
    async def chat() -> dict[str, str]:
        t = asyncio.create_task(follow_up())
        tasks.add(t)
        t.add_done_callback(tasks.discard)
        return {"reply": "accepted"}

    return app


def _ns(iso: str) -> int:
    t = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return int(t.timestamp() * 1e9)


def test_late_work_extends_the_turn_everywhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, fake: Any, uvicorn_server: Any
) -> None:
    with RecordingServer() as srv:
        monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-test")
        monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-secret")
        monkeypatch.setenv("LANGFUSE_BASE_URL", srv.url)
        monkeypatch.setenv("OPIK_URL_OVERRIDE", f"{srv.url}/api")
        monkeypatch.setenv("OPIK_PROJECT_NAME", "support-bot")
        db = tmp_path / "traces.db"
        chatobs.init(exporters="local,langfuse,opik", local_db=str(db), export_interval_ms=20)
        done = threading.Event()
        url = uvicorn_server(_app(fake.base_url, done))
        r = httpx.post(url + "/api/chat", json={"message": "go"}, headers={"X-Conversation-Id": "c-late"})
        assert r.status_code == 200
        trace_id = r.headers["x-trace-id"]
        assert done.wait(20)
        # The request span went out on its own, before the late LLM call ended (so Opik got a trace update).
        assert chatobs.flush()
        assert srv.wait_for(lambda s: bool(s.opik_trace_updates()) and len(s.otlp_spans(LF_PATH)) >= 2)

        with connect(db, readonly=True) as conn:
            trace = queries.get_trace(conn, trace_id)
        assert trace is not None
        request = next(s for s in trace["spans"] if s["span_type"] == "request")
        llm = next(s for s in trace["spans"] if s["span_type"] == "llm")
        assert llm["start_ns"] - request["end_ns"] >= LATE_S * 0.9e9  # the call began after the request span ended
        assert trace["end_ns"] == llm["end_ns"]
        assert trace["duration_ms"] == pytest.approx((llm["end_ns"] - request["start_ns"]) / 1e6, abs=0.01)

        # Langfuse: both observations in the trace; its latency (first start to last end) reaches the late call.
        lf = [s for s in srv.otlp_spans(LF_PATH) if s["traceId"] == trace_id]
        assert {s["attributes"].get(sc.LF_OBSERVATION_TYPE) for s in lf} >= {"generation"}
        extent = max(int(s["endTimeUnixNano"]) for s in lf) - min(int(s["startTimeUnixNano"]) for s in lf)
        assert extent / 1e6 == pytest.approx(trace["duration_ms"], abs=0.01)

        # Opik: the trace was created at the request's end, then its end moved to the late call's end.
        (opik_trace,) = srv.opik_traces()
        assert abs(_ns(opik_trace["end_time"]) - request["end_ns"]) < 2e6
        updates = [body for tid, body in srv.opik_trace_updates() if tid == opik_trace["id"]]
        assert updates, "the Opik trace's end was not moved"
        assert abs(_ns(updates[-1]["end_time"]) - llm["end_ns"]) < 2e6
        assert set(updates[-1]) <= {"end_time", "project_name"}  # nothing else of the trace is overwritten
        chatobs.shutdown()
