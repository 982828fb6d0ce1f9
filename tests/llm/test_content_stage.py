"""Content is snapshotted on the request path and normalised by the pipeline's first stage (chatobs.processing.content).

The exported spans are the same as when the recorder normalised on the request path (golden file from that code);
the content is what was sent even if the app changes its history afterwards; raw keys never leave the pipeline.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

import chatobs
from chatobs.core import semconv
from chatobs.core.json_text import from_json
from chatobs.core.stats import PipelineStats
from chatobs.processing.content import ContentStage
from chatobs.recording import light_spans

from .conftest import loads, one_llm_span
from .content_cases import GOLDEN, run_cases

pytestmark = pytest.mark.timeout(60)


def test_exported_spans_are_the_same_as_when_content_was_normalised_on_the_request_path(fake: Any) -> None:
    golden = json.loads(GOLDEN.read_text())
    got = run_cases(fake.base_url)
    assert list(got) == list(golden)
    for name, attributes in golden.items():
        # Same keys, same order, same values (the JSON strings byte for byte): the OTLP bytes are the same.
        assert got[name] == attributes, name
    contents = {k for attrs in got.values() for k, _ in attrs}
    assert {
        semconv.GEN_AI_INPUT_MESSAGES,
        semconv.GEN_AI_SYSTEM_INSTRUCTIONS,
        semconv.GEN_AI_TOOL_DEFINITIONS,
        semconv.GEN_AI_OUTPUT_MESSAGES,
    } <= contents
    assert not contents & semconv.RAW_ATTRIBUTES


def test_the_content_is_what_was_sent_when_the_app_changes_its_history_afterwards(capture: Any, oai: Any) -> None:
    history: list[dict[str, Any]] = [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}]
    oai.chat.completions.create(model="gpt-4o-mini", messages=history)
    with chatobs.llm_call("mistral", "m", history) as call:
        call.record(output="ok")
    # What apps do next: append the reply and edit earlier turns in place (the pipeline has not run yet).
    history.append({"role": "assistant", "content": "You said: hello there"})
    history[0]["content"][0]["text"] = "changed"
    history[0]["role"] = "system"
    spans = capture.spans()
    sent = [{"role": "user", "parts": [{"type": "text", "content": "hello there"}]}]
    assert [loads(s, semconv.GEN_AI_INPUT_MESSAGES) for s in spans if s.name.startswith("chat ")] == [sent, sent]


def test_the_request_path_stores_one_raw_string_and_no_gen_ai_content(oai: Any, fake: Any) -> None:
    """What the pipeline receives: the raw snapshot (an ordinary string attribute), not yet the GenAI attributes."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    rt = chatobs.init(_span_exporters=[InMemorySpanExporter()], exporters="none", export_interval_ms=20)
    assert rt is not None
    seen: list[ReadableSpan] = []
    rt.pipeline.stages.insert(0, _Spy(seen))
    oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        tools=[{"type": "function", "function": {"name": "f"}}],
    )
    rt.force_flush(10)
    a = [s for s in seen if s.name.startswith("chat ")][0].attributes
    assert a[semconv.RAW_FORMAT] == "openai.chat"
    assert json.loads(a[semconv.RAW_REQUEST]) == [
        [{"role": "user", "content": "hi"}],
        [{"type": "function", "function": {"name": "f"}}],
    ]
    assert semconv.GEN_AI_INPUT_MESSAGES not in a and semconv.GEN_AI_TOOL_DEFINITIONS not in a


class _Spy:
    name = "spy"
    pass_on_error = True

    def __init__(self, seen: list[ReadableSpan]) -> None:
        self.seen = seen

    def process(self, spans: list[ReadableSpan]) -> list[ReadableSpan]:
        self.seen.extend(spans)
        return spans

    def flush(self) -> list[ReadableSpan]:
        return []

    def shutdown(self) -> None:
        pass


def _span(attributes: dict[str, Any]) -> ReadableSpan:
    ctx = SpanContext(0xAB, 0xCD, is_remote=False, trace_flags=TraceFlags(1))
    return ReadableSpan(name="chat m", context=ctx, attributes=attributes, kind=SpanKind.CLIENT)


@pytest.mark.parametrize(
    "raw",
    [
        {semconv.RAW_FORMAT: "openai.chat", semconv.RAW_REQUEST: '[[{"role": "user", "content": "secret'},  # cut
        {semconv.RAW_FORMAT: "no-such-format", semconv.RAW_REQUEST: "[[], null]"},
        {semconv.RAW_FORMAT: "openai.chat", semconv.RAW_REQUEST: '{"not": "a tuple"}'},
        {semconv.RAW_OUTPUT: '["only one"]'},
    ],
    ids=["truncated", "unknown-format", "wrong-shape", "bad-output"],
)
def test_an_unreadable_snapshot_is_dropped_not_exported(raw: dict[str, Any]) -> None:
    stats = PipelineStats()
    span = _span({semconv.GEN_AI_REQUEST_MODEL: "m", **raw, semconv.GEN_AI_USAGE_INPUT_TOKENS: 3})
    out = ContentStage(stats=stats).process([span])
    assert len(out) == 1  # the span goes on (timings, tokens, cost) ...
    assert dict(out[0].attributes) == {
        semconv.GEN_AI_REQUEST_MODEL: "m",
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 3,
    }  # ... without content
    assert stats.events["content_failed"] == 1


def test_spans_without_snapshots_pass_unchanged() -> None:
    span = _span({semconv.GEN_AI_INPUT_MESSAGES: "[]", "x": 1})
    assert ContentStage().process([span])[0] is span


def test_the_stage_runs_first_and_light_spans_never_keep_raw_keys() -> None:
    rt = chatobs.init(exporters="none")
    assert rt is not None
    assert rt.stages[0].name == "content"
    assert semconv.RAW_ATTRIBUTES <= light_spans.OMITTED
    # A leftover raw key (a pipeline built without the stage) is content for the redaction stage.
    assert {semconv.RAW_REQUEST, semconv.RAW_OUTPUT} <= semconv.CONTENT_ATTRIBUTES


def test_an_unencodable_snapshot_costs_the_app_nothing(capture: Any) -> None:
    loop: list[Any] = []
    loop.append(loop)  # a circular history: no JSON encoder takes it
    with chatobs.llm_call("mistral", "m", loop) as call:
        call.record(output="fine")
    span = one_llm_span(capture)
    assert semconv.GEN_AI_INPUT_MESSAGES not in span.attributes
    assert from_json(span.attributes[semconv.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "fine"}]}
    ]
