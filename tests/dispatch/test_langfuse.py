"""Native Langfuse: chatobs translates, the real langfuse SDK's OTLP transport sends to the recording server."""

from __future__ import annotations

import base64
import json

import pytest
from opentelemetry import trace

import chatobs
from chatobs.config import ConfigError
from chatobs.core import semconv as sc
from tests.recording_server import RecordingServer

from .turns import INPUT, OUTPUT, chat_turn, unrelated_span

pytestmark = pytest.mark.timeout(60)
LF_PATH = "/api/public/otel/v1/traces"


def _start(monkeypatch: pytest.MonkeyPatch, url: str, **kw):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-test")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-secret")
    monkeypatch.setenv("LANGFUSE_BASE_URL", url)
    return chatobs.init(export_interval_ms=20, environment="staging", release="1.2.3", **kw)


def test_langfuse_turn_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    with RecordingServer() as srv:
        rt = _start(monkeypatch, srv.url)
        assert rt is not None and [s.name for s in rt.exporters] == ["langfuse"]
        trace_id = chat_turn()
        unrelated_span()  # not a chat span: Langfuse must not get it
        assert srv.wait_for(lambda s: len(s.otlp_spans(LF_PATH)) >= 3)
        chatobs.shutdown()
        req = srv.by_path(LF_PATH)[0]
        assert req.headers["authorization"] == "Basic " + base64.b64encode(b"pk-lf-test:sk-lf-secret").decode()
        assert req.headers["x-langfuse-public-key"] == "pk-lf-test"
        assert req.headers["x-langfuse-sdk-name"] == "python"
        assert req.headers.get("content-encoding") == "gzip"
        spans = {s["name"]: s for s in srv.otlp_spans(LF_PATH)}
        assert set(spans) == {"POST /chat", "chat gpt-4o-mini", "tools/call get_weather"}
        root = spans["POST /chat"]["attributes"]
        assert spans["POST /chat"]["traceId"] == trace_id
        assert root[sc.LF_TRACE_NAME] == "POST /chat"
        assert root[sc.USER_ID] == "user-1" and root[sc.SESSION_ID] == "conv-1"
        assert root[sc.LF_IS_APP_ROOT] is True
        assert "route:/chat" in root[sc.LF_TRACE_TAGS] and "tenant:acme" in root[sc.LF_TRACE_TAGS]
        assert json.loads(root[f"{sc.LF_TRACE_METADATA}.tenant_id"]) == "acme"
        assert json.loads(root[f"{sc.LF_TRACE_METADATA}.message_id"]) == "m-0"
        assert json.loads(root[sc.LF_OBSERVATION_INPUT]) == {"message": "What is the weather in Paris?"}
        assert json.loads(root[sc.LF_TRACE_OUTPUT]) == {"reply": "Sunny, 21 C."}
        assert root[sc.LF_ENVIRONMENT] == "staging" and root[sc.LF_RELEASE] == "1.2.3"

        llm_span = spans["chat gpt-4o-mini"]
        llm = llm_span["attributes"]
        assert llm[sc.LF_OBSERVATION_TYPE] == "generation"
        assert llm[sc.LF_MODEL] == "gpt-4o-mini-2024-07-18"
        assert json.loads(llm[sc.LF_MODEL_PARAMETERS]) == {"temperature": 0.2, "max_tokens": 256}
        assert json.loads(llm[sc.LF_OBSERVATION_INPUT]) == INPUT
        assert json.loads(llm[sc.LF_OBSERVATION_OUTPUT]) == OUTPUT
        assert json.loads(llm[sc.LF_USAGE_DETAILS]) == {"input": 12, "output": 5, "total": 17}
        assert json.loads(llm[sc.LF_COST_DETAILS]) == pytest.approx(
            {"input": 0.0000018, "output": 0.000003, "total": 0.0000048}
        )
        # completion start = span start + time to first chunk (0.25 s), as a JSON-encoded ISO timestamp
        from datetime import datetime

        cst = datetime.fromisoformat(json.loads(llm[sc.LF_COMPLETION_START_TIME]))
        assert abs(cst.timestamp() * 1e9 - (int(llm_span["startTimeUnixNano"]) + 0.25e9)) < 2e6
        assert llm[sc.USER_ID] == "user-1" and llm[sc.SESSION_ID] == "conv-1"

        tool = spans["tools/call get_weather"]["attributes"]
        assert tool[sc.LF_OBSERVATION_TYPE] == "tool"
        assert json.loads(tool[sc.LF_OBSERVATION_INPUT]) == {"city": "Paris"}
        assert json.loads(tool[sc.LF_OBSERVATION_OUTPUT]) == {"temp_c": 21}


def test_langfuse_error_level(monkeypatch: pytest.MonkeyPatch) -> None:
    with RecordingServer() as srv:
        _start(monkeypatch, srv.url)
        chat_turn(fail_llm=True)
        assert srv.wait_for(lambda s: len(s.otlp_spans(LF_PATH)) >= 3)
        llm = {s["name"]: s for s in srv.otlp_spans(LF_PATH)}["chat gpt-4o-mini"]["attributes"]
        assert llm[sc.LF_OBSERVATION_LEVEL] == "ERROR"
        assert llm[sc.LF_OBSERVATION_STATUS_MESSAGE] == "429 rate limited"


def test_langfuse_sdk_stays_private(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK never becomes (or joins) the global provider, so it cannot re-export the app's own spans."""
    with RecordingServer() as srv:
        rt = _start(monkeypatch, srv.url)
        assert rt is not None
        global_provider = trace.get_tracer_provider()
        exporter = rt.exporters[0].exporter
        assert exporter.private_provider is not global_provider  # type: ignore[attr-defined]
        processors = global_provider._active_span_processor._span_processors  # type: ignore[attr-defined]
        assert not any(type(p).__module__.startswith("langfuse") for p in processors)
        unrelated_span()
        chatobs.shutdown()
        assert srv.otlp_spans(LF_PATH) == []


def test_langfuse_missing_keys_named() -> None:
    with pytest.raises(ConfigError, match="LANGFUSE_PUBLIC_KEY"):
        chatobs.init(exporters="langfuse")
    with pytest.raises(ConfigError, match="LANGFUSE_SECRET_KEY"):
        chatobs.init(exporters="langfuse", langfuse_public_key="pk")
