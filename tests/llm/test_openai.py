"""The real ``openai`` SDK (sync and async) against the fake provider server, through chatobs's OpenAI adapter."""

from __future__ import annotations

import gc
import json
import sys
import types

import openai
import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import chatobs
from chatobs.core import semconv as sc
from chatobs.runtime.wiring import get_tracer

from .conftest import CALCULATOR, llm_spans, loads, one_llm_span

pytestmark = pytest.mark.timeout(30)


def test_chat_completion_span_field_by_field(capture, oai, fake) -> None:
    with (
        chatobs.scope(conversation_id="conv-1", user_id="user-1"),
        get_tracer().start_as_current_span("request") as parent,
    ):
        reply = oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}],
            temperature=0.2,
            top_p=0.9,
            max_completion_tokens=50,
            seed=7,
            stop=["END"],
            tools=[CALCULATOR],
        )
    assert reply.choices[0].message.content == "You said: hello there"
    span = one_llm_span(capture)
    a = span.attributes
    assert span.name == "chat gpt-4o-mini"
    assert span.kind == SpanKind.CLIENT
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert span.status.status_code == StatusCode.UNSET
    assert a[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert a[sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert a[sc.OBSERVATION_TYPE] == "llm"
    assert a[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert a[sc.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    assert a[sc.GEN_AI_REQUEST_TOP_P] == 0.9
    assert a[sc.GEN_AI_REQUEST_MAX_TOKENS] == 50
    assert a[sc.GEN_AI_REQUEST_SEED] == 7
    assert list(a[sc.GEN_AI_REQUEST_STOP_SEQUENCES]) == ["END"]
    assert a[sc.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini"
    assert a[sc.GEN_AI_RESPONSE_ID] == reply.id
    assert list(a[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ["stop"]
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == reply.usage.prompt_tokens == 4
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == reply.usage.completion_tokens == 4
    assert a[sc.SERVER_ADDRESS] == "127.0.0.1"
    assert a[sc.SERVER_PORT] == fake.port
    assert a[sc.GEN_AI_CONVERSATION_ID] == "conv-1"
    assert a[sc.USER_ID] == "user-1"
    assert sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in a  # not streamed
    assert loads(span, sc.GEN_AI_INPUT_MESSAGES) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "hello there"}]},
    ]
    assert loads(span, sc.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "You said: hello there"}], "finish_reason": "stop"}
    ]
    tools = loads(span, sc.GEN_AI_TOOL_DEFINITIONS)
    assert tools[0]["name"] == "calculator" and tools[0]["parameters"]["required"] == ["expression"]


