"""The demo end to end, through real processes: ``python -m demo_app`` (FastAPI and Flask) with its fake LLM provider
and its MCP tool server (stdio, a child of the app), scripted conversations over HTTP, and the traces they leave in
the local store. Nothing is mocked."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from .harness import REPO, SLOW_TOOL_MS, Demo, ancestors, by_type, new_traceparent, root, service

pytestmark = pytest.mark.timeout(180)

APP_SERVICE = "chatobs-demo"
MCP_SERVICE = "demo-mcp-server"


@pytest.fixture(scope="module", params=["fastapi", "flask"])
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    d = Demo(request.param, tmp_path_factory.mktemp(f"demo-{request.param}"))
    yield d
    d.stop()


def tool_turn(tool: str, llm_calls: int = 2):  # type: ignore[no-untyped-def]
    """Predicate: the whole tool turn is in the store -- the request, the LLM calls, and the tool call's spans from
    both processes (they arrive in separate batches)."""

    def done(spans: list[dict]) -> bool:
        calls = [s for s in spans if s["tool_name"] == tool]
        return (
            any(s["attributes"].get("chatobs.request") for s in spans)
            and len(by_type(spans, "llm")) >= llm_calls
            and any(service(s) == APP_SERVICE for s in calls)
            and any(service(s) == MCP_SERVICE for s in calls)
        )

    return done


def test_echo_turn_is_one_trace_with_llm_span(demo: Demo) -> None:
    trace_id, traceparent = new_traceparent()
    r = demo.chat("hello there", conversation_id="conv-echo", traceparent=traceparent)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["reply"] == "You said: hello there"
    assert body["conversation_id"] == "conv-echo"
    # The browser's trace ID runs through: the response names it in the header and the body.
    assert r.headers["x-trace-id"] == body["trace_id"] == trace_id

    spans = demo.wait_spans(
        trace_id, lambda s: bool(by_type(s, "llm")) and any(x["attributes"].get("chatobs.request") for x in s)
    )
    request = root(spans)
    assert request["kind"] == "server" and service(request) == APP_SERVICE
    llm = by_type(spans, "llm")
    assert len(llm) == 1
    assert request in ancestors(llm[0], spans)
    assert llm[0]["input_tokens"] and llm[0]["output_tokens"]
    for s in spans:
        assert s["conversation_id"] == "conv-echo", s["name"]
        assert s["user_id"] == "alice", s["name"]


def test_calculate_runs_the_mcp_tool_in_the_same_trace(demo: Demo) -> None:
    trace_id, traceparent = new_traceparent()
    r = demo.chat("calculate 2+3", conversation_id="conv-calc", user="bob", traceparent=traceparent)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["reply"] == "The result is 5"
    assert body["tools"][0]["name"] == "calculator" and body["tools"][0]["result"] == "5"

    spans = demo.wait_spans(trace_id, tool_turn("calculator"))
    assert {s["trace_id"] for s in spans} == {trace_id}
    request = root(spans)
    # The tool-call round and the answer round: two LLM calls under the request.
    llm = by_type(spans, "llm")
    assert len(llm) == 2 and all(request in ancestors(s, spans) for s in llm)
    # The app's MCP client span and the MCP server's span, in another process, in the same trace.
    tool_spans = [s for s in spans if s["tool_name"] == "calculator"]
    client = [s for s in tool_spans if service(s) == APP_SERVICE]
    server = [s for s in tool_spans if service(s) == MCP_SERVICE]
    assert len(client) == 1 and len(server) == 1, [(s["name"], service(s)) for s in tool_spans]
    assert server[0]["parent_id"] == client[0]["span_id"]
    assert request in ancestors(server[0], spans)
    for s in spans:
        assert s["conversation_id"] == "conv-calc", (s["name"], service(s))
        assert s["user_id"] == "bob", (s["name"], service(s))


def test_slow_tool_is_marked_slow(demo: Demo) -> None:
    trace_id, traceparent = new_traceparent()
    r = demo.chat("please do something slow", conversation_id="conv-slow", traceparent=traceparent)
    assert r.status_code == 200, r.text
    assert r.json()["tools"][0]["name"] == "slow_lookup"
    spans = demo.wait_spans(trace_id, tool_turn("slow_lookup"))
    slow = [s for s in spans if s["tool_name"] == "slow_lookup" and service(s) == APP_SERVICE]
    assert slow and slow[0]["duration_ms"] >= SLOW_TOOL_MS
    assert slow[0]["attributes"].get("chatobs.slow") is True
    # Tool input and output are recorded on both sides (the demo turns CHATOBS_CAPTURE_TOOL_IO on for both processes).
    for s in spans:
        if s["tool_name"] == "slow_lookup":
            assert "something slow" in str(s["attributes"].get("gen_ai.tool.call.arguments")), service(s)
            assert s["attributes"].get("gen_ai.tool.call.result"), service(s)
    # ...and chatobs's slow-tool alert reaches the log of the agent, where the alert rules run for every process.
    deadline = time.monotonic() + 15
    while "[slow_tool]" not in demo.agent_log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "[slow_tool] tool 'slow_lookup'" in demo.agent_log()


def test_error_is_a_failed_turn_and_regenerate_recovers(demo: Demo) -> None:
    trace_id, traceparent = new_traceparent()
    r = demo.chat("trigger an error", conversation_id="conv-err", traceparent=traceparent)
    assert r.status_code == 502
    assert "429" in r.json()["error"] and r.json()["trace_id"] == trace_id
    spans = demo.wait_spans(trace_id, lambda s: bool(by_type(s, "llm")))
    assert root(spans)["status"] == "error"
    llm = by_type(spans, "llm")[0]
    assert llm["status"] == "error" and llm["attributes"].get("error.type") == "RateLimitError"

    trace_id2, traceparent2 = new_traceparent()
    r = demo.chat(conversation_id="conv-err", action="regenerate", traceparent=traceparent2)
    assert r.status_code == 200, r.text
    assert r.json()["reply"] == "You said: trigger an error"
    spans = demo.wait_spans(
        trace_id2, lambda s: bool(by_type(s, "llm")) and any(x["attributes"].get("chatobs.request") for x in s)
    )
    request = root(spans)
    assert request["attributes"].get("chatobs.regenerate") is True
    assert request["status"] == "ok"
    # The regeneration answers the same user message again.
    history = demo.client.get("/api/conversations/conv-err", headers={"x-user-id": "alice"}).json()["messages"]
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[1]["error"] is None and history[1]["trace_id"] == trace_id2


def test_lookup_uses_the_knowledge_base(demo: Demo) -> None:
    r = demo.chat("lookup refunds", conversation_id="conv-kb")
    assert r.status_code == 200, r.text
    tool = r.json()["tools"][0]
    assert tool["name"] == "kb_lookup" and not tool["is_error"], tool
    assert "Refunds are issued" in r.json()["reply"]


def test_pii_is_masked_in_every_process(demo: Demo) -> None:
    from chatobs.processing import redaction

    if not hasattr(redaction, "RedactionStage"):
        pytest.skip("the privacy pipeline (PII masking) is not on this branch yet")
    email = "jane.doe@example.com"
    trace_id, traceparent = new_traceparent()
    r = demo.chat(f"calculate 1+2 and mail me at {email}", conversation_id="conv-pii", traceparent=traceparent)
    assert r.status_code == 200, r.text
    spans = demo.wait_spans(trace_id, tool_turn("calculator"))
    llm_input = str(by_type(spans, "llm")[0]["attributes"].get("gen_ai.input.messages"))
    assert "calculate 1+2" in llm_input  # content is recorded...
    for s in spans:
        assert email not in str(s["attributes"]), (s["name"], service(s))  # ...but the address never reaches the store


def test_streaming_reply_ends_with_the_trace_id(demo: Demo) -> None:
    response, events = demo.stream("calculate 6*7", conversation_id="conv-stream")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    kinds = [e["type"] for e in events]
    assert kinds[0] == "tool" and kinds[-1] == "done" and kinds.count("delta") > 1
    assert "".join(e["text"] for e in events if e["type"] == "delta") == "The result is 42"
    trace_id = events[-1]["trace_id"]
    assert trace_id == response.headers["x-trace-id"]
    spans = demo.wait_spans(trace_id, tool_turn("calculator"))
    # Token usage is recorded on streamed calls too.
    assert all(s["input_tokens"] and s["output_tokens"] for s in by_type(spans, "llm"))
    assert all(s["conversation_id"] == "conv-stream" for s in spans)


def test_history_edit_and_conversation_list(demo: Demo) -> None:
    assert demo.chat("first message", conversation_id="conv-hist", user="carol").status_code == 200
    trace_id, traceparent = new_traceparent()
    assert (
        demo.chat("second message", conversation_id="conv-hist", user="carol", traceparent=traceparent).status_code
        == 200
    )
    spans = demo.wait_spans(trace_id, lambda s: bool(by_type(s, "llm")))
    # The whole conversation goes to the LLM each turn.
    sent = str(by_type(spans, "llm")[0]["attributes"].get("gen_ai.input.messages"))
    assert "first message" in sent and "You said: first message" in sent and "second message" in sent

    trace_id, traceparent = new_traceparent()
    r = demo.chat(
        "second message, edited", conversation_id="conv-hist", user="carol", action="edit", traceparent=traceparent
    )
    assert r.status_code == 200 and r.json()["reply"] == "You said: second message, edited"
    spans = demo.wait_spans(trace_id, lambda s: any(x["attributes"].get("chatobs.request") for x in s))
    assert root(spans)["attributes"].get("chatobs.edit") is True
    history = demo.client.get("/api/conversations/conv-hist", headers={"x-user-id": "carol"}).json()["messages"]
    assert [m["content"] for m in history] == [
        "first message",
        "You said: first message",
        "second message, edited",
        "You said: second message, edited",
    ]
    listed = demo.client.get("/api/conversations", headers={"x-user-id": "carol"}).json()["conversations"]
    assert [c["id"] for c in listed] == ["conv-hist"]
    # Another user sees neither the list entry nor the conversation.
    assert demo.client.get("/api/conversations", headers={"x-user-id": "dave"}).json()["conversations"] == []
    assert demo.client.get("/api/conversations/conv-hist", headers={"x-user-id": "dave"}).status_code == 404
    assert demo.chat("hi", conversation_id="conv-hist", user="dave").status_code == 403


def test_bad_requests_get_clear_answers(demo: Demo) -> None:
    r = demo.client.post("/api/chat", content=b"not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "body" in r.json()["error"]
    r = demo.chat("")
    assert r.status_code == 400 and "message" in r.json()["error"]
    r = demo.chat("hi", action="rewind")
    assert r.status_code == 400 and "action" in r.json()["error"]
    r = demo.chat(conversation_id="never-seen", action="regenerate")
    assert r.status_code == 404
    r = demo.client.post("/api/chat", json={"message": "hi"}, headers={"x-user-id": "bad user\x7f"})
    assert r.status_code == 400 and "X-User-Id" in r.json()["error"]


def test_chat_page_is_served(demo: Demo) -> None:
    page = demo.client.get("/")
    assert page.status_code == 200 and "chatobs" in page.text
    assert demo.client.get("/static/app.js").status_code == 200
    assert demo.client.get("/static/..%2Fapi.py").status_code == 404
    config = demo.client.get("/api/config").json()
    assert config["framework"] == demo.framework and config["model"]


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = REPO / "docs" / "images"


@contextmanager
def chat_page(demo: Demo, user: str) -> Iterator[tuple[Any, Any]]:
    """Playwright and a Chromium page on the demo's chat, signed in as ``user`` (skips without a browser)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium); the browser test needs it")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 720})
            page.goto(demo.url + "/")
            page.fill("#user", user)
            page.dispatch_event("#user", "change")
            yield sync_api, page
        finally:
            browser.close()


