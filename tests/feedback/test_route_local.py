"""A turn, then feedback in a separate request through the mounted route, arriving in the local store; what the
route refuses (forged, unknown, another user's, expired, oversized) answered 400 with the reason."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

import chatobs
from chatobs.recording.feedback import token as tokens
from chatobs.runtime import wiring as runtime

from .apps import FEEDBACK_PATH, fastapi_app, flask_app


def _rows(db: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM feedback ORDER BY created_ns")]
    finally:
        conn.close()


def _local(tmp_path: Path) -> tuple[Path, Any]:
    db = tmp_path / "fb.db"
    rt = chatobs.init(exporters="local", local_db=str(db), export_interval_ms=20)
    assert rt is not None
    return db, rt


async def _turn(client: httpx.AsyncClient, user: str = "ann") -> httpx.Response:
    r = await client.post("/api/chat", json={"message": "hi", "conversation_id": "c-1"}, headers={"X-User-Id": user})
    assert r.status_code == 200
    return r


async def test_thumbs_down_with_comment_lands_in_the_store_joined_to_its_trace(tmp_path: Path) -> None:
    db, rt = _local(tmp_path)
    app = fastapi_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        turn = await _turn(client)
        trace_id, token = turn.headers["x-trace-id"], turn.headers["x-feedback-token"]
        assert turn.json()["token"] is not None  # chatobs.feedback_token() inside the handler works too
        r = await client.post(
            FEEDBACK_PATH,
            json={"trace_id": trace_id, "value": False, "comment": "wrong, write to ann@example.com", "token": token},
            headers={"X-User-Id": "ann"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "recorded"
        # The feedback request is no chat turn of its own (the route sits under an excluded path).
        assert "x-trace-id" not in r.headers
    assert rt.force_flush(10)
    runtime.shutdown(timeout_s=5)
    [row] = _rows(db)
    assert (row["trace_id"], row["name"], row["kind"], row["value"], row["label"], row["negative"]) == (
        trace_id,
        "user_feedback",
        "boolean",
        0.0,
        "negative",
        1,
    )
    assert row["user_id"] == "ann"
    assert "ann@example.com" not in row["comment"] and row["comment"].startswith("wrong, write to ")
    conn = sqlite3.connect(db)
    # Joined to the turn: its request span is the feedback's parent, and the trace's summary did not move.
    root = conn.execute("SELECT root_span_id, span_count FROM traces WHERE trace_id = ?", (trace_id,)).fetchone()
    assert root[0] == row["parent_id"]
    assert conn.execute("SELECT COUNT(*) FROM spans WHERE trace_id = ?", (trace_id,)).fetchone()[0] == root[1]
    conn.close()


async def test_the_route_refuses_what_it_cannot_trust(tmp_path: Path) -> None:
    db, rt = _local(tmp_path)
    app = fastapi_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        turn = await _turn(client, user="ann")
        trace_id, token = turn.headers["x-trace-id"], turn.headers["x-feedback-token"]
        other = (await _turn(client, user="ben")).headers["x-trace-id"]

        async def post(body: dict[str, Any], user: str | None = "ann") -> httpx.Response:
            return await client.post(FEEDBACK_PATH, json=body, headers={"X-User-Id": user} if user else {})

        cases = [
            ({"trace_id": trace_id, "value": True}, "ann", "token: expected the feedback token"),
            ({"trace_id": "0" * 31 + "1", "value": True, "token": token}, "ann", "trace_id: does not match"),
            ({"trace_id": "xyz", "value": True, "token": token}, "ann", "trace_id: expected 32 hexadecimal"),
            ({"trace_id": other, "value": True, "token": token}, "ben", "not issued by this app for this user"),
            ({"trace_id": trace_id, "value": True, "token": token}, "ben", "not issued by this app for this user"),
            ({"trace_id": trace_id, "value": True, "token": token}, None, "belongs to a user"),
            ({"trace_id": trace_id, "value": True, "token": token[:-4] + "AAAA"}, "ann", "forged, or another user"),
            ({"trace_id": trace_id, "value": True, "token": "x" * 10}, "ann", "token: expected 67 characters"),
            ({"trace_id": trace_id, "value": [1], "token": token}, "ann", "value: expected true/false"),
            ({"trace_id": trace_id, "value": True, "name": "a b", "token": token}, "ann", "name: expected"),
            (
                {"trace_id": trace_id, "value": True, "comment": "x" * 2001, "token": token},
                "ann",
                "comment: at most 2000",
            ),
        ]
        for body, user, expected in cases:
            r = await post(body, user)
            assert r.status_code == 400, (body, r.text)
            assert expected in r.json()["error"], (expected, r.json())
        r = await client.post(FEEDBACK_PATH, content=b"not json", headers={"X-User-Id": "ann"})
        assert r.status_code == 400 and r.json()["error"].startswith("body: expected a JSON object")
        r = await client.post(
            FEEDBACK_PATH, content=b"{" + b" " * 9000 + b"}", headers={"content-type": "application/json"}
        )
        assert r.status_code == 413 and "8192 bytes" in r.json()["error"]
        assert (await client.get(FEEDBACK_PATH)).status_code == 405
        ok = await post({"trace_id": trace_id, "value": 4, "name": "helpfulness", "token": token})
        assert ok.status_code == 200, ok.text
    assert rt.force_flush(10)
    runtime.shutdown(timeout_s=5)
    assert [(r["name"], r["value"], r["negative"]) for r in _rows(db)] == [("helpfulness", 4.0, 0)]


def test_expired_and_future_tokens_are_refused() -> None:
    key = b"k" * 32
    tid, sid = "ab" * 16, "cd" * 8
    tok = tokens.issue(key, tid, sid, trace_ms=1_000_000, sampled=True, user_id=None)
    assert tokens.verify(key, tok, tid, user_id=None, max_age_s=3600, now_ms=1_000_000 + 3_599_000).span_id == sid
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.verify(key, tok, tid, user_id=None, max_age_s=3600, now_ms=1_000_000 + 3_601_000)
    with pytest.raises(tokens.TokenError, match="future"):
        tokens.verify(key, tok, tid, user_id=None, max_age_s=3600, now_ms=1_000_000 - 600_000)
    with pytest.raises(tokens.TokenError, match="forged"):
        tokens.verify(b"o" * 32, tok, tid, user_id=None, max_age_s=3600, now_ms=1_000_000)


def test_rate_limit_per_client_is_bounded() -> None:
    from chatobs.recording.feedback.route import RateLimiter

    limiter = RateLimiter(rate_per_minute=3, max_clients=2)
    assert [limiter.allow("a", now=0.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("a", now=20.0)  # one rating back after 20 s at 3 a minute
    limiter.allow("b", now=20.0)
    limiter.allow("c", now=20.0)
    assert len(limiter._buckets) == 2  # "a" was forgotten first


def test_flask_route_and_the_key_file_shared_by_workers(tmp_path: Path) -> None:
    db, rt = _local(tmp_path)
    client = flask_app().test_client()
    turn = client.post("/api/chat", json={"message": "hi"}, headers={"X-User-Id": "cy"})
    trace_id, token = turn.headers["X-Trace-Id"], turn.headers["X-Feedback-Token"]
    key_file = Path(rt.settings.agent_dir) / tokens.KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600
    # Another worker (a fresh process's cache) reads the same key from the file and accepts the token.
    tokens._keys.clear()
    r = client.post(
        FEEDBACK_PATH, json={"trace_id": trace_id, "value": "wrong", "token": token}, headers={"X-User-Id": "cy"}
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    r = client.post(FEEDBACK_PATH, json={"trace_id": trace_id, "value": True, "token": token})
    assert r.status_code == 400 and "belongs to a user" in r.get_json()["error"]
    assert rt.force_flush(10)
    runtime.shutdown(timeout_s=5)
    [row] = _rows(db)
    assert (row["kind"], row["label"], row["negative"], row["user_id"]) == ("categorical", "wrong", 1, "cy")


def test_direct_calls_validate_and_reach_the_store(tmp_path: Path) -> None:
    db, rt = _local(tmp_path)
    with pytest.raises(ValueError, match="trace_id: expected 32 hexadecimal"):
        chatobs.feedback("nope", True)
    with pytest.raises(ValueError, match="value: expected a finite number"):
        chatobs.feedback("ab" * 16, float("nan"))
    assert chatobs.feedback("ab" * 16, 0.8, name="correctness", user_id="dee") is not None
    assert rt.force_flush(10)
    runtime.shutdown(timeout_s=5)
    [row] = _rows(db)
    assert (row["trace_id"], row["name"], row["value"], row["negative"]) == ("ab" * 16, "correctness", 0.8, 0)


def test_forgetting_a_user_removes_their_ratings(tmp_path: Path) -> None:
    from chatobs.export.local.store import Store

    db, rt = _local(tmp_path)
    chatobs.feedback("ab" * 16, False, comment="mine", user_id="eve")
    chatobs.feedback("cd" * 16, True, user_id="fred")
    assert rt.force_flush(10)
    runtime.shutdown(timeout_s=5)
    Store(db).forget(user_id="eve")
    assert [r["user_id"] for r in _rows(db)] == ["fred"]
