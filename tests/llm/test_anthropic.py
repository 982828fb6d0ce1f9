"""The real ``anthropic`` SDK (sync and async) against the fake provider server, through chatobs's adapter."""

from __future__ import annotations

import anthropic
import pytest
from opentelemetry.trace import SpanKind, StatusCode

import chatobs
from chatobs.core import semconv as sc

from .conftest import llm_spans, loads, one_llm_span

pytestmark = pytest.mark.timeout(30)

KB_LOOKUP = {
    "name": "kb_lookup",
    "description": "Search the knowledge base",
    "input_schema": {"type": "object", "properties": {"term": {"type": "string"}}},
}


def test_messages_create_field_by_field(capture, claude, fake) -> None:
    with chatobs.scope(conversation_id="c-7"):
        message = claude.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=256,
            stop_sequences=["\n\nHuman"],
            extra_body={"temperature": 0.3, "top_k": 5},  # this SDK version no longer takes them as arguments
            system="You are terse.",
            messages=[{"role": "user", "content": "hello claude"}],
        )
    assert message.content[0].text == "You said: hello claude"
    span = one_llm_span(capture)  # exactly one: the SDK's own span is switched off for this call
    a = span.attributes
    assert span.name == "chat claude-sonnet-4-5" and span.kind == SpanKind.CLIENT
    assert span.instrumentation_scope.name == "chatobs"
    assert a[sc.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert a[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert a[sc.GEN_AI_REQUEST_MODEL] == "claude-sonnet-4-5"
    assert a[sc.GEN_AI_REQUEST_MAX_TOKENS] == 256
    assert a[sc.GEN_AI_REQUEST_TEMPERATURE] == 0.3
    assert a[sc.GEN_AI_REQUEST_TOP_K] == 5
    assert list(a[sc.GEN_AI_REQUEST_STOP_SEQUENCES]) == ["\n\nHuman"]
    assert a[sc.GEN_AI_RESPONSE_ID] == message.id
    assert a[sc.GEN_AI_RESPONSE_MODEL] == "claude-sonnet-4-5"
    assert list(a[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ["end_turn"]
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 5  # 2 message words + 3 system words
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 4
    assert a[sc.SERVER_PORT] == fake.port
    assert a[sc.GEN_AI_CONVERSATION_ID] == "c-7"
    assert loads(span, sc.GEN_AI_SYSTEM_INSTRUCTIONS) == [{"type": "text", "content": "You are terse."}]
    assert loads(span, sc.GEN_AI_INPUT_MESSAGES) == [
        {"role": "user", "parts": [{"type": "text", "content": "hello claude"}]}
    ]
    assert loads(span, sc.GEN_AI_OUTPUT_MESSAGES) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "You said: hello claude"}],
            "finish_reason": "end_turn",
        }
    ]


def test_tool_use_round_trip(capture, claude) -> None:
    messages = [{"role": "user", "content": "lookup otters"}]
    first = claude.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=messages, tools=[KB_LOOKUP])
    block = first.content[0]
    assert block.type == "tool_use" and block.input == {"query": "otters"}
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "mustelids"}]},
    ]
    second = claude.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=messages, tools=[KB_LOOKUP])
    assert second.content[0].text == "kb_lookup returned: mustelids"
    s1, s2 = sorted(llm_spans(capture), key=lambda s: s.start_time)
    assert loads(s1, sc.GEN_AI_OUTPUT_MESSAGES)[0] == {
        "role": "assistant",
        "finish_reason": "tool_use",
        "parts": [{"type": "tool_call", "id": block.id, "name": "kb_lookup", "arguments": {"query": "otters"}}],
    }
    assert loads(s1, sc.GEN_AI_TOOL_DEFINITIONS) == [
        {
            "type": "function",
            "name": "kb_lookup",
            "description": "Search the knowledge base",
            "parameters": KB_LOOKUP["input_schema"],
        }
    ]
    inputs = loads(s2, sc.GEN_AI_INPUT_MESSAGES)
    assert inputs[1]["parts"][0]["type"] == "tool_call"
    assert inputs[2] == {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": block.id, "response": "mustelids"}],
    }


def test_stream_helper_with_tool_use(capture, claude) -> None:
    with claude.messages.stream(
        model="claude-haiku-4-5",
        max_tokens=64,
        tools=[KB_LOOKUP],
        messages=[{"role": "user", "content": "lookup beavers"}],
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_message()
    span = one_llm_span(capture)
    a = span.attributes
    assert a[sc.GEN_AI_REQUEST_STREAM] is True
    assert a[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 2 and a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == final.usage.output_tokens
    assert a[sc.GEN_AI_RESPONSE_ID] == final.id
    assert loads(span, sc.GEN_AI_OUTPUT_MESSAGES)[0]["parts"] == [
        {"type": "tool_call", "id": final.content[0].id, "name": "kb_lookup", "arguments": {"query": "beavers"}}
    ]


def test_create_stream_true_text_and_slow_first_token(capture, claude, fake) -> None:
    fake.first_token_delay_s = 0.25
    events = list(
        claude.messages.create(
            model="claude-x", max_tokens=10, stream=True, messages=[{"role": "user", "content": "stream me"}]
        )
    )
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    span = one_llm_span(capture)
    assert span.attributes[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] >= 0.25
    assert loads(span, sc.GEN_AI_OUTPUT_MESSAGES)[0]["parts"] == [{"type": "text", "content": "You said: stream me"}]
    assert list(span.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ["end_turn"]


def test_abandoned_stream(capture, claude) -> None:
    with claude.messages.stream(
        model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "a b c d e f"}]
    ) as stream:
        for _text in stream.text_stream:
            break
    span = one_llm_span(capture)
    assert span.attributes[sc.STREAM_ABANDONED] is True
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 6  # message_start was seen


def test_rate_limit_error(capture, claude) -> None:
    with pytest.raises(anthropic.RateLimitError):
        claude.messages.create(model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "error please"}])
    span = one_llm_span(capture)
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == "RateLimitError"


async def test_async_create_and_stream(capture, aclaude) -> None:
    message = await aclaude.messages.create(
        model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "hi async"}]
    )
    assert message.content[0].text == "You said: hi async"
    async with aclaude.messages.stream(
        model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "async stream"}]
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
    assert text == "You said: async stream"
    plain, streamed = sorted(llm_spans(capture), key=lambda s: s.start_time)
    assert plain.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 4
    assert streamed.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 4
    assert loads(streamed, sc.GEN_AI_OUTPUT_MESSAGES)[0]["parts"][0]["content"] == "You said: async stream"
    assert sc.STREAM_ABANDONED not in streamed.attributes


def test_sdk_own_span_kept_when_chatobs_does_not_record(capture, claude) -> None:
    # count_tokens is not an LLM call chatobs records: the SDK's own OpenTelemetry span is left alone.
    try:
        claude.messages.count_tokens(model="claude-x", messages=[{"role": "user", "content": "x"}])
    except anthropic.APIStatusError:
        pass  # the fake server has no count_tokens endpoint; the SDK still made its span
    names = [s.name for s in capture.spans()]
    assert "anthropic.messages.count_tokens" in names
    assert llm_spans(capture) == []