def test_browser_chat_to_tool_span(demo: Demo, tmp_path: Path) -> None:
    """A person's path: type "calculate 2+3" in the chat page, see 5, follow the reply's trace link to the viewer,
    see the MCP tool span. ``DEMO_SCREENSHOTS=1`` also refreshes the README's screenshots (FastAPI run)."""
    shots = SCREENSHOTS if os.environ.get("DEMO_SCREENSHOTS") == "1" and demo.framework == "fastapi" else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    with chat_page(demo, "erin") as (sync_api, page):
        for text in ("hello there", "calculate 2+3"):
            page.fill("#input", text)
            page.press("#input", "Enter")
            reply = page.locator(".msg.assistant").last
            sync_api.expect(reply.locator("a.trace")).to_be_visible(timeout=60_000)
        sync_api.expect(reply.locator(".text")).to_have_text("The result is 5")
        sync_api.expect(reply.locator(".tool")).to_contain_text("calculator")
        assert "5" in reply.locator(".text").inner_text()
        page.screenshot(path=str(shots / "demo-chat.png"))

        link = reply.locator("a.trace")
        trace_id = link.get_attribute("data-trace-id")
        href = link.get_attribute("href")
        assert trace_id and href and trace_id in href
        # The trace ID came from the page's own traceparent: the request span's parent is the browser's span.
        spans = demo.wait_spans(trace_id, tool_turn("calculator"))
        assert root(spans)["parent_id"] and root(spans)["parent_id"] not in {x["span_id"] for x in spans}
        assert root(spans)["user_id"] == "erin"

        page.goto(demo.url + href)  # the link opens a new tab; follow it in this one
        tool_row = page.locator('.span-row[data-type="tool"]').first
        sync_api.expect(tool_row).to_contain_text("calculator", timeout=30_000)
        # The app's MCP client span: the tool call as the chat app saw it, arguments and result included.
        page.locator(".span-row", has_text="MCP send tools/call").first.click()
        sync_api.expect(page.locator("#span-details")).to_contain_text("calculator")
        page.screenshot(path=str(shots / "demo-trace.png"))


