"""OpenAI SDK adapter: chat completions, the Responses API and embeddings; sync and async; streams and helpers.

Maps OpenAI request bodies and response objects onto the generic recorder (:mod:`chatobs.recording.instrument.llm`); the hook
itself is shared with the Anthropic adapter (:mod:`chatobs.recording.instrument.stainless`).

Streamed chat completions only report token usage when ``stream_options.include_usage`` is set. With
``CHATOBS_OPENAI_STREAM_USAGE=true`` (the default) chatobs sets it when the app did not decide either way, records the
usage from the extra final chunk (``choices == []``) and does not pass that chunk on, so the app sees exactly the
chunks it would have seen. Turn it off for OpenAI-compatible servers that reject ``stream_options``.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...core import semconv
from ._coexist import step_aside
from .generation import Generation, Result, capture_enabled
from .messages import json_or_str, normalize_messages, text_parts
from .stainless import Call, attr, cancel_when_imported, patch, server_of, unpatch, when_imported

if TYPE_CHECKING:
    from ...config import Settings

__all__ = ["instrument", "uninstrument"]

_MODULE = "openai._base_client"
_stream_usage = True

_CHAT_PARAMS = ("temperature", "top_p", "frequency_penalty", "presence_penalty", "stop", "seed")


def instrument(settings: Settings) -> bool:
    """Patch the OpenAI SDK now if the app imported it, else as soon as it does (``init()`` never imports it)."""
    global _stream_usage
    _stream_usage = settings.openai_stream_usage
    when_imported(_MODULE, lambda module: patch(module, _route))
    return True


def uninstrument() -> None:
    cancel_when_imported(_MODULE)
    module = sys.modules.get(_MODULE)
    if module is not None:
        unpatch(module)


# --- routing ------------------------------------------------------------------------------------------------------
def _route(client: Any, options: Any, stream: bool) -> Call | None:
    if options.method.lower() != "post":
        return None
    url = options.url
    if url == "/chat/completions":
        kind = "chat"
    elif url == "/responses":
        kind = "responses"
    elif url == "/embeddings":
        kind = "embeddings"
    else:
        return None
    if step_aside("openai", client, widely_covered=kind != "responses"):
        return None
    body = options.json_data if isinstance(options.json_data, Mapping) else {}
    provider = "azure.ai.openai" if "Azure" in type(client).__name__ else "openai"
    host, port = server_of(client)
    hide_usage = False
    if kind == "chat" and stream and _stream_usage:
        extra = options.extra_json if isinstance(options.extra_json, Mapping) else {}
        current = body.get("stream_options") or extra.get("stream_options")
        if not (isinstance(current, Mapping) and "include_usage" in current):
            options = copy.copy(options)
            options.json_data = {**body, "stream_options": {**(current or {}), "include_usage": True}}
            hide_usage = True
    call = begin(kind, body, provider, host, port, stream, hide_usage=hide_usage)
    call.options = options
    return call


def begin(
    kind: str,
    body: Mapping[str, Any],
    provider: str,
    host: str | None,
    port: int | None,
    stream: bool,
    *,
    hide_usage: bool = False,
) -> Call:
    """Start the span of an OpenAI-format call (``kind``: chat, responses, embeddings) from its JSON request body.
    Shared with the plain-HTTP layer, which reads the same wire format (responses then arrive as JSON, not objects)."""
    capture = capture_enabled()
    model = body.get("model")
    if kind == "chat":
        params = {k: body.get(k) for k in _CHAT_PARAMS}
        params["max_tokens"] = body.get("max_completion_tokens") or body.get("max_tokens")
        gen = Generation(
            provider,
            model,
            semconv.OP_CHAT,
            params=params,
            stream=stream,
            server_address=host,
            server_port=port,
            capture=capture,
            raw=("openai.chat", (body.get("messages"), body.get("tools"))) if capture else None,
        )
        return Call(gen, _read_chat, lambda: _ChatStream(hide_usage, capture), None)
    if kind == "responses":
        params = {
            "temperature": body.get("temperature"),
            "top_p": body.get("top_p"),
            "max_tokens": body.get("max_output_tokens"),
        }
        gen = Generation(
            provider,
            model,
            semconv.OP_CHAT,
            params=params,
            stream=stream,
            server_address=host,
            server_port=port,
            capture=capture,
            raw=("openai.responses", (body.get("input"), body.get("instructions"), body.get("tools")))
            if capture
            else None,
        )
        return Call(gen, _read_responses, lambda: _ResponsesStream(capture), None)
    gen = Generation(provider, model, semconv.OP_EMBEDDINGS, server_address=host, server_port=port, capture=capture)
    return Call(gen, _read_embeddings, None, None)


def request_content(fmt: str, raw: Any) -> tuple[Any, Any, Any]:
    """GenAI (input messages, system instructions, tool definitions) of the snapshot :func:`begin` took (background:
    the content stage)."""
    if fmt == "openai.chat":
        messages, tools = raw
        return normalize_messages(messages), None, _tool_definitions(tools)
    value, instructions, tools = raw
    return (
        _responses_input(value),
        text_parts(instructions) if isinstance(instructions, str) else None,
        _tool_definitions(tools),
    )


def _tool_definitions(tools: Any) -> list[Any] | None:
    if not tools:
        return None
    out = []
    for tool in tools:
        if isinstance(tool, Mapping) and isinstance(tool.get("function"), Mapping):
            fn = tool["function"]
            out.append(
                {
                    "type": tool.get("type", "function"),
                    "name": fn.get("name"),
                    "description": fn.get("description"),
                    "parameters": fn.get("parameters"),
                }
            )
        else:
            out.append(tool)
    return out


# --- chat completions ---------------------------------------------------------------------------------------------
def _usage(usage: Any) -> dict[str, int] | None:
    """Chat (``prompt_tokens``...) or Responses (``input_tokens``...) usage -> generic keys."""
    if usage is None:
        return None
    out: dict[str, int] = {}
    inp = getattr(usage, "prompt_tokens", None)
    if inp is None:
        inp = attr(usage, "input_tokens")
    outp = getattr(usage, "completion_tokens", None)
    if outp is None:
        outp = attr(usage, "output_tokens")
    if inp is not None:
        out["input_tokens"] = inp
    if outp is not None:
        out["output_tokens"] = outp
    details = getattr(usage, "prompt_tokens_details", None) or attr(usage, "input_tokens_details")
    cached = getattr(details, "cached_tokens", None)
    if cached:
        out["cache_read_input_tokens"] = cached
    details = getattr(usage, "completion_tokens_details", None) or attr(usage, "output_tokens_details")
    reasoning = getattr(details, "reasoning_tokens", None)
    if reasoning:
        out["reasoning_tokens"] = reasoning
    return out


def _tool_call_part(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": json_or_str(arguments)}


def _read_chat(gen: Generation, completion: Any) -> None:
    choices = getattr(completion, "choices", None)
    if choices is None:
        return
    messages = []
    reasons = []
    for choice in choices:
        reasons.append(choice.finish_reason)
        if not gen.capture:
            continue
        msg = choice.message
        parts: list[dict[str, Any]] = []
        if msg.content:
            parts.append({"type": "text", "content": msg.content})
        if getattr(msg, "refusal", None):
            parts.append({"type": "refusal", "content": msg.refusal})
        for call in msg.tool_calls or ():
            fn = getattr(call, "function", None)
            parts.append(_tool_call_part(call.id, getattr(fn, "name", None), getattr(fn, "arguments", None)))
        messages.append({"role": msg.role or "assistant", "parts": parts, "finish_reason": choice.finish_reason})
    gen.record(messages or None, _usage(completion.usage), completion.model, completion.id, reasons)


class _Choice:
    __slots__ = ("finish", "role", "text", "tools")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.tools: dict[int, list[Any]] = {}  # index -> [id, name, [argument pieces]]
        self.finish: str | None = None
        self.role = "assistant"


class _ChatStream:
    __slots__ = ("capture", "choices", "hide_usage", "id", "model", "usage")

    def __init__(self, hide_usage: bool, capture: bool) -> None:
        self.hide_usage = hide_usage
        self.capture = capture
        self.model: str | None = None
        self.id: str | None = None
        self.usage: Any = None
        self.choices: dict[int, _Choice] = {}

    def add(self, chunk: Any) -> bool:
        if self.id is None:
            self.id = chunk.id
            self.model = chunk.model
        usage = chunk.usage
        if usage is not None:
            self.usage = usage
        choices = chunk.choices
        if not choices:
            # The usage-only final chunk chatobs asked for; the app did not, so it never sees it.
            return not (self.hide_usage and usage is not None)
        for c in choices:
            acc = self.choices.get(c.index)
            if acc is None:
                acc = self.choices[c.index] = _Choice()
            delta = c.delta
            if delta is not None and self.capture:
                if delta.content:
                    acc.text.append(delta.content)
                for tc in delta.tool_calls or ():
                    slot = acc.tools.get(tc.index)
                    if slot is None:
                        slot = acc.tools[tc.index] = [None, None, []]
                    if tc.id:
                        slot[0] = tc.id
                    fn = tc.function
                    if fn is not None:
                        if fn.name:
                            slot[1] = fn.name
                        if fn.arguments:
                            slot[2].append(fn.arguments)
            if c.finish_reason:
                acc.finish = c.finish_reason
        return True

    def result(self) -> Result:
        messages = []
        reasons = []
        for _, acc in sorted(self.choices.items()):
            if acc.finish:
                reasons.append(acc.finish)
            if not self.capture:
                continue
            parts: list[dict[str, Any]] = []
            if acc.text:
                parts.append({"type": "text", "content": "".join(acc.text)})
            for _, (call_id, name, pieces) in sorted(acc.tools.items()):
                parts.append(_tool_call_part(call_id, name, "".join(pieces)))
            if not parts and not acc.finish:
                continue  # abandoned before any content arrived
            message: dict[str, Any] = {"role": acc.role, "parts": parts}
            if acc.finish:
                message["finish_reason"] = acc.finish
            messages.append(message)
        return Result(messages or None, _usage(self.usage), self.model, self.id, reasons)


# --- Responses API ------------------------------------------------------------------------------------------------
def _responses_input(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return normalize_messages(value)
    out: list[dict[str, Any]] = []
    for item in value:
        item = item if isinstance(item, Mapping) else getattr(item, "model_dump", lambda **_: {})(exclude_none=True)
        kind = item.get("type")
        if kind == "function_call":
            out.append(
                {
                    "role": "assistant",
                    "parts": [_tool_call_part(item.get("call_id"), item.get("name"), item.get("arguments"))],
                }
            )
        elif kind == "function_call_output":
            out.append(
                {
                    "role": "tool",
                    "parts": [
                        {"type": "tool_call_response", "id": item.get("call_id"), "response": item.get("output")}
                    ],
                }
            )
        elif "role" in item:
            out.append({"role": item["role"], "parts": text_parts(item.get("content"))})
        else:
            out.append({"role": "user", "parts": text_parts([item])})
    return out


def _responses_output(response: Any) -> tuple[list[dict[str, Any]], str]:
    parts: list[dict[str, Any]] = []
    for item in getattr(response, "output", None) or ():
        kind = getattr(item, "type", None)
        if kind == "message":
            for content in item.content or ():
                if getattr(content, "type", None) == "output_text":
                    parts.append({"type": "text", "content": content.text})
                elif getattr(content, "type", None) == "refusal":
                    parts.append({"type": "refusal", "content": content.refusal})
        elif kind == "function_call":
            parts.append(_tool_call_part(item.call_id, item.name, item.arguments))
        elif kind == "reasoning":
            summary = " ".join(getattr(s, "text", "") for s in getattr(item, "summary", None) or ())
            parts.append({"type": "reasoning", "content": summary})
    status = getattr(response, "status", None)
    if status == "incomplete":
        details = getattr(response, "incomplete_details", None)
        reason = getattr(details, "reason", None) or "length"
    elif any(p["type"] == "tool_call" for p in parts):
        reason = "tool_call"
    elif status == "failed":
        reason = "error"
    else:
        reason = "stop"
    return parts, reason


def _responses_result(response: Any, capture: bool) -> Result:
    parts, reason = _responses_output(response)
    messages = [{"role": "assistant", "parts": parts, "finish_reason": reason}] if capture else None
    return Result(
        messages,
        _usage(getattr(response, "usage", None)),
        getattr(response, "model", None),
        getattr(response, "id", None),
        [reason],
    )


def _read_responses(gen: Generation, response: Any) -> None:
    if getattr(response, "object", None) != "response":
        return
    gen.record_result(_responses_result(response, gen.capture))


class _ResponsesStream:
    __slots__ = ("capture", "final", "id", "model", "text")

    def __init__(self, capture: bool) -> None:
        self.capture = capture
        self.final: Any = None
        self.id: str | None = None
        self.model: str | None = None
        self.text: list[str] = []

    def add(self, event: Any) -> bool:
        kind = getattr(event, "type", None)
        if kind == "response.output_text.delta":
            if self.capture:
                self.text.append(event.delta)
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            self.final = event.response
        elif kind == "response.created":
            self.id = event.response.id
            self.model = event.response.model
        return True

    def result(self) -> Result:
        if self.final is not None:
            return _responses_result(self.final, self.capture)
        messages = (
            [{"role": "assistant", "parts": [{"type": "text", "content": "".join(self.text)}]}] if self.text else None
        )
        return Result(messages, None, self.model, self.id, None)


# --- embeddings ---------------------------------------------------------------------------------------------------
def _read_embeddings(gen: Generation, response: Any) -> None:
    usage = getattr(response, "usage", None)
    tokens = getattr(usage, "prompt_tokens", None)
    gen.record(None, {"input_tokens": tokens} if tokens is not None else None, getattr(response, "model", None))
