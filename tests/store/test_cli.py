"""The `chatobs` command on a store filled through the real pipeline."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from chatobs.tools.cli.main import main
from tests.conftest import PYTHON, subprocess_env

from .conftest import XSS_PROMPT


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_traces_table_and_filters(filled, capsys) -> None:  # type: ignore[no-untyped-def]
    db, ids = filled
    code, out, _ = run(capsys, "traces", "--db", str(db))
    assert code == 0
    for tid in ids.values():
        assert tid in out
    assert "CONVERSATION" in out and "conv-alice" in out and "/api/chat" in out
    assert "5 trace(s)" in out

    def trace_ids(*args: str) -> set[str]:
        code, out, _ = run(capsys, "traces", "--db", str(db), "--json", *args)
        assert code == 0
        return {r["trace_id"] for r in json.loads(out)}

    assert trace_ids("--user", "alice") == {ids["alice1"], ids["alice2"]}
    assert trace_ids("--conversation", "conv-bob") == {ids["bob1"], ids["bob2"]}
    assert trace_ids("--model", "claude-haiku") == {ids["bob1"], ids["bob2"]}
    assert trace_ids("--tool", "weather") == {ids["carol1"]}
    assert trace_ids("--status", "error") == {ids["alice2"], ids["bob2"]}
    assert trace_ids("--since", "1h") == set(ids.values())
    assert trace_ids("--until", "1h") == set()
    assert len(trace_ids("--limit", "2")) == 2


def test_bad_time_is_a_clear_error(filled, capsys) -> None:  # type: ignore[no-untyped-def]
    db, _ = filled
    code, _, err = run(capsys, "traces", "--db", str(db), "--since", "yesterday-ish")
    assert code == 2
    assert "--since/--until" in err and "30m, 2h, 7d" in err


def test_show_span_tree(filled, capsys) -> None:  # type: ignore[no-untyped-def]
    db, ids = filled
    code, out, _ = run(capsys, "show", ids["alice1"][:10], "--db", str(db))
    assert code == 0
    lines = out.splitlines()
    assert ids["alice1"] in lines[0]
    assert "conversation=conv-alice" in out and "user=alice" in out and "tenant=acme" in out
    root = next(line for line in lines if "POST /api/chat" in line and "█" in line)
    llm = next(line for line in lines if "chat gpt-4o-mini" in line)
    tool = next(line for line in lines if "execute_tool search_docs" in line)
    assert root.startswith("◆")
    assert llm.startswith("  ●") and tool.startswith("  ■")  # children indented under the request
    assert "120→40 tok" in llm and "$0.0021" in llm and "ttft 12.0ms" in llm
    assert "tool=search_docs@kb" in tool
    assert "chatobs.input: How do I reset my password?" in out
    assert "gen_ai.tool.call.result: 3 documents" in out
    code, out, _ = run(capsys, "show", ids["alice1"], "--db", str(db), "--no-content")
    assert "chatobs.input" not in out

    code, out, _ = run(capsys, "show", ids["alice2"], "--db", str(db), "--json")
    data = json.loads(out)
    assert data["status"] == "error" and data["error_count"] == 1
    assert [s["depth"] for s in data["spans"]] == [0, 1, 1]
    code, _, err = run(capsys, "show", "ffffffffffff", "--db", str(db))
    assert code == 1 and "no trace" in err


def test_stats(filled, capsys) -> None:  # type: ignore[no-untyped-def]
    db, _ = filled
    code, out, _ = run(capsys, "stats", "--db", str(db), "--since", "1d")
    assert code == 0
    for title in (
        "Latency by route",
        "Latency by model",
        "Latency by tool",
        "Tokens and cost by model",
        "Tokens and cost by user",
        "Tokens and cost by conversation",
        "Tokens and cost by day",
        "Tools by MCP server",
        "Slowest tool calls",
        "Tool errors",
        "LLM errors by provider",
        "Most active conversations",
        "Most active users",
        "Hourly traffic",
    ):
        assert title in out, title
    assert "5 chat turns (+0 other traces), 3 conversations, 3 users, 5 LLM calls, 3 tool calls" in out
    assert "index offline" in out
    code, out, _ = run(capsys, "stats", "--db", str(db), "--json")
    s = json.loads(out)
    by_provider = {r["provider"]: r for r in s["llm_errors_by_provider"]}
    assert by_provider["anthropic"]["errors"] == 1 and by_provider["anthropic"]["error_pct"] == 50.0
    assert by_provider["openai"]["errors"] == 0
    tools = {(r["server"], r["tool"]): r for r in s["tools_by_server"]}
    assert tools[("kb", "search_docs")]["calls"] == 2 and tools[("kb", "search_docs")]["success_pct"] == 50.0
    assert tools[("weather-mcp", "weather")]["success_pct"] == 100.0
    route = s["latency_by_route"][0]
    assert (
        route["key"] == "/api/chat"
        and route["count"] == 5
        and 0 < route["p50_ms"] <= route["p95_ms"] <= route["p99_ms"]
    )
    users = {r["key"]: r for r in s["usage_by_user"]}
    assert users["alice"]["input_tokens"] == 240 and users["bob"]["input_tokens"] == 50
    assert s["active_users"][0]["turns"] == 2
    assert sum(h["traces"] for h in s["hourly_traffic"]) == 5 == sum(h["turns"] for h in s["hourly_traffic"])
    assert (s["totals"]["turns"], s["totals"]["other_traces"], s["totals"]["traces"]) == (5, 0, 5)
    code, out, _ = run(capsys, "stats", "--db", str(db), "--until", "2h")
    assert "0 chat turns (+0 other traces)" in out


def test_export_jsonl_and_otlp_json(filled, capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db, ids = filled
    code, out, _ = run(capsys, "export", "--db", str(db))
    spans = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(spans) == 13  # 5 requests + 5 LLM calls + 3 tool calls
    assert {s["trace_id"] for s in spans} == set(ids.values())
    assert any(s["attributes"].get("chatobs.input") == XSS_PROMPT for s in spans)

    target = tmp_path / "out.otlp.jsonl"
    code, _, err = run(capsys, "export", "--db", str(db), "--format", "otlp-json", "-o", str(target), "--user", "alice")
    assert code == 0 and "6 spans in 2 traces" in err
    lines = target.read_text().splitlines()
    assert len(lines) == 2
    seen = set()
    for line in lines:
        doc = json.loads(line)
        # OTLP/JSON uses hex IDs where protobuf's JSON mapping expects base64: convert, then let protobuf validate it.
        for rs in doc["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for sp in ss["spans"]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in sp:
                            sp[key] = base64.b64encode(bytes.fromhex(sp[key])).decode()
        req = json_format.ParseDict(doc, ExportTraceServiceRequest())
        for rs in req.resource_spans:
            assert any(kv.key == "service.name" for kv in rs.resource.attributes)
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    seen.add(sp.trace_id.hex())
                    if sp.name.startswith("chat "):
                        attrs = {kv.key: kv.value for kv in sp.attributes}
                        assert attrs["gen_ai.usage.input_tokens"].int_value == 120
                        assert attrs["user.id"].string_value == "alice"
    assert seen == {ids["alice1"], ids["alice2"]}


def test_forget_removes_a_person(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from .conftest import fill

    db = tmp_path / "t.db"
    fill(db)
    code, out, _ = run(capsys, "forget", "--db", str(db), "--user", "alice")
    assert code == 0
    assert re.search(r"removed 2 traces \(6 spans, 1 conversations\) of user 'alice'", out), out
    code, out, _ = run(capsys, "traces", "--db", str(db), "--json", "--user", "alice")
    assert json.loads(out) == []
    code, out, _ = run(capsys, "forget", "--db", str(db), "--conversation", "conv-bob", "--json")
    assert json.loads(out)["traces"] == 2
    code, out, _ = run(capsys, "traces", "--db", str(db), "--json")
    assert [r["user_id"] for r in json.loads(out)] == ["carol"]
    code, _, err = run(capsys, "forget", "--db", str(db))
    assert code == 2 and "--user" in err


def test_missing_store_is_explained(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(capsys, "traces", "--db", str(tmp_path / "nope.db"))
    assert code == 1 and "no trace store" in err


def test_console_script_entry_point(filled) -> None:  # type: ignore[no-untyped-def]
    db, ids = filled
    proc = subprocess.run(
        [PYTHON, "-m", "chatobs.tools.cli.main", "traces", "--json", "--db", str(db)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert {r["trace_id"] for r in json.loads(proc.stdout)} == set(ids.values())


def test_ui_refuses_public_host_without_token(capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(capsys, "ui", "--host", "0.0.0.0")
    assert code == 2 and "CHATOBS_VIEWER_TOKEN" in err
