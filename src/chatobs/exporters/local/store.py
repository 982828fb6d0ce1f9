"""The SQLite file behind the local store: schema and its migrations, batched writes, retention and forgetting.

Several worker processes of one app write to the same file: WAL mode lets readers run beside the one writer, every
write is one short ``BEGIN IMMEDIATE`` transaction (the lock is taken up front, so two writers never deadlock on a
lock upgrade), and a busy database is waited for (busy timeout) and then retried with backoff.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .rows import SPAN_COLUMNS

logger = logging.getLogger("chatobs")

T = TypeVar("T")

BUSY_TIMEOUT_S = 10.0
WRITE_ATTEMPTS = 8

# --- schema history -------------------------------------------------------------------------------------------------
# Never edit a released step: add one. ``PRAGMA user_version`` holds the number of steps applied.

_V1 = """
CREATE TABLE spans (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_id TEXT, name TEXT NOT NULL, kind TEXT,
    start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, duration_ms REAL, status TEXT, status_message TEXT,
    conversation_id TEXT, user_id TEXT, route TEXT, model TEXT, provider TEXT, tool_name TEXT,
    input_tokens INTEGER, output_tokens INTEGER, cost_usd REAL,
    attributes TEXT, events TEXT, resource TEXT,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX spans_start ON spans(start_ns);
"""

_V2 = """
ALTER TABLE spans ADD COLUMN span_type TEXT;
ALTER TABLE spans ADD COLUMN tenant_id TEXT;
ALTER TABLE spans ADD COLUMN message_id TEXT;
ALTER TABLE spans ADD COLUMN operation TEXT;
ALTER TABLE spans ADD COLUMN mcp_server TEXT;
ALTER TABLE spans ADD COLUMN ttft_ms REAL;
ALTER TABLE spans ADD COLUMN service_name TEXT;
UPDATE spans SET
    tenant_id = json_extract(attributes, '$."chatobs.tenant.id"'),
    message_id = json_extract(attributes, '$."chatobs.message.id"'),
    operation = json_extract(attributes, '$."gen_ai.operation.name"'),
    mcp_server = json_extract(attributes, '$."chatobs.mcp.server.name"'),
    ttft_ms = json_extract(attributes, '$."gen_ai.response.time_to_first_chunk"') * 1000.0,
    service_name = json_extract(resource, '$."service.name"'),
    span_type = CASE
        WHEN json_extract(attributes, '$."chatobs.request"') THEN 'request'
        WHEN json_extract(attributes, '$."gen_ai.operation.name"') IN ('chat', 'text_completion', 'generate_content', 'embeddings') THEN 'llm'
        WHEN json_extract(attributes, '$."gen_ai.operation.name"') = 'execute_tool' OR tool_name IS NOT NULL THEN 'tool'
        WHEN json_extract(attributes, '$."mcp.method.name"') IS NOT NULL THEN 'mcp'
        ELSE 'other' END;
CREATE TABLE traces (
    trace_id TEXT PRIMARY KEY, root_span_id TEXT, name TEXT, route TEXT,
    start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, duration_ms REAL,
    conversation_id TEXT, user_id TEXT, tenant_id TEXT, message_id TEXT, service_name TEXT,
    status TEXT, span_count INTEGER, error_count INTEGER, llm_calls INTEGER, tool_calls INTEGER,
    input_tokens INTEGER, output_tokens INTEGER, cost_usd REAL, models TEXT
);
CREATE INDEX traces_start ON traces(start_ns);
CREATE INDEX traces_conversation ON traces(conversation_id, start_ns);
CREATE INDEX traces_user ON traces(user_id, start_ns);
CREATE INDEX traces_status ON traces(status, start_ns);
CREATE INDEX spans_conversation ON spans(conversation_id);
CREATE INDEX spans_user ON spans(user_id);
CREATE INDEX spans_model ON spans(model, start_ns) WHERE model IS NOT NULL;
CREATE INDEX spans_tool ON spans(tool_name, start_ns) WHERE tool_name IS NOT NULL;
CREATE INDEX spans_type ON spans(span_type, start_ns);
"""

# Rebuilds the ``traces`` summary rows of the trace IDs in the temp table ``_touched``. A trace's spans may arrive in
# several batches, even from several processes (an MCP server writing to the same file), so it is recomputed, not
# incremented. The root is the chat request span if there is one, else the span without a parent, else the earliest.
_REFRESH_TRACES = """
INSERT OR REPLACE INTO traces (
    trace_id, root_span_id, name, route, start_ns, end_ns, duration_ms, conversation_id, user_id, tenant_id,
    message_id, service_name, status, span_count, error_count, llm_calls, tool_calls, input_tokens, output_tokens,
    cost_usd, models)
SELECT a.trace_id, r.span_id, r.name, COALESCE(r.route, a.route), a.start_ns, a.end_ns, (a.end_ns - a.start_ns) / 1e6,
       COALESCE(r.conversation_id, a.conversation_id), COALESCE(r.user_id, a.user_id),
       COALESCE(r.tenant_id, a.tenant_id), COALESCE(r.message_id, a.message_id), r.service_name,
       CASE WHEN a.error_count > 0 THEN 'error' ELSE 'ok' END, a.span_count, a.error_count, a.llm_calls,
       a.tool_calls, a.input_tokens, a.output_tokens, a.cost_usd, a.models
FROM (
    SELECT trace_id, MIN(start_ns) AS start_ns, MAX(end_ns) AS end_ns, MAX(route) AS route,
           MAX(conversation_id) AS conversation_id, MAX(user_id) AS user_id, MAX(tenant_id) AS tenant_id,
           MAX(message_id) AS message_id, COUNT(*) AS span_count, SUM(status = 'error') AS error_count,
           SUM(span_type = 'llm') AS llm_calls, SUM(span_type = 'tool') AS tool_calls,
           SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, SUM(cost_usd) AS cost_usd,
           GROUP_CONCAT(DISTINCT model) AS models
    FROM spans WHERE trace_id IN (SELECT trace_id FROM _touched) GROUP BY trace_id
) a JOIN spans r ON r.trace_id = a.trace_id AND r.span_id = (
    SELECT s.span_id FROM spans s WHERE s.trace_id = a.trace_id
    ORDER BY (s.span_type = 'request') DESC, (s.parent_id IS NULL) DESC, s.start_ns LIMIT 1)
"""


def _script(conn: sqlite3.Connection, sql: str) -> None:
    # Not executescript(): that may COMMIT first, and a migration must stay inside its transaction.
    for statement in sql.split(";"):
        if statement.strip():
            conn.execute(statement)


def _migrate_v1(conn: sqlite3.Connection) -> None:
    _script(conn, _V1)


def _migrate_v2(conn: sqlite3.Connection) -> None:
    _script(conn, _V2)
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _touched (trace_id TEXT PRIMARY KEY)")
    conn.execute("INSERT OR IGNORE INTO _touched SELECT DISTINCT trace_id FROM spans")
    conn.execute(_REFRESH_TRACES)
    conn.execute("DELETE FROM _touched")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_migrate_v1, _migrate_v2)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(RuntimeError):
    """The store file cannot be used (newer schema, not a database, unwritable)."""


def _is_busy(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in msg or "busy" in msg)


def connect(path: str | os.PathLike[str], *, readonly: bool = False) -> sqlite3.Connection:
    """A connection with the store's pragmas. ``readonly`` opens the file read-only (viewer, CLI queries)."""
    p = Path(path)
    if readonly:
        conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None)
    else:
        p.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(p), timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    return conn


