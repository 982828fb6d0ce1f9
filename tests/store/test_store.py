"""The SQLite store: several writer processes, retention, migration from an older schema, forgetting a person."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext, TraceFlags

from chatobs.config import load_settings
from chatobs.core import semconv
from chatobs.export.local import LocalExporter, build
from chatobs.export.local.store import MIGRATIONS, SCHEMA_VERSION, Store, StoreError, connect
from tests.conftest import PYTHON, subprocess_env

from .conftest import fill

_RES = Resource.create({"service.name": "store-test"})


def make_trace(
    trace_id: int, *, start_ns: int, user: str = "u", conversation: str = "c", payload: str = "", spans: int = 2
) -> list[ReadableSpan]:
    root_ctx = SpanContext(trace_id, 1, False, TraceFlags(1))
    out = [
        ReadableSpan(
            name="POST /api/chat",
            context=root_ctx,
            parent=None,
            resource=_RES,
            start_time=start_ns,
            end_time=start_ns + 5_000_000,
            attributes={
                semconv.CHAT_REQUEST: True,
                semconv.USER_ID: user,
                semconv.GEN_AI_CONVERSATION_ID: conversation,
                semconv.INPUT: payload,
            },
        )
    ]
    for i in range(1, spans):
        out.append(
            ReadableSpan(
                name="chat m",
                context=SpanContext(trace_id, i + 1, False, TraceFlags(1)),
                parent=root_ctx,
                resource=_RES,
                start_time=start_ns + 1000,
                end_time=start_ns + 2_000_000,
                attributes={
                    semconv.GEN_AI_OPERATION_NAME: "chat",
                    semconv.GEN_AI_REQUEST_MODEL: "m",
                    semconv.USER_ID: user,
                },
            )
        )
    return out


def count(db: Path, table: str) -> int:
    return connect(db).execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_build_uses_settings(tmp_path: Path) -> None:
    exp = build(load_settings(local_db=str(tmp_path / "x" / "t.db"), local_retention_days=3, local_max_mb=12))
    assert isinstance(exp, LocalExporter)
    assert exp.retention_days == 3 and exp.max_mb == 12
    assert not (tmp_path / "x").exists()  # nothing touches the disk until the first export (background thread)
    assert exp.export(make_trace(7, start_ns=time.time_ns())) == SpanExportResult.SUCCESS
    db = tmp_path / "x" / "t.db"
    conn = connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


CHILD = textwrap.dedent("""
    import sys, chatobs
    from chatobs.core.stats import STATS
    worker, db = sys.argv[1], sys.argv[2]
    rt = chatobs.init(exporters="local", local_db=db, export_interval_ms=10, export_batch_size=8)
    tracer = chatobs.get_tracer()
    for turn in range(60):
        with chatobs.scope(conversation_id=f"conv-{worker}-{turn % 6}", user_id=f"user-{worker}"):
            with tracer.start_as_current_span("POST /api/chat", attributes={"chatobs.request": True}):
                with tracer.start_as_current_span("chat m", attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
                                                                       "gen_ai.usage.input_tokens": 3}):
                    pass
        if turn % 10 == 0:
            rt.force_flush(10)
    chatobs.shutdown(timeout_s=30)
    snap = STATS.snapshot()
    print(snap["exported"].get("local", 0), sum(snap["dropped"].values()), snap["failed"].get("local", 0))
