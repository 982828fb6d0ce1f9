"""LLM calls made over plain HTTP: real httpx (sync and async), requests and aiohttp against the fake provider server."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import aiohttp
import httpx
import pytest
import requests
from opentelemetry.trace import StatusCode

import chatobs
from chatobs.core import semconv as sc

from .conftest import CALCULATOR, llm_spans, loads, one_llm_span

pytestmark = pytest.mark.timeout(60)

CLIENTS = ("httpx", "httpx-async", "requests", "aiohttp")


def post(
    client: str, url: str, body: Any, stream: bool, *, raw: bool = False, stop_after: int | None = None
) -> tuple[int, bytes]:
    """POST ``body`` (JSON, or bytes with ``raw``) with ``client``; returns the status and the bytes the app read
    (chunk by chunk when ``stream``; only ``stop_after`` chunks, then the response is closed)."""
    kwargs: dict[str, Any] = {"content" if client.startswith("httpx") else "data": body} if raw else {"json": body}
    if raw:
        kwargs["headers"] = {"content-type": "application/json"}

    def take(chunks: list[bytes]) -> bool:
        return stop_after is not None and len(chunks) >= stop_after

    if client == "httpx":
        with httpx.Client(timeout=10) as c:
            if not stream:
                r = c.post(url, **kwargs)
                return r.status_code, r.content
            with c.stream("POST", url, **kwargs) as r:
                chunks: list[bytes] = []
                for chunk in r.iter_bytes():
                    chunks.append(chunk)
                    if take(chunks):
                        break
                return r.status_code, b"".join(chunks)
    if client == "requests":
        if not stream:
            r = requests.post(url, timeout=10, **kwargs)
            return r.status_code, r.content
        with requests.post(url, timeout=10, stream=True, **kwargs) as r:
            chunks = []
            for chunk in r.iter_content(chunk_size=None):
                chunks.append(chunk)
                if take(chunks):
                    break
            return r.status_code, b"".join(chunks)

    async def run() -> tuple[int, bytes]:
        if client == "httpx-async":
            async with httpx.AsyncClient(timeout=10) as c:
                if not stream:
                    r = await c.post(url, **kwargs)
                    return r.status_code, r.content
                async with c.stream("POST", url, **kwargs) as r:
                    chunks: list[bytes] = []
                    async for chunk in r.aiter_bytes():
                        chunks.append(chunk)
                        if take(chunks):
                            break
                    return r.status_code, b"".join(chunks)
        async with aiohttp.ClientSession() as s, s.post(url, **kwargs) as r:
            if not stream:
                return r.status, await r.read()
            chunks = []
            async for chunk in r.content.iter_any():
                chunks.append(chunk)
                if take(chunks):
                    break
            return r.status, b"".join(chunks)

    return asyncio.run(run())


def sse_data(body: bytes) -> list[Any]:
    return [
        json.loads(line[6:])
        for line in body.decode().splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]


CHAT = {
    "model": "gpt-4o-mini",
    "temperature": 0.2,
    "max_tokens": 50,
    "tools": [CALCULATOR],
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}],
}


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_chat_completion(capture, fake, client: str, stream: bool) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}} if stream else CHAT
    with chatobs.scope(conversation_id="conv-h", user_id="user-h"):
        status, received = post(client, fake.base_url + "/v1/chat/completions", body, stream)
    assert status == 200
    if stream:  # the app read the stream as the server sent it
        events = sse_data(received)
        assert (
            "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
            == "You said: hello there"
        )
        assert events[-1]["usage"]["prompt_tokens"] == 4
    else:
        assert json.loads(received)["choices"][0]["message"]["content"] == "You said: hello there"
    span = one_llm_span(capture)
    a = span.attributes
    assert span.name == "chat gpt-4o-mini"
    assert a[sc.GEN_AI_PROVIDER_NAME] == "127.0.0.1"  # an unknown host names itself
    assert a[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert a[sc.GEN_AI_REQUEST_TEMPERATURE] == 0.2 and a[sc.GEN_AI_REQUEST_MAX_TOKENS] == 50
    assert a[sc.SERVER_ADDRESS] == "127.0.0.1" and a[sc.SERVER_PORT] == fake.port
    assert a[sc.HTTP_RESPONSE_STATUS_CODE] == 200
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 4 and a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 4
    assert a[sc.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini"
    assert list(a[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ["stop"]
    assert a[sc.GEN_AI_CONVERSATION_ID] == "conv-h" and a[sc.USER_ID] == "user-h"
    assert a["gen_ai.usage.cost"] > 0
    assert (sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in a) is stream
    assert a.get(sc.GEN_AI_REQUEST_STREAM, False) is stream
    assert loads(span, sc.GEN_AI_INPUT_MESSAGES)[1] == {
        "role": "user",
        "parts": [{"type": "text", "content": "hello there"}],
    }
    assert loads(span, sc.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "You said: hello there"}], "finish_reason": "stop"}
    ]
    assert loads(span, sc.GEN_AI_TOOL_DEFINITIONS)[0]["name"] == "calculator"


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_anthropic_messages(capture, fake, client: str, stream: bool) -> None:
    body = {
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 100,
        "system": "Be brief.",
        "stream": stream,
        "messages": [{"role": "user", "content": "calculate 2+3"}],
        "tools": [{"name": "calculator", "description": "math", "input_schema": {"type": "object"}}],
    }
    status, _ = post(client, fake.base_url + "/v1/messages", json.dumps(body).encode(), stream, raw=True)
    assert status == 200
    span = one_llm_span(capture)
    a = span.attributes
    assert span.name == "chat claude-3-5-haiku-latest"
    assert a[sc.GEN_AI_REQUEST_MAX_TOKENS] == 100
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] > 0 and a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert list(a[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ["tool_use"]
    assert loads(span, sc.GEN_AI_SYSTEM_INSTRUCTIONS) == [{"type": "text", "content": "Be brief."}]
    parts = loads(span, sc.GEN_AI_OUTPUT_MESSAGES)[0]["parts"]
    assert parts[-1]["type"] == "tool_call" and parts[-1]["name"] == "calculator"
    assert parts[-1]["arguments"] == {"expression": "2+3"}


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_responses_api(capture, fake, client: str, stream: bool) -> None:
    body = {"model": "gpt-4o-mini", "instructions": "Be brief.", "input": "hello", "stream": stream}
    status, _ = post(client, fake.base_url + "/v1/responses", body, stream)
    assert status == 200
    span = one_llm_span(capture)
    a = span.attributes
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] > 0 and a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 3
    assert a[sc.GEN_AI_RESPONSE_ID].startswith("resp_")
    assert loads(span, sc.GEN_AI_OUTPUT_MESSAGES)[0]["parts"] == [{"type": "text", "content": "You said: hello"}]


@pytest.mark.parametrize("client", CLIENTS)
def test_embeddings(capture, fake, client: str) -> None:
    status, _ = post(
        client, fake.base_url + "/v1/embeddings", {"model": "text-embedding-3-small", "input": ["a b", "c"]}, False
    )
    assert status == 200
    span = one_llm_span(capture)
    assert span.name == "embeddings text-embedding-3-small"
    assert span.attributes[sc.GEN_AI_OPERATION_NAME] == "embeddings"
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 3


@pytest.mark.parametrize("client", CLIENTS)
def test_http_error_recorded(capture, fake, client: str) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "an error please"}]}
    status, received = post(client, fake.base_url + "/v1/chat/completions", body, False)
    assert status == 429 and json.loads(received)["error"]["type"] == "rate_limit_error"  # the app saw the reply
    span = one_llm_span(capture)
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == "rate_limit_error"
    assert span.attributes[sc.HTTP_RESPONSE_STATUS_CODE] == 429


def test_connection_error_recorded(capture) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.post("http://127.0.0.1:9/v1/chat/completions", json=CHAT)  # port 9: nothing listens
    span = one_llm_span(capture)
    assert span.status.status_code == StatusCode.ERROR and span.attributes[sc.ERROR_TYPE] == "ConnectError"


@pytest.mark.parametrize("client", CLIENTS)
def test_stream_left_early_is_marked_abandoned(capture, fake, client: str) -> None:
    body = {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "one two three four five six"}],
    }
    fake.first_token_delay_s = 0.0
    post(client, fake.base_url + "/v1/chat/completions", body, True, stop_after=1)
    span = one_llm_span(capture)
    # aiohttp's reader may have been fed the whole (small) body before the app stopped reading: then it is complete
    if client != "aiohttp":
        assert span.attributes.get(sc.STREAM_ABANDONED) is True


@pytest.mark.parametrize("client", CLIENTS)
def test_requests_that_are_not_llm_calls_give_no_span(capture, fake, client: str) -> None:
    post(client, fake.base_url + "/v1/models", {"model": "x"}, False)  # not an LLM path
    post(client, fake.base_url + "/v1/chat/completions", b"not json", False, raw=True)  # not JSON: passed on
    post(client, fake.base_url + "/v1/chat/completions", {"prompt": "no model"}, False)  # not the endpoint's shape
    httpx.get(fake.base_url + "/v1/chat/completions")
    assert llm_spans(capture) == []
    assert [r["path"] for r in fake.requests][-2:] == ["/models", "/chat/completions"]  # sent (the fake logs JSON only)


def test_hosts_and_providers_settings(make_capture, fake) -> None:
    cap = make_capture(http_llm_hosts="api.openai.com,*.example.com")
    post("httpx", fake.base_url + "/v1/chat/completions", CHAT, False)
    assert llm_spans(cap) == []  # 127.0.0.1 is not allowed
    cap = make_capture(http_llm_providers=f"127.0.0.1:{fake.port}=vllm")
    post("requests", fake.base_url + "/v1/chat/completions", CHAT, False)
    assert one_llm_span(cap).attributes[sc.GEN_AI_PROVIDER_NAME] == "vllm"


def test_bad_provider_setting_is_rejected() -> None:
    with pytest.raises(chatobs.ConfigError, match=r"http_llm_providers.*expected host=provider"):
        chatobs.init(exporters="none", http_llm_providers="no-equals-sign")


def test_manual_llm_call_around_raw_http_gives_one_span(capture, fake) -> None:
    with chatobs.llm_call(provider="openai", model="gpt-4o-mini", messages="hello there"):
        post("httpx", fake.base_url + "/v1/chat/completions", CHAT, False)
    assert len(llm_spans(capture)) == 1


# --- the SDKs and LiteLLM on top of httpx: one span per call -----------------------------------------------------
def test_openai_sdk_gives_one_span(capture, oai, aoai) -> None:
    oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    for _ in oai.chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "hi"}]
    ):
        pass
    asyncio.run(aoai.embeddings.create(model="text-embedding-3-small", input="hi"))
    spans = llm_spans(capture)
    assert len(spans) == 3
    assert {s.attributes[sc.GEN_AI_PROVIDER_NAME] for s in spans} == {"openai"}  # the SDK adapter's spans


def test_anthropic_sdk_gives_one_span(capture, claude) -> None:
    claude.messages.create(model="claude-3-5-haiku-latest", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    with claude.messages.stream(
        model="claude-3-5-haiku-latest", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    ) as s:
        s.until_done()
    spans = llm_spans(capture)
    assert len(spans) == 2 and {s.attributes[sc.GEN_AI_PROVIDER_NAME] for s in spans} == {"anthropic"}


def test_sdk_without_its_adapter_is_recorded_by_the_http_layer(make_capture, oai) -> None:
    cap = make_capture(instrument="httpx")
    oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    span = one_llm_span(cap)
    assert (
        span.attributes[sc.GEN_AI_PROVIDER_NAME] == "127.0.0.1" and span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 3
    )


def test_litellm_gives_one_span(capture, fake, monkeypatch) -> None:
    # Offline: LiteLLM would otherwise fetch its model price list from GitHub when imported.
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    monkeypatch.setenv("LITELLM_TELEMETRY", "False")
    import litellm

    assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    reply = litellm.completion(
        model="openai/gpt-4o-mini",
        api_base=fake.base_url + "/v1",
        api_key="x",
        messages=[{"role": "user", "content": "hi"}],
    )
    assert reply.choices[0].message.content == "You said: hi"
    for _ in litellm.completion(
        model="openai/gpt-4o-mini",
        api_base=fake.base_url + "/v1",
        api_key="x",
        stream=True,
        messages=[{"role": "user", "content": "hi"}],
    ):
        pass
    spans = llm_spans(capture)
    assert len(spans) == 2, [s.name for s in capture.spans()]
    assert all(s.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 3 for s in spans)


LAZY = """
import sys
import chatobs
chatobs.init(exporters="none")
assert "aiohttp" not in sys.modules and "requests" not in sys.modules, "init() imported an HTTP client"
import aiohttp, httpx, requests
assert hasattr(httpx.Client.send, "_chatobs_original") and hasattr(httpx.AsyncClient.send, "_chatobs_original")
assert hasattr(requests.Session.send, "_chatobs_original")
assert hasattr(aiohttp.ClientSession._request, "_chatobs_original")
chatobs.shutdown()
assert not hasattr(httpx.Client.send, "_chatobs_original"), "not unpatched"
assert not hasattr(requests.Session.send, "_chatobs_original")
assert not hasattr(aiohttp.ClientSession._request, "_chatobs_original")
print("ok")
"""


def test_clients_patched_when_imported_and_unpatched_at_shutdown() -> None:
    import subprocess
    import sys

    from tests.conftest import subprocess_env

    out = subprocess.run(
        [sys.executable, "-c", LAZY], env=subprocess_env(), capture_output=True, text=True, timeout=60, check=False
    )
    assert out.stdout.strip() == "ok", out.stderr


def test_gzip_stream_decoded_for_the_recorder(capture) -> None:
    """httpx hands the stream over raw: a gzip-encoded SSE body (from an in-process transport: the fake server does not
    compress) is decoded for chatobs while the app still gets httpx's own decoding."""
    import gzip

    events = [
        {
            "id": "c1",
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": "Hi "}, "finish_reason": None}],
        },
        {
            "id": "c1",
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": "there"}, "finish_reason": "stop"}],
        },
        {"id": "c1", "model": "gpt-4o-mini", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}},
    ]
    raw = gzip.compress("".join(f"data: {json.dumps(e)}\n\n" for e in events).encode() + b"data: [DONE]\n\n")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream", "content-encoding": "gzip"}, stream=httpx.ByteStream(raw)
        )

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as c,
        c.stream("POST", "https://api.openai.com/v1/chat/completions", json={**CHAT, "stream": True}) as r,
    ):
        text = b"".join(r.iter_bytes())
    assert text.startswith(b"data: ")
    span = one_llm_span(capture)
    assert span.attributes[sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 2
    assert loads(span, sc.GEN_AI_OUTPUT_MESSAGES)[0]["parts"] == [{"type": "text", "content": "Hi there"}]


@pytest.mark.parametrize("client", CLIENTS)
def test_app_reads_the_same_bytes_with_and_without_chatobs(make_capture, fake, client: str) -> None:
    import re

    def normalized(body: bytes) -> bytes:  # the fake numbers its replies and stamps the time
        return re.sub(rb'"(id|created)": ("[^"]*"|\d+)', b'"\\1": X', body)

    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    url = fake.base_url + "/v1/chat/completions"
    bare = make_capture(instrument="")
    plain = post(client, url, body, True)
    assert llm_spans(bare) == []
    cap = make_capture()
    seen = post(client, url, body, True)
    assert len(llm_spans(cap)) == 1
    assert seen[0] == plain[0] and normalized(seen[1]) == normalized(plain[1])
    assert fake.requests[-1]["json"] == fake.requests[-2]["json"] == body  # the request unchanged too