class Store:
    """One process's handle on the store file. Thread-safe (one connection behind a lock); reopened after ``fork``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    # --- connection and schema ------------------------------------------------------------------------------------
    def conn(self) -> sqlite3.Connection:
        with self._lock:
            if self._conn is None or self._pid != os.getpid():
                # A connection inherited over fork must not be used in the child: open a fresh one.
                self._conn = self._open()
                self._pid = os.getpid()
            return self._conn

    def _open(self) -> sqlite3.Connection:
        conn = connect(self.path)
        try:
            self._retry(lambda: self._setup(conn))
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"CHATOBS_LOCAL_DB={str(self.path)!r}: cannot use this file as the trace store: {exc}") from None
        return conn

    def _setup(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"CHATOBS_LOCAL_DB={str(self.path)!r}: written by a newer chatobs (schema {version}, this one knows "
                f"{SCHEMA_VERSION}); upgrade chatobs or point CHATOBS_LOCAL_DB at another file"
            )
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            if version == 0:
                # Only possible before the first table exists; lets retention give space back to the OS.
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS _touched (trace_id TEXT PRIMARY KEY)")
        if version < SCHEMA_VERSION:
            self.migrate(conn)

    @staticmethod
    def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
        """Apply the missing schema steps up to ``target``; safe when several processes start at once."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: another process may have migrated while we waited.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for step in range(version, target):
                MIGRATIONS[step](conn)
                conn.execute(f"PRAGMA user_version = {step + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if version < target:
            logger.info("chatobs: local store schema migrated from version %d to %d", version, target)
        return target

    def version(self) -> int:
        return int(self.conn().execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                try:
                    self._conn.close()
                except sqlite3.Error:
                    pass
            self._conn = None

    # --- writing --------------------------------------------------------------------------------------------------
    def _retry(self, fn: Callable[[], T]) -> T:
        """Run ``fn``, retrying while another process holds the write lock past the busy timeout."""
        delay = 0.05
        for attempt in range(WRITE_ATTEMPTS):
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or attempt == WRITE_ATTEMPTS - 1:
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    def _transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            with self._lock:
                conn = self.conn()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = body(conn)
                    conn.execute("COMMIT")
                    return result
                except BaseException:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                    raise

        return self._retry(run)

    def write(self, rows: Sequence[Sequence[Any]]) -> int:
        """Insert span rows (``rows.SPAN_COLUMNS`` order) and refresh their traces, in one transaction."""
        if not rows:
            return 0
        cols = ", ".join(SPAN_COLUMNS)
        marks = ", ".join("?" * len(SPAN_COLUMNS))
        sql = f"INSERT OR REPLACE INTO spans ({cols}) VALUES ({marks})"

        def body(conn: sqlite3.Connection) -> int:
            conn.executemany(sql, rows)
            conn.executemany("INSERT OR IGNORE INTO _touched VALUES (?)", {(r[0],) for r in rows})
            conn.execute(_REFRESH_TRACES)
            conn.execute("DELETE FROM _touched")
            return len(rows)

        return self._transaction(body)

    # --- deleting -------------------------------------------------------------------------------------------------
    def _delete_traces(self, conn: sqlite3.Connection, trace_ids: Iterable[str]) -> tuple[int, int]:
        ids = [(t,) for t in trace_ids]
        if not ids:
            return 0, 0
        spans = traces = 0
        for (tid,) in ids:
            spans += conn.execute("DELETE FROM spans WHERE trace_id = ?", (tid,)).rowcount
            traces += conn.execute("DELETE FROM traces WHERE trace_id = ?", (tid,)).rowcount
        return traces, spans

    def forget(self, *, user_id: str | None = None, conversation_id: str | None = None) -> dict[str, int]:
        """Delete every trace that mentions this user or conversation (GDPR erasure). Returns what was removed.

        A whole trace goes, not just the spans carrying the ID: its other spans hold the same person's messages."""
        if not user_id and not conversation_id:
            raise ValueError("forget: give a user ID or a conversation ID")
        clauses, params = [], []
        if user_id:
            clauses.append("user_id = ?")
            params.append(user_id)
        if conversation_id:
            clauses.append("conversation_id = ?")
            params.append(conversation_id)
        where = " OR ".join(clauses)

        def body(conn: sqlite3.Connection) -> dict[str, int]:
            ids = {r[0] for r in conn.execute(f"SELECT DISTINCT trace_id FROM spans WHERE {where}", params)}
            ids |= {r[0] for r in conn.execute(f"SELECT trace_id FROM traces WHERE {where}", params)}
            convs = {r[0] for r in conn.execute(
                f"SELECT DISTINCT conversation_id FROM traces WHERE ({where}) AND conversation_id IS NOT NULL", params)}
            traces, spans = self._delete_traces(conn, ids)
            return {"traces": traces, "spans": spans, "conversations": len(convs)}

        conn = self.conn()
        with self._lock:
            # Overwrite deleted content on disk instead of leaving it in free pages.
            conn.execute("PRAGMA secure_delete = ON")
            try:
                result = self._transaction(body)
            finally:
                conn.execute("PRAGMA secure_delete = OFF")
        self._compact()
        return result

    def delete_trace(self, trace_id: str) -> int:
        return self._transaction(lambda conn: self._delete_traces(conn, [trace_id])[1])

    def used_bytes(self) -> int:
        conn = self.conn()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def prune(self, *, retention_days: float, max_mb: float, now_ns: int | None = None) -> dict[str, int]:
        """Retention: drop traces older than ``retention_days``, then the oldest until the data fits in ``max_mb``."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        cutoff = now_ns - int(retention_days * 86400 * 1e9)
        removed = {"traces": 0, "spans": 0}

        def by_age(conn: sqlite3.Connection) -> tuple[int, int]:
            ids = [r[0] for r in conn.execute("SELECT trace_id FROM traces WHERE start_ns < ?", (cutoff,))]
            traces, spans = self._delete_traces(conn, ids)
            # Spans whose trace row is missing (should not happen; belt and braces) age out too.
            spans += conn.execute("DELETE FROM spans WHERE start_ns < ? AND trace_id NOT IN (SELECT trace_id FROM traces)", (cutoff,)).rowcount
            return traces, spans

        t, s = self._transaction(by_age)
        removed["traces"] += t
        removed["spans"] += s
        limit = int(max_mb * 1024 * 1024)
        while self.used_bytes() > limit:
            def oldest(conn: sqlite3.Connection) -> tuple[int, int]:
                total = conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0]
                n = max(1, total // 10)
                ids = [r[0] for r in conn.execute("SELECT trace_id FROM traces ORDER BY start_ns LIMIT ?", (n,))]
                return self._delete_traces(conn, ids)

            t, s = self._transaction(oldest)
            removed["traces"] += t
            removed["spans"] += s
            if t == 0:
                break
        if removed["traces"] or removed["spans"]:
            self._compact()
        return removed

    def _compact(self) -> None:
        """Give freed pages back and shrink the WAL (best effort: another process may be reading)."""
        conn = self.conn()
        with self._lock:
            try:
                conn.execute("PRAGMA incremental_vacuum").fetchall()
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.OperationalError as exc:
                logger.debug("chatobs: local store compaction skipped: %s", exc)
