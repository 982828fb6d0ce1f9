"""The ``traces`` table: one summary row per trace, computed from its spans -- in SQL, or in Python from a batch.

A trace's spans may arrive in several batches, even from several processes (an MCP server writing to the same
file), so a summary is recomputed from every stored span of the trace, never incremented. Most traces, though, are
written in one batch: when no span of a trace was stored before the batch, the batch holds all of its spans and the
summary is computed here from the rows in hand (``summarize``), which costs a fraction of the SQL aggregate. Both
ways give the same row; ``tests/store/test_summary.py`` holds them to it.

The root is the chat request span if there is one, else a span without a parent, else the earliest. Identity and
route come from the root, else from any span (the greatest value, as SQL's ``MAX``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .rows import OWNED_TOOL_SQL, SPAN_COLUMNS, owns_tool_row

TRACE_COLUMNS: tuple[str, ...] = (
    "trace_id",
    "root_span_id",
    "name",
    "route",
    "start_ns",
    "end_ns",
    "duration_ms",
    "conversation_id",
    "user_id",
    "tenant_id",
    "message_id",
    "service_name",
    "status",
    "span_count",
    "error_count",
    "llm_calls",
    "tool_calls",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "models",
)

INSERT_TRACES = (
    f"INSERT OR REPLACE INTO traces ({', '.join(TRACE_COLUMNS)}) VALUES ({', '.join('?' * len(TRACE_COLUMNS))})"
)

# An update in place, not a REPLACE (delete + insert): an index is only rewritten when the update sets one of its
# columns, and the second part of a trace rarely changes its start, identity or status.
_UPDATE = ", ".join(f"{c} = excluded.{c}" for c in TRACE_COLUMNS[1:])


def refresh_sql(trace_ids: str) -> str:
    """Recompute the summaries of the traces selected by the subquery ``trace_ids``, from every stored span."""
    return f"""
INSERT INTO traces ({", ".join(TRACE_COLUMNS)})
SELECT a.trace_id, r.span_id, r.name, COALESCE(r.route, a.route), a.start_ns, a.end_ns, (a.end_ns - a.start_ns) / 1e6,
       COALESCE(r.conversation_id, a.conversation_id), COALESCE(r.user_id, a.user_id),
       COALESCE(r.tenant_id, a.tenant_id), COALESCE(r.message_id, a.message_id), r.service_name,
       CASE WHEN a.error_count > 0 THEN 'error' ELSE 'ok' END, a.span_count, a.error_count, a.llm_calls,
       a.tool_calls, a.input_tokens, a.output_tokens, a.cost_usd, a.models
FROM (
    SELECT trace_id, MIN(start_ns) AS start_ns, MAX(end_ns) AS end_ns, MAX(route) AS route,
           MAX(conversation_id) AS conversation_id, MAX(user_id) AS user_id, MAX(tenant_id) AS tenant_id,
           MAX(message_id) AS message_id, COUNT(*) AS span_count, SUM(status = 'error') AS error_count,
           SUM(span_type = 'llm') AS llm_calls, SUM({OWNED_TOOL_SQL}) AS tool_calls,
           SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, SUM(cost_usd) AS cost_usd,
           GROUP_CONCAT(DISTINCT model) AS models
    FROM spans WHERE trace_id IN ({trace_ids}) GROUP BY trace_id  -- primary key order: by trace, then span ID
) a JOIN spans r ON r.trace_id = a.trace_id AND r.span_id = (
    SELECT s.span_id FROM spans s WHERE s.trace_id = a.trace_id
    ORDER BY (s.span_type = 'request') DESC, (s.parent_id IS NULL) DESC, s.start_ns, s.span_id LIMIT 1)
WHERE true
ON CONFLICT (trace_id) DO UPDATE SET {_UPDATE}
"""


# The traces whose IDs are given as one JSON array parameter: one prepared statement whatever the batch holds.
REFRESH_GIVEN = refresh_sql("SELECT value FROM json_each(?)")

_I = {name: i for i, name in enumerate(SPAN_COLUMNS)}
_TRACE, _SPAN, _PARENT, _NAME, _TYPE = _I["trace_id"], _I["span_id"], _I["parent_id"], _I["name"], _I["span_type"]
_START, _END, _STATUS, _ROUTE, _SERVICE = _I["start_ns"], _I["end_ns"], _I["status"], _I["route"], _I["service_name"]
_IDENTITY = (_I["conversation_id"], _I["user_id"], _I["tenant_id"], _I["message_id"])
_IN, _OUT, _COST, _MODEL = _I["input_tokens"], _I["output_tokens"], _I["cost_usd"], _I["model"]
_KIND, _ATTRS = _I["kind"], _I["attributes"]


def _max(rows: Sequence[Sequence[Any]], col: int) -> Any:
    # SQL's MAX over TEXT: NULLs skipped; Python's str order is code-point order, the same as UTF-8 byte order.
    values = [v for r in rows if (v := r[col]) is not None]
    return max(values) if values else None


def _sum(rows: Sequence[Sequence[Any]], col: int) -> Any:
    total = None
    for r in rows:
        v = r[col]
        if v is not None:
            total = v if total is None else total + v
    return total


def summarize(rows: Sequence[Sequence[Any]]) -> tuple[Any, ...]:
    """The ``traces`` row (``TRACE_COLUMNS`` order) of one trace whose stored spans are exactly ``rows``."""
    rows = sorted(rows, key=lambda r: r[_SPAN])  # the order SQL aggregates in: sums and the models list match
    root = min(rows, key=lambda r: (r[_TYPE] != "request", r[_PARENT] is not None, r[_START], r[_SPAN]))
    start = min(r[_START] for r in rows)
    end = max(r[_END] for r in rows)
    errors = sum(1 for r in rows if r[_STATUS] == "error")
    models = list(dict.fromkeys(m for r in rows if (m := r[_MODEL]) is not None))
    route = root[_ROUTE]
    conv, user, tenant, message = (root[c] if root[c] is not None else _max(rows, c) for c in _IDENTITY)
    return (
        root[_TRACE],
        root[_SPAN],
        root[_NAME],
        route if route is not None else _max(rows, _ROUTE),
        start,
        end,
        (end - start) / 1e6,
        conv,
        user,
        tenant,
        message,
        root[_SERVICE],
        "error" if errors else "ok",
        len(rows),
        errors,
        sum(1 for r in rows if r[_TYPE] == "llm"),
        sum(1 for r in rows if owns_tool_row(r[_TYPE], r[_KIND], r[_ATTRS])),
        _sum(rows, _IN),
        _sum(rows, _OUT),
        _sum(rows, _COST),
        ",".join(models) if models else None,
    )


def group_by_trace(rows: Iterable[Sequence[Any]]) -> dict[str, list[Sequence[Any]]]:
    out: dict[str, list[Sequence[Any]]] = {}
    for r in rows:
        out.setdefault(r[_TRACE], []).append(r)
    return out