def test_browser_thumbs_down_shows_in_the_viewer(demo: Demo) -> None:
    """Thumbs-down with a comment beside a reply, sent through chatobs's feedback route (the agent masks the
    comment's e-mail), then found in the viewer: on the trace, in the negative-feedback filter, in the conversation."""
    with chat_page(demo, "fay") as (sync_api, page):
        page.fill("#input", "lookup refunds")
        page.press("#input", "Enter")
        reply = page.locator(".msg.assistant").last
        sync_api.expect(reply.locator("button.thumb")).to_have_count(2, timeout=60_000)
        trace_id = reply.locator("a.trace").get_attribute("data-trace-id")
        reply.locator(".feedback-comment").fill("not what I asked, write to fay@example.com")
        reply.locator('button.thumb[data-value="false"]').click()
        sync_api.expect(reply.locator(".feedback.sent")).to_contain_text("noted", timeout=10_000)

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the rating travels app -> agent -> local store
            rows = demo.client.get("/_chatobs/api/traces", params={"feedback": "negative"}).json()["data"]
            if any(r["trace_id"] == trace_id for r in rows):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the thumbs-down never reached the local store")

        page.goto(demo.url + "/_chatobs/#/traces?feedback=negative")
        row = page.locator("table.grid tbody tr").first
        sync_api.expect(row.locator(".rating.negative")).to_be_visible(timeout=10_000)
        row.click()
        box = page.locator("#trace-feedback")
        sync_api.expect(box).to_contain_text("not what I asked")
        assert trace_id in page.locator("main h1").first.inner_text()
        assert "fay@example.com" not in box.inner_text()  # masked before the store


