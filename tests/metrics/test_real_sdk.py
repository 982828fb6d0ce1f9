"""Metrics from real OpenAI SDK calls (chatobs's adapter) against the fake provider server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from chatobs.core import semconv
from demo_app.fake_llm import FakeLLM

from .helpers import count, points, total


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


def test_openai_calls_become_token_duration_ttfc_and_cost_metrics(
    make_capture: Any, reader: InMemoryMetricReader, fake: FakeLLM
) -> None:
    import openai

    cap = make_capture(sample_rate=0.0, keep_errors=False)  # unsampled: metrics still count every call
    client = openai.OpenAI(base_url=fake.base_url + "/v1", api_key="test-key", max_retries=0, timeout=10)
    fake.first_token_delay_s = 0.05
    reply = client.chat.completions.create(
        model="gpt-4o-2024-08-06", messages=[{"role": "user", "content": "hello there"}]
    )
    streamed = list(
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "one two"}], stream=True)
    )
    assert streamed and cap.spans() == []

    model = {semconv.GEN_AI_REQUEST_MODEL: "gpt-4o", semconv.GEN_AI_PROVIDER_NAME: "openai"}
    assert count(reader, "gen_ai.client.operation.duration", **model) == 2
    assert (
        total(reader, "gen_ai.client.token.usage", **model, **{semconv.GEN_AI_TOKEN_TYPE: "input"})
        >= reply.usage.prompt_tokens
    )
    assert (
        total(reader, "gen_ai.client.token.usage", **model, **{semconv.GEN_AI_TOKEN_TYPE: "output"})
        >= reply.usage.completion_tokens
    )
    ttfc = points(reader, "gen_ai.client.operation.time_to_first_chunk")
    assert len(ttfc) == 1 and ttfc[0].count == 1 and ttfc[0].sum >= 0.04  # only the streamed call, in seconds
    assert total(reader, "chatobs.cost.usd", **model) > 0  # priced by the cost stage, which runs before metrics
