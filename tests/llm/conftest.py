"""Fixtures for the LLM tests: one fake provider server (real HTTP on 127.0.0.1) and real SDK clients pointed at it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from demo_app.fake_llm import FakeLLM


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture
def fake(fake_server: FakeLLM) -> FakeLLM:
    fake_server.reset()
    fake_server.first_token_delay_s = 0.0
    return fake_server


@pytest.fixture
def oai(fake: FakeLLM) -> Any:
    import openai

    return openai.OpenAI(base_url=fake.base_url + "/v1", api_key="test-key", max_retries=0, timeout=10)


@pytest.fixture
def aoai(fake: FakeLLM) -> Any:
    import openai

    return openai.AsyncOpenAI(base_url=fake.base_url + "/v1", api_key="test-key", max_retries=0, timeout=10)


@pytest.fixture
def claude(fake: FakeLLM) -> Any:
    import anthropic

    return anthropic.Anthropic(base_url=fake.base_url, api_key="test-key", max_retries=0, timeout=10)


@pytest.fixture
def aclaude(fake: FakeLLM) -> Any:
    import anthropic

    return anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="test-key", max_retries=0, timeout=10)


def llm_spans(cap: Any) -> list[Any]:
    return [s for s in cap.spans() if (s.attributes or {}).get("chatobs.observation.type") == "llm"]


def one_llm_span(cap: Any) -> Any:
    spans = llm_spans(cap)
    assert len(spans) == 1, [s.name for s in cap.spans()]
    return spans[0]


def loads(span: Any, key: str) -> Any:
    return json.loads(span.attributes[key])


CALCULATOR = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
            "additionalProperties": False,
        },
    },
}
