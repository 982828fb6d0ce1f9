"""A fake LLM provider on 127.0.0.1 speaking the OpenAI and Anthropic wire formats (for the demo, tests, benchmarks).

Endpoints (both with and without the ``/v1`` prefix, so ``base_url`` may be ``http://127.0.0.1:N`` or ``.../v1``):

- ``POST /v1/chat/completions``  OpenAI chat completions, JSON or SSE (``stream: true``). With
  ``stream_options.include_usage`` every chunk carries ``"usage": null`` and a final chunk with ``choices: []`` carries the
  usage, exactly like the real API.
- ``POST /v1/responses``         OpenAI Responses API, JSON or SSE (``response.created`` ... ``response.completed``).
- ``POST /v1/embeddings``        OpenAI embeddings (8 deterministic floats per input).
- ``POST /v1/messages``          Anthropic messages, JSON or SSE (``message_start`` ... ``message_stop``).

Deterministic behaviour, driven by the text of the last user message:

- plain text: the answer is ``"You said: <last user message>"``.
- ``calculate <expression>``: a tool call to ``calculator`` with ``{"expression": "<expression>"}``.
- ``lookup <term>``: a tool call to ``kb_lookup`` with ``{"query": "<term>"}`` (the demo MCP server's argument name).
- contains ``slow``: a tool call to ``slow_lookup`` with ``{"query": "<message>"}``.
  Tool calls are only made when the request offers a tool of that name (``tools=[...]``); otherwise the plain echo.
- when the last message is a tool result (OpenAI ``role: tool`` / Responses ``function_call_output`` / Anthropic
  ``tool_result`` block), the answer is ``"The result is <tool output>"`` (or ``"<tool name> returned: <output>"`` for
  tools other than the calculator).
- contains ``error``: the first request of that conversation/message answers HTTP 429 (``retry-after: 0``,
  ``retry-after-ms: 10``, an OpenAI/Anthropic-shaped error body); the next identical request succeeds. The key is the
  ``X-Conversation-Id`` request header (if sent) plus every user message of the request.
- slow first token: ``FakeLLM(first_token_delay_s=...)`` or a request header ``X-Fake-First-Token-Delay-Ms: N`` delays
  the first streamed chunk (and the JSON answer) by that much.

Usage is reported as word counts: input tokens = words in every message/system/instructions text, output tokens =
words of the answer (or of the tool-call arguments); also on streams (OpenAI usage-only chunk, Anthropic
``message_start``/``message_delta``, Responses ``response.completed``).

Use::

    with FakeLLM() as fake:             # or: fake = FakeLLM(); base = fake.start_in_thread(); ...; fake.stop()
        client = openai.OpenAI(base_url=fake.base_url + "/v1", api_key="x")

or from a shell: ``python -m demo_app.fake_llm --port 8765``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_CALC = re.compile(r"\bcalculate\s+(.+)", re.IGNORECASE | re.DOTALL)
_LOOKUP = re.compile(r"\blookup\s+(.+)", re.IGNORECASE | re.DOTALL)
# What GET /v1/models lists (the fake answers as whatever model is asked for; these are priced in genai-prices).
LISTED_MODELS = ("gpt-4o-mini", "gpt-4o")


def _words(text: str) -> int:
    return len(text.split())


def _text_of(content: Any) -> str:
    """Plain text of an OpenAI/Anthropic content value (string, list of parts/blocks, or anything else)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    parts.append(part["text"])
                elif "content" in part:
                    parts.append(_text_of(part["content"]))
                elif isinstance(part.get("output"), str):
                    parts.append(part["output"])
        return " ".join(p for p in parts if p)
    return str(content)


class _Plan:
    """What the fake model will answer: either text or one tool call."""

    def __init__(self, text: str | None = None, tool: str | None = None, args: dict[str, Any] | None = None) -> None:
        self.text = text
        self.tool = tool
        self.args = args or {}

    @property
    def arguments(self) -> str:
        return json.dumps(self.args)

    @property
    def output_tokens(self) -> int:
        return _words(self.text) if self.text is not None else max(1, _words(self.arguments))


