"""The fake provider server itself: its documented demo behaviour and its command-line entry point."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import subprocess_env

pytestmark = pytest.mark.timeout(60)


def test_error_answers_429_once_per_conversation(fake) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "trigger an error"}]}
    with httpx.Client(base_url=fake.base_url) as c:
        first = c.post("/v1/chat/completions", json=body, headers={"X-Conversation-Id": "a"})
        second = c.post("/v1/chat/completions", json=body, headers={"X-Conversation-Id": "a"})
        other = c.post("/v1/chat/completions", json=body, headers={"X-Conversation-Id": "b"})
        anthropic_first = c.post("/v1/messages", json={**body, "max_tokens": 5}, headers={"X-Conversation-Id": "c"})
    assert first.status_code == 429 and first.headers["retry-after"] == "0"
    assert first.json()["error"]["type"] == "rate_limit_error"
    assert (
        second.status_code == 200 and second.json()["choices"][0]["message"]["content"] == "You said: trigger an error"
    )
    assert other.status_code == 429
    assert anthropic_first.status_code == 429 and anthropic_first.json()["type"] == "error"


def test_tools_only_when_offered_and_usage_is_word_counts(fake) -> None:
    with httpx.Client(base_url=fake.base_url) as c:
        plain = c.post(
            "/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "calculate 1+1"}]}
        ).json()
        tool = c.post(
            "/v1/chat/completions",
            json={
                "model": "m",
                "messages": [{"role": "user", "content": "is this slow today"}],
                "tools": [{"type": "function", "function": {"name": "slow_lookup"}}],
            },
        ).json()
    assert plain["choices"][0]["message"]["content"] == "You said: calculate 1+1"
    assert plain["usage"] == {**plain["usage"], "prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}
    call = tool["choices"][0]["message"]["tool_calls"][0]["function"]
    assert call["name"] == "slow_lookup" and call["arguments"] == '{"query": "is this slow today"}'


def test_command_line_entry_point() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "demo_app.fake_llm", "--port", str(port)],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                reply = httpx.post(
                    f"http://127.0.0.1:{port}/v1/messages",
                    timeout=2,
                    json={"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "hey"}]},
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
                time.sleep(0.1)
        assert reply.json()["content"] == [{"type": "text", "text": "You said: hey"}]
    finally:
        proc.terminate()
        proc.wait(10)
