"""A turn through a real FastAPI app, then feedback in a separate request: a Langfuse score (the real Langfuse API
client), an Opik feedback score (the real Opik REST client) and an OTLP span (decoded protobuf) on the rated trace,
all at the recording server, with the comment's e-mail masked in each."""

from __future__ import annotations

import httpx
import pytest

import chatobs
from chatobs.core import semconv as sc
from tests.recording_server import RecordingServer

from .apps import FEEDBACK_PATH, fastapi_app

pytestmark = pytest.mark.timeout(60)
COMMENT = "made up a refund policy, mail me at ann@example.com"


async def test_feedback_reaches_every_backend_on_the_rated_trace() -> None:
    with RecordingServer() as srv:
        chatobs.init(**srv.all_backends())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fastapi_app()), base_url="http://t") as client:
            turn = await client.post("/api/chat", json={"message": "refund?"}, headers={"X-User-Id": "ann"})
            trace_id, token = turn.headers["x-trace-id"], turn.headers["x-feedback-token"]
            assert srv.wait_for(lambda s: len(s.opik_traces()) >= 1 and len(s.otlp_spans()) >= 2)
            r = await client.post(
                FEEDBACK_PATH,
                json={"trace_id": trace_id, "value": False, "comment": COMMENT, "token": token},
                headers={"X-User-Id": "ann"},
            )
            assert r.status_code == 200, r.text
        assert srv.wait_for(
            lambda s: (
                s.langfuse_scores()
                and s.opik_feedback_scores()
                and any(x["name"].startswith("feedback") for x in s.otlp_spans())
            )
        )
        chatobs.shutdown()

        # Langfuse: one BOOLEAN score on the trace (its ID is the OTel trace ID), comment masked.
        [score] = srv.langfuse_scores()
        assert (score["traceId"], score["name"], score["value"], score["dataType"]) == (
            trace_id,
            "user_feedback",
            0.0,
            "BOOLEAN",
        )
        assert "ann@example.com" not in score["comment"] and score["comment"].startswith("made up a refund policy")
        assert score["metadata"]["user_id"] == "ann"
        # The feedback span itself is not sent to Langfuse as an observation.
        assert not any(s["name"].startswith("feedback") for s in srv.otlp_spans("/api/public/otel/v1/traces"))

        # Opik: a feedback score on the same Opik trace the turn was sent as.
        [opik_trace] = srv.opik_traces()
        [fs] = srv.opik_feedback_scores()
        assert fs["id"] == opik_trace["id"]
        assert (fs["name"], fs["value"], fs["source"], fs["project_name"]) == ("user_feedback", 0.0, "sdk", "demo")
        assert "ann@example.com" not in fs["reason"]

        # OTLP: the span in the rated trace, child of the turn's request span, with the evaluation event.
        spans = [s for s in srv.otlp_spans("/v1/traces") if s["traceId"] == trace_id]
        root = next(s for s in spans if s["attributes"].get(sc.CHAT_REQUEST))
        fb = next(s for s in spans if s["name"] == "feedback user_feedback")
        assert fb["parentSpanId"] == root["spanId"]
        a = fb["attributes"]
        assert a[sc.GEN_AI_EVALUATION_NAME] == "user_feedback" and a[sc.GEN_AI_EVALUATION_SCORE_VALUE] == 0.0
        assert a[sc.GEN_AI_EVALUATION_SCORE_LABEL] == "negative" and a[sc.FEEDBACK_NEGATIVE] is True
        assert "ann@example.com" not in a[sc.GEN_AI_EVALUATION_EXPLANATION]
        [event] = fb["events"]
        assert event["name"] == sc.GEN_AI_EVALUATION_RESULT
        ev = {kv["key"]: kv["value"] for kv in event["attributes"]}
        assert "ann@example.com" not in str(ev)
        # The LLM span of the turn names its prompt (chatobs.prompt in the app), also for Langfuse.
        llm = next(s for s in spans if s["name"] == "chat fake-model")
        assert (llm["attributes"][sc.GEN_AI_PROMPT_NAME], llm["attributes"][sc.GEN_AI_PROMPT_VERSION]) == (
            "support",
            "2",
        )
        lf_llm = next(s for s in srv.otlp_spans("/api/public/otel/v1/traces") if s["name"] == "chat fake-model")
        assert (lf_llm["attributes"][sc.LF_PROMPT_NAME], lf_llm["attributes"][sc.LF_PROMPT_VERSION]) == ("support", 2)
