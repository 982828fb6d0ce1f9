"""An AWS key pair written in a chat message, through the whole path: a real FastAPI app under uvicorn, the real
openai SDK against the fake provider on 127.0.0.1 (which echoes the message into its answer), chatobs's background
pipeline, then the local SQLite store and an OTLP exporter (real protobuf bytes, decoded by the recording server).
Neither may hold the key ID or the secret; both must hold the turn, scrubbed."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

import chatobs
from benchmarks.secrets_dataset import FakeSecrets
from demo_app.fake_llm import FakeLLM
from tests.recording_server import RecordingServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


def _app(base_url: str) -> FastAPI:
    import openai

    client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="test-key", max_retries=0, timeout=10)
    app = FastAPI()
    app.add_middleware(chatobs.ChatObsMiddleware)

    @app.post("/api/chat")
    async def chat(request: Request) -> dict[str, Any]:
        body = await request.json()
        reply = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": body["message"]}]
        )
        return {"reply": reply.choices[0].message.content}

    return app


def _store_text(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return "\n".join(conn.iterdump())  # every row of every table, as SQL text
    finally:
        conn.close()


def test_aws_pair_in_prose_reaches_neither_store_nor_exporter(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    fake: FakeLLM,
    uvicorn_server: Any,
) -> None:
    f = FakeSecrets(42)
    kid, secret = f.aws_key_id(), f.aws_secret()
    message = f"my key {kid} with secret {secret}, why does s3 say AccessDenied?"
    db = tmp_path / "traces.db"
    with RecordingServer() as srv:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.url)
        rt = chatobs.init(exporters="local,otlp", local_db=str(db), export_interval_ms=20)
        assert rt is not None
        url = uvicorn_server(_app(fake.base_url))
        r = httpx.post(
            url + "/api/chat", json={"message": message}, headers={"X-Conversation-Id": "conv-aws"}, timeout=20
        )
        assert r.status_code == 200 and secret in r.json()["reply"]  # the app itself is untouched
        assert rt.force_flush(20)
        assert srv.wait_for(lambda s: any(sp["name"].startswith("chat ") for sp in s.otlp_spans()))
        otlp = json.dumps(srv.otlp_spans())
    chatobs.shutdown()

    stored = _store_text(db)
    for where, text in (("local store", stored), ("OTLP", otlp)):
        assert kid not in text and secret not in text, f"AWS key pair reached the {where}"
        # The turn is there, scrubbed: the test would pass vacuously if nothing had been exported.
        assert "with secret <SECRET>" in text and "AccessDenied" in text, where
