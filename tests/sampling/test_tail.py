"""Tail rules: errors, slow and expensive turns kept at rate 0, marked; bounded buffer; flush at shutdown."""

from __future__ import annotations

import gc
import time
import tracemalloc

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags

from chatobs.core import semconv
from chatobs.core.spans import with_changes
from chatobs.core.stats import PipelineStats
from chatobs.processing.tail import TailBuffer, TailRules, span_size
from chatobs.runtime import wiring as runtime
from tests.sampling.util import _tracer, turn

SCOPE = InstrumentationScope("test")
RESOURCE = Resource({"service.name": "test"})  # ReadableSpan() without one runs resource detection each time


def _by_conv(spans):  # type: ignore[no-untyped-def]
    out: dict[str, list] = {}
    for s in spans:
        out.setdefault(s.attributes.get(semconv.GEN_AI_CONVERSATION_ID), []).append(s)
    return out


def test_errors_slow_and_expensive_kept_at_rate_zero(make_capture) -> None:  # type: ignore[no-untyped-def]
    cap = make_capture(sample_rate=0.0, keep_slow_ms=1000, keep_cost_usd=0.5)
    turn("plain", children=2)
    turn("failed", children=2, error=True)
    turn("slow", took_s=2.0)
    turn("quick", took_s=0.5)
    turn("expensive", cost_usd=0.8)
    turn("cheap", cost_usd=0.1)
    turn("everything", error=True, took_s=3.0, cost_usd=2.0)
    got = _by_conv(cap.spans())
    assert set(got) == {"failed", "slow", "expensive", "everything"}
    reasons = {c: {s.attributes[semconv.SAMPLING_REASON] for s in spans} for c, spans in got.items()}
    assert reasons == {"failed": {"error"}, "slow": {"slow"}, "expensive": {"cost"}, "everything": {"error,slow,cost"}}
    assert len(got["failed"]) == 3  # the whole trace, not just the failed span
    assert all(s.context.trace_flags.sampled for spans in got.values() for s in spans)
    events = cap.runtime.pipeline.stats.events
    assert events["sampling.kept.error"] >= 2 and events["sampling.kept.cost"] >= 2


def test_kept_traces_are_unmarked_and_rules_off_hold_nothing(make_capture) -> None:  # type: ignore[no-untyped-def]
    cap = make_capture(sample_rate=1.0)
    turn("c", error=True)
    assert all(semconv.SAMPLING_REASON not in s.attributes for s in cap.spans())

    cap = make_capture(sample_rate=0.0, keep_errors=False)
    stage = next(s for s in cap.runtime.stages if s.name == "sampling")
    assert stage.tail is None  # no rule: no buffer at all
    turn("c", error=True)
    assert cap.spans() == []


def test_spans_ending_after_the_root_follow_its_decision(make_capture) -> None:  # type: ignore[no-untyped-def]
    cap = make_capture(sample_rate=0.0, record_unsampled="full")  # the outer span is another instrumentation's
    tracer = _tracer()
    outer = tracer.start_span("app middleware")  # e.g. another framework's span around chatobs's
    from opentelemetry import trace

    with trace.use_span(outer, end_on_exit=False):
        turn("late", error=True)
        time.sleep(0.1)  # the request's batch is decided before the outer span arrives
        cap.spans()
    outer.end()
    spans = cap.spans()
    assert {s.name for s in spans} == {"POST /chat", "chat gpt-4o-mini", "app middleware"}
    assert {s.attributes[semconv.SAMPLING_REASON] for s in spans} == {"error"}


def test_flush_at_shutdown_decides_on_what_is_held(make_capture) -> None:  # type: ignore[no-untyped-def]
    cap = make_capture(sample_rate=0.0, record_unsampled="full")  # spans started with the plain tracer
    tracer = _tracer()
    from opentelemetry import trace

    import chatobs

    with chatobs.scope(conversation_id="open"):
        root = tracer.start_span("POST /chat", attributes={semconv.CHAT_REQUEST: True})
        with trace.use_span(root, end_on_exit=False):
            with tracer.start_as_current_span("chat") as llm:
                llm.set_status(StatusCode.ERROR)
            with tracer.start_as_current_span("chat ok"):
                pass
    with chatobs.scope(conversation_id="open-fine"):
        root2 = tracer.start_span("POST /chat", attributes={semconv.CHAT_REQUEST: True})
        with trace.use_span(root2, end_on_exit=False), tracer.start_as_current_span("chat"):
            pass
    assert cap.spans() == []  # held: the requests have not ended
    runtime.shutdown(timeout_s=5)
    exported = cap.exporter.get_finished_spans()
    assert sorted(s.name for s in exported) == ["chat", "chat ok"]
    assert {s.attributes[semconv.SAMPLING_REASON] for s in exported} == {"error"}


# --- the buffer driven directly (10,000 open traces would take too long through the SDK on 2 shared cores) -------
def _span(
    trace_id: int,
    span_id: int,
    *,
    root: bool = False,
    error: bool = False,
    text: int = 200,
    start_ns: int | None = None,
) -> ReadableSpan:
    ctx = SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(TraceFlags.DEFAULT))
    parent = None if root else SpanContext(trace_id, 1, is_remote=False)
    now = time.time_ns() if start_ns is None else start_ns
    attrs = {semconv.GEN_AI_CONVERSATION_ID: f"c{trace_id}", semconv.GEN_AI_INPUT_MESSAGES: "x" * text}
    if root:
        attrs[semconv.CHAT_REQUEST] = True
    return ReadableSpan(
        name="s",
        context=ctx,
        parent=parent,
        attributes=attrs,
        status=Status(StatusCode.ERROR if error else StatusCode.UNSET),
        start_time=now,
        end_time=now + 1000,
        instrumentation_scope=SCOPE,
        resource=RESOURCE,
    )