def test_the_demo_runs_exactly_one_agent_and_no_other_chatobs_process(demo: Demo) -> None:
    trace_id, traceparent = new_traceparent()
    r = demo.chat("calculate 1+1", conversation_id="conv-one-agent", traceparent=traceparent)
    assert r.status_code == 200, r.text
    demo.wait_spans(trace_id, tool_turn("calculator"))  # both the app's and the tool server's spans arrived
    live = []
    for f in demo.agent_dir.glob("*.pid"):
        pid = int(f.read_text())
        if Path(f"/proc/{pid}").exists():
            live.append(pid)
    assert len(live) == 1, live  # the app and the MCP tool server share one agent
    # Beside the demo's own processes (the fake LLM, the tool server) nothing else runs: no masking worker.
    children = []
    for task in Path(f"/proc/{demo.proc.pid}/task").iterdir():
        children += [int(x) for x in (task / "children").read_text().split()]
    cmdlines = [Path(f"/proc/{c}/cmdline").read_bytes().replace(b"\0", b" ").decode() for c in children]
    assert all("fake_llm" in c or "mcp_server" in c for c in cmdlines), cmdlines
    # ...and Presidio runs inside the agent: it has no child process either.
    assert all(not (t / "children").read_text().split() for t in Path(f"/proc/{live[0]}/task").iterdir())


def test_ctrl_c_stops_every_process(demo: Demo) -> None:
    """Last in this module: stops the module's demo the way a person does."""
    pids = _descendants(demo.proc.pid)
    assert len(pids) >= 2, "expected the fake LLM and the MCP server as children"
    assert demo.stop(signal.SIGINT) == 0, demo.output()
    assert "Traceback" not in demo.output()
    assert not [p for p in pids if _alive(p)]


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(proc.name))
            out.extend(_descendants(int(proc.name)))
    return out


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
