"""``@chatobs.workflow`` / ``task`` / ``agent`` / ``tool`` on sync and async functions and generators."""

from __future__ import annotations

import asyncio
import json

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import chatobs
from chatobs.core import semconv as sc

pytestmark = pytest.mark.timeout(30)


def by_name(cap):  # type: ignore[no-untyped-def]
    return {s.name: s for s in cap.spans()}


def test_sync_nesting_input_output(capture) -> None:
    @chatobs.tool
    def calculator(expression: str) -> float:
        return eval(expression, {"__builtins__": {}})  # test fixture

    @chatobs.task(name="retrieve")
    def retrieve(query: str, k: int = 2) -> list[str]:
        return [f"doc-{i}" for i in range(k)]

    @chatobs.agent(name="math-agent")
    def solve(question: str) -> str:
        retrieve(question)
        return str(calculator("6*7"))

    @chatobs.workflow(name="answer")
    def answer(question: str) -> str:
        return solve(question)

    with chatobs.scope(conversation_id="conv-d"):
        assert answer("what is 6*7?") == "42"
    spans = by_name(capture)
    assert set(spans) == {"invoke_workflow answer", "invoke_agent math-agent", "retrieve", "execute_tool calculator"}
    wf, ag = spans["invoke_workflow answer"], spans["invoke_agent math-agent"]
    task, tl = spans["retrieve"], spans["execute_tool calculator"]
    assert ag.parent.span_id == wf.context.span_id
    assert task.parent.span_id == ag.context.span_id and tl.parent.span_id == ag.context.span_id
    assert (
        wf.attributes[sc.OBSERVATION_TYPE] == "workflow"
        and wf.attributes[sc.GEN_AI_OPERATION_NAME] == "invoke_workflow"
    )
    assert (
        ag.attributes[sc.GEN_AI_AGENT_NAME] == "math-agent"
        and ag.attributes[sc.GEN_AI_OPERATION_NAME] == "invoke_agent"
    )
    assert task.attributes[sc.OBSERVATION_TYPE] == "task" and sc.GEN_AI_OPERATION_NAME not in task.attributes
    assert (
        tl.attributes[sc.GEN_AI_TOOL_NAME] == "calculator" and tl.attributes[sc.GEN_AI_OPERATION_NAME] == "execute_tool"
    )
    assert json.loads(task.attributes[sc.INPUT]) == {"query": "what is 6*7?"}  # arguments as passed
    assert json.loads(task.attributes[sc.OUTPUT]) == ["doc-0", "doc-1"]
    assert json.loads(tl.attributes[sc.GEN_AI_TOOL_CALL_ARGUMENTS]) == {"expression": "6*7"}
    assert json.loads(tl.attributes[sc.GEN_AI_TOOL_CALL_RESULT]) == 42
    assert wf.attributes[sc.GEN_AI_CONVERSATION_ID] == "conv-d"


def test_exception_recorded_and_reraised(capture) -> None:
    @chatobs.tool
    def broken(x: int) -> int:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        broken(1)
    span = by_name(capture)["execute_tool broken"]
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == "ValueError"
    assert sc.OUTPUT not in span.attributes


def test_methods_drop_self_and_capture_flags(capture) -> None:
    class Bot:
        @chatobs.task(capture_output=False)
        def reply(self, text: str) -> str:
            return text.upper()

    assert Bot().reply("hi") == "HI"
    span = by_name(capture)["reply"]
    assert json.loads(span.attributes[sc.INPUT]) == {"text": "hi"}
    assert sc.OUTPUT not in span.attributes


def test_capture_content_off(make_capture) -> None:
    cap = make_capture(capture_content=False)

    @chatobs.tool
    def secret(token: str) -> str:
        return token

    secret("s3cr3t")
    span = by_name(cap)["execute_tool secret"]
    assert sc.INPUT not in span.attributes and sc.OUTPUT not in span.attributes


def test_sync_generator_keeps_span_open_and_context_clean(capture) -> None:
    @chatobs.task
    def tokens(n: int):  # type: ignore[no-untyped-def]
        for i in range(n):
            # Inside the generator its own span is current...
            yield (i, trace.get_current_span().get_span_context().span_id)

    outer = trace.get_current_span()
    items = []
    for _i, current in tokens(3):
        items.append(current)
        # ...but never in the caller between items.
        assert trace.get_current_span() is outer
    span = by_name(capture)["tokens"]
    assert set(items) == {span.context.span_id}
    assert json.loads(span.attributes[sc.OUTPUT])[0][0] == 0 and len(json.loads(span.attributes[sc.OUTPUT])) == 3


def test_generator_abandoned_ends_span(capture) -> None:
    @chatobs.task
    def forever():  # type: ignore[no-untyped-def]
        i = 0
        while True:
            yield i
            i += 1

    gen = forever()
    next(gen)
    next(gen)
    gen.close()
    span = by_name(capture)["forever"]
    assert json.loads(span.attributes[sc.OUTPUT]) == [0, 1]


async def test_async_function_gather_and_to_thread(capture) -> None:
    @chatobs.tool
    def blocking_lookup(term: str) -> str:
        return f"{term}: found"

    @chatobs.task
    async def fetch(i: int) -> int:
        await asyncio.sleep(0.01)
        await asyncio.to_thread(blocking_lookup, f"t{i}")
        return i * 2

    @chatobs.workflow(name="fanout")
    async def fanout() -> list[int]:
        return list(await asyncio.gather(*(fetch(i) for i in range(3))))

    assert await fanout() == [0, 2, 4]
    spans = capture.spans()
    wf = next(s for s in spans if s.name == "invoke_workflow fanout")
    fetches = [s for s in spans if s.name == "fetch"]
    lookups = [s for s in spans if s.name == "execute_tool blocking_lookup"]
    assert len(fetches) == 3 and len(lookups) == 3
    assert all(f.parent.span_id == wf.context.span_id for f in fetches)
    fetch_ids = {f.context.span_id for f in fetches}
    assert {lk.parent.span_id for lk in lookups} == fetch_ids  # to_thread kept the context
    assert sorted(json.loads(f.attributes[sc.OUTPUT]) for f in fetches) == [0, 2, 4]


async def test_async_generator_and_error(capture) -> None:
    @chatobs.agent(name="streamer")
    async def stream_answer(q: str):  # type: ignore[no-untyped-def]
        for word in q.split():
            await asyncio.sleep(0)
            yield word

    @chatobs.task
    async def failing() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("boom")

    words = [w async for w in stream_answer("a b c")]
    assert words == ["a", "b", "c"]
    with pytest.raises(RuntimeError):
        await failing()
    spans = by_name(capture)
    assert json.loads(spans["invoke_agent streamer"].attributes[sc.OUTPUT]) == ["a", "b", "c"]
    assert spans["failing"].attributes[sc.ERROR_TYPE] == "RuntimeError"


def test_llm_call_inside_tool_is_child(capture) -> None:
    @chatobs.agent
    def helper() -> str:
        with chatobs.llm_call(provider="local", model="m") as call:
            call.record(output="x")
        return "ok"

    helper()
    spans = by_name(capture)
    assert spans["chat m"].parent.span_id == spans["invoke_agent helper"].context.span_id
