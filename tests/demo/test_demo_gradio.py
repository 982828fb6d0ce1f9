"""The Gradio variant of the demo end to end: ``python -m demo_app --framework gradio`` (a ``gr.ChatInterface``
streaming through the real openai SDK to the fake provider, with the MCP tool server), driven with ``gradio_client``;
each turn is one trace in the local store, holding the LLM and tool spans, with the chat's session as conversation;
a thumbs click (Gradio's ``like`` event, sent as the browser sends it) rates the trace of the reply's turn."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from demo_app.history import SYSTEM_PROMPT_NAME, SYSTEM_PROMPT_VERSION

from .harness import Demo, ancestors, by_type, root
from .test_demo_e2e import CHROMIUM, CHROMIUM_ARGS, tool_turn

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
    # The system prompt's name and version are on every LLM call, as in the other variants.
    assert {
        (s["attributes"].get("gen_ai.prompt.name"), s["attributes"].get("gen_ai.prompt.version"))
        for s in by_type(echo + spans, "llm")
    } == {(SYSTEM_PROMPT_NAME, SYSTEM_PROMPT_VERSION)}


def _click_thumb(
    demo: Demo, session_hash: str, user: str, index: int, liked: bool, comment: str = ""
) -> list[dict[str, Any]]:
    """A thumbs click as Gradio's page sends it: the chatbot's ``like`` event through ``queue/join``, with its event
    data (``gradio_client`` has no way to send event data); returns the event's messages up to its completion."""
    from gradio_client import Client

    config = Client(demo.url + "/", verbose=False).config
    (dep,) = [d for d in config["dependencies"] if any(t[1] == "like" for t in d["targets"])]
    (chatbot,) = [t[0] for t in dep["targets"] if t[1] == "like"]
    body = {
        "data": [None, comment],  # the State's slot: Gradio takes it from the server's session, never from here
        "event_data": {"index": index, "value": ["(the reply)"], "liked": liked},
        "fn_index": dep["id"],
        "trigger_id": chatbot,
        "session_hash": session_hash,
    }
    with httpx.Client(base_url=demo.url, timeout=15, headers={"X-User-Id": user}) as http:
        joined = http.post("/gradio_api/queue/join", json=body)
        assert joined.status_code == 200, joined.text
        event_id = joined.json()["event_id"]
        messages: list[dict[str, Any]] = []
        with http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session_hash}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data: "):
                    continue
                msg = json.loads(line[6:])
                if msg.get("event_id") == event_id:
                    messages.append(msg)
                    if msg["msg"] == "process_completed":
                        return messages
    raise AssertionError(f"the like event never completed: {messages}")


def _refused(messages: list[dict[str, Any]]) -> bool:
    done = messages[-1]
    assert done["success"], done
    warned = any(m["msg"] == "log" and "Rating not recorded" in m.get("log", "") for m in messages)
    # A recorded rating clears the comment box; a refused one leaves it as it was and warns.
    assert warned == (done["output"]["data"] != [""]), messages
    return warned


def _feedback_rows(
    db: Path, n: int, timeout: float = 15, where: tuple[str, ...] = ("1 = ?", "1")
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        conn.row_factory = sqlite3.Row
        try:
            rows = [
                dict(r) for r in conn.execute(f"SELECT * FROM feedback WHERE {where[0]} ORDER BY created_ns", where[1:])
            ]
        except sqlite3.OperationalError:
            pass  # the table is not there yet
        finally:
            conn.close()
        if len(rows) >= n:
            return rows
        time.sleep(0.1)
    return rows


def test_gradio_thumbs_rate_the_turn_of_the_reply(demo: Demo) -> None:
    from gradio_client import Client

    ann = Client(demo.url + "/", verbose=False, headers={"X-User-Id": "ann"})
    ann.predict("first question", api_name="/chat")
    ann.predict("second question", api_name="/chat")
    bob = Client(demo.url + "/", verbose=False, headers={"X-User-Id": "bob"})
    bob.predict("bob's question", api_name="/chat")
    _, ann_second = _traces_of(demo.db, ann.session_hash, 2)
    (bob_first,) = _traces_of(demo.db, bob.session_hash, 1)

    # Chat messages: 0 user, 1 reply, 2 user, 3 reply. Bob's session has no message 3: ann's reply there is not his.
    assert _refused(_click_thumb(demo, bob.session_hash, "bob", 3, False, "spam"))
    # Ann's session, but another user clicking: refused too (the turn knew its user).
    assert _refused(_click_thumb(demo, ann.session_hash, "mallory", 3, False))
    assert not _refused(_click_thumb(demo, ann.session_hash, "ann", 3, False, "too short"))
    assert not _refused(_click_thumb(demo, bob.session_hash, "bob", 1, True))

    # The refused clicks came first: had any been recorded, it would be in the store before these two.
    rows = _feedback_rows(demo.db, 2, where=("user_id IN (?, ?)", "ann", "bob"))
    assert [(r["trace_id"], r["negative"], r["label"], r["user_id"], r["comment"]) for r in rows] == [
        (ann_second, 1, "negative", "ann", "too short"),
        (bob_first, 0, "positive", "bob", None),
    ], rows


def _llm_traces_of_user(db: Path, user_id: str, n: int, timeout: float = 15) -> list[str]:
    deadline = time.monotonic() + timeout
    found: list[str] = []
    while time.monotonic() < deadline:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            found = [
                r[0]
                for r in conn.execute(
                    "SELECT trace_id FROM traces WHERE user_id = ? AND llm_calls > 0 ORDER BY start_ns", (user_id,)
                )
            ]
        finally:
            conn.close()
        if len(found) >= n:
            return found
        time.sleep(0.1)
    return found


def test_browser_thumbs_down_after_a_retry(demo: Demo) -> None:
    """In Chromium: two turns, retry the second reply, thumbs-down it with a comment: the rating is on the retried
    turn's trace (the retry replaced the reply, and with it the trace the reply is rated on)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium); the browser test needs it")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_extra_http_headers({"X-User-Id": "gina"})  # the user header, as a proxy in front would add
            page.goto(demo.url + "/")
            box = page.locator("textarea").first
            for question, answer in (("hello browser", "You said: hello browser"), ("calculate 6*7", "42")):
                box.fill(question)
                box.press("Enter")
                page.get_by_text(answer).first.wait_for(timeout=15_000)
            assert len(_llm_traces_of_user(demo.db, "gina", 2)) == 2
            page.get_by_role("button", name="Retry").click()
            retried = _llm_traces_of_user(demo.db, "gina", 3)[-1]
            sync_api.expect(page.get_by_role("button", name="Dislike")).to_have_count(2)
            page.get_by_label("Comment (optional)").fill("still wrong after a retry")
            page.get_by_role("button", name="Dislike").nth(1).click()
            # Recorded: the handler cleared the comment box.
            sync_api.expect(page.get_by_label("Comment (optional)")).to_have_value("", timeout=10_000)
        finally:
            browser.close()
    rows = _feedback_rows(demo.db, 1, where=("user_id = ?", "gina"))
    assert [(r["trace_id"], r["label"], r["comment"]) for r in rows] == [
        (retried, "negative", "still wrong after a retry")
    ]
