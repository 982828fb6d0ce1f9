"""The SQLite file behind the local store: schema and its migrations, batched writes, retention and forgetting.

Several worker processes of one app write to the same file: WAL mode lets readers run beside the one writer, every
write is one short ``BEGIN IMMEDIATE`` transaction (the lock is taken up front, so two writers never deadlock on a
lock upgrade), and a busy database is waited for (busy timeout) and then retried with backoff.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .feedback import INSERT_FEEDBACK, SCHEMA_V4
from .rows import SPAN_COLUMNS
from .summary import INSERT_TRACES, REFRESH_GIVEN, group_by_trace, refresh_sql, summarize

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
# Every index is one more B-tree page written (to the WAL, then again at the checkpoint) by nearly every commit: keep
# only what the CLI and viewer read through. Trace filters go through ``traces`` (its own indexes) and find spans by
# trace ID (the primary key); stats and retention scan spans by time, checking the type inside the index. Forgetting
# a person scans ``spans`` (a rare command, not worth an index on every write).
_V3 = """
DROP INDEX IF EXISTS spans_conversation;
DROP INDEX IF EXISTS spans_user;
DROP INDEX IF EXISTS spans_model;
DROP INDEX IF EXISTS spans_tool;
DROP INDEX IF EXISTS spans_type;
DROP INDEX IF EXISTS spans_start;
CREATE INDEX spans_start_type ON spans(start_ns, span_type);
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
    conn.execute(refresh_sql("SELECT DISTINCT trace_id FROM spans"))


def _migrate_v3(conn: sqlite3.Connection) -> None:
    _script(conn, _V3)


def _migrate_v4(conn: sqlite3.Connection) -> None:
    _script(conn, SCHEMA_V4)  # user feedback (exporters/local/feedback.py)


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_migrate_v1, _migrate_v2, _migrate_v3, _migrate_v4)
SCHEMA_VERSION = len(MIGRATIONS)


_INSERT_SPANS = (
    f"INSERT OR REPLACE INTO spans ({', '.join(SPAN_COLUMNS)}) VALUES ({', '.join('?' * len(SPAN_COLUMNS))})"
)
_STORED_TRACES = "SELECT DISTINCT trace_id FROM spans WHERE trace_id IN (SELECT value FROM json_each(?))"


class StoreError(RuntimeError):
    """The store file cannot be used (newer schema, not a database, unwritable)."""


def _is_busy(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in msg or "busy" in msg)


def connect(path: str | os.PathLike[str], *, readonly: bool = False) -> sqlite3.Connection:
    """A connection with the store's pragmas. ``readonly`` opens the file read-only (viewer, CLI queries)."""
    p = Path(path)
    if readonly:
        conn = sqlite3.connect(
            f"file:{p}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None
        )
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
            raise StoreError(
                f"CHATOBS_LOCAL_DB={str(self.path)!r}: cannot use this file as the trace store: {exc}"
            ) from None
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
        # WAL + NORMAL: a commit is not fsynced, the WAL is at checkpoints. A power cut may lose the last commits
        # (never corrupt the file); an application crash loses nothing. Right for an observability store.
        conn.execute("PRAGMA synchronous = NORMAL")
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
        by_trace = group_by_trace(rows)
        ids = json.dumps(list(by_trace))

        def body(conn: sqlite3.Connection) -> int:
            # Traces with spans stored before this batch (earlier batch, other process, re-sent span): recomputed in
            # SQL from all their spans. The others are whole in this batch: summarised from the rows in hand.
            earlier = {r[0] for r in conn.execute(_STORED_TRACES, (ids,))}
            conn.executemany(_INSERT_SPANS, rows)
            if earlier:
                conn.execute(REFRESH_GIVEN, (json.dumps(list(earlier)),))
            if len(earlier) < len(by_trace):
                conn.executemany(INSERT_TRACES, [summarize(r) for t, r in by_trace.items() if t not in earlier])
            return len(rows)

        return self._transaction(body)

    def write_feedback(self, rows: Sequence[Sequence[Any]]) -> int:
        """Insert feedback rows (``feedback.FEEDBACK_COLUMNS`` order); the rated traces stay as they were."""
        if not rows:
            return 0
        return self._transaction(lambda conn: conn.executemany(INSERT_FEEDBACK, rows).rowcount)

    # --- deleting -------------------------------------------------------------------------------------------------
    def _delete_traces(self, conn: sqlite3.Connection, trace_ids: Iterable[str]) -> tuple[int, int]:
        ids = [(t,) for t in trace_ids]
        if not ids:
            return 0, 0
        spans = traces = 0
        for (tid,) in ids:
            spans += conn.execute("DELETE FROM spans WHERE trace_id = ?", (tid,)).rowcount
            traces += conn.execute("DELETE FROM traces WHERE trace_id = ?", (tid,)).rowcount
            conn.execute("DELETE FROM feedback WHERE trace_id = ?", (tid,))
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
            # Their feedback goes with those traces; feedback they gave on other traces (comments) goes too.
            conn.execute(f"DELETE FROM feedback WHERE {where}", params)
            convs = {
                r[0]
                for r in conn.execute(
                    f"SELECT DISTINCT conversation_id FROM traces WHERE ({where}) AND conversation_id IS NOT NULL",
                    params,
                )
            }
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
            spans += conn.execute(
                "DELETE FROM spans WHERE start_ns < ? AND trace_id NOT IN (SELECT trace_id FROM traces)", (cutoff,)
            ).rowcount
            conn.execute("DELETE FROM feedback WHERE created_ns < ?", (cutoff,))
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
