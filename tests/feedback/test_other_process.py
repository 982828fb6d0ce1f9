"""Feedback from another process, a day-old-style script: it verifies the turn's token with the host's key file, and
its rating -- handed to a chatobs agent, not exported in process -- lands on the same Opik trace as the turn."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import httpx
import pytest

import chatobs
from tests.conftest import subprocess_env
from tests.recording_server import RecordingServer

from .apps import fastapi_app

pytestmark = pytest.mark.timeout(120)

SCRIPT = textwrap.dedent(
    """
    import sys
    import chatobs
    trace_id, token = sys.argv[1], sys.argv[2]
    assert chatobs.feedback(trace_id, "wrong", name="correctness", user_id="ann", token=token, comment="no")
    try:
        chatobs.feedback(trace_id, True, user_id="ben", token=token)
    except ValueError as exc:
        print("refused:", exc)
    assert chatobs.flush(20)
    chatobs.shutdown()
    """
)


async def test_a_script_rates_a_turn_through_the_agent_onto_the_same_opik_trace() -> None:
    with RecordingServer() as srv:
        opik = {"OPIK_URL_OVERRIDE": f"{srv.url}/api", "OPIK_PROJECT_NAME": "demo", "CHATOBS_EXPORTERS": "opik"}
        chatobs.init(exporters="opik", opik_url=f"{srv.url}/api", opik_project_name="demo", export_interval_ms=20)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fastapi_app()), base_url="http://t") as client:
            turn = await client.post("/api/chat", json={"message": "hi"}, headers={"X-User-Id": "ann"})
        trace_id, token = turn.headers["x-trace-id"], turn.headers["x-feedback-token"]
        assert srv.wait_for(lambda s: len(s.opik_traces()) >= 1)
        chatobs.shutdown()
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, trace_id, token],
            env=subprocess_env(**opik),
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert done.returncode == 0, done.stderr
        assert "refused: token: not issued by this app for this user" in done.stdout
        assert srv.wait_for(lambda s: len(s.opik_feedback_scores()) >= 1, timeout=30)
        [opik_trace] = srv.opik_traces()
        [score] = srv.opik_feedback_scores()
        assert score["id"] == opik_trace["id"]
        assert (score["name"], score["category_name"], score["value"]) == ("correctness", "wrong", 0.0)