def test_tool_call_round_trip_recorded(capture, oai) -> None:
    messages = [{"role": "user", "content": "calculate 6*7"}]
    first = oai.chat.completions.create(model="gpt-4o", messages=messages, tools=[CALCULATOR])
    call = first.choices[0].message.tool_calls[0]
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "42"},
    ]
    second = oai.chat.completions.create(model="gpt-4o", messages=messages, tools=[CALCULATOR])
    assert second.choices[0].message.content == "The result is 42"
    s1, s2 = sorted(llm_spans(capture), key=lambda s: s.start_time)
    assert list(s1.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ["tool_calls"]
    assert loads(s1, sc.GEN_AI_OUTPUT_MESSAGES)[0]["parts"] == [
        {"type": "tool_call", "id": call.id, "name": "calculator", "arguments": {"expression": "6*7"}}
    ]
    inputs = loads(s2, sc.GEN_AI_INPUT_MESSAGES)
    assert inputs[1]["parts"][0] == {
        "type": "tool_call",
        "id": call.id,
        "name": "calculator",
        "arguments": {"expression": "6*7"},
    }
    assert inputs[2] == {"role": "tool", "parts": [{"type": "tool_call_response", "id": call.id, "response": "42"}]}


def test_stream_usage_injected_and_usage_chunk_hidden(capture, oai, fake) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi stream"}], stream=True
        )
    )
    # The app sees exactly the chunks it asked for: no usage-only chunk with empty choices.
    assert all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "You said: hi stream"
    sent = fake.requests[-1]["json"]
    assert sent["stream_options"] == {"include_usage": True}
    span = one_llm_span(capture)
    a = span.attributes
    assert a[sc.GEN_AI_REQUEST_STREAM] is True
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 2 and a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 4
    assert a[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert list(a[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ["stop"]
    assert loads(span, sc.GEN_AI_OUTPUT_MESSAGES)[0]["parts"] == [{"type": "text", "content": "You said: hi stream"}]
    assert sc.STREAM_ABANDONED not in a


def test_stream_usage_requested_by_app_is_passed_through(capture, oai) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "x y"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    assert one_llm_span(capture).attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 4


def test_stream_usage_injection_can_be_turned_off(make_capture, oai, fake) -> None:
    cap = make_capture(openai_stream_usage=False)
    list(oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True))
    assert "stream_options" not in fake.requests[-1]["json"]
    a = one_llm_span(cap).attributes
    assert sc.GEN_AI_USAGE_INPUT_TOKENS not in a
    assert loads(one_llm_span(cap), sc.GEN_AI_OUTPUT_MESSAGES)[0]["parts"][0]["content"] == "You said: x"


def test_stream_helper_with_tool_call(capture, oai) -> None:
    with oai.chat.completions.stream(
        model="gpt-4o", messages=[{"role": "user", "content": "calculate 1+2"}], tools=[CALCULATOR]
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert final.choices[0].message.tool_calls[0].function.arguments == '{"expression": "1+2"}'
    span = one_llm_span(capture)
    assert loads(span, sc.GEN_AI_OUTPUT_MESSAGES) == [
        {
            "role": "assistant",
            "finish_reason": "tool_calls",
            "parts": [
                {
                    "type": "tool_call",
                    "id": final.choices[0].message.tool_calls[0].id,
                    "name": "calculator",
                    "arguments": {"expression": "1+2"},
                }
            ],
        }
    ]
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 2


def test_slow_first_token_measured(capture, oai, fake) -> None:
    fake.first_token_delay_s = 0.3
    stream = oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "tick"}], stream=True)
    list(stream)
    ttfc = one_llm_span(capture).attributes[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    assert 0.3 <= ttfc < 5


def test_abandoned_stream_closed_ends_span_with_what_was_seen(capture, oai) -> None:
    stream = oai.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "one two three four five"}], stream=True
    )
    seen = []
    for chunk in stream:
        seen.append(chunk.choices[0].delta.content or "")
        if len(seen) == 3:
            break
    stream.close()
    span = one_llm_span(capture)
    assert span.attributes[sc.STREAM_ABANDONED] is True
    assert loads(span, sc.GEN_AI_OUTPUT_MESSAGES)[0]["parts"] == [{"type": "text", "content": "".join(seen)}]
    assert sc.GEN_AI_USAGE_OUTPUT_TOKENS not in span.attributes  # usage never arrived


def test_abandoned_stream_garbage_collected_ends_span(capture, oai) -> None:
    def read_one() -> None:
        stream = oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "a b c d"}], stream=True)
        next(iter(stream))

    read_one()
    gc.collect()
    assert one_llm_span(capture).attributes[sc.STREAM_ABANDONED] is True


def test_stream_never_read_then_closed_ends_span(capture, oai) -> None:
    stream = oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "unread"}], stream=True)
    stream.close()
    assert one_llm_span(capture).attributes[sc.STREAM_ABANDONED] is True


def test_rate_limit_error_recorded_and_reraised(capture, oai) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "error now"}])
    assert info.value.status_code == 429
    span = one_llm_span(capture)
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == "RateLimitError"
    assert any(e.name == "exception" for e in span.events)


def test_rate_limit_retried_by_sdk_is_one_successful_span(capture, fake) -> None:
    client = openai.OpenAI(base_url=fake.base_url + "/v1", api_key="k", max_retries=2)
    reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "error then ok"}])
    assert reply.choices[0].message.content == "You said: error then ok"
    span = one_llm_span(capture)
    assert span.status.status_code == StatusCode.UNSET and sc.ERROR_TYPE not in span.attributes
    assert len(fake.requests) == 2  # the 429 and the retry, one span


