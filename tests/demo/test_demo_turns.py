"""`chatobs stats` counts chat turns apart from other traces, on what the real demo leaves in its local store: N chat
turns (one calling the MCP tool in the server process), a page load, health checks and the MCP connection the app
opens at start-up give turns == N, in the CLI's JSON and text and in the viewer's API; the tool call, stored by both
processes, is one tool call."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import PYTHON, subprocess_env

from .harness import Demo

pytestmark = pytest.mark.timeout(180)

TURNS = 4


def _stats(db: Path, *args: str) -> str:
    proc = subprocess.run(
        [PYTHON, "-m", "chatobs.tools.cli.main", "stats", "--db", str(db), *args],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_stats_counts_chat_turns_not_page_loads_or_mcp_setup(tmp_path: Path) -> None:
    demo = Demo("fastapi", tmp_path)
    try:
        assert demo.client.get("/").status_code == 200  # the page load
        conversation = None
        tool_trace = ""
        for i in range(TURNS):
            r = demo.chat("calculate 6*7" if i == 0 else f"hello {i}", conversation_id=conversation)
            assert r.status_code == 200, r.text
            conversation = r.json()["conversation_id"]
            tool_trace = tool_trace or r.json()["trace_id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            totals = json.loads(_stats(demo.db, "--json"))["totals"]
            both_sides = {s["kind"] for s in demo.spans(tool_trace) if s["tool_name"] == "calculator"} == {
                "client",
                "server",
            }
            if totals["turns"] >= TURNS and totals["other_traces"] >= 2 and both_sides:
                break
            time.sleep(0.2)
        viewer = demo.client.get("/_chatobs/api/stats")
    finally:
        demo.stop()
    s = json.loads(_stats(demo.db, "--json"))
    t = s["totals"]
    assert t["turns"] == TURNS, t
    # At least the page load and the MCP connection set-up (the harness's health checks may add more).
    assert t["other_traces"] >= 2 and t["traces"] == t["turns"] + t["other_traces"]
    assert sum(h["turns"] for h in s["hourly_traffic"]) == TURNS
    # The one calculator call left a span in each process, both in this store: it is still one tool call.
    assert t["tool_calls"] == 1 and [r["calls"] for r in s["tools_by_server"]] == [1]
    assert f"{TURNS} chat turns (+{t['other_traces']} other traces)" in _stats(demo.db)
    assert viewer.status_code == 200 and viewer.json()["data"]["totals"]["turns"] == TURNS
