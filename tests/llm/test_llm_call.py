"""The public manual API ``chatobs.llm_call`` / ``chatobs.allm_call`` for providers without an adapter."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import chatobs
from chatobs.core import semconv as sc

from .conftest import loads, one_llm_span

pytestmark = pytest.mark.timeout(30)


def test_llm_call_records_everything(capture) -> None:
    with (
        chatobs.scope(conversation_id="conv-9", user_id="u-9"),
        chatobs.llm_call(
            provider="mistral_ai",
            model="mistral-small",
            system="Be kind.",
            messages=[{"role": "user", "content": "Bonjour"}],
            temperature=0.1,
            max_tokens=20,
            tools=[{"type": "function", "name": "lookup"}],
        ) as call,
    ):
        inner = trace.get_current_span()
        call.record(
            output="Salut !",
            usage={"prompt_tokens": 7, "completion_tokens": 3},
            model="mistral-small-2409",
            response_id="r-1",
            finish_reason="stop",
        )
    span = one_llm_span(capture)
    a = span.attributes
    assert inner.get_span_context().span_id == span.context.span_id  # current inside the block
    assert span.name == "chat mistral-small" and span.kind == SpanKind.CLIENT
    assert a[sc.GEN_AI_PROVIDER_NAME] == "mistral_ai"
    assert a[sc.GEN_AI_REQUEST_TEMPERATURE] == 0.1 and a[sc.GEN_AI_REQUEST_MAX_TOKENS] == 20
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 7 and a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 3
    assert a[sc.GEN_AI_RESPONSE_MODEL] == "mistral-small-2409" and a[sc.GEN_AI_RESPONSE_ID] == "r-1"
    assert list(a[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ["stop"]
    assert a[sc.GEN_AI_CONVERSATION_ID] == "conv-9"
    assert loads(span, sc.GEN_AI_SYSTEM_INSTRUCTIONS) == [{"type": "text", "content": "Be kind."}]
    assert loads(span, sc.GEN_AI_INPUT_MESSAGES) == [
        {"role": "user", "parts": [{"type": "text", "content": "Bonjour"}]}
    ]
    assert loads(span, sc.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Salut !"}], "finish_reason": "stop"}
    ]
    assert loads(span, sc.GEN_AI_TOOL_DEFINITIONS) == [{"type": "function", "name": "lookup"}]


def test_llm_call_error_marks_span_and_reraises_unchanged(capture) -> None:
    class ProviderDown(Exception):
        pass

    error = ProviderDown("503 from provider")
    with pytest.raises(ProviderDown) as info, chatobs.llm_call(provider="local", model="llama3", messages="hi"):
        raise error
    assert info.value is error
    span = one_llm_span(capture)
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE].endswith("ProviderDown")
    assert loads(span, sc.GEN_AI_INPUT_MESSAGES) == [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]


def test_llm_call_streaming_chunks(capture) -> None:
    with chatobs.llm_call(provider="local", model="llama3", messages="count", stream=True) as call:
        for piece in ["one ", "two ", "three"]:
            call.chunk(piece)
        call.record(usage={"input_tokens": 1, "output_tokens": 3})
    span = one_llm_span(capture)
    assert span.attributes[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] >= 0
    assert span.attributes[sc.GEN_AI_REQUEST_STREAM] is True
    assert loads(span, sc.GEN_AI_OUTPUT_MESSAGES)[0]["parts"] == [{"type": "text", "content": "one two three"}]


def test_llm_call_without_record_and_capture_off(make_capture) -> None:
    cap = make_capture(capture_content=False)
    with chatobs.llm_call(provider="local", model="m", messages="secret prompt") as call:
        call.record(output="secret reply", usage={"input_tokens": 2, "output_tokens": 2})
    with chatobs.llm_call(provider="local", model="m2"):
        pass
    spans = sorted([s for s in cap.spans()], key=lambda s: s.start_time)
    assert [s.name for s in spans] == ["chat m", "chat m2"]
    assert sc.GEN_AI_INPUT_MESSAGES not in spans[0].attributes
    assert sc.GEN_AI_OUTPUT_MESSAGES not in spans[0].attributes
    assert spans[0].attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 2


def test_llm_call_bad_input_never_raises(capture) -> None:
    with chatobs.llm_call(provider="x", model="m", messages=[object(), 42, None], temperature=object()) as call:
        call.record(output=object(), usage="not a usage", finish_reason=["stop", None])
    span = one_llm_span(capture)
    assert span.attributes[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert sc.GEN_AI_REQUEST_TEMPERATURE not in span.attributes


async def test_allm_call_and_concurrency(capture) -> None:
    async def one(i: int) -> None:
        async with chatobs.allm_call(provider="local", model=f"m{i}", messages=f"q{i}") as call:
            await asyncio.sleep(0.01)
            call.record(output=f"a{i}", usage={"input_tokens": i, "output_tokens": i})

    with chatobs.get_tracer().start_as_current_span("turn") as turn:
        await asyncio.gather(*(one(i) for i in range(3)))
    spans = {s.name: s for s in capture.spans()}
    for i in range(3):
        span = spans[f"chat m{i}"]
        assert span.parent.span_id == turn.get_span_context().span_id
        assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == i
        assert loads(span, sc.GEN_AI_OUTPUT_MESSAGES)[0]["parts"][0]["content"] == f"a{i}"


async def test_allm_call_error(capture) -> None:
    with pytest.raises(TimeoutError):
        async with chatobs.allm_call(provider="local", model="m"):
            raise TimeoutError("slow model")
    span = one_llm_span(capture)
    assert span.attributes[sc.ERROR_TYPE] == "TimeoutError"
