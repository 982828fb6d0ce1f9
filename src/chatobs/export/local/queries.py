"""Read side of the local store: trace lists, one trace, conversations and the analytics of ``chatobs stats``.

Shared by the CLI and the viewer; every function takes an open connection (``store.connect(path, readonly=True)``)
and returns plain dicts and lists, ready for JSON.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ...core import semconv
from ...core.numbers import percentile
from .feedback_queries import by_prompt, feedback_for, has_feedback
from .rows import OWNED_TOOL_SQL

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.I)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(value: str | None, *, now_ns: int | None = None) -> int | None:
    """``15m``/``2h``/``7d`` (that long ago), an ISO date or datetime (UTC unless it says otherwise) -> epoch ns.

    Raises ``ValueError`` with the accepted forms."""
    if value is None or not str(value).strip():
        return None
    now_ns = time.time_ns() if now_ns is None else now_ns
    m = _DURATION.match(str(value))
    if m:
        return now_ns - int(float(m.group(1)) * _UNITS[m.group(2).lower()] * 1e9)
    try:
        dt = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(
            f"{value!r}: expected a duration like 30m, 2h, 7d or an ISO time like 2026-01-31T12:00"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1e9)


@dataclass
class Filters:
    conversation: str | None = None
    user: str | None = None
    model: str | None = None
    tool: str | None = None
    status: str | None = None  # ok | error
    feedback: str | None = None  # any | negative | positive | none (the feedback table)
    since_ns: int | None = None
    until_ns: int | None = None

    def where(self, alias: str = "t") -> tuple[str, list[Any]]:
        """SQL conditions on the ``traces`` table (aliased ``alias``)."""
        clauses: list[str] = []
        params: list[Any] = []
        if self.conversation:
            clauses.append(f"{alias}.conversation_id = ?")
            params.append(self.conversation)
        if self.user:
            clauses.append(f"{alias}.user_id = ?")
            params.append(self.user)
        if self.status:
            clauses.append(f"{alias}.status = ?")
            params.append(self.status)
        if self.since_ns is not None:
            clauses.append(f"{alias}.start_ns >= ?")
            params.append(self.since_ns)
        if self.until_ns is not None:
            clauses.append(f"{alias}.start_ns < ?")
            params.append(self.until_ns)
        if self.model:
            clauses.append(f"EXISTS (SELECT 1 FROM spans m WHERE m.trace_id = {alias}.trace_id AND m.model = ?)")
            params.append(self.model)
        if self.tool:
            clauses.append(f"EXISTS (SELECT 1 FROM spans x WHERE x.trace_id = {alias}.trace_id AND x.tool_name = ?)")
            params.append(self.tool)
        if self.feedback:
            from .feedback_queries import FEEDBACK_SQL

            if self.feedback not in FEEDBACK_SQL:
                raise ValueError(f"feedback filter {self.feedback!r}: expected one of {', '.join(FEEDBACK_SQL)}")
            clauses.append(FEEDBACK_SQL[self.feedback].format(a=alias))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _rows(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    return [dict(r) for r in cur.fetchall()]


def has_schema(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'traces'").fetchone() is not None


# --- traces ---------------------------------------------------------------------------------------------------------
def list_traces(
    conn: sqlite3.Connection, filters: Filters | None = None, *, limit: int = 50, offset: int = 0
) -> list[dict[str, Any]]:
    where, params = (filters or Filters()).where()
    cur = conn.execute(
        f"SELECT t.* FROM traces t{where} ORDER BY t.start_ns DESC LIMIT ? OFFSET ?", [*params, limit, offset]
    )
    return _with_feedback(conn, _rows(cur))


def _with_feedback(conn: sqlite3.Connection, traces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each trace with its ratings (``feedback``, oldest first)."""
    ratings = feedback_for(conn, [t["trace_id"] for t in traces])
    for t in traces:
        t["feedback"] = ratings.get(t["trace_id"], [])
    return traces


