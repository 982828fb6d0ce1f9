"""The CLI over a store with turns of two prompt versions and their feedback: ``traces --negative``, ``show``'s
feedback, ``stats`` per model and prompt version (turns, feedback, mean score, cost, latency)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

import chatobs
from chatobs.runtime import wiring as runtime
from chatobs.tools.cli.main import main

from .apps import FEEDBACK_PATH, fastapi_app


async def _store(db: Path) -> dict[str, list[str]]:
    """Turns under prompt support v1 and v2 (the app's handler picks the version from the message), rated."""
    rt = chatobs.init(exporters="local", local_db=str(db), export_interval_ms=20)
    assert rt is not None
    app = fastapi_app()
    ids: dict[str, list[str]] = {"v1": [], "v2": []}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for version, value in [("1", False), ("1", False), ("1", True), ("2", True), ("2", 1)]:
            r = await client.post(
                "/api/chat",
                json={"message": "hi", "prompt_version": version, "conversation_id": "c-fb"},
                headers={"X-User-Id": "ann"},
            )
            tid, tok = r.headers["x-trace-id"], r.headers["x-feedback-token"]
            ids[f"v{version}"].append(tid)
            fb = await client.post(
                FEEDBACK_PATH,
                json={"trace_id": tid, "value": value, "token": tok, "comment": "ok"},
                headers={"X-User-Id": "ann"},
            )
            assert fb.status_code == 200, fb.text
        await client.post("/api/chat", json={"message": "unrated", "prompt_version": "2"})
    assert rt.force_flush(10)
    runtime.shutdown(timeout_s=5)
    return ids


async def test_negative_filter_show_and_stats_by_prompt_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "cli.db"
    ids = await _store(db)

    assert main(["traces", "--db", str(db), "--negative", "--json"]) == 0
    negative = {r["trace_id"] for r in json.loads(capsys.readouterr().out)}
    assert negative == set(ids["v1"][:2])
    assert main(["traces", "--db", str(db), "--feedback", "none", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1
    assert main(["traces", "--db", str(db)]) == 0
    assert "FEEDBACK" in capsys.readouterr().out

    assert main(["show", ids["v1"][0], "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "Feedback" in out and "user_feedback = negative by ann: ok" in out

    assert main(["stats", "--db", str(db), "--json"]) == 0
    rows = {r["version"]: r for r in json.loads(capsys.readouterr().out)["by_prompt_version"]}
    v1, v2 = rows["1"], rows["2"]
    assert (v1["prompt"], v1["turns"], v1["feedback"], v1["negative"]) == ("support", 3, 3, 2)
    assert v1["mean_score"] == pytest.approx(1 / 3, abs=1e-3)
    assert (v2["turns"], v2["feedback"], v2["negative"], v2["mean_score"]) == (3, 2, 0, 1.0)
    assert v1["p50_ms"] is not None and v1["p95_ms"] >= v1["p50_ms"]
    assert main(["stats", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "By model and prompt version" in out and "support" in out

    from chatobs.export.local.queries import list_conversations
    from chatobs.export.local.store import connect

    [conv] = list_conversations(connect(db, readonly=True))
    assert (conv["conversation_id"], conv["feedback"], conv["negative_feedback"]) == ("c-fb", 5, 2)
