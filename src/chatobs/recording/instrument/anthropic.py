"""Anthropic SDK adapter: ``messages.create`` (plain and ``stream=True``) and ``messages.stream()``, sync and async.

Maps Anthropic request bodies, ``Message`` objects and stream events onto the generic recorder
(:mod:`chatobs.recording.instrument.llm`) through the hook shared with the OpenAI adapter (:mod:`._sdk_patch`).

The installed SDK (2.x) has OpenTelemetry spans of its own (``anthropic.messages.create``, enabled whenever a tracer
provider exists). For a call chatobs records, chatobs switches the SDK's own span off *for that call only* (its
client's ``_tracer`` reads as ``None`` while chatobs's span is open), so each call yields one LLM span, with chatobs's
content capture, streaming and cost. Calls chatobs does not record (other endpoints, another instrumentation active,
``CHATOBS_INSTRUMENT`` without ``anthropic``) keep the SDK's span.

Token counts follow the GenAI conventions: ``gen_ai.usage.input_tokens`` includes cache reads and cache writes
(Anthropic reports them separately), which are also given as ``gen_ai.usage.cache_read.input_tokens`` /
``gen_ai.usage.cache_creation.input_tokens``.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from ...core import semconv
from ._coexist import step_aside
from .generation import Generation, Result, capture_enabled
from .messages import json_or_str, normalize_messages, text_parts
from .stainless import Call, cancel_when_imported, patch, server_of, unpatch, when_imported

if TYPE_CHECKING:
    from ...config import Settings

__all__ = ["instrument", "uninstrument"]

_MODULE = "anthropic._base_client"
_recording: contextvars.ContextVar[bool] = contextvars.ContextVar("chatobs_anthropic_recording", default=False)
_original_tracer_property: Any = None


def instrument(settings: Settings) -> bool:
    """Patch the Anthropic SDK now if the app imported it, else as soon as it does (``init()`` never imports it)."""

    def apply(base_client: Any) -> None:
        _silence_sdk_spans(base_client)
        patch(base_client, _route)

    when_imported(_MODULE, apply)
    return True


def uninstrument() -> None:
    global _original_tracer_property
    cancel_when_imported(_MODULE)
    base_client = sys.modules.get(_MODULE)
    if base_client is None:
        return
    unpatch(base_client)
    if _original_tracer_property is not None:
        base_client.BaseClient._tracer = _original_tracer_property
        _original_tracer_property = None


def _silence_sdk_spans(base_client: Any) -> None:
    global _original_tracer_property
    prop = base_client.BaseClient.__dict__.get("_tracer")
    if _original_tracer_property is not None or not isinstance(prop, property) or prop.fget is None:
        return
    _original_tracer_property = prop
    getter = prop.fget

    def _tracer(self: Any) -> Any:
        return None if _recording.get() else getter(self)

    base_client.BaseClient._tracer = property(_tracer)


class _Generation(Generation):
    """A Generation that keeps the SDK's own span off while the request runs (see the module docstring)."""

    __slots__ = ()

    def activate(self) -> object:
        return (super().activate(), _recording.set(True))

    @staticmethod
    def deactivate(token: object) -> None:
        ctx_token, flag_token = cast("tuple[object, contextvars.Token[bool]]", token)
        try:
            _recording.reset(flag_token)
        except ValueError:  # reset from another context: nothing to restore
            pass
        Generation.deactivate(ctx_token)


# --- routing ------------------------------------------------------------------------------------------------------
def _route(client: Any, options: Any, stream: bool) -> Call | None:
    if options.method.lower() != "post" or options.url.split("?", 1)[0] != "/v1/messages":
        return None
    if step_aside("anthropic", client):
        return None
    body = options.json_data if isinstance(options.json_data, Mapping) else {}
    extra = options.extra_json if isinstance(options.extra_json, Mapping) else {}
    host, port = server_of(client)
    call = begin(body, "anthropic", host, port, stream, extra=extra)
    call.options = options
    return call


def begin(
    body: Mapping[str, Any],
    provider: str,
    host: str | None,
    port: int | None,
    stream: bool,
    *,
    extra: Mapping[str, Any] | None = None,
) -> Call:
    """Start the span of an Anthropic messages call from its JSON request body (shared with the plain-HTTP layer)."""
    capture = capture_enabled()
    system = body.get("system")
    extra = extra or {}
    # Newer SDKs dropped temperature/top_p/top_k arguments; apps still send them through `extra_body`.
    params = {k: body.get(k, extra.get(k)) for k in ("temperature", "top_p", "top_k", "max_tokens", "stop_sequences")}
    gen = _Generation(
        provider,
        body.get("model"),
        semconv.OP_CHAT,
        params=params,
        stream=stream,
        server_address=host,
        server_port=port,
        capture=capture,
        raw=("anthropic", (body.get("messages"), system, body.get("tools"))) if capture else None,
    )
    return Call(gen, _read_message, lambda: _MessageStream(capture), None)


