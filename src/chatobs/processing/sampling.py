"""Sampling by conversation: every turn of a conversation is kept or dropped together, in every process.

The decision (see docs/sampling.md)::

    position(key) = first 8 bytes of SHA-256(key as UTF-8), big-endian, divided by 2**64     -> in [0, 1)
    kept          = position(key) < rate
    key           = the conversation ID (CHATOBS_SAMPLE_BY=conversation, when there is one), else the trace ID as
                    32 lowercase hex digits

Three places apply it, all with the same function:

* the head sampler (:class:`ChatSampler`, on chatobs's own tracer provider) decides when a trace's first span starts;
  a dropped chat trace is not recorded (``DROP``): chatobs's own recorders keep light spans of it (:mod:`chatobs.recording.light_spans`)
  when metrics or a tail rule need them, or, with ``CHATOBS_RECORD_UNSAMPLED=full``, every span of it is recorded
  (``RECORD_ONLY``) so that a trace a tail rule keeps is complete;
* the pipeline stage (:class:`SamplingStage`, after cost and metrics, before masking) drops the spans of unsampled
  traces, unless a tail rule (:mod:`.tail`) keeps them; when the app brought its own tracer provider (whose sampler
  chatobs cannot replace) the stage applies the conversation decision itself;
* the per-exporter rates (:func:`exporter_filter`) compare the same position with each backend's rate, so they nest.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

from ..core import semconv
from ..core.chat_scope import current, scope_from_baggage
from ..core.routes import ChatRoutes, PathFilter, chat_routes_for, server_span_request
from ..core.spans import trace_id_hex
from ..core.stats import STATS, PipelineStats
from .tail import TailBuffer, TailRules

if TYPE_CHECKING:
    from ..config import Settings

__all__ = [
    "ChatSampler",
    "HeadPolicy",
    "SamplingStage",
    "build",
    "build_sampler",
    "exporter_filter",
    "head_policy",
    "keeps",
    "sample_value",
    "sampling_key",
]

logger = logging.getLogger("chatobs")

_SCALE = 2**64


def _position(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()[:8], "big")


def sample_value(key: str) -> float:
    """Deterministic position of ``key`` in [0, 1): the same in every process, so decisions agree across workers."""
    return _position(key) / _SCALE


def _bound(rate: float) -> int:
    # Integer comparison so rate 1.0 keeps every key and rate 0.0 none, with no float rounding at the edges.
    return int(rate * _SCALE)


def keeps(key: str, rate: float) -> bool:
    """The sampling decision for ``key`` at ``rate``. Nested: kept at a rate means kept at every higher rate."""
    return _position(key) < _bound(rate)


def sampling_key(span: ReadableSpan, by: str = "conversation") -> str:
    """The key of a finished span: its conversation ID (when sampling by conversation and it has one) or trace ID."""
    attrs = span.attributes or {}
    if by == "conversation":
        conv = attrs.get(semconv.GEN_AI_CONVERSATION_ID)
        if conv:
            return str(conv)
    return trace_id_hex(span)


def exporter_filter(settings: Settings, rate: float) -> Callable[[ReadableSpan], bool]:
    """Accept function of an exporter with its own rate. Traces kept by a tail rule go to every exporter."""
    bound = _bound(rate)
    by = settings.sample_by

    def accept(span: ReadableSpan) -> bool:
        if (span.attributes or {}).get(semconv.SAMPLING_REASON):
            return True
        return _position(sampling_key(span, by)) < bound

    return accept


# --- head sampling ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HeadPolicy:
    """Resolved head-sampling settings (CHATOBS_* combined with OTEL_TRACES_SAMPLER; see docs/sampling.md)."""

    rate: float = 1.0  # root decision: keep when position(key) < rate
    by: str = "conversation"
    follow_remote: bool = True  # follow an incoming traceparent's sampled flag
    record_unsampled: bool = True  # RECORD_ONLY instead of DROP for unsampled traces (CHATOBS_RECORD_UNSAMPLED=full)
    # A root started before the conversation ID is known (e.g. OTel's ASGI instrumentation outside chatobs's
    # middleware) is recorded and decided by the pipeline when the request ends; needs the tail buffer.
    defer_unknown: bool = False

    def describe(self) -> str:
        parent = "parent-based" if self.follow_remote else "ignoring remote parents"
        unsampled = (
            "recorded in full for metrics/tail rules"
            if self.record_unsampled
            else "not recorded (chatobs keeps light spans when metrics or tail rules need them)"
        )
        return f"rate={self.rate:g} by {self.by}, {parent}, unsampled traces {unsampled}"


def tail_rules(settings: Settings) -> TailRules:
    return TailRules(keep_errors=settings.keep_errors, slow_ms=settings.keep_slow_ms, cost_usd=settings.keep_cost_usd)


def unsampled_needed(settings: Settings) -> bool:
    """Does anything need the spans of a trace head sampling dropped? Metrics (they count every request) and the tail
    rules do; what they get is set by CHATOBS_RECORD_UNSAMPLED (light spans, or every span recorded in full)."""
    return bool(settings.metrics) or tail_rules(settings).active


def head_policy(settings: Settings) -> HeadPolicy:
    """CHATOBS_SAMPLE_RATE and OTEL_TRACES_SAMPLER(_ARG) combined: both rates compare the same position, so the
    effective root rate is the smaller one; a non-parent-based OTel sampler ignores remote sampled flags."""
    rate = settings.sample_rate
    follow_remote = not settings.sample_ignore_remote_parent
    name = settings.otel_traces_sampler
    if name:
        if not name.startswith("parentbased_"):
            follow_remote = False
        base = name.removeprefix("parentbased_")
        if base == "always_off":
            rate = 0.0
        elif base == "traceidratio":
            arg = settings.otel_traces_sampler_arg
            # The spec's default ratio is 1.0; config.py already rejected a non-number.
            rate = min(rate, 1.0 if arg is None or not arg.strip() else float(arg))
    elif settings.otel_traces_sampler_arg is not None:
        logger.info("chatobs: OTEL_TRACES_SAMPLER_ARG is set but OTEL_TRACES_SAMPLER is not; the argument is ignored")
    rules_on = tail_rules(settings).active
    # "light": the sampler drops unsampled traces outright and chatobs's recorders keep light spans (chatobs.recording.light_spans)
    # for metrics and the tail rules; "full": every span is recorded (RECORD_ONLY) until the request ends.
    record = unsampled_needed(settings) and settings.record_unsampled == "full"
    defer = rules_on and settings.sample_by == "conversation" and 0.0 < rate < 1.0
    return HeadPolicy(
        rate=rate, by=settings.sample_by, follow_remote=follow_remote, record_unsampled=record, defer_unknown=defer
    )


def _result(decision: Decision, attributes: Attributes, trace_state: TraceState | None) -> SamplingResult:
    # The SDK creates the span with the sampler's attributes: the ones passed at start must be handed back.
    return SamplingResult(decision, attributes if decision is not Decision.DROP else None, trace_state)


class ChatSampler(Sampler):
    """Parent-based sampler whose root decision is keyed on the conversation ID of the chat scope.

    Local parents are always followed (a span recorded-but-unsampled because of this sampler has recorded children,
    so tail rules see the whole trace); remote parents are followed unless ``follow_remote`` is off.

    SERVER spans are judged by the method and path they start with, whoever opens them (chatobs, FastAPI's native
    telemetry, OpenTelemetry's ASGI/WSGI instrumentation): an ``excluded`` path is dropped with everything under it;
    a root request outside ``chat_routes`` is treated as unsampled (counted by metrics, never kept by a tail rule).
    """

    def __init__(
        self, policy: HeadPolicy, excluded: PathFilter | None = None, chat_routes: ChatRoutes | None = None
    ) -> None:
        self.policy = policy
        self._bound = _bound(policy.rate)
        self._unsampled = Decision.RECORD_ONLY if policy.record_unsampled else Decision.DROP
        self._by_conversation = policy.by == "conversation"
        self._excluded = excluded
        self._chat_routes = chat_routes if chat_routes is not None and not chat_routes.all else None

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        non_chat = False
        if kind is SpanKind.SERVER and (self._excluded is not None or self._chat_routes is not None):
            method, path = server_span_request(attributes)
            if path is not None:
                if self._excluded is not None and self._excluded.excluded(path):
                    return _result(Decision.DROP, attributes, None)
                routes = self._chat_routes
                non_chat = routes is not None and method is not None and not routes.is_chat(method, path)
        parent = trace.get_current_span(parent_context)
        pctx = parent.get_span_context()
        if pctx.is_valid:
            state = pctx.trace_state
            if not pctx.is_remote:
                if pctx.trace_flags.sampled:
                    return _result(Decision.RECORD_AND_SAMPLE, attributes, state)
                # A recording parent is an SDK span (RECORD_ONLY: recorded in full, or its decision deferred); a
                # DROPped parent is a NonRecordingSpan, or one of chatobs's light spans.
                recorded = isinstance(parent, ReadableSpan)
                return _result(Decision.RECORD_ONLY if recorded else Decision.DROP, attributes, state)
            if self.policy.follow_remote:
                return _result(
                    Decision.RECORD_AND_SAMPLE if pctx.trace_flags.sampled else self._unsampled, attributes, state
                )
        else:
            state = None
        if non_chat:
            # A root request that is not a chat turn: a remote parent's sampled flag (followed above) still wins, so a
            # call from an upstream chat turn joins it.
            return _result(self._unsampled, attributes, state)
        keep = self._root_keeps(parent_context, trace_id)
        if keep is None:
            return _result(Decision.RECORD_ONLY, attributes, state)
        return _result(Decision.RECORD_AND_SAMPLE if keep else self._unsampled, attributes, state)

    def _root_keeps(self, ctx: Context | None, trace_id: int) -> bool | None:
        """True/False, or None: no conversation ID yet, let the pipeline decide when the request ends."""
        bound = self._bound
        if bound >= _SCALE:
            return True
        if bound <= 0:
            return False
        key = None
        if self._by_conversation:
            # The scope normally sits in the parent context; a caller passing an explicit (e.g. extracted remote)
            # context still has it in the active one.
            s = current(ctx) or current() or scope_from_baggage(ctx)
            if s is not None and s.conversation_id:
                key = s.conversation_id
            elif self.policy.defer_unknown:
                return None
        return _position(key if key is not None else format(trace_id, "032x")) < bound

    def get_description(self) -> str:
        return f"ChatSampler({self.policy.describe()})"


def build_sampler(settings: Settings) -> Sampler:
    routes = chat_routes_for(settings)
    return ChatSampler(head_policy(settings), PathFilter(settings.exclude_paths), routes)


# --- the pipeline stage ---------------------------------------------------------------------------------------------
class SamplingStage:
    """Drops the spans of unsampled traces (after metrics saw them) unless a tail rule keeps them.

    ``head_in_stage``: apply the conversation decision here because chatobs's sampler is not the provider's (the app
    brought its own ``TracerProvider``). ``None`` finds out from the running chatobs.
    """

    name = "sampling"
    pass_on_error = False  # a failed decision must not export a trace the sampler would have dropped

    def __init__(
        self,
        settings: Settings,
        *,
        head_in_stage: bool | None = None,
        stats: PipelineStats = STATS,
    ) -> None:
        self.stats = stats
        self.policy = head_policy(settings)
        self._policy_bound = _bound(self.policy.rate)
        rules = tail_rules(settings)
        self.tail: TailBuffer | None = None
        if rules.active:
            self.tail = TailBuffer(
                rules,
                max_traces=settings.tail_max_traces,
                max_spans_per_trace=settings.tail_max_spans_per_trace,
                max_bytes=settings.tail_max_bytes,
                max_age_s=settings.tail_max_age_s,
                head_check=self._deferred_head_keeps,
                stats=stats,
            )
        self._head_in_stage = head_in_stage
        # In the stage, only CHATOBS_SAMPLE_RATE applies: the app's own provider already applied OTEL_TRACES_SAMPLER.
        self._bound = _bound(settings.sample_rate)
        self._by = settings.sample_by
        self._trace_keep: OrderedDict[int, bool] = OrderedDict()  # trace -> kept; bounded: _max_memo traces (LRU)
        self._max_memo = max(1024, settings.tail_max_traces)
        self._lock = threading.Lock()

    def process(self, spans: list[ReadableSpan]) -> list[ReadableSpan]:
        with self._lock:
            head_in_stage = self._resolve_mode()
            out: list[ReadableSpan] = []
            dropped = 0
            tail = self.tail
            for span in spans:
                ctx = span.context
                if ctx is None:
                    continue
                kept = ctx.trace_flags.sampled
                if kept and head_in_stage:
                    # The app's sampler kept it: apply the conversation rate and the chat-route rule here instead.
                    kept = self._stage_keeps(span) and (span.attributes or {}).get(semconv.CHAT_TURN) is not False
                if kept:
                    out.append(span)
                elif tail is not None and (span.attributes or {}).get(semconv.CHAT_TURN) is not False:
                    # A request outside CHATOBS_CHAT_ROUTES is counted by metrics (they ran before), never kept.
                    out += tail.add(span)
                else:
                    dropped += 1
            if tail is not None:
                out += tail.sweep()
            if dropped:
                self.stats.count("sampling.dropped_spans", dropped)
            return out

    def flush(self) -> list[ReadableSpan]:
        with self._lock:
            return self.tail.flush() if self.tail is not None else []

    def shutdown(self) -> None:
        with self._lock:
            self._trace_keep.clear()

    def _resolve_mode(self) -> bool:
        if self._head_in_stage is not None:
            return self._head_in_stage
        from ..recording.installed import runtime_or_none

        rt = runtime_or_none()
        if rt is None:
            # Between building the pipeline and finishing init(): ask the global provider directly.
            return not getattr(trace.get_tracer_provider(), "_chatobs_owned", False)
        self._head_in_stage = not rt.owns_provider
        if self._head_in_stage:
            logger.info(
                "chatobs: the app's own TracerProvider samples; chatobs applies CHATOBS_SAMPLE_RATE by %s in the pipeline",
                self._by,
            )
        return self._head_in_stage

    def _stage_keeps(self, span: ReadableSpan) -> bool:
        """The head decision for a span the app's sampler kept. One decision per trace: the spans carrying the
        conversation ID decide, spans of the same trace without it (an outer app span) follow."""
        tid = span.context.trace_id
        memo = self._trace_keep
        conv = (span.attributes or {}).get(semconv.GEN_AI_CONVERSATION_ID) if self._by == "conversation" else None
        if conv:
            keep = _position(str(conv)) < self._bound
            memo[tid] = keep
            memo.move_to_end(tid)
            if len(memo) > self._max_memo:
                memo.popitem(last=False)
            return keep
        known = memo.get(tid)
        if known is not None:
            return known
        return _position(format(tid, "032x")) < self._bound

    def _deferred_head_keeps(self, root: ReadableSpan | None, held: list[ReadableSpan]) -> bool:
        """The head decision for a trace the sampler recorded without deciding (conversation unknown at its start):
        the same key and rate, now that the spans carry the conversation ID. A trace that head sampling dropped with
        the conversation known gets the same "no" again, and so does one whose root followed a remote parent's flag
        (when decided early, before the root ended, that cannot be seen: the key decides)."""
        if not self.policy.defer_unknown or not held:
            return False
        if root is not None:
            parent = root.parent
            if parent is not None and parent.is_remote and self.policy.follow_remote:
                return False
        first = root if root is not None else held[0]
        key = None
        if self._by == "conversation":
            for span in (first, *held):
                conv = (span.attributes or {}).get(semconv.GEN_AI_CONVERSATION_ID)
                if conv:
                    key = str(conv)
                    break
        if key is None:
            key = format(first.context.trace_id, "032x")
        return _position(key) < self._policy_bound

    # --- introspection (chatobs doctor) ---------------------------------------------------------------------------
    def held(self) -> dict[str, int]:
        tail = self.tail
        if tail is None:
            return {"traces": 0, "bytes": 0}
        return {"traces": tail.held_traces, "bytes": tail.held_bytes}


def build(settings: Settings) -> SamplingStage:
    return SamplingStage(settings)