def test_connection_error_and_timeout(capture, fake) -> None:
    dead = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0, timeout=2)
    with pytest.raises(openai.APIConnectionError):
        dead.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    fake.first_token_delay_s = 1.0
    slow = openai.OpenAI(base_url=fake.base_url + "/v1", api_key="k", max_retries=0, timeout=0.2)
    with pytest.raises(openai.APITimeoutError):
        slow.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    errors = sorted(s.attributes[sc.ERROR_TYPE] for s in llm_spans(capture))
    assert errors == ["APIConnectionError", "APITimeoutError"]


def test_responses_api_create_and_stream(capture, oai) -> None:
    reply = oai.responses.create(model="gpt-4o", input="hi responses", instructions="Be nice.", max_output_tokens=64)
    assert reply.output_text == "You said: hi responses"
    with oai.responses.stream(model="gpt-4o", input=[{"role": "user", "content": "hi streamed"}]) as stream:
        for _ in stream:
            pass
    plain, streamed = sorted(llm_spans(capture), key=lambda s: s.start_time)
    assert plain.name == "chat gpt-4o"
    assert plain.attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert loads(plain, sc.GEN_AI_SYSTEM_INSTRUCTIONS) == [{"type": "text", "content": "Be nice."}]
    assert loads(plain, sc.GEN_AI_INPUT_MESSAGES) == [
        {"role": "user", "parts": [{"type": "text", "content": "hi responses"}]}
    ]
    assert loads(plain, sc.GEN_AI_OUTPUT_MESSAGES)[0]["parts"] == [
        {"type": "text", "content": "You said: hi responses"}
    ]
    assert plain.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 4  # 2 words of input + 2 of instructions
    assert plain.attributes[sc.GEN_AI_RESPONSE_ID] == reply.id
    assert streamed.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 4
    assert streamed.attributes[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert loads(streamed, sc.GEN_AI_OUTPUT_MESSAGES)[0]["parts"] == [
        {"type": "text", "content": "You said: hi streamed"}
    ]


def test_responses_api_function_call(capture, oai) -> None:
    tool = {
        "type": "function",
        "name": "kb_lookup",
        "parameters": {"type": "object", "properties": {"term": {"type": "string"}}},
    }
    reply = oai.responses.create(model="gpt-4o", input="lookup otters", tools=[tool])
    call = reply.output[0]
    follow = oai.responses.create(
        model="gpt-4o",
        tools=[tool],
        input=[
            {"role": "user", "content": "lookup otters"},
            {"type": "function_call", "call_id": call.call_id, "name": "kb_lookup", "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "otters are mustelids"},
        ],
    )
    assert follow.output_text == "kb_lookup returned: otters are mustelids"
    first, second = sorted(llm_spans(capture), key=lambda s: s.start_time)
    assert loads(first, sc.GEN_AI_OUTPUT_MESSAGES)[0]["parts"][0] == {
        "type": "tool_call",
        "id": call.call_id,
        "name": "kb_lookup",
        "arguments": {"query": "otters"},
    }
    assert list(first.attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ["tool_call"]
    assert loads(second, sc.GEN_AI_INPUT_MESSAGES)[2] == {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": call.call_id, "response": "otters are mustelids"}],
    }


def test_embeddings(capture, oai) -> None:
    result = oai.embeddings.create(model="text-embedding-3-small", input=["one two", "three"])
    assert len(result.data) == 2
    span = one_llm_span(capture)
    assert span.name == "embeddings text-embedding-3-small"
    assert span.attributes[sc.GEN_AI_OPERATION_NAME] == "embeddings"
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 3
    assert sc.GEN_AI_INPUT_MESSAGES not in span.attributes


def test_with_raw_response(capture, oai) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": "raw"}])
    assert raw.parse().choices[0].message.content == "You said: raw"
    assert one_llm_span(capture).attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 3


def test_content_capture_off(make_capture, oai) -> None:
    cap = make_capture(capture_content=False)
    oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "secret"}], tools=[CALCULATOR])
    list(oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "secret"}], stream=True))
    for span in llm_spans(cap):
        for key in (sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_OUTPUT_MESSAGES, sc.GEN_AI_TOOL_DEFINITIONS):
            assert key not in span.attributes
        assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 3
        assert "secret" not in json.dumps(dict(span.attributes))