def request_content(raw: Any) -> tuple[Any, Any, Any]:
    """GenAI (input messages, system instructions, tool definitions) of the snapshot :func:`begin` took (background:
    the content stage)."""
    messages, system, tools = raw
    return _input_messages(messages), text_parts(system) if system else None, _tools(tools)


def _input_messages(messages: Any) -> list[dict[str, Any]] | None:
    if not messages:
        return None
    out = normalize_messages(messages)
    for m in out:
        # A user turn made only of tool results is the tool's answer in GenAI terms.
        if m["role"] == "user" and m["parts"] and all(p.get("type") == "tool_call_response" for p in m["parts"]):
            m["role"] = "tool"
    return out


def _tools(tools: Any) -> list[Any] | None:
    if not tools:
        return None
    return [
        {
            "type": "function",
            "name": t.get("name"),
            "description": t.get("description"),
            "parameters": t.get("input_schema"),
        }
        if isinstance(t, Mapping) and "input_schema" in t
        else t
        for t in tools
    ]


def _usage(usage: Any, output_tokens: int | None = None) -> dict[str, int] | None:
    if usage is None:
        return None
    cache_read = getattr(usage, "cache_read_input_tokens", None) or 0
    cache_write = getattr(usage, "cache_creation_input_tokens", None) or 0
    out = {"input_tokens": (getattr(usage, "input_tokens", None) or 0) + cache_read + cache_write}
    out_tokens = output_tokens if output_tokens is not None else getattr(usage, "output_tokens", None)
    if out_tokens is not None:
        out["output_tokens"] = out_tokens
    if cache_read:
        out["cache_read_input_tokens"] = cache_read
    if cache_write:
        out["cache_creation_input_tokens"] = cache_write
    return out


def _block_part(block: Any) -> dict[str, Any] | None:
    kind = getattr(block, "type", None)
    if kind == "text":
        return {"type": "text", "content": block.text}
    if kind in ("tool_use", "server_tool_use"):
        return {"type": "tool_call", "id": block.id, "name": block.name, "arguments": block.input}
    if kind == "thinking":
        return {"type": "reasoning", "content": block.thinking}
    return None


def _read_message(gen: Generation, message: Any) -> None:
    if getattr(message, "type", None) != "message":
        return
    messages = None
    if gen.capture:
        parts = [p for p in map(_block_part, message.content or ()) if p is not None]
        messages = [{"role": "assistant", "parts": parts, "finish_reason": message.stop_reason or "stop"}]
    gen.record(
        messages,
        _usage(message.usage),
        message.model,
        message.id,
        [message.stop_reason] if message.stop_reason else None,
    )


class _MessageStream:
    __slots__ = ("blocks", "capture", "id", "model", "output_tokens", "stop", "usage")

    def __init__(self, capture: bool) -> None:
        self.capture = capture
        self.id: str | None = None
        self.model: str | None = None
        self.usage: Any = None
        self.output_tokens: int | None = None
        self.stop: str | None = None
        self.blocks: dict[int, list[Any]] = {}  # index -> [kind, id, name, [pieces]]

    def add(self, event: Any) -> bool:
        kind = event.type
        if kind == "content_block_delta":
            if self.capture:
                block = self.blocks.get(event.index)
                delta = event.delta
                if block is not None:
                    piece = (
                        getattr(delta, "text", None)
                        or getattr(delta, "partial_json", None)
                        or getattr(delta, "thinking", None)
                    )
                    if piece:
                        block[3].append(piece)
        elif kind == "content_block_start":
            if self.capture:
                b = event.content_block
                self.blocks[event.index] = [
                    b.type,
                    getattr(b, "id", None),
                    getattr(b, "name", None),
                    [b.text] if getattr(b, "text", None) else [],
                ]
        elif kind == "message_start":
            message = event.message
            self.id, self.model, self.usage = message.id, message.model, message.usage
        elif kind == "message_delta":
            self.stop = event.delta.stop_reason or self.stop
            usage = getattr(event, "usage", None)
            if usage is not None:
                self.output_tokens = usage.output_tokens
        return True

    def result(self) -> Result:
        messages = None
        if self.capture:
            parts: list[dict[str, Any]] = []
            for _, (kind, block_id, name, pieces) in sorted(self.blocks.items()):
                text = "".join(pieces)
                if kind == "text":
                    parts.append({"type": "text", "content": text})
                elif kind in ("tool_use", "server_tool_use"):
                    parts.append(
                        {"type": "tool_call", "id": block_id, "name": name, "arguments": json_or_str(text or "{}")}
                    )
                elif kind == "thinking":
                    parts.append({"type": "reasoning", "content": text})
            message: dict[str, Any] = {"role": "assistant", "parts": parts}
            if self.stop:
                message["finish_reason"] = self.stop
            messages = [message]
        return Result(
            messages, _usage(self.usage, self.output_tokens), self.model, self.id, [self.stop] if self.stop else None
        )
