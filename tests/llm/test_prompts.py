"""``chatobs.prompt()`` and ``llm_call(prompt=)``: LLM spans made inside (real openai SDK against the fake provider,
the manual API) carry the prompt's name and version, the variables as masked content; nothing outside does."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import chatobs
from chatobs.core import semconv as sc

from .conftest import llm_spans


def _prompt_of(span: Any) -> tuple[Any, Any]:
    a = span.attributes or {}
    return a.get(sc.GEN_AI_PROMPT_NAME), a.get(sc.GEN_AI_PROMPT_VERSION)


def test_context_manager_decorator_and_nesting(capture: Any, oai: Any) -> None:
    def ask(text: str) -> None:
        oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])

    @chatobs.prompt("summarize", version=2)
    def summarize() -> None:
        ask("summarize this")

    with chatobs.prompt("support-agent", version="v3", variables={"tone": "formal", "email": "ann@example.com"}):
        ask("first")
        summarize()  # the innermost prompt wins
        ask("second")
    ask("outside")
    assert chatobs.flush(10)
    spans = sorted(llm_spans(capture), key=lambda s: s.start_time)
    assert [_prompt_of(s) for s in spans] == [
        ("support-agent", "v3"),
        ("summarize", "2"),
        ("support-agent", "v3"),
        (None, None),
    ]
    variables = json.loads(spans[0].attributes[sc.PROMPT_VARIABLES])
    assert variables["tone"] == "formal" and "ann@example.com" not in variables["email"]  # content: masked


def test_async_and_llm_call_prompt_argument(capture: Any, aoai: Any) -> None:
    @chatobs.prompt("triage", version="1")
    async def triage() -> None:
        await aoai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "help"}])

    async def both() -> None:
        await asyncio.gather(
            triage(), aoai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
        )

    asyncio.run(both())
    with (
        chatobs.prompt("ignored"),
        chatobs.llm_call(provider="mistral", model="m-small", messages="hi", prompt=("manual", 7)) as call,
    ):
        call.record(output="ok")
    assert chatobs.flush(10)
    got = sorted(_prompt_of(s) for s in llm_spans(capture) if _prompt_of(s)[0])
    assert got == [("manual", "7"), ("triage", "1")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("",), "prompt name: expected a non-empty"),
        (("a", True), "prompt version: expected a string or an integer"),
        (("a", "1", ["x"]), "prompt variables: expected a mapping"),
    ],
)
def test_bad_prompt_arguments_are_rejected(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        chatobs.prompt(*args)
    with pytest.raises(ValueError, match=message), chatobs.llm_call(provider="x", model="y", prompt=args):
        pass
