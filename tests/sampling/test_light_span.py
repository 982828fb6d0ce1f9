"""The light span itself: the Span API a recorder or an app may call on it, and what it hands to the pipeline."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from chatobs.core import semconv
from chatobs.recording import light_spans
from chatobs.recording.light_spans import LightSpan


def make(sink: Any) -> LightSpan:
    ctx = SpanContext(0xAB, 0xCD, is_remote=False, trace_flags=TraceFlags(0))
    old = light_spans._sink
    light_spans.configure(sink, None)
    try:
        return LightSpan(
            ctx,
            None,
            "chat m",
            SpanKind.CLIENT,
            {semconv.GEN_AI_REQUEST_MODEL: "m", semconv.GEN_AI_INPUT_MESSAGES: "[...]"},
        )
    finally:
        light_spans._sink = old


def test_keeps_attributes_without_content_and_ends_once() -> None:
    got: list[ReadableSpan] = []
    span = make(got.append)
    span.set_attributes(
        {
            semconv.GEN_AI_OUTPUT_MESSAGES: "[...]",
            semconv.GEN_AI_USAGE_INPUT_TOKENS: 12,
            "bad": {"a": 1},
            "tags": ("x", "y"),
            "mixed": ["x", 1],
        }
    )
    span.update_name("chat m2")
    for i in range(20):
        span.add_event(f"e{i}")
    span.set_status(Status(StatusCode.ERROR, "boom"))
    span.record_exception(ValueError("nope"))
    assert span.is_recording()
    span.end()
    span.end()
    span.set_attribute("after", 1)
    assert not span.is_recording() and len(got) == 1
    done = got[0]
    assert done.name == "chat m2" and done.kind is SpanKind.CLIENT
    assert dict(done.attributes) == {
        semconv.GEN_AI_REQUEST_MODEL: "m",
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 12,
        "tags": ["x", "y"],
    }
    assert done.status.status_code is StatusCode.ERROR and done.status.description == "boom"
    assert len(done.events) == 8  # bounded
    assert not done.context.trace_flags.sampled and done.end_time >= done.start_time


def test_ok_status_is_final_and_a_failing_sink_stays_inside() -> None:
    def broken(_: ReadableSpan) -> None:
        raise RuntimeError("pipeline gone")

    span = make(broken)
    span.set_status(StatusCode.OK)
    span.set_status(StatusCode.ERROR, "later")
    assert span.status.status_code is StatusCode.OK
    span.end()  # must not raise
    assert not span.is_recording()


def test_off_when_nothing_needs_it(make_capture: Any) -> None:
    make_capture(sample_rate=0.0, metrics=False, keep_errors=False)
    assert light_spans._sink is None
    make_capture(sample_rate=0.0, metrics=False, keep_errors=False, keep_slow_ms=100)
    assert light_spans._sink is not None
    make_capture(sample_rate=0.0, record_unsampled="full")
    assert light_spans._sink is None  # full recording: the SDK records unsampled spans itself
