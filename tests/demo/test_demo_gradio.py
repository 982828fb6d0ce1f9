"""The Gradio variant of the demo end to end: ``python -m demo_app --framework gradio`` (a ``gr.ChatInterface``
streaming through the real openai SDK to the fake provider, with the MCP tool server), driven with ``gradio_client``;
each turn is one trace in the local store, holding the LLM and tool spans, with the chat's session as conversation."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Demo, ancestors, by_type, root
from .test_demo_e2e import tool_turn

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    d = Demo("gradio", tmp_path_factory.mktemp("demo-gradio"), GRADIO_ANALYTICS_ENABLED="False")
    yield d
    d.stop()


def _traces_of(db: Path, conversation_id: str, n: int, timeout: float = 15) -> list[str]:
    deadline = time.monotonic() + timeout
    found: list[str] = []
    while time.monotonic() < deadline:
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
            try:
                found = [
                    r[0]
                    for r in conn.execute(
                        "SELECT trace_id FROM traces WHERE conversation_id = ? AND llm_calls > 0 ORDER BY start_ns",
                        (conversation_id,),
                    )
                ]
            finally:
                conn.close()
        except sqlite3.OperationalError:
            pass
        if len(found) >= n:
            return found
        time.sleep(0.1)
    return found


def test_gradio_demo_turns_are_traced(demo: Demo) -> None:
    from gradio_client import Client

    client = Client(demo.url + "/", verbose=False)
    assert client.predict("hello gradio", api_name="/chat").endswith("You said: hello gradio")
    assert "The result is 42" in client.predict("calculate 6*7", api_name="/chat")
    first, second = _traces_of(demo.db, client.session_hash, 2)
    echo = demo.wait_spans(first, lambda spans: len(by_type(spans, "llm")) >= 1)
    assert len(by_type(echo, "llm")) == 1
    spans = demo.wait_spans(second, tool_turn("calculator"))
    request = root(spans)
    assert request["attributes"].get("chatobs.request") and request["name"].endswith("/queue/join")
    assert all(request in ancestors(s, spans) for s in by_type(spans, "llm"))
    # FastAPI's own dependency span opens before Gradio has read the session (and is dropped as framework noise).
    ours = [s for s in spans if not s["name"].startswith("fastapi.")]
    assert {s["conversation_id"] for s in ours} == {client.session_hash}, [
        (s["name"], s["conversation_id"]) for s in ours
    ]
    assert "Failed to detach context" not in demo.output()
