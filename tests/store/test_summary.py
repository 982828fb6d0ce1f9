"""Trace summaries: the Python path (a trace whole in one batch) gives the row the SQL recompute gives, and a trace
whose spans arrive in several batches ends with the summary of all of them. Schema step 3 (fewer indexes)."""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from chatobs.core import semconv
from chatobs.export.local import LocalExporter
from chatobs.export.local.queries import Filters, list_traces, stats
from chatobs.export.local.rows import span_row
from chatobs.export.local.store import SCHEMA_VERSION, Store, connect
from chatobs.export.local.summary import TRACE_COLUMNS, refresh_sql, summarize

_RES = Resource.create({"service.name": "app"})
_RES_TOOLS = Resource.create({"service.name": "tools"})


_MCP_TOOL: dict[str, Any] = {semconv.MCP_METHOD_NAME: "tools/call", semconv.GEN_AI_TOOL_NAME: "t"}


def trace(tid: int, *, request: bool = True, seed: int = 0) -> list[ReadableSpan]:
    """A trace with the cases a summary must get right: several models, errors, NULL and fractional usage, identity
    only on some spans, a second parentless span, and the root's values differing from the greatest."""
    rng = random.Random(seed)
    t0 = time.time_ns() - 3600 * 10**9 + tid * 10**9  # recent: the first export also runs retention
    root = SpanContext(tid, rng.getrandbits(64) | 1, False, TraceFlags(1))
    ids = [SpanContext(tid, rng.getrandbits(64) | 1, False, TraceFlags(1)) for _ in range(8)]
    root_attrs: dict[str, Any] = {semconv.ROUTE: "/b", semconv.USER_ID: "ann"}
    if request:
        root_attrs[semconv.CHAT_REQUEST] = True

    def llm(model: str, cost: float | None, tokens: int | None) -> dict[str, Any]:
        a: dict[str, Any] = {
            semconv.GEN_AI_OPERATION_NAME: "chat",
            semconv.GEN_AI_REQUEST_MODEL: model,
            semconv.USER_ID: "zed",
            semconv.GEN_AI_CONVERSATION_ID: "conv-z",
            semconv.TENANT_ID: "acme",
        }
        if cost is not None:
            a[semconv.COST_USD] = cost
        if tokens is not None:
            a[semconv.GEN_AI_USAGE_INPUT_TOKENS] = tokens
        return a

    return [
        ReadableSpan(
            name="POST /chat",
            context=root,
            parent=None,
            resource=_RES,
            kind=SpanKind.SERVER,
            start_time=t0 + 50,
            end_time=t0 + 9_000_000,
            attributes=root_attrs,
        ),
        ReadableSpan(
            name="chat b",
            context=ids[0],
            parent=root,
            resource=_RES,
            start_time=t0 + 100,
            end_time=t0 + 2_000_000,
            attributes=llm("model-b", 0.1, 7),
        ),
        ReadableSpan(
            name="chat a",
            context=ids[1],
            parent=root,
            resource=_RES,
            start_time=t0 + 200,
            end_time=t0 + 3_000_000,
            attributes=llm("model-a", 0.2, None),
            status=Status(StatusCode.ERROR, "boom"),
        ),
        ReadableSpan(
            name="chat b again",
            context=ids[2],
            parent=root,
            resource=_RES,
            start_time=t0 + 300,
            end_time=t0 + 4_000_000,
            attributes=llm("model-b", 0.3, 5),
        ),
        ReadableSpan(
            name="tool",
            context=ids[3],
            parent=ids[0],
            resource=_RES_TOOLS,
            start_time=t0 + 400,
            end_time=t0 + 9_500_000,
            attributes={
                semconv.GEN_AI_OPERATION_NAME: "execute_tool",
                semconv.GEN_AI_TOOL_NAME: "t",
                semconv.ROUTE: "/z",
            },
        ),
        # Parentless but earlier than the request span: the request span is still the root.
        ReadableSpan(
            name="early orphan",
            context=ids[4],
            parent=None,
            resource=_RES,
            start_time=t0,
            end_time=t0 + 10,
            attributes={semconv.MESSAGE_ID: "m-1"},
        ),
        ReadableSpan(
            name="internal",
            context=ids[5],
            parent=root,
            resource=_RES,
            start_time=t0 + 500,
            end_time=t0 + 600,
            attributes={},
        ),
        # MCP server halves: of a call a chatobs client traced (the client's span counts it) and of one nobody did.
        ReadableSpan(
            name="tools/call t",
            context=ids[6],
            parent=ids[3],
            resource=_RES_TOOLS,
            kind=SpanKind.SERVER,
            start_time=t0 + 700,
            end_time=t0 + 800,
            attributes={**_MCP_TOOL, semconv.MCP_CALLER_TRACED: True},
        ),
        ReadableSpan(
            name="tools/call u",
            context=ids[7],
            parent=None,
            resource=_RES_TOOLS,
            kind=SpanKind.SERVER,
            start_time=t0 + 900,
            end_time=t0 + 1000,
            attributes=_MCP_TOOL,
        ),
    ]