""")


def test_several_processes_write_one_file(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    # The store's own multi-writer safety: each process writes the file itself (no agent between them).
    procs = [
        subprocess.Popen(
            [PYTHON, "-c", CHILD, str(w), str(db)],
            env=subprocess_env(CHATOBS_AGENT="inprocess"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(3)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(out.split())
    for exported, dropped, _failed in results:
        assert (int(exported), int(dropped)) == (120, 0)  # each worker: 60 turns x 2 spans, nothing lost
    assert count(db, "spans") == 3 * 120
    assert count(db, "traces") == 3 * 60
    conn = connect(db)
    per_user = dict(conn.execute("SELECT user_id, SUM(input_tokens) FROM traces GROUP BY user_id").fetchall())
    assert per_user == {f"user-{w}": 180 for w in range(3)}


def test_retention_by_age_runs_with_exports(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    exp = LocalExporter(db, retention_days=1, max_mb=100, prune_interval_s=0)
    now = time.time_ns()
    day = 86400 * 10**9
    exp.export(make_trace(1, start_ns=now - 3 * day) + make_trace(2, start_ns=now - 2 * day))
    exp.export(make_trace(3, start_ns=now - 60 * 10**9))  # this export's retention pass removes the old ones
    conn = connect(db)
    assert [r[0] for r in conn.execute("SELECT trace_id FROM traces")] == [format(3, "032x")]
    assert count(db, "spans") == 2


def test_retention_size_cap_drops_oldest_first(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    store = Store(db)
    exp = LocalExporter(db, retention_days=365, max_mb=1000, prune_interval_s=3600)
    now = time.time_ns()
    blob = "x" * 20_000
    for i in range(1, 121):
        exp.export(make_trace(i, start_ns=now - (200 - i) * 10**9, payload=blob + str(i)))
    before = store.used_bytes()
    assert before > 2_000_000
    removed = store.prune(retention_days=365, max_mb=1.0)
    assert removed["traces"] > 0
    assert store.used_bytes() <= 1024 * 1024
    kept = sorted(int(r[0], 16) for r in store.conn().execute("SELECT trace_id FROM traces"))
    assert kept and kept == list(range(121 - len(kept), 121))  # the newest survive
    assert db.stat().st_size < before  # space given back (incremental vacuum)


def test_migration_from_schema_v1(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    Store.migrate(conn, target=1)  # the schema chatobs shipped first
    now = time.time_ns()
    attrs = {"chatobs.request": True, "chatobs.tenant.id": "acme", "user.id": "old-user"}
    conn.execute(
        "INSERT INTO spans (trace_id, span_id, parent_id, name, kind, start_ns, end_ns, duration_ms, status, user_id, attributes, resource)"
        " VALUES ('a', '01', NULL, 'POST /chat', 'server', ?, ?, 0.0002, 'ok', 'old-user', ?, ?)",
        (now, now + 200, json.dumps(attrs), json.dumps({"service.name": "legacy"})),
    )
    conn.execute(
        "INSERT INTO spans (trace_id, span_id, parent_id, name, kind, start_ns, end_ns, duration_ms, status, tool_name, attributes)"
        " VALUES ('a', '02', '01', 'tool', 'client', ?, ?, 0.0001, 'error', 'search', ?)",
        (
            now + 50,
            now + 150,
            json.dumps({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}),
        ),
    )
    conn.close()
    assert connect(db).execute("PRAGMA user_version").fetchone()[0] == 1

    store = Store(db)
    assert store.version() == SCHEMA_VERSION == len(MIGRATIONS)
    c = store.conn()
    assert dict(c.execute("SELECT span_type, tenant_id, service_name FROM spans WHERE span_id = '01'").fetchone()) == {
        "span_type": "request",
        "tenant_id": "acme",
        "service_name": "legacy",
    }
    assert c.execute("SELECT span_type FROM spans WHERE span_id = '02'").fetchone()[0] == "tool"
    trace = dict(c.execute("SELECT * FROM traces").fetchone())
    assert (
        trace["user_id"] == "old-user"
        and trace["tool_calls"] == 1
        and trace["error_count"] == 1
        and trace["name"] == "POST /chat"
    )
    # New spans go in next to the migrated ones.
    assert LocalExporter(db).export(make_trace(9, start_ns=now)) == SpanExportResult.SUCCESS
    assert count(db, "traces") == 2


def test_newer_schema_is_refused_clearly(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    sqlite3.connect(db).execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="newer chatobs"):
        Store(db).conn()
    assert (
        LocalExporter(db).export(make_trace(1, start_ns=1)) == SpanExportResult.FAILURE
    )  # no exception reaches the channel


def test_forget_deletes_whole_traces_and_the_bytes(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    ids = fill(db)
    marker = "How do I reset my password?"
    store = Store(db)
    # The request span of alice's trace carries her ID; spans without it (none here) would go with the trace.
    result = store.forget(user_id="alice")
    assert result == {"traces": 2, "spans": 6, "conversations": 1}
    assert (
        not store.conn()
        .execute("SELECT 1 FROM spans WHERE trace_id IN (?, ?)", (ids["alice1"], ids["alice2"]))
        .fetchall()
    )
    assert count(db, "traces") == 3
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("t.db*"))
    assert marker.encode() not in raw  # secure_delete + checkpoint: not left behind in free pages or the WAL
    assert b"Weather in Paris?" in raw  # control: the byte search does find what was kept
    with pytest.raises(ValueError):
        store.forget()


def test_unwritable_location_fails_softly(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    exp = LocalExporter(blocker / "sub" / "t.db")  # parent is a file: cannot create
    assert exp.export(make_trace(1, start_ns=1)) == SpanExportResult.FAILURE


@pytest.mark.timeout(30)
def test_forked_worker_opens_its_own_connection(tmp_path: Path) -> None:
    """gunicorn --preload: the exporter was used before fork; the child must not reuse the parent's connection."""
    import os

    db = tmp_path / "fork.db"
    exp = LocalExporter(db, prune_interval_s=3600)
    now = time.time_ns()
    assert exp.export(make_trace(1, start_ns=now)) == SpanExportResult.SUCCESS
    parent_conn = exp.store.conn()
    pid = os.fork()
    if pid == 0:  # child: write through the inherited exporter, report by exit code
        code = 1
        try:
            ok = exp.export(make_trace(2, start_ns=now)) == SpanExportResult.SUCCESS
            code = 0 if ok and exp.store.conn() is not parent_conn else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert exp.export(make_trace(3, start_ns=now)) == SpanExportResult.SUCCESS
    assert exp.store.conn() is parent_conn
    assert count(db, "traces") == 3