async def test_async_create_and_stream(capture, aoai) -> None:
    reply = await aoai.chat.completions.create(model="m", messages=[{"role": "user", "content": "async hi"}])
    assert reply.choices[0].message.content == "You said: async hi"
    stream = await aoai.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "async stream"}], stream=True
    )
    chunks = [c async for c in stream]
    assert all(c.choices for c in chunks)
    async with aoai.chat.completions.stream(
        model="m", messages=[{"role": "user", "content": "calculate 2*2"}], tools=[CALCULATOR]
    ) as helper:
        async for _ in helper:
            pass
    plain, streamed, helped = sorted(llm_spans(capture), key=lambda s: s.start_time)
    assert plain.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 4
    assert streamed.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 4
    assert streamed.attributes[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert loads(streamed, sc.GEN_AI_OUTPUT_MESSAGES)[0]["parts"][0]["content"] == "You said: async stream"
    assert loads(helped, sc.GEN_AI_OUTPUT_MESSAGES)[0]["parts"][0]["name"] == "calculator"
    assert sc.STREAM_ABANDONED not in streamed.attributes


async def test_async_abandoned_stream_and_error(capture, aoai) -> None:
    stream = await aoai.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "a b c d e"}], stream=True
    )
    async for _ in stream:
        break
    await stream.close()
    with pytest.raises(openai.RateLimitError):
        await aoai.chat.completions.create(model="m", messages=[{"role": "user", "content": "error async"}])
    abandoned, failed = sorted(llm_spans(capture), key=lambda s: s.start_time)
    assert abandoned.attributes[sc.STREAM_ABANDONED] is True
    assert failed.attributes[sc.ERROR_TYPE] == "RateLimitError" and failed.status.status_code == StatusCode.ERROR


def test_uninstrumented_after_shutdown(capture, oai, fake) -> None:
    from chatobs.runtime import wiring as runtime

    runtime.shutdown(timeout_s=2)
    list(oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True))
    assert "stream_options" not in fake.requests[-1]["json"]
    assert not hasattr(openai._base_client.SyncAPIClient.request, "_chatobs_original")


# --- double instrumentation: detect and step aside -------------------------------------------------------------
def test_steps_aside_when_another_llm_instrumentation_span_is_current(capture, oai) -> None:
    # Stand-in for OpenInference/OpenLLMetry/OTel's wrapper around `create` (those packages are not installed here):
    # a span from their tracer name is current while the SDK call runs, exactly as their wrappers do.
    other = trace.get_tracer("openinference.instrumentation.openai")
    with other.start_as_current_span("ChatCompletion", attributes={"openinference.span.kind": "LLM"}):
        oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    spans = capture.spans()
    assert [s.name for s in spans] == ["ChatCompletion"]
    assert spans[0].attributes[sc.OBSERVATION_TYPE] == "llm"  # marked so chatobs still prices and ships it


def test_steps_aside_when_official_instrumentor_is_active(capture, oai, monkeypatch) -> None:
    # Stand-in for opentelemetry-instrumentation-openai-v2's singleton instrumentor (not installed here).
    module = types.ModuleType("opentelemetry.instrumentation.openai_v2")

    class OpenAIInstrumentor:
        _instance = None

    OpenAIInstrumentor._instance = OpenAIInstrumentor()
    OpenAIInstrumentor._instance._is_instrumented_by_opentelemetry = True
    module.OpenAIInstrumentor = OpenAIInstrumentor
    monkeypatch.setitem(sys.modules, "opentelemetry.instrumentation.openai_v2", module)
    oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    oai.responses.create(model="m", input="y")  # not covered by that instrumentor: chatobs still records it
    assert [s.name for s in llm_spans(capture)] == ["chat m"]
    assert loads(llm_spans(capture)[0], sc.GEN_AI_INPUT_MESSAGES)[0]["parts"][0]["content"] == "y"
    OpenAIInstrumentor._instance._is_instrumented_by_opentelemetry = False
    oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert len(llm_spans(capture)) == 2
