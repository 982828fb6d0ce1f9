"""The hand-off's records: a span survives the trip to the agent unchanged, frames survive any split of the stream."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from chatobs.core import wire


def _span(resource: Resource) -> ReadableSpan:
    ctx = SpanContext(0x1234, 0x55, is_remote=False, trace_flags=TraceFlags(1), trace_state=TraceState([("k", "v")]))
    parent = SpanContext(0x1234, 0x44, is_remote=True, trace_flags=TraceFlags(1))
    return ReadableSpan(
        name="chat gpt-4o-mini",
        context=ctx,
        parent=parent,
        resource=resource,
        attributes={"gen_ai.request.model": "gpt-4o-mini", "n": 3, "f": 0.5, "ok": True, "tags": ("a", "b")},
        events=(Event("exception", {"exception.type": "ValueError"}, timestamp=7),),
        links=(Link(SpanContext(0x99, 0x98, is_remote=True, trace_flags=TraceFlags(1)), {"l": 1}),),
        kind=SpanKind.CLIENT,
        status=Status(StatusCode.ERROR, "boom"),
        start_time=100,
        end_time=250,
        instrumentation_scope=InstrumentationScope("chatobs", "0.1.0"),
    )


def _same(a: ReadableSpan, b: ReadableSpan) -> None:
    assert (a.name, a.kind, a.start_time, a.end_time) == (b.name, b.kind, b.start_time, b.end_time)
    assert a.context == b.context and a.context.trace_state == b.context.trace_state
    assert a.parent.span_id == b.parent.span_id and a.parent.is_remote == b.parent.is_remote
    assert dict(a.attributes) == dict(b.attributes)
    assert [(e.name, e.timestamp, dict(e.attributes)) for e in a.events] == [
        (e.name, e.timestamp, dict(e.attributes)) for e in b.events
    ]
    assert [(ln.context.span_id, dict(ln.attributes)) for ln in a.links] == [
        (ln.context.span_id, dict(ln.attributes)) for ln in b.links
    ]
    assert (a.status.status_code, a.status.description) == (b.status.status_code, b.status.description)
    assert a.instrumentation_scope == b.instrumentation_scope
    assert dict(a.resource.attributes) == dict(b.resource.attributes)


def test_record_round_trip_with_the_connection_resource() -> None:
    res = Resource({"service.name": "web"})
    span = _span(res)
    rec = wire.span_record(span, res)
    assert rec[-1] is None  # the connection's resource is not repeated per span
    _same(span, wire.span_from_record(rec, res))


def test_record_round_trip_with_another_resource() -> None:
    span = _span(Resource({"service.name": "other"}))
    back = wire.span_from_record(
        wire.span_record(span, Resource({"service.name": "web"})), Resource({"service.name": "web"})
    )
    assert back.resource.attributes["service.name"] == "other"


def test_frames_survive_any_split() -> None:
    res = Resource({"service.name": "web"})
    data = wire.encode_frame(wire.HELLO, {"pid": 1}) + wire.encode_frame(
        wire.SPANS, (1, [wire.span_record(_span(res), res)])
    )
    for cut in range(1, len(data)):
        reader = wire.FrameReader()
        frames = list(reader.feed(data[:cut])) + list(reader.feed(data[cut:]))
        assert [k for k, _ in frames] == [wire.HELLO, wire.SPANS]


def test_a_frame_over_the_limit_is_refused() -> None:
    import pytest

    reader = wire.FrameReader()
    with pytest.raises(ValueError, match="exceeds the limit"):
        list(reader.feed(wire.HEADER.pack(wire.MAX_FRAME + 1, wire.SPANS)))
