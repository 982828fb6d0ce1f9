"""End to end with a real Open WebUI 0.12 (its own venv, ``make e2e``), started offline as a user would run it with
chatobs -- ``chatobs run open-webui serve``, no code or file added -- against the fake provider as its OpenAI
connection. Driven like its browser client: sign up, a socket.io connection, then two turns of one chat over its
HTTP API (the first with no ``chat_id`` yet: Open WebUI creates the chat inside that request), each answered at once
and streamed over socket.io by a task that outlives the request, followed by title, tags and follow-up generations.

The venv is Open WebUI and ``chatobs[all]`` resolved together (``requirements-e2e-openwebui.lock``, ``pip check``
clean in the Makefile target): chatobs installs beside it without a conflict."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatobs.core import semconv as sc
from chatobs.export.local import queries
from chatobs.export.local.store import connect
from demo_app.fake_llm import FakeLLM
from tests.conftest import REPO, subprocess_env
from tests.recording_server import closed_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

MODEL = "gpt-4o-mini"


def _owui_python() -> str:
    for candidate in (os.environ.get("CHATOBS_E2E_OPENWEBUI_PYTHON"), str(REPO / ".e2e-owui-venv/bin/python")):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.skip("Open WebUI not installed: run `make e2e` (creates .e2e-owui-venv) or set CHATOBS_E2E_OPENWEBUI_PYTHON")


@pytest.fixture(scope="module")
def openwebui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    python = _owui_python()
    work = tmp_path_factory.mktemp("openwebui")
    (work / "data").mkdir()
    fake = FakeLLM()
    base = fake.start_in_thread() + "/v1"
    port = closed_port()
    db = work / "traces.db"
    env = subprocess_env(
        HOME=str(work),
        DATA_DIR=str(work / "data"),
        WEBUI_SECRET_KEY="e2e-secret",
        # Offline: nothing phones home or downloads a model.
        OFFLINE_MODE="true",
        HF_HUB_OFFLINE="1",
        ENABLE_VERSION_UPDATE_CHECK="false",
        ANONYMIZED_TELEMETRY="false",
        DO_NOT_TRACK="true",
        SCARF_NO_ANALYTICS="true",
        ENABLE_OLLAMA_API="false",
        RAG_EMBEDDING_ENGINE="openai",  # no local sentence-transformers model to load
        RAG_OPENAI_API_BASE_URL=base,
        RAG_OPENAI_API_KEY="fake",
        BYPASS_EMBEDDING_AND_RETRIEVAL="true",
        OPENAI_API_BASE_URL=base,
        OPENAI_API_KEY="fake",
        # chatobs: the local store, the pipeline in process (no agent to leave behind).
        CHATOBS_EXPORTERS="local",
        CHATOBS_LOCAL_DB=str(db),
        CHATOBS_AGENT="inprocess",
        CHATOBS_PII="off",
    )
    # Absolute: make passes the venv relative to the checkout, and Open WebUI runs with its own working directory.
    chatobs_cmd = shutil.which("chatobs", path=os.path.abspath(Path(python).parent))
    assert chatobs_cmd, "chatobs is not installed in the Open WebUI venv"
    log = open(work / "openwebui.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [chatobs_cmd, "run", "open-webui", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=work,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (work / "openwebui.log").read_text()[-4000:]
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "Open WebUI did not start in 180 s"
            time.sleep(0.5)
        yield {"url": url, "db": db, "log": work / "openwebui.log"}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        fake.stop()


async def _two_turns(url: str) -> dict[str, Any]:
    import socketio

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        r = await http.post(
            "/api/v1/auths/signup", json={"name": "Alice", "email": "alice@example.com", "password": "pw-e2e-123"}
        )
        assert r.status_code == 200, r.text
        user = r.json()
        token = user["token"]
        http.headers["Authorization"] = f"Bearer {token}"
        assert (await http.get("/api/models")).status_code == 200  # Open WebUI lists the connection's models

        sio = socketio.AsyncClient()
        finished: dict[str, asyncio.Event] = {}

        @sio.on("events")
        async def on_event(data: dict[str, Any]) -> None:
            d = data.get("data") or {}
            if d.get("type") == "chat:completion" and (d.get("data") or {}).get("done"):
                finished.setdefault(data.get("message_id", ""), asyncio.Event()).set()

        await sio.connect(url, socketio_path="/ws/socket.io", transports=["websocket"], auth={"token": token})
        await sio.call("user-join", {"auth": {"token": token}})
        turns: list[dict[str, str]] = []
        chat_id = None
        parent = None
        for text in ("hello there", "and a second turn"):
            user_msg, reply = str(uuid.uuid4()), str(uuid.uuid4())
            body: dict[str, Any] = {
                "model": MODEL,
                "messages": [{"role": "user", "content": text}],
                "parent_id": parent,
                "id": reply,
                "user_message": {"id": user_msg, "role": "user", "content": text, "parentId": parent},
                "session_id": sio.get_sid(),
                "stream": True,
                "background_tasks": {"title_generation": True, "tags_generation": True, "follow_up_generation": True},
            }
            if chat_id:
                body["chat_id"] = chat_id
            r = await http.post("/api/chat/completions", json=body)
            assert r.status_code == 200, r.text
            chat_id = chat_id or r.json()["chat_id"]  # the first turn learns its chat here, after the request
            done = finished.setdefault(reply, asyncio.Event())
            await asyncio.wait_for(done.wait(), 30)
            turns.append({"user_message": user_msg, "reply": reply})
            parent = reply
        await asyncio.sleep(1.0)  # the follow-up generation of the last turn runs after its completion event
        await sio.disconnect()
    return {"user_id": user["id"], "chat_id": chat_id, "turns": turns}


def _turn_traces(db: Path, n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        if db.exists():
            with connect(db, readonly=True) as conn:
                rows = [t for t in queries.list_traces(conn, limit=100) if t["route"] == "/api/chat/completions"]
                traces = [queries.get_trace(conn, t["trace_id"]) for t in rows]
            done = [t for t in traces if t and sum(s["span_type"] == "llm" for s in t["spans"]) >= 3]
            if len(done) >= n:
                return sorted(done, key=lambda t: t["start_ns"])
        assert time.monotonic() < deadline, "the turns' traces did not reach the local store"
        time.sleep(0.5)


def test_two_turns_of_one_chat(openwebui: dict[str, Any]) -> None:
    run = asyncio.run(_two_turns(openwebui["url"]))
    traces = _turn_traces(openwebui["db"], 2)
    assert len(traces) == 2, "one trace per turn"
    for trace, turn in zip(traces, run["turns"], strict=True):
        request = next(s for s in trace["spans"] if s["span_type"] == "request")
        # The conversation from the first turn on, the user from Open WebUI's token, Open WebUI's message IDs.
        assert trace["conversation_id"] == run["chat_id"]
        assert trace["user_id"] == run["user_id"]
        assert trace["message_id"] == turn["reply"]
        assert request["attributes"][sc.GEN_AI_CONVERSATION_ID] == run["chat_id"]
        assert request["attributes"][sc.USER_ID] == run["user_id"]
        assert request["attributes"][sc.PARENT_MESSAGE_ID] == turn["user_message"]
        llm = [s for s in trace["spans"] if s["span_type"] == "llm"]
        # The reply, then the generations Open WebUI runs after it (title only on the first turn).
        assert len(llm) >= 3
        for span in llm:
            assert span["model"] == MODEL
            assert span["input_tokens"] > 0 and span["output_tokens"] > 0
            assert span["cost_usd"] > 0
            assert span["attributes"][sc.GEN_AI_CONVERSATION_ID] == run["chat_id"]
            assert span["attributes"][sc.MESSAGE_ID] == turn["reply"]
            assert span["attributes"][sc.USER_ID] == run["user_id"]
        tasks = {s["attributes"].get("openwebui.task") for s in trace["spans"]}
        assert {"chat_tags", "follow_ups"} <= tasks
        # Open WebUI answered before the work was done: the turn lasts as long as its work, not its request span.
        assert max(s["end_ns"] for s in trace["spans"]) > request["end_ns"]
        assert trace["duration_ms"] == pytest.approx(
            (max(s["end_ns"] for s in trace["spans"]) - min(s["start_ns"] for s in trace["spans"])) / 1e6, abs=0.01
        )
    assert "title" in {s["attributes"].get("openwebui.task") for s in traces[0]["spans"]}
    assert traces[0]["trace_id"] != traces[1]["trace_id"]
    # Only the turns became traces: not the sign-up, the model list, the chat's creation or socket.io.
    with connect(openwebui["db"], readonly=True) as conn:
        routes = {t["route"] for t in queries.list_traces(conn, limit=100)}
    assert routes == {"/api/chat/completions"}, routes