def _open_traces(buf: TailBuffer, first: int, count: int, spans_each: int = 2) -> int:
    released = 0
    for t in range(first, first + count):
        for i in range(spans_each):
            released += len(buf.add(_span(t, 100 + i, error=(t % 10 == 0 and i == 0))))
    return released


def test_bound_on_open_traces_with_flat_memory() -> None:
    stats = PipelineStats()
    buf = TailBuffer(TailRules(keep_errors=True), max_traces=2000, stats=stats)
    gc.collect()
    tracemalloc.start()
    try:
        _open_traces(buf, 1, 4000, spans_each=1)
        at_4k = tracemalloc.get_traced_memory()[0]
        released = _open_traces(buf, 4001, 6000, spans_each=1)  # 10,000 concurrent open traces in all, none finished
        at_10k = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert buf.held_traces == 2000
    assert stats.events["sampling.early.max_traces"] == 8000
    # Decided early on what had arrived: the failed ones (every tenth) were kept, marked, the rest dropped.
    assert released == 600 and stats.events["sampling.kept.error"] == 800
    assert at_10k < at_4k * 1.15, (at_4k, at_10k)


def test_ten_thousand_open_traces_fit_by_default_and_bytes_are_bounded() -> None:
    stats = PipelineStats()
    buf = TailBuffer(TailRules(), max_traces=10000, max_bytes=4 * 1024 * 1024, stats=stats)
    _open_traces(buf, 1, 10000, spans_each=1)
    assert buf.held_bytes <= 4 * 1024 * 1024
    assert stats.events["sampling.early.max_bytes"] > 0
    assert buf.held_traces == 10000 - stats.events["sampling.early.max_bytes"]

    roomy = TailBuffer(TailRules(), stats=PipelineStats())  # the defaults hold 10,000 small open traces
    _open_traces(roomy, 1, 10000, spans_each=1)
    assert roomy.held_traces == 10000


def test_byte_estimate_is_not_an_underestimate() -> None:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        spans = [_span(t, 2, text=500) for t in range(1, 2001)]
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    estimate = sum(span_size(s) for s in spans)
    assert used * 0.8 <= estimate <= used * 3, (used, estimate)


def test_bound_on_spans_per_trace_then_root_error_still_kept() -> None:
    stats = PipelineStats()
    buf = TailBuffer(TailRules(keep_errors=True), max_spans_per_trace=50, stats=stats)
    released = sum(len(buf.add(_span(7, 100 + i))) for i in range(80))
    assert released == 0 and buf.held_traces == 0
    assert stats.events["sampling.early.max_spans"] == 1
    late = buf.add(_span(7, 2, root=True, error=True))  # the request then fails: what is left is kept
    assert len(late) == 1 and late[0].attributes[semconv.SAMPLING_REASON] == "error"
    assert buf.add(_span(7, 3)) != []  # and later spans follow


def test_expiry_and_early_slow_keep() -> None:
    clock = [1000.0]
    stats = PipelineStats()
    buf = TailBuffer(TailRules(keep_errors=True), max_age_s=60, stats=stats, clock=lambda: clock[0])
    buf.add(_span(1, 10))
    clock[0] += 61
    buf.add(_span(2, 10))
    assert buf.sweep() == [] and buf.held_traces == 1
    assert stats.events["sampling.early.expired"] == 1

    # A request that has already run longer than keep_slow_ms is kept without waiting for its end.
    slow = TailBuffer(TailRules(keep_errors=False, slow_ms=1000), stats=PipelineStats())
    slow.add(_span(3, 10, start_ns=time.time_ns() - 5_000_000_000))
    kept = slow.sweep()
    assert [s.attributes[semconv.SAMPLING_REASON] for s in kept] == ["slow"]
    assert slow.add(_span(3, 2, root=True))[0].attributes[semconv.SAMPLING_REASON] == "slow"


def test_deferred_trace_decided_early_keeps_its_conversation() -> None:
    """A trace started before its conversation ID was known, decided early (span bound): still the conversation's
    decision, from the conversation ID its held spans carry -- the whole trace, unmarked."""
    from chatobs.config import load_settings
    from chatobs.processing.sampling import SamplingStage
    from tests.sampling.util import key_between

    stage = SamplingStage(
        load_settings(sample_rate=0.5, tail_max_spans_per_trace=3), head_in_stage=False, stats=PipelineStats()
    )
    keep, drop = key_between(0.0, 0.5, "early"), key_between(0.5, 1.0, "early")
    out = {}
    for tid, conv in ((11, keep), (12, drop)):
        spans = [_span(tid, 100 + i) for i in range(5)] + [_span(tid, 2, root=True)]
        spans = [with_changes(s, attributes={**s.attributes, semconv.GEN_AI_CONVERSATION_ID: conv}) for s in spans]
        out[conv] = stage.process(spans)
    assert len(out[keep]) == 6 and out[drop] == []
    assert all(s.context.trace_flags.sampled and semconv.SAMPLING_REASON not in s.attributes for s in out[keep])
