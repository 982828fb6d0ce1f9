"""Read side of the ``feedback`` table: a trace's or conversation's ratings, and ``chatobs stats`` per model and
prompt version (turns, feedback counts, mean score, cost, turn latency) so two prompt versions compare side by side."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from ...core import semconv
from ...core.numbers import percentile

__all__ = ["NEGATIVE_SQL", "by_prompt", "feedback_for", "has_feedback"]

# Conditions on the traces table (alias t) for ``--feedback``: any rating, a negative one, only positive ones.
NEGATIVE_SQL = "EXISTS (SELECT 1 FROM feedback f WHERE f.trace_id = {a}.trace_id AND f.negative = 1)"
FEEDBACK_SQL = {
    "any": "EXISTS (SELECT 1 FROM feedback f WHERE f.trace_id = {a}.trace_id)",
    "negative": NEGATIVE_SQL,
    "positive": "EXISTS (SELECT 1 FROM feedback f WHERE f.trace_id = {a}.trace_id) AND NOT " + NEGATIVE_SQL,
    "none": "NOT EXISTS (SELECT 1 FROM feedback f WHERE f.trace_id = {a}.trace_id)",
}


def has_feedback(conn: sqlite3.Connection) -> bool:
    """False for a store last written by a chatobs before feedback (opened read-only, not migrated)."""
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'feedback'").fetchone() is not None


def feedback_for(conn: sqlite3.Connection, trace_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """trace ID -> its ratings, oldest first (without the raw attributes)."""
    ids = list(trace_ids)
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if not ids or not has_feedback(conn):
        return out
    marks = ",".join("?" * len(ids))
    for r in conn.execute(
        f"""SELECT feedback_id, trace_id, name, kind, value, label, negative, comment, user_id, created_ns
            FROM feedback WHERE trace_id IN ({marks}) ORDER BY created_ns""",
        ids,
    ):
        row = dict(r)
        row["negative"] = bool(row["negative"])
        out[row["trace_id"]].append(row)
    return out


def _percentile(values: list[float], q: float) -> float | None:
    return percentile(sorted(values), q)


def by_prompt(conn: sqlite3.Connection, window_sql: str, params: list[Any]) -> list[dict[str, Any]]:
    """One row per (model, prompt name, prompt version) of the LLM calls in the window (``window_sql`` on
    ``spans.start_ns``): turns, LLM calls, cost, p50/p95 turn latency, and the turns' feedback (count, negative,
    mean score of the numeric and thumbs ratings)."""
    name_sql = f"json_extract(s.attributes, '$.\"{semconv.GEN_AI_PROMPT_NAME}\"')"
    version_sql = f"json_extract(s.attributes, '$.\"{semconv.GEN_AI_PROMPT_VERSION}\"')"
    groups: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    turn_ms: dict[str, float] = {}
    for model, pname, pversion, trace_id, cost, duration in conn.execute(
        f"""SELECT s.model, {name_sql}, {version_sql}, s.trace_id, s.cost_usd, t.duration_ms
            FROM spans s JOIN traces t ON t.trace_id = s.trace_id
            WHERE s.span_type = 'llm' AND {window_sql.replace("start_ns", "s.start_ns")}""",
        params,
    ):
        g = groups.setdefault((model, pname, pversion), {"traces": set(), "llm_calls": 0, "cost_usd": 0.0})
        g["traces"].add(trace_id)
        g["llm_calls"] += 1
        g["cost_usd"] += cost or 0.0
        turn_ms[trace_id] = duration or 0.0
    ratings = feedback_for(conn, turn_ms) if turn_ms else {}
    out = []
    for (model, pname, pversion), g in groups.items():
        fb = [r for t in g["traces"] for r in ratings.get(t, ())]
        scores = [r["value"] for r in fb if r["value"] is not None]
        latencies = [turn_ms[t] for t in g["traces"]]
        out.append(
            {
                "model": model or "(unknown)",
                "prompt": pname or "(none)",
                "version": pversion or "-",
                "turns": len(g["traces"]),
                "llm_calls": g["llm_calls"],
                "feedback": len(fb),
                "negative": sum(1 for r in fb if r["negative"]),
                "mean_score": round(sum(scores) / len(scores), 3) if scores else None,
                "cost_usd": g["cost_usd"],
                "p50_ms": _percentile(latencies, 50),
                "p95_ms": _percentile(latencies, 95),
            }
        )
    return sorted(out, key=lambda r: (r["prompt"], r["version"], r["model"]))