def _span_dict(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    for key in ("attributes", "events", "resource"):
        raw = d.get(key)
        try:
            d[key] = json.loads(raw) if raw else ({} if key != "events" else [])
        except ValueError:
            d[key] = {"_unreadable": raw}
    return d


def find_trace_id(conn: sqlite3.Connection, prefix: str) -> str | None:
    """The full trace ID for an ID or an unambiguous prefix of at least 6 hex characters."""
    prefix = prefix.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{6,32}", prefix):
        return None
    rows = conn.execute(
        "SELECT trace_id FROM traces WHERE trace_id >= ? AND trace_id < ? LIMIT 2", (prefix, prefix + "g")
    ).fetchall()
    return rows[0][0] if len(rows) == 1 else None


def get_trace(conn: sqlite3.Connection, trace_id: str) -> dict[str, Any] | None:
    """The trace summary with its spans (attributes decoded), spans ordered as a depth-first tree with ``depth``."""
    full = find_trace_id(conn, trace_id)
    if full is None:
        return None
    trace = dict(conn.execute("SELECT * FROM traces WHERE trace_id = ?", (full,)).fetchone())
    spans = [_span_dict(r) for r in conn.execute("SELECT * FROM spans WHERE trace_id = ? ORDER BY start_ns", (full,))]
    trace["spans"] = tree_order(spans)
    trace["feedback"] = feedback_for(conn, [full]).get(full, [])
    return trace


def tree_order(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spans depth-first (children by start time), each with ``depth``; orphans (parent not stored) become roots."""
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for s in spans:
        parent = s["parent_id"] if s["parent_id"] in ids else None
        children[parent].append(s)
    out: list[dict[str, Any]] = []

    def walk(parent: str | None, depth: int) -> None:
        for s in sorted(children.get(parent, []), key=lambda x: x["start_ns"]):
            s["depth"] = depth
            out.append(s)
            walk(s["span_id"], depth + 1)

    walk(None, 0)
    return out


CONTENT_KEYS: tuple[str, ...] = (
    semconv.INPUT,
    semconv.GEN_AI_SYSTEM_INSTRUCTIONS,
    semconv.GEN_AI_INPUT_MESSAGES,
    semconv.GEN_AI_TOOL_CALL_ARGUMENTS,
    semconv.GEN_AI_OUTPUT_MESSAGES,
    semconv.GEN_AI_TOOL_CALL_RESULT,
    semconv.OUTPUT,
    semconv.EXCEPTION_MESSAGE,
)


def span_content(span: dict[str, Any]) -> list[tuple[str, str]]:
    """The inputs and outputs stored on a span (already masked by the pipeline), as (attribute, text) pairs."""
    attrs = span.get("attributes") or {}
    out = [
        (k, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
        for k in CONTENT_KEYS
        if (v := attrs.get(k)) is not None
    ]
    for event in span.get("events") or []:
        for k in (semconv.EXCEPTION_MESSAGE,):
            if k in (event.get("attributes") or {}):
                out.append((f"{event['name']}: {k}", str(event["attributes"][k])))
    return out


# --- conversations --------------------------------------------------------------------------------------------------
def list_conversations(
    conn: sqlite3.Connection, filters: Filters | None = None, *, limit: int = 100
) -> list[dict[str, Any]]:
    f = filters or Filters()
    where, params = f.where()
    where = (where + " AND" if where else " WHERE") + " t.conversation_id IS NOT NULL"
    cur = conn.execute(
        f"""SELECT t.conversation_id, MAX(t.user_id) AS user_id, COUNT(*) AS turns, MIN(t.start_ns) AS first_ns,
                   MAX(t.start_ns) AS last_ns, SUM(t.input_tokens) AS input_tokens, SUM(t.output_tokens) AS output_tokens,
                   SUM(t.cost_usd) AS cost_usd, SUM(t.error_count > 0) AS errors
            FROM traces t{where} GROUP BY t.conversation_id ORDER BY last_ns DESC LIMIT ?""",
        [*params, limit],
    )
    rows = _rows(cur)
    # Ratings per conversation (through its traces): one query for the page, not one per row.
    if rows and has_feedback(conn):
        marks = ",".join("?" * len(rows))
        counts = {
            r[0]: (r[1], r[2])
            for r in conn.execute(
                f"""SELECT t.conversation_id, COUNT(f.feedback_id), COALESCE(SUM(f.negative), 0)
                    FROM feedback f JOIN traces t ON t.trace_id = f.trace_id
                    WHERE t.conversation_id IN ({marks}) GROUP BY t.conversation_id""",
                [r["conversation_id"] for r in rows],
            )
        }
        for r in rows:
            r["feedback"], r["negative_feedback"] = counts.get(r["conversation_id"], (0, 0))
    return rows


def conversation_turns(conn: sqlite3.Connection, conversation_id: str, *, limit: int = 500) -> list[dict[str, Any]]:
    """A conversation's traces oldest first, each with the request's input and output when stored."""
    turns = _rows(
        conn.execute(
            "SELECT t.* FROM traces t WHERE t.conversation_id = ? ORDER BY t.start_ns LIMIT ?", (conversation_id, limit)
        )
    )
    for turn in turns:
        row = conn.execute(
            "SELECT attributes FROM spans WHERE trace_id = ? AND span_id = ?", (turn["trace_id"], turn["root_span_id"])
        ).fetchone()
        attrs = json.loads(row[0]) if row and row[0] else {}
        turn["input"] = attrs.get(semconv.INPUT)
        turn["output"] = attrs.get(semconv.OUTPUT)
        if turn["input"] is None or turn["output"] is None:
            # No request content: fall back to the first LLM call's messages.
            llm = conn.execute(
                "SELECT attributes FROM spans WHERE trace_id = ? AND span_type = 'llm' ORDER BY start_ns LIMIT 1",
                (turn["trace_id"],),
            ).fetchone()
            la = json.loads(llm[0]) if llm and llm[0] else {}
            turn["input"] = turn["input"] if turn["input"] is not None else la.get(semconv.GEN_AI_INPUT_MESSAGES)
            turn["output"] = turn["output"] if turn["output"] is not None else la.get(semconv.GEN_AI_OUTPUT_MESSAGES)
    return _with_feedback(conn, turns)


# --- stats ----------------------------------------------------------------------------------------------------------
# A chat turn: a trace that carries a conversation, or a request to the app that called an LLM (an app that sends no
# conversation ID). Page loads, health checks and an MCP connection made at start-up are traces, not turns.
TURN_SQL = "(t.conversation_id IS NOT NULL OR (t.route IS NOT NULL AND t.llm_calls > 0))"


def _window(f: Filters, col: str = "start_ns") -> tuple[str, list[Any]]:
    clauses, params = [], []
    if f.since_ns is not None:
        clauses.append(f"{col} >= ?")
        params.append(f.since_ns)
    if f.until_ns is not None:
        clauses.append(f"{col} < ?")
        params.append(f.until_ns)
    return (" AND ".join(clauses) if clauses else "1"), params


def _latency(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    groups: dict[str, list[float]] = defaultdict(list)
    for key, ms in conn.execute(sql, params):
        groups[key if key is not None else "(none)"].append(ms or 0.0)
    out = []
    for key, values in groups.items():
        values.sort()
        out.append(
            {
                "key": key,
                "count": len(values),
                "p50_ms": percentile(values, 50),
                "p95_ms": percentile(values, 95),
                "p99_ms": percentile(values, 99),
                "max_ms": values[-1],
            }
        )
    return sorted(out, key=lambda r: -r["count"])


def _usage(conn: sqlite3.Connection, key_sql: str, w: str, p: list[Any], limit: int = 20) -> list[dict[str, Any]]:
    return _rows(
        conn.execute(
            f"""SELECT {key_sql} AS key, COUNT(*) AS calls, COALESCE(SUM(input_tokens), 0) AS input_tokens,
                   COALESCE(SUM(output_tokens), 0) AS output_tokens, COALESCE(SUM(cost_usd), 0) AS cost_usd
            FROM spans WHERE span_type = 'llm' AND {w} GROUP BY key ORDER BY cost_usd DESC, input_tokens + output_tokens DESC LIMIT ?""",
            [*p, limit],
        )
    )


def stats(conn: sqlite3.Connection, filters: Filters | None = None) -> dict[str, Any]:
    """Everything ``chatobs stats`` shows, for the time window in ``filters`` (other filters are ignored)."""
    f = filters or Filters()
    w, p = _window(f)
    tw, tp = _window(f, "t.start_ns")
    totals = dict(
        conn.execute(
            f"""SELECT COALESCE(SUM({TURN_SQL}), 0) AS turns, COALESCE(SUM(NOT {TURN_SQL}), 0) AS other_traces,
                   COUNT(*) AS traces, COUNT(DISTINCT conversation_id) AS conversations, COUNT(DISTINCT user_id) AS users,
                   COALESCE(SUM(llm_calls), 0) AS llm_calls, COALESCE(SUM(tool_calls), 0) AS tool_calls,
                   COALESCE(SUM(input_tokens), 0) AS input_tokens, COALESCE(SUM(output_tokens), 0) AS output_tokens,
                   COALESCE(SUM(cost_usd), 0) AS cost_usd, COALESCE(SUM(error_count > 0), 0) AS error_traces,
                   MIN(start_ns) AS first_ns, MAX(start_ns) AS last_ns
            FROM traces t WHERE {tw}""",
            tp,
        ).fetchone()
    )
    result: dict[str, Any] = {
        "window": {"since_ns": f.since_ns, "until_ns": f.until_ns},
        "totals": totals,
        "latency_by_route": _latency(
            conn, f"SELECT COALESCE(t.route, t.name), t.duration_ms FROM traces t WHERE {tw}", tp
        ),
        "latency_by_model": _latency(conn, f"SELECT model, duration_ms FROM spans WHERE span_type = 'llm' AND {w}", p),
        "latency_by_tool": _latency(
            conn, f"SELECT tool_name, duration_ms FROM spans WHERE {OWNED_TOOL_SQL} AND {w}", p
        ),
        "usage_by_model": _usage(conn, "COALESCE(model, '(unknown)')", w, p),
        "by_prompt_version": by_prompt(conn, w, p),
        "usage_by_user": _usage(conn, "COALESCE(user_id, '(anonymous)')", w, p),
        "usage_by_conversation": _usage(conn, "COALESCE(conversation_id, '(none)')", w, p),
        "usage_by_day": _rows(
            conn.execute(
                f"""SELECT date(start_ns / 1000000000, 'unixepoch') AS key, COUNT(*) AS calls,
                       COALESCE(SUM(input_tokens), 0) AS input_tokens, COALESCE(SUM(output_tokens), 0) AS output_tokens,
                       COALESCE(SUM(cost_usd), 0) AS cost_usd
                FROM spans WHERE span_type = 'llm' AND {w} GROUP BY key ORDER BY key""",
                p,
            )
        ),
        "tools_by_server": _rows(
            conn.execute(
                f"""SELECT COALESCE(mcp_server, '(local)') AS server, tool_name AS tool, COUNT(*) AS calls,
                       SUM(status = 'ok') AS ok, SUM(status = 'error') AS errors,
                       ROUND(100.0 * SUM(status = 'ok') / COUNT(*), 1) AS success_pct,
                       AVG(duration_ms) AS avg_ms, MAX(duration_ms) AS max_ms
                FROM spans WHERE {OWNED_TOOL_SQL} AND {w} GROUP BY server, tool ORDER BY calls DESC LIMIT 50""",
                p,
            )
        ),
        "slowest_tool_calls": _rows(
            conn.execute(
                f"""SELECT trace_id, COALESCE(mcp_server, '(local)') AS server, tool_name AS tool, duration_ms, status, start_ns
                FROM spans WHERE {OWNED_TOOL_SQL} AND {w} ORDER BY duration_ms DESC LIMIT 10""",
                p,
            )
        ),
        "tool_errors": _rows(
            conn.execute(
                f"""SELECT trace_id, COALESCE(mcp_server, '(local)') AS server, tool_name AS tool, status_message AS error, start_ns
                FROM spans WHERE {OWNED_TOOL_SQL} AND status = 'error' AND {w} ORDER BY start_ns DESC LIMIT 10""",
                p,
            )
        ),
        "llm_errors_by_provider": _rows(
            conn.execute(
                f"""SELECT COALESCE(provider, '(unknown)') AS provider, COUNT(*) AS calls, SUM(status = 'error') AS errors,
                       ROUND(100.0 * SUM(status = 'error') / COUNT(*), 2) AS error_pct
                FROM spans WHERE span_type = 'llm' AND {w} GROUP BY provider ORDER BY calls DESC""",
                p,
            )
        ),
        "active_conversations": _rows(
            conn.execute(
                f"""SELECT conversation_id AS key, COUNT(*) AS turns, MAX(user_id) AS user_id, MAX(start_ns) AS last_ns
                FROM traces t WHERE conversation_id IS NOT NULL AND {tw} GROUP BY conversation_id ORDER BY turns DESC, last_ns DESC LIMIT 10""",
                tp,
            )
        ),
        "active_users": _rows(
            conn.execute(
                f"""SELECT user_id AS key, COUNT(*) AS turns, COUNT(DISTINCT conversation_id) AS conversations, MAX(start_ns) AS last_ns
                FROM traces t WHERE user_id IS NOT NULL AND {tw} GROUP BY user_id ORDER BY turns DESC, last_ns DESC LIMIT 10""",
                tp,
            )
        ),
        "hourly_traffic": _rows(
            conn.execute(
                f"""SELECT strftime('%Y-%m-%d %H:00', start_ns / 1000000000, 'unixepoch') AS hour, COUNT(*) AS traces,
                       SUM({TURN_SQL}) AS turns, SUM(error_count > 0) AS errors
                FROM traces t WHERE {tw} GROUP BY hour ORDER BY hour""",
                tp,
            )
        ),
    }
    return result


# --- export ---------------------------------------------------------------------------------------------------------
def iter_spans(
    conn: sqlite3.Connection, filters: Filters | None = None, *, chunk: int = 500
) -> Iterator[dict[str, Any]]:
    """Every span of the matching traces, trace by trace (oldest first), attributes decoded."""
    where, params = (filters or Filters()).where()
    trace_ids = [r[0] for r in conn.execute(f"SELECT t.trace_id FROM traces t{where} ORDER BY t.start_ns", params)]
    for i in range(0, len(trace_ids), chunk):
        ids = trace_ids[i : i + chunk]
        marks = ",".join("?" * len(ids))
        order = {tid: n for n, tid in enumerate(ids)}
        rows = [_span_dict(r) for r in conn.execute(f"SELECT * FROM spans WHERE trace_id IN ({marks})", ids)]
        rows.sort(key=lambda s: (order[s["trace_id"]], s["start_ns"]))
        yield from rows
