"""Feedback spans in the local store: their own ``feedback`` table, joined to ``traces`` by trace ID.

A feedback span arrives minutes or days after its turn; stored among the turn's spans it would stretch the trace's
duration and end time, so it gets a table of its own (schema step 4) and the trace summary is left as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from ...core import semconv
from .rows import dumps

FEEDBACK_COLUMNS: tuple[str, ...] = (
    "feedback_id",
    "trace_id",
    "parent_id",
    "name",
    "kind",
    "value",
    "label",
    "negative",
    "comment",
    "user_id",
    "conversation_id",
    "created_ns",
    "attributes",
)

SCHEMA_V4 = """
CREATE TABLE feedback (
    feedback_id TEXT PRIMARY KEY, trace_id TEXT NOT NULL, parent_id TEXT, name TEXT NOT NULL, kind TEXT NOT NULL,
    value REAL, label TEXT, negative INTEGER NOT NULL DEFAULT 0, comment TEXT, user_id TEXT, conversation_id TEXT,
    created_ns INTEGER NOT NULL, attributes TEXT
);
CREATE INDEX feedback_trace ON feedback(trace_id, created_ns);
CREATE INDEX feedback_created ON feedback(created_ns)
"""

INSERT_FEEDBACK = (
    f"INSERT OR REPLACE INTO feedback ({', '.join(FEEDBACK_COLUMNS)}) VALUES ({', '.join('?' * len(FEEDBACK_COLUMNS))})"
)


def is_feedback(span: ReadableSpan) -> bool:
    return bool((span.attributes or {}).get(semconv.FEEDBACK))


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def feedback_row(span: ReadableSpan) -> tuple[Any, ...]:
    a: Mapping[str, Any] = span.attributes or {}
    value = a.get(semconv.GEN_AI_EVALUATION_SCORE_VALUE)
    return (
        format(span.context.span_id, "016x"),
        format(span.context.trace_id, "032x"),
        format(span.parent.span_id, "016x") if span.parent else None,
        str(a.get(semconv.GEN_AI_EVALUATION_NAME, "user_feedback")),
        str(a.get(semconv.FEEDBACK_TYPE, "numeric")),
        float(value) if isinstance(value, (int, float)) else None,
        _str(a.get(semconv.GEN_AI_EVALUATION_SCORE_LABEL)),
        1 if a.get(semconv.FEEDBACK_NEGATIVE) else 0,
        _str(a.get(semconv.GEN_AI_EVALUATION_EXPLANATION)),  # masked by the pipeline before it got here
        _str(a.get(semconv.USER_ID)),
        _str(a.get(semconv.GEN_AI_CONVERSATION_ID)),
        span.start_time or 0,
        dumps(dict(a)),
    )
