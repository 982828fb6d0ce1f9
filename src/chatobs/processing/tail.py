"""Tail rules: hold the spans of traces head sampling dropped until the request ends, then keep the ones that matter.

A trace is decided when its chat root span (``chatobs.request=True``) -- or, for a trace without one, its local root
span -- ends: kept when any span failed, when the request was slower than ``CHATOBS_KEEP_SLOW_MS``, or when its LLM
cost exceeds ``CHATOBS_KEEP_COST_USD``. Kept spans are marked ``chatobs.sampling.reason`` and flagged sampled.

Memory is bounded three ways (open traces, spans per trace, approximate bytes) plus an age limit; hitting a bound
decides the affected trace early on what has arrived, and the pipeline stats count it. A trace dropped early is not
forgotten: if its root or a later span then trips a rule, what is left of it is kept (marked like any other).
Runs on the pipeline thread only.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, StatusCode, TraceFlags

from ..core import semconv
from ..core.spans import is_chat_root, with_changes
from ..core.stats import STATS, PipelineStats

__all__ = ["TailBuffer", "TailRules", "span_size"]

# Python objects behind one finished span (context, dicts, tuples, resource reference) before its attribute values.
_SPAN_OVERHEAD = 1200
_EVENT_OVERHEAD = 300


def span_size(span: ReadableSpan) -> int:
    """Approximate memory a held span costs: a fixed overhead plus the size of its attribute and event values."""
    n = _SPAN_OVERHEAD + _attrs_size(span.attributes)
    for event in span.events:
        n += _EVENT_OVERHEAD + _attrs_size(event.attributes)
    return n


def _attrs_size(attrs: object) -> int:
    if not attrs:
        return 0
    n = 0
    for key, value in attrs.items():  # type: ignore[attr-defined]
        n += 60 + len(key)
        if isinstance(value, (str, bytes)):
            n += len(value)
        elif isinstance(value, (tuple, list)):
            n += sum(len(v) + 50 if isinstance(v, (str, bytes)) else 24 for v in value)
    return n


@dataclass(frozen=True, slots=True)
class TailRules:
    """What makes a head-dropped trace worth keeping. ``active`` is False when no rule is on (then nothing is held)."""

    keep_errors: bool = True
    slow_ms: float | None = None
    cost_usd: float | None = None

    @property
    def active(self) -> bool:
        return self.keep_errors or self.slow_ms is not None or self.cost_usd is not None


@dataclass(slots=True)
class _Held:
    spans: list[ReadableSpan] = field(default_factory=list)
    nbytes: int = 0
    since: float = 0.0  # monotonic time the first span was held
    first_start_ns: int = 0  # earliest span start (wall clock, like span times)
    error: bool = False
    cost: float = 0.0  # summed over LLM spans
    root_cost: float = 0.0  # a chat root may carry the trace's total: never add it to the children's
    root: ReadableSpan | None = None


@dataclass(frozen=True, slots=True)
class _Decision:
    reason: str | None  # None: dropped; "": kept by the deferred head decision (no rule); else the rules that kept it
    final: bool  # False: decided early (bound hit), the root has not ended yet


# Given the span that decides a trace (its chat root or local root; None when decided early, before it ended) and the
# spans held for it: does the head decision, deferred because the conversation ID was unknown when the trace
# started, keep it?
HeadCheck = Callable[[ReadableSpan | None, list[ReadableSpan]], bool]


class TailBuffer:
    def __init__(
        self,
        rules: TailRules,
        *,
        max_traces: int = 10000,
        max_spans_per_trace: int = 512,
        max_bytes: int = 64 * 1024 * 1024,
        max_age_s: float = 300.0,
        head_check: HeadCheck | None = None,
        stats: PipelineStats = STATS,
        clock: Callable[[], float] = time.monotonic,
        wall_clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.rules = rules
        self.head_check = head_check
        self.max_traces = max_traces
        self.max_spans = max_spans_per_trace
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.stats = stats
        self._clock = clock
        self._wall_ns = wall_clock_ns
        self._slow_ns = None if rules.slow_ms is None else int(rules.slow_ms * 1_000_000)
        self._held: OrderedDict[int, _Held] = OrderedDict()  # insertion order = oldest first
        # Decisions outlive the held spans so late spans (ending after the root) follow them; bounded like the rest.
        self._decided: OrderedDict[int, _Decision] = OrderedDict()
        self._max_decided = max(1024, max_traces)
        self.held_bytes = 0

    # --- introspection --------------------------------------------------------------------------------------------
    @property
    def held_traces(self) -> int:
        return len(self._held)

    @property
    def held_spans(self) -> int:
        return sum(len(h.spans) for h in self._held.values())

    # --- the pipeline's calls -------------------------------------------------------------------------------------
    def add(self, span: ReadableSpan) -> list[ReadableSpan]:
        """Take one span of a head-dropped trace; returns the spans released (kept) because of it, often none."""
        tid = span.context.trace_id
        root = _is_root(span)
        decided = self._decided.get(tid)
        if decided is not None:
            return self._late(tid, span, decided, root)
        out: list[ReadableSpan] = []
        held = self._held.get(tid)
        if held is None:
            if len(self._held) >= self.max_traces:
                out += self._decide(next(iter(self._held)), final=False, why="max_traces")
            held = self._held[tid] = _Held(since=self._clock(), first_start_ns=span.start_time or 0)
        size = span_size(span)
        held.spans.append(span)
        held.nbytes += size
        self.held_bytes += size
        self._note(held, span, root)
        if root:
            released = self._decide(tid, final=True)
            if not released and _serves_remote(span):
                # A process serving a remote caller sees one local root per request of the trace (an MCP server: its
                # discovery, then each tool call): a later request of the same trace can still trip a rule.
                self._remember(tid, _Decision(None, False))
            return out + released
        if len(held.spans) >= self.max_spans:
            out += self._decide(tid, final=False, why="max_spans")
        while self.held_bytes > self.max_bytes and self._held:
            out += self._decide(next(iter(self._held)), final=False, why="max_bytes")
        return out

    def sweep(self) -> list[ReadableSpan]:
        """Decide traces held too long, and keep early the ones already known to be slow. Oldest first, so cheap."""
        out: list[ReadableSpan] = []
        now = self._clock()
        now_ns = self._wall_ns()
        while self._held:
            tid, held = next(iter(self._held.items()))
            if now - held.since > self.max_age_s:
                out += self._decide(tid, final=False, why="expired")
            elif self._slow_ns is not None and held.first_start_ns and now_ns - held.first_start_ns > self._slow_ns:
                out += self._decide(tid, final=False)
            else:
                break
        return out

    def flush(self) -> list[ReadableSpan]:
        """Shutdown: decide every held trace on what is there and release the kept ones."""
        out: list[ReadableSpan] = []
        while self._held:
            out += self._decide(next(iter(self._held)), final=True, why="shutdown")
        self._decided.clear()
        return out

    # --- internals ------------------------------------------------------------------------------------------------
    def _note(self, held: _Held, span: ReadableSpan, root: bool) -> None:
        if span.start_time and (not held.first_start_ns or span.start_time < held.first_start_ns):
            held.first_start_ns = span.start_time
        if span.status.status_code is StatusCode.ERROR:
            held.error = True
        cost = (span.attributes or {}).get(semconv.COST_USD)
        if isinstance(cost, (int, float)):
            if is_chat_root(span):
                held.root_cost = max(held.root_cost, float(cost))
            else:
                held.cost += float(cost)
        if root:
            held.root = span

    def _reason(self, held: _Held, final: bool) -> str | None:
        rules = self.rules
        reasons: list[str] = []
        if rules.keep_errors and held.error:
            reasons.append("error")
        if self._slow_ns is not None:
            root = held.root
            if root is not None and root.end_time and root.start_time:
                took = root.end_time - root.start_time
            else:
                # Still running (decided early): it has been running at least this long.
                took = self._wall_ns() - held.first_start_ns if held.first_start_ns else 0
            if took > self._slow_ns:
                reasons.append("slow")
        if rules.cost_usd is not None and max(held.cost, held.root_cost) > rules.cost_usd:
            reasons.append("cost")
        return ",".join(reasons) or None

    def _decide(self, tid: int, *, final: bool, why: str | None = None) -> list[ReadableSpan]:
        held = self._held.pop(tid)
        self.held_bytes -= held.nbytes
        if why is not None:
            self.stats.count(f"sampling.early.{why}")
        reason = self._reason(held, final)
        if reason is None and self.head_check is not None and self.head_check(held.root, held.spans):
            reason = ""
            self.stats.count("sampling.kept.deferred_head")
        self._remember(tid, _Decision(reason, final))
        if reason is None:
            self.stats.count("sampling.dropped_spans", len(held.spans))
            return []
        for r in filter(None, reason.split(",")):
            self.stats.count(f"sampling.kept.{r}")
        self.stats.count("sampling.kept_spans", len(held.spans))
        return [mark(s, reason) for s in held.spans]

    def _late(self, tid: int, span: ReadableSpan, decided: _Decision, root: bool) -> list[ReadableSpan]:
        if decided.reason is not None:
            self.stats.count("sampling.kept_spans")
            return [mark(span, decided.reason)]
        if not decided.final:
            # Dropped early (a bound was hit): the root or a later span can still show the trace matters.
            held = _Held(since=self._clock(), first_start_ns=span.start_time or 0)
            self._note(held, span, root)
            reason = self._reason(held, final=root) if (root or held.error or held.cost or held.root_cost) else None
            if reason is None and root and self.head_check is not None and self.head_check(span, [span]):
                reason = ""
            if reason is not None or root:
                self._remember(tid, _Decision(reason, root and (reason is not None or not _serves_remote(span))))
            if reason is not None:
                self.stats.count("sampling.kept_spans")
                for r in filter(None, reason.split(",")):
                    self.stats.count(f"sampling.kept_late.{r}")
                return [mark(span, reason)]
        self.stats.count("sampling.dropped_spans")
        return []

    def _remember(self, tid: int, decision: _Decision) -> None:
        self._decided[tid] = decision
        self._decided.move_to_end(tid)
        if len(self._decided) > self._max_decided:
            self._decided.popitem(last=False)


def _is_root(span: ReadableSpan) -> bool:
    """Where a trace is decided: the chat request span, or the local root of a trace without one."""
    parent = span.parent
    return parent is None or parent.is_remote or is_chat_root(span)


def _serves_remote(span: ReadableSpan) -> bool:
    parent = span.parent
    return parent is not None and parent.is_remote and not is_chat_root(span)


def mark(span: ReadableSpan, reason: str) -> ReadableSpan:
    """A kept copy: ``chatobs.sampling.reason`` added (unless empty) and the sampled flag set."""
    ctx = span.context
    attrs = dict(span.attributes or {})
    if reason:
        attrs[semconv.SAMPLING_REASON] = reason
    if ctx is None or ctx.trace_flags.sampled:
        return with_changes(span, attributes=attrs)
    sampled = SpanContext(
        ctx.trace_id,
        ctx.span_id,
        is_remote=ctx.is_remote,
        trace_flags=TraceFlags(ctx.trace_flags | TraceFlags.SAMPLED),
        trace_state=ctx.trace_state,
    )
    return with_changes(span, attributes=attrs, context=sampled)
