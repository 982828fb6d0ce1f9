"""``chatobs.feedback()``: a user's verdict on a chat turn, recorded as one span in the rated trace.

The span carries the OTel GenAI evaluation-result attributes (``gen_ai.evaluation.name``, ``.score.value``,
``.score.label``, ``.explanation``) and the ``gen_ai.evaluation.result`` event, and goes through the pipeline like any
span: the comment is masked and scrubbed before any exporter sees it, and each exporter translates it (a Langfuse
score, an Opik feedback score, the span as is over OTLP, a row of the local store's ``feedback`` table).

It is created in a fresh context (never under the request that happens to be running, e.g. the feedback route's own),
as a child of the rated turn's request span when a feedback token names it, with the trace's Opik time in its
``tracestate`` so the Opik exporter maps it onto the same Opik trace as the turn.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState

from ...core import semconv
from ...core.guard import log_limited

__all__ = ["MAX_LABEL_CHARS", "MAX_NAME_CHARS", "Rating", "feedback", "parse_rating", "record"]

MAX_NAME_CHARS = 64
MAX_LABEL_CHARS = 64
DEFAULT_MAX_COMMENT_CHARS = 2000
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_TRACE_RE = re.compile(r"[0-9a-f]{32}")
# Category labels counted as negative feedback (besides False and numbers <= 0); compared lower-cased.
NEGATIVE_LABELS = frozenset({"negative", "bad", "down", "thumbs_down", "thumbs-down", "no", "wrong", "unhelpful"})


@dataclass(frozen=True, slots=True)
class Rating:
    """A validated feedback value: ``kind`` boolean | numeric | categorical."""

    name: str
    kind: str
    score: float | None  # boolean: 1.0 / 0.0; numeric: the number; categorical: None
    label: str | None  # boolean: positive / negative; categorical: the category
    negative: bool
    comment: str | None


def parse_rating(value: Any, name: Any, comment: Any, *, max_comment_chars: int = DEFAULT_MAX_COMMENT_CHARS) -> Rating:
    """Validate a rating; ``ValueError`` naming the field and what was expected."""
    if not isinstance(name, str) or not (1 <= len(name) <= MAX_NAME_CHARS) or not _NAME_RE.fullmatch(name):
        raise ValueError(
            f"name: expected 1 to {MAX_NAME_CHARS} letters, digits, '_', '.' or '-' (such as user_feedback), got {name!r:.80}"
        )
    if comment is not None:
        if not isinstance(comment, str):
            raise ValueError(f"comment: expected a string, got {type(comment).__name__}")
        if len(comment) > max_comment_chars:
            raise ValueError(f"comment: at most {max_comment_chars} characters, got {len(comment)}")
        comment = comment.strip() or None
    if isinstance(value, bool):
        return Rating(name, "boolean", 1.0 if value else 0.0, "positive" if value else "negative", not value, comment)
    if isinstance(value, (int, float)):
        score = float(value)
        if not math.isfinite(score):
            raise ValueError(f"value: expected a finite number, got {value!r}")
        return Rating(name, "numeric", score, None, score <= 0, comment)
    if isinstance(value, str):
        label = value.strip()
        if not label or len(label) > MAX_LABEL_CHARS or not label.isprintable():
            raise ValueError(
                f"value: a category must be 1 to {MAX_LABEL_CHARS} printable characters, got {value!r:.80}"
            )
        return Rating(name, "categorical", None, label, label.lower() in NEGATIVE_LABELS, comment)
    raise ValueError(
        f"value: expected true/false (thumbs), a number or a short category string, got {type(value).__name__}"
    )


def check_trace_id(trace_id: Any) -> str:
    if not isinstance(trace_id, str) or not _TRACE_RE.fullmatch(trace_id.lower()) or int(trace_id, 16) == 0:
        raise ValueError(
            f"trace_id: expected 32 hexadecimal characters (the X-Trace-Id of the turn), got {trace_id!r:.80}"
        )
    return trace_id.lower()


def _attributes(r: Rating, user_id: str | None, conversation_id: str | None) -> dict[str, Any]:
    from ...core.chat_scope import exported_user_id

    attrs: dict[str, Any] = {
        semconv.FEEDBACK: True,
        semconv.FEEDBACK_TYPE: r.kind,
        semconv.FEEDBACK_NEGATIVE: r.negative,
        semconv.GEN_AI_EVALUATION_NAME: r.name,
    }
    if r.score is not None:
        attrs[semconv.GEN_AI_EVALUATION_SCORE_VALUE] = r.score
    if r.label is not None:
        attrs[semconv.GEN_AI_EVALUATION_SCORE_LABEL] = r.label
    if r.comment is not None:
        attrs[semconv.GEN_AI_EVALUATION_EXPLANATION] = r.comment
    if user_id:
        attrs[semconv.USER_ID] = exported_user_id(user_id)
    if conversation_id:
        attrs[semconv.GEN_AI_CONVERSATION_ID] = conversation_id
        attrs[semconv.SESSION_ID] = conversation_id
    return attrs


def record(
    trace_id: str,
    rating: Rating,
    *,
    parent_span_id: str | None = None,
    trace_ms: int | None = None,
    sampled: bool = True,
    user_id: str | None = None,
    conversation_id: str | None = None,
) -> str | None:
    """Create and end the feedback span; its span ID (hex), or ``None`` when chatobs is not recording."""
    tid = int(trace_id, 16)
    # Without the turn's span ID (a script that only knows the trace ID) the span hangs off a stand-in parent: the
    # trace's low 64 bits, the same for every feedback on that trace.
    sid = int(parent_span_id, 16) if parent_span_id else (tid & 0xFFFFFFFFFFFFFFFF) or 1
    state = TraceState()
    if trace_ms is not None:
        from ..middleware.tracecontext import CHATOBS_KEY, trace_time_ms

        state = TraceState([(CHATOBS_KEY, f"t{trace_ms:x}")])
        trace_time_ms(tid, trace_ms, state)  # this process's hand-off tells the agent the trace's Opik time too
    parent = SpanContext(tid, sid, is_remote=True, trace_flags=TraceFlags(1 if sampled else 0), trace_state=state)
    ctx = trace.set_span_in_context(NonRecordingSpan(parent), otel_context.Context())
    from ..tracer import get_tracer

    attrs = _attributes(rating, user_id, conversation_id)
    event = {k: v for k, v in attrs.items() if k.startswith("gen_ai.evaluation.")}
    # Attached, so nothing of the request running now (its scope, its baggage) lands on the feedback span.
    token = otel_context.attach(ctx)
    try:
        span = get_tracer().start_span(f"feedback {rating.name}", context=ctx, kind=SpanKind.INTERNAL, attributes=attrs)
        span.add_event(semconv.GEN_AI_EVALUATION_RESULT, event)
        span.end()
    finally:
        otel_context.detach(token)
    sc = span.get_span_context()
    return format(sc.span_id, "016x") if sc.is_valid else None


def feedback(
    trace_id: str,
    value: bool | float | str,
    *,
    name: str = "user_feedback",
    comment: str | None = None,
    user_id: str | None = None,
    token: str | None = None,
) -> str | None:
    """Record a user's verdict on the turn that produced trace ``trace_id`` (a bool for thumbs, a number, or a short
    category), from any request, process or script. Raises ``ValueError`` on a malformed trace ID, value, name or
    comment; never fails otherwise (a backend that is down costs nothing here).

    ``token`` (the feedback token the turn's response carried) is optional here -- the app's own code is trusted --
    but with it the feedback hangs off the turn's request span and lands on the same Opik trace from any process.
    Returns the feedback span's ID, or ``None`` when chatobs is disabled.
    """
    import chatobs  # the public init(), as the app would call it: the runtime sits above this layer

    from ..installed import runtime_or_none, settings_or_none

    trace_id = check_trace_id(trace_id)
    if runtime_or_none() is None:
        chatobs.init()  # a script calling feedback() first: same as the middleware does
    settings = settings_or_none()
    if settings is None or not settings.active:
        return None
    rating = parse_rating(value, name, comment, max_comment_chars=settings.feedback_max_comment_chars)
    if user_id is not None and (not isinstance(user_id, str) or not user_id.strip()):
        raise ValueError(f"user_id: expected a non-empty string, got {user_id!r:.80}")
    facts = None
    if token is not None:
        from .token import key_for, verify

        facts = verify(
            key_for(settings),
            token,
            trace_id,
            user_id=user_id,
            max_age_s=settings.feedback_max_age_hours * 3600,
        )
    try:
        return record(
            trace_id,
            rating,
            parent_span_id=facts.span_id if facts else None,
            trace_ms=facts.trace_ms if facts else _known_trace_ms(int(trace_id, 16)),
            sampled=facts.sampled if facts else True,
            user_id=user_id,
        )
    except Exception as exc:  # noqa: BLE001 - never the app's problem once the input was valid
        log_limited("feedback", "chatobs: could not record feedback: %s: %s", type(exc).__name__, exc)
        return None


def _known_trace_ms(tid: int) -> int | None:
    """The Opik time this process fixed for the trace (a turn it served itself), if any."""
    from ..middleware import tracecontext

    return tracecontext._times.get(tid)