def _plan(last_user: str, tool_result: tuple[str, str] | None, tool_names: set[str]) -> _Plan:
    if tool_result is not None:
        name, output = tool_result
        if name in ("", "calculator"):
            return _Plan(text=f"The result is {output}")
        return _Plan(text=f"{name} returned: {output}")
    match = _CALC.search(last_user)
    if match and "calculator" in tool_names:
        return _Plan(tool="calculator", args={"expression": match.group(1).strip()})
    match = _LOOKUP.search(last_user)
    if match and "kb_lookup" in tool_names:
        return _Plan(tool="kb_lookup", args={"query": match.group(1).strip()})
    if "slow" in last_user.lower() and "slow_lookup" in tool_names:
        return _Plan(tool="slow_lookup", args={"query": last_user})
    return _Plan(text=f"You said: {last_user}")


def _chunks(text: str) -> list[str]:
    """Split text into word-ish stream deltas that concatenate back to the text."""
    pieces = re.findall(r"\S+\s*|\s+", text)
    return pieces or [""]


class FakeLLM:
    """The fake provider server. ``start_in_thread()`` returns the base URL (no ``/v1``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, first_token_delay_s: float = 0.0) -> None:
        self.host = host
        self.port = port
        self.first_token_delay_s = first_token_delay_s
        self.requests: list[dict[str, Any]] = []  # every request body received (path + json), for tests
        self._errored: set[str] = set()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start_in_thread(self) -> str:
        fake = self

        class Handler(_Handler):
            server_state = fake

        self._server = _QuietServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-llm", daemon=True)
        self._thread.start()
        return self.base_url

    def serve_forever(self) -> None:
        if self._thread is None:
            self.start_in_thread()
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            self.stop()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeLLM:
        self.start_in_thread()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self._errored.clear()
            self.requests.clear()

    # --- behaviour helpers ----------------------------------------------------------------------------------------
    def next_id(self) -> int:
        return next(self._ids)

    def should_error(self, key: str) -> bool:
        """True the first time a given error key is seen (answer 429 once, then succeed)."""
        with self._lock:
            if key in self._errored:
                return False
            self._errored.add(key)
            return True


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up (abandoned streams, closed pools) are normal here, not worth a traceback.
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server_state: FakeLLM
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Small SSE writes must leave at once (Nagle + delayed ACK would add ~40 ms per chunk on loopback).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        pass  # keep test and demo output quiet

    # --- plumbing -------------------------------------------------------------------------------------------------
    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _sse(self, events: Iterator[tuple[str | None, Any]]) -> None:
        self._start_sse()
        try:
            first = True
            for event, payload in events:
                if first:
                    self._delay()
                    first = False
                text = payload if isinstance(payload, str) else json.dumps(payload)
                frame = (f"event: {event}\n" if event else "") + f"data: {text}\n\n"
                self._write_chunk(frame.encode())
            self._write_chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client abandoned the stream: fine

    def _delay(self) -> None:
        delay = self.server_state.first_token_delay_s
        header = self.headers.get("x-fake-first-token-delay-ms")
        if header:
            try:
                delay = float(header) / 1000
            except ValueError:
                pass
        if delay > 0:
            time.sleep(delay)

    def _error_429(self, anthropic: bool) -> None:
        headers = {"retry-after": "0", "retry-after-ms": "10", "x-should-retry": "true"}
        if anthropic:
            body = {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limited (fake): retry"}}
        else:
            body = {
                "error": {
                    "message": "Rate limited (fake): retry",
                    "type": "rate_limit_error",
                    "code": "rate_limit_exceeded",
                    "param": None,
                }
            }
        self._send_json(429, body, headers)

    def _error_key(self, user_texts: list[str]) -> str:
        raw = (self.headers.get("x-conversation-id") or "") + "\x00" + "\x00".join(user_texts)
        return hashlib.sha256(raw.encode()).hexdigest()

    # --- routing --------------------------------------------------------------------------------------------------
    def do_POST(self) -> None:  # stdlib name
        length = int(self.headers.get("content-length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._send_json(400, {"error": {"message": "invalid JSON body", "type": "invalid_request_error"}})
            return
        path = self.path.split("?")[0]
        if path.startswith("/v1/"):
            path = path[3:]
        with self.server_state._lock:
            self.server_state.requests.append({"path": path, "json": body, "headers": dict(self.headers)})
        routes = {
            "/chat/completions": self._chat,
            "/responses": self._responses,
            "/embeddings": self._embeddings,
            "/messages": self._anthropic,
        }
        handler = routes.get(path)
        if handler is None:
            self._send_json(404, {"error": {"message": f"unknown path {self.path}", "type": "not_found"}})
            return
        handler(body)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0].rstrip("/") in ("/v1/models", "/models"):
            # OpenAI's model list: chat UIs (Open WebUI) list a connection's models before offering them.
            created = 1700000000
            models = [{"id": m, "object": "model", "created": created, "owned_by": "fake"} for m in LISTED_MODELS]
            self._send_json(200, {"object": "list", "data": models})
            return
        self._send_json(
            200,
            {
                "ok": True,
                "endpoints": ["/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/messages", "/v1/models"],
            },
        )

    # --- OpenAI chat completions ------------------------------------------------------------------------------------
    def _chat(self, body: dict[str, Any]) -> None:
        messages = body.get("messages") or []
        user_texts = [_text_of(m.get("content")) for m in messages if m.get("role") == "user"]
        last_user = user_texts[-1] if user_texts else ""
        tool_result = None
        if messages and messages[-1].get("role") in ("tool", "function"):
            call_id = messages[-1].get("tool_call_id")
            name = messages[-1].get("name") or ""
            for m in messages:
                for tc in m.get("tool_calls") or []:
                    if tc.get("id") == call_id:
                        name = (tc.get("function") or {}).get("name", name)
            tool_result = (name, _text_of(messages[-1].get("content")))
        if (
            "error" in last_user.lower()
            and tool_result is None
            and self.server_state.should_error(self._error_key(user_texts))
        ):
            self._error_429(anthropic=False)
            return
        tool_names = {(t.get("function") or {}).get("name") or t.get("name") for t in body.get("tools") or []}
        plan = _plan(last_user, tool_result, tool_names)
        input_tokens = sum(_words(_text_of(m.get("content"))) for m in messages)
        usage = {
            "prompt_tokens": input_tokens,
            "completion_tokens": plan.output_tokens,
            "total_tokens": input_tokens + plan.output_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
        n = self.server_state.next_id()
        cid, model, created = f"chatcmpl-fake-{n}", body.get("model", "fake-model"), int(time.time())
        call_id = f"call_fake_{n}"
        finish = "tool_calls" if plan.tool else "stop"
        if not body.get("stream"):
            self._delay()
            message: dict[str, Any] = {"role": "assistant", "content": plan.text, "refusal": None}
            if plan.tool:
                message["tool_calls"] = [
                    {"id": call_id, "type": "function", "function": {"name": plan.tool, "arguments": plan.arguments}}
                ]
            self._send_json(
                200,
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "system_fingerprint": "fp_fake",
                    "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                    "usage": usage,
                },
            )
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            out: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
            if include_usage:
                out["usage"] = None
            return out

        def events() -> Iterator[tuple[str | None, Any]]:
            if plan.tool:
                yield (
                    None,
                    chunk(
                        {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [
                                {
                                    "index": 0,
                                    "id": call_id,
                                    "type": "function",
                                    "function": {"name": plan.tool, "arguments": ""},
                                }
                            ],
                        }
                    ),
                )
                args = plan.arguments
                half = len(args) // 2
                for piece in (args[:half], args[half:]):
                    yield None, chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            else:
                yield None, chunk({"role": "assistant", "content": ""})
                for piece in _chunks(plan.text or ""):
                    yield None, chunk({"content": piece})
            yield None, chunk({}, finish)
            if include_usage:
                yield (
                    None,
                    {
                        "id": cid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "system_fingerprint": "fp_fake",
                        "choices": [],
                        "usage": usage,
                    },
                )
            yield None, "[DONE]"

        self._sse(events())

    # --- OpenAI Responses API ---------------------------------------------------------------------------------------
    def _responses(self, body: dict[str, Any]) -> None:
        raw_input = body.get("input")
        items: list[dict[str, Any]] = (
            [{"role": "user", "content": raw_input}] if isinstance(raw_input, str) else list(raw_input or [])
        )
        user_texts = [_text_of(i.get("content")) for i in items if i.get("role") == "user"]
        last_user = user_texts[-1] if user_texts else ""
        tool_result = None
        if items and items[-1].get("type") == "function_call_output":
            call_id = items[-1].get("call_id")
            name = next(
                (i.get("name", "") for i in items if i.get("type") == "function_call" and i.get("call_id") == call_id),
                "",
            )
            tool_result = (name, str(items[-1].get("output", "")))
        if (
            "error" in last_user.lower()
            and tool_result is None
            and self.server_state.should_error(self._error_key(user_texts))
        ):
            self._error_429(anthropic=False)
            return
        tool_names = {t.get("name") for t in body.get("tools") or []}
        plan = _plan(last_user, tool_result, tool_names)
        input_tokens = sum(_words(_text_of(i.get("content") or i.get("output"))) for i in items) + _words(
            _text_of(body.get("instructions"))
        )
        usage = {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": plan.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + plan.output_tokens,
        }
        n = self.server_state.next_id()
        rid, model, created = f"resp_fake_{n}", body.get("model", "fake-model"), time.time()
        item_id = f"msg_fake_{n}" if plan.text is not None else f"fc_fake_{n}"
        if plan.tool:
            done_item: dict[str, Any] = {
                "type": "function_call",
                "id": item_id,
                "call_id": f"call_fake_{n}",
                "name": plan.tool,
                "arguments": plan.arguments,
                "status": "completed",
            }
        else:
            done_item = {
                "type": "message",
                "id": item_id,
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": plan.text, "annotations": [], "logprobs": []}],
            }

        def response(status: str, output: list[Any], with_usage: bool) -> dict[str, Any]:
            return {
                "id": rid,
                "object": "response",
                "created_at": created,
                "status": status,
                "model": model,
                "output": output,
                "parallel_tool_calls": True,
                "tool_choice": body.get("tool_choice", "auto"),
                "tools": body.get("tools") or [],
                "temperature": body.get("temperature"),
                "top_p": body.get("top_p"),
                "max_output_tokens": body.get("max_output_tokens"),
                "instructions": body.get("instructions"),
                "error": None,
                "incomplete_details": None,
                "metadata": {},
                "usage": usage if with_usage else None,
            }

        if not body.get("stream"):
            self._delay()
            self._send_json(200, response("completed", [done_item], True))
            return

        def events() -> Iterator[tuple[str | None, Any]]:
            seq = itertools.count()

            def ev(kind: str, **fields: Any) -> tuple[str, Any]:
                return kind, {"type": kind, "sequence_number": next(seq), **fields}

            yield ev("response.created", response=response("in_progress", [], False))
            yield ev("response.in_progress", response=response("in_progress", [], False))
            if plan.tool:
                start = dict(done_item, arguments="", status="in_progress")
                yield ev("response.output_item.added", output_index=0, item=start)
                args = plan.arguments
                half = len(args) // 2
                for piece in (args[:half], args[half:]):
                    yield ev("response.function_call_arguments.delta", item_id=item_id, output_index=0, delta=piece)
                yield ev(
                    "response.function_call_arguments.done",
                    item_id=item_id,
                    output_index=0,
                    arguments=args,
                    name=plan.tool,
                )
            else:
                text = plan.text or ""
                yield ev(
                    "response.output_item.added",
                    output_index=0,
                    item={
                        "type": "message",
                        "id": item_id,
                        "role": "assistant",
                        "status": "in_progress",
                        "content": [],
                    },
                )
                yield ev(
                    "response.content_part.added",
                    item_id=item_id,
                    output_index=0,
                    content_index=0,
                    part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
                )
                for piece in _chunks(text):
                    yield ev(
                        "response.output_text.delta",
                        item_id=item_id,
                        output_index=0,
                        content_index=0,
                        delta=piece,
                        logprobs=[],
                    )
                yield ev(
                    "response.output_text.done",
                    item_id=item_id,
                    output_index=0,
                    content_index=0,
                    text=text,
                    logprobs=[],
                )
                yield ev(
                    "response.content_part.done",
                    item_id=item_id,
                    output_index=0,
                    content_index=0,
                    part={"type": "output_text", "text": text, "annotations": [], "logprobs": []},
                )
            yield ev("response.output_item.done", output_index=0, item=done_item)
            yield ev("response.completed", response=response("completed", [done_item], True))

        self._sse(events())

    # --- OpenAI embeddings ------------------------------------------------------------------------------------------
    def _embeddings(self, body: dict[str, Any]) -> None:
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) else list(raw or [])
        data = []
        tokens = 0
        for index, text in enumerate(inputs):
            text = text if isinstance(text, str) else " ".join(map(str, text))
            tokens += _words(text)
            digest = hashlib.sha256(text.encode()).digest()
            data.append({"object": "embedding", "index": index, "embedding": [round(b / 255, 4) for b in digest[:8]]})
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model", "fake-embedding"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    # --- Anthropic messages -----------------------------------------------------------------------------------------
    def _anthropic(self, body: dict[str, Any]) -> None:
        messages = body.get("messages") or []
        user_texts = []
        for m in messages:
            if m.get("role") != "user":
                continue
            content = m.get("content")
            if isinstance(content, list) and any(
                isinstance(b, dict) and b.get("type") == "tool_result" for b in content
            ):
                continue
            user_texts.append(_text_of(content))
        last_user = user_texts[-1] if user_texts else ""
        tool_result = None
        last = messages[-1] if messages else {}
        if last.get("role") == "user" and isinstance(last.get("content"), list):
            for block in last["content"]:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    name = ""
                    for m in messages:
                        if isinstance(m.get("content"), list):
                            for b in m["content"]:
                                if (
                                    isinstance(b, dict)
                                    and b.get("type") == "tool_use"
                                    and b.get("id") == block.get("tool_use_id")
                                ):
                                    name = b.get("name", "")
                    tool_result = (name, _text_of(block.get("content")))
        if (
            "error" in last_user.lower()
            and tool_result is None
            and self.server_state.should_error(self._error_key(user_texts))
        ):
            self._error_429(anthropic=True)
            return
        tool_names = {t.get("name") for t in body.get("tools") or []}
        plan = _plan(last_user, tool_result, tool_names)
        input_tokens = sum(_words(_text_of(m.get("content"))) for m in messages) + _words(_text_of(body.get("system")))
        n = self.server_state.next_id()
        mid, model = f"msg_fake_{n}", body.get("model", "fake-claude")
        tool_id = f"toolu_fake_{n}"
        stop = "tool_use" if plan.tool else "end_turn"
        usage = {
            "input_tokens": input_tokens,
            "output_tokens": plan.output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        if plan.tool:
            block: dict[str, Any] = {"type": "tool_use", "id": tool_id, "name": plan.tool, "input": plan.args}
        else:
            block = {"type": "text", "text": plan.text}
        if not body.get("stream"):
            self._delay()
            self._send_json(
                200,
                {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [block],
                    "stop_reason": stop,
                    "stop_sequence": None,
                    "usage": usage,
                },
            )
            return

        def events() -> Iterator[tuple[str | None, Any]]:
            start_usage = dict(usage, output_tokens=1)
            yield (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": mid,
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": start_usage,
                    },
                },
            )
            if plan.tool:
                yield (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "tool_use", "id": tool_id, "name": plan.tool, "input": {}},
                    },
                )
                yield "ping", {"type": "ping"}
                args = plan.arguments
                half = len(args) // 2
                for piece in (args[:half], args[half:]):
                    yield (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": 0,
                            "delta": {"type": "input_json_delta", "partial_json": piece},
                        },
                    )
            else:
                yield (
                    "content_block_start",
                    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                )
                yield "ping", {"type": "ping"}
                for piece in _chunks(plan.text or ""):
                    yield (
                        "content_block_delta",
                        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
                    )
            yield "content_block_stop", {"type": "content_block_stop", "index": 0}
            yield (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": plan.output_tokens},
                },
            )
            yield "message_stop", {"type": "message_stop"}

        self._sse(events())


def start_in_thread(port: int = 0, first_token_delay_s: float = 0.0) -> FakeLLM:
    """Start a fake server in a daemon thread; ``.base_url`` is its address, ``.stop()`` ends it."""
    fake = FakeLLM(port=port, first_token_delay_s=first_token_delay_s)
    fake.start_in_thread()
    return fake


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m demo_app.fake_llm", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--first-token-delay", type=float, default=0.0, help="seconds before the first streamed chunk")
    args = parser.parse_args(argv)
    fake = FakeLLM(host=args.host, port=args.port, first_token_delay_s=args.first_token_delay)
    fake.start_in_thread()
    print(
        f"fake LLM provider on {fake.base_url} (OpenAI base_url={fake.base_url}/v1, Anthropic base_url={fake.base_url})",
        flush=True,
    )
    fake.serve_forever()


if __name__ == "__main__":
    main()
