"""Gradio with nothing but ``init()`` and the middleware: a real ``gr.ChatInterface`` (streaming, the real openai SDK
against the fake provider) mounted on FastAPI, served by uvicorn and driven with ``gradio_client``."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest

import chatobs
from chatobs.core import semconv as sc

pytestmark = pytest.mark.timeout(120)

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def _chat_app(base_url: str, *, middleware: bool = True, auth: Any = None, sync: bool = False) -> Any:
    import gradio as gr
    import openai
    from fastapi import FastAPI

    client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="test-key", max_retries=0)

    async def respond(message: str, history: list[Any]):  # type: ignore[no-untyped-def]
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", stream=True, messages=[*history, {"role": "user", "content": message}]
        )
        text = ""
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
                yield text

    sync_client = openai.OpenAI(base_url=base_url + "/v1", api_key="test-key", max_retries=0)

    def respond_sync(message: str, history: list[Any]):  # type: ignore[no-untyped-def]
        # Gradio runs each step of a sync generator in a worker thread of its own.
        text = ""
        for chunk in sync_client.chat.completions.create(
            model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": message}]
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
                yield text

    app = FastAPI()
    if middleware:
        app.add_middleware(chatobs.ChatObsMiddleware)
    demo = gr.ChatInterface(respond_sync if sync else respond, api_name="respond")
    return gr.mount_gradio_app(app, demo, path="/", auth=auth)


def _llm_spans(spans: list[Any]) -> list[Any]:
    return [s for s in spans if (s.attributes or {}).get(sc.OBSERVATION_TYPE) == "llm"]


def test_two_turns_one_trace_each_with_conversation_and_user(make_capture, fake, uvicorn_server, caplog) -> None:
    from gradio_client import Client

    cap = make_capture()
    url = uvicorn_server(_chat_app(fake.base_url, auth=[("alice", "pw")]), lifespan="on")
    caplog.set_level(logging.ERROR, logger="opentelemetry.context")
    client = Client(url + "/", auth=("alice", "pw"), verbose=False)
    assert client.predict("hello there", api_name="/respond") == "You said: hello there"
    assert client.predict("second turn", api_name="/respond") == "You said: second turn"
    spans = cap.spans()
    llm = _llm_spans(spans)
    assert len(llm) == 2, [s.name for s in spans]
    first, second = llm
    assert first.context.trace_id != second.context.trace_id
    session = client.session_hash
    for span in llm:
        assert span.attributes[sc.GEN_AI_CONVERSATION_ID] == session
        assert span.attributes[sc.USER_ID] == "alice"
        trace_spans = [s for s in spans if s.context.trace_id == span.context.trace_id]
        roots = [s for s in trace_spans if s.attributes.get(sc.CHAT_REQUEST)]
        # The trace is the one of the queue/join request that submitted the turn, and it holds the LLM span.
        assert len(roots) == 1 and roots[0].attributes[sc.URL_PATH].endswith("/queue/join"), [
            (s.name, dict(s.attributes)) for s in trace_spans
        ]
        run = next(s for s in trace_spans if s.name.startswith("gradio "))
        assert span.parent.span_id == run.context.span_id
        assert run.parent.span_id == roots[0].context.span_id
        assert run.end_time >= span.end_time  # the run lasts as long as the work, after queue/join returned
        for s in (roots[0], run):
            assert s.attributes[sc.GEN_AI_CONVERSATION_ID] == session and s.attributes[sc.USER_ID] == "alice", s.name
    assert "Failed to detach context" not in caplog.text


def test_without_middleware_the_run_is_the_chat_root(make_capture, fake, uvicorn_server) -> None:
    from gradio_client import Client

    cap = make_capture()
    url = uvicorn_server(_chat_app(fake.base_url, middleware=False), lifespan="on")
    client = Client(url + "/", verbose=False)
    assert client.predict("hi", api_name="/respond") == "You said: hi"
    spans = cap.spans()
    (llm,) = _llm_spans(spans)
    (root,) = [s for s in spans if s.context.trace_id == llm.context.trace_id and s.attributes.get(sc.CHAT_REQUEST)]
    assert root.name == "gradio respond" and llm.parent.span_id == root.context.span_id
    assert llm.attributes[sc.GEN_AI_CONVERSATION_ID] == client.session_hash
    assert sc.USER_ID not in llm.attributes  # no auth, no user


def test_sync_generator_steps_in_threads_stay_in_the_turn(make_capture, fake, uvicorn_server, caplog) -> None:
    from gradio_client import Client

    cap = make_capture()
    url = uvicorn_server(_chat_app(fake.base_url, sync=True), lifespan="on")
    caplog.set_level(logging.ERROR, logger="opentelemetry.context")
    client = Client(url + "/", verbose=False)
    assert client.predict("one", api_name="/respond") == "You said: one"
    spans = cap.spans()
    (llm,) = _llm_spans(spans)
    (root,) = [s for s in spans if s.context.trace_id == llm.context.trace_id and s.attributes.get(sc.CHAT_REQUEST)]
    assert root.name.endswith("/queue/join") and llm.attributes[sc.GEN_AI_CONVERSATION_ID] == client.session_hash
    assert "Failed to detach context" not in caplog.text


def test_uninstrument_restores_gradio(make_capture) -> None:
    import gradio.queueing as q

    original = q.Queue.process_events
    make_capture()
    assert q.Queue.process_events is not original
    from chatobs.runtime import wiring as runtime

    runtime.shutdown(timeout_s=2)
    assert q.Queue.process_events is original


LAZY = """
import sys
import chatobs
chatobs.init(exporters="none")
assert "gradio" not in sys.modules, "init() imported gradio"
import gradio.queueing as q
assert hasattr(q.Queue.process_events, "__chatobs_original__"), "not patched on import"
chatobs.shutdown()
assert not hasattr(q.Queue.process_events, "__chatobs_original__"), "not unpatched"
print("ok")
"""


def test_patched_when_imported_not_by_init() -> None:
    import subprocess
    import sys

    from tests.conftest import subprocess_env

    out = subprocess.run(
        [sys.executable, "-c", LAZY],
        env=subprocess_env(GRADIO_ANALYTICS_ENABLED="False"),
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"
