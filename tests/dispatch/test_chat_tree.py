"""Chat-only export re-parents chat spans past the app's own spans, across batches, within bounds."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chatobs.core import semconv as sc
from chatobs.core.stats import PipelineStats
from chatobs.export.chat_tree import ChatTree


def _spans():  # type: ignore[no-untyped-def]
    mem = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(mem))
    t = tp.get_tracer("t")
    with (
        t.start_as_current_span("POST /chat", attributes={sc.CHAT_REQUEST: True}),
        t.start_as_current_span("fastapi endpoint"),
        t.start_as_current_span("db query"),
        t.start_as_current_span("chat gpt", attributes={sc.GEN_AI_OPERATION_NAME: "chat"}),
    ):
        pass
    return {s.name: s for s in mem.get_finished_spans()}


def test_reparented_across_batches() -> None:
    s = _spans()
    tree = ChatTree("x")
    assert tree.feed([s["chat gpt"], s["db query"]]) == []  # held: the trace's root has not ended yet
    out = {o.name: o for o in tree.feed([s["fastapi endpoint"], s["POST /chat"]])}
    assert set(out) == {"chat gpt", "POST /chat"}
    assert out["chat gpt"].parent.span_id == s["POST /chat"].context.span_id
    assert out["POST /chat"].parent is None and tree.held() == 0


def test_unrelated_traces_leave_nothing_behind() -> None:
    s = _spans()
    tree = ChatTree("x")
    tree.feed([s["db query"], s["fastapi endpoint"]])
    assert tree._count == 2
    assert tree.feed([s["POST /chat"]]) == [s["POST /chat"]]
    assert tree._count == 0 and not tree._traces


def test_bounded_and_drained() -> None:
    s = _spans()
    stats = PipelineStats()
    tree = ChatTree("x", max_spans=1, stats=stats)
    assert tree.feed([s["chat gpt"]]) == []  # at the bound: held
    released = tree.feed([s["db query"]])  # past it: the oldest trace goes out as it is, counted
    assert [r.name for r in released] == ["chat gpt"] and stats.events["x.released_without_root"] == 1
    tree.feed([s["chat gpt"]])
    assert [r.name for r in tree.drain()] == ["chat gpt"]