def sql_summary(conn: sqlite3.Connection, trace_id: str) -> tuple[Any, ...]:
    """Recompute in SQL (what a trace written in several parts gets) and read the row back."""
    conn.execute(refresh_sql("SELECT ?"), (trace_id,))
    return tuple(
        conn.execute(f"SELECT {', '.join(TRACE_COLUMNS)} FROM traces WHERE trace_id = ?", (trace_id,)).fetchone()
    )


def stored(db: Path, trace_id: str) -> tuple[Any, ...]:
    return tuple(
        connect(db).execute(f"SELECT {', '.join(TRACE_COLUMNS)} FROM traces WHERE trace_id = ?", (trace_id,)).fetchone()
    )


@pytest.mark.parametrize("request_span", [True, False])
def test_python_summary_equals_the_sql_recompute(tmp_path: Path, request_span: bool) -> None:
    db = tmp_path / "t.db"
    spans = trace(0xABC, request=request_span, seed=3)
    rows = [span_row(s) for s in spans]
    tid = rows[0][0]
    assert LocalExporter(db).export(spans).name == "SUCCESS"  # one batch: the Python path
    python_row = stored(db, tid)
    assert python_row == summarize(rows)
    conn = connect(db)
    assert sql_summary(conn, tid) == python_row
    # Spot checks, so that both paths being wrong the same way would still fail.
    d = dict(zip(TRACE_COLUMNS, python_row, strict=True))
    if request_span:
        assert (d["name"], d["route"], d["user_id"]) == ("POST /chat", "/b", "ann")
    else:
        assert (d["name"], d["route"], d["user_id"]) == (
            "early orphan",
            "/z",
            "zed",
        )  # earliest parentless; MAX for the rest
    assert (d["conversation_id"], d["tenant_id"], d["message_id"]) == ("conv-z", "acme", "m-1")
    assert (d["span_count"], d["error_count"], d["status"], d["llm_calls"], d["tool_calls"]) == (9, 1, "error", 3, 2)
    assert d["input_tokens"] == 12 and d["output_tokens"] is None and d["cost_usd"] == pytest.approx(0.6)
    assert sorted(d["models"].split(",")) == ["model-a", "model-b"]
    assert d["duration_ms"] == pytest.approx(9.5)


def test_trace_arriving_in_parts_and_from_two_processes(tmp_path: Path) -> None:
    """Spans of one trace in three batches through two exporters (two processes' handles on one file), the root
    last: each write leaves the summary of everything stored so far, and the end result is the whole trace's."""
    db = tmp_path / "t.db"
    app, tools = LocalExporter(db), LocalExporter(db)
    spans = trace(0xDEF, seed=5)
    root, llms, tool, rest = spans[0], spans[1:4], spans[4], spans[5:]
    tid = format(0xDEF, "032x")
    assert tools.export([tool]).name == "SUCCESS"
    assert stored(db, tid)[TRACE_COLUMNS.index("span_count")] == 1
    assert app.export(llms + rest).name == "SUCCESS"
    partial = dict(zip(TRACE_COLUMNS, stored(db, tid), strict=True))
    assert partial["span_count"] == 8 and partial["name"] == "early orphan"  # no request span yet
    assert app.export([root]).name == "SUCCESS"
    assert stored(db, tid) == summarize([span_row(s) for s in spans])
    assert app.export([root]).name == "SUCCESS"  # re-sent span (a retried batch): replaced, not counted twice
    assert stored(db, tid)[TRACE_COLUMNS.index("span_count")] == 9
    assert [r["trace_id"] for r in list_traces(connect(db))] == [tid]


def test_batches_mixing_new_and_known_traces(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    exp = LocalExporter(db)
    a, b, c = trace(1, seed=1), trace(2, seed=2), trace(3, seed=3)
    assert exp.export(a[:3] + b).name == "SUCCESS"
    assert exp.export(a[3:] + c).name == "SUCCESS"  # a: known (SQL), c: new (Python), in one transaction
    for spans in (a, b, c):
        assert stored(db, spans[0].context and format(spans[0].context.trace_id, "032x")) == summarize(
            [span_row(s) for s in spans]
        )


def test_schema_step_3_from_a_version_2_file(tmp_path: Path) -> None:
    db = tmp_path / "v2.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    Store.migrate(conn, target=2)
    conn.close()
    store = Store(db)
    assert store.version() == SCHEMA_VERSION == 4
    indexes = {
        r[0]
        for r in store.conn().execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'spans' AND sql IS NOT NULL"
        )
    }
    assert indexes == {"spans_start_type"}
    exp = LocalExporter(db)
    assert exp.export(trace(9, seed=9)).name == "SUCCESS"
    c = connect(db)
    assert list_traces(c, Filters(user="ann"))[0]["llm_calls"] == 3
    assert stats(c)["totals"]["llm_calls"] == 3
    plan = " ".join(
        r[3]
        for r in c.execute("EXPLAIN QUERY PLAN SELECT model FROM spans WHERE span_type = 'llm' AND start_ns >= ?", (0,))
    )
    assert "spans_start_type" in plan
