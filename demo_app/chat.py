"""One chat turn, shared by the FastAPI (async) and Flask (sync) apps: ask the LLM through the real ``openai`` SDK,
run the MCP tools it asks for, feed the results back, and yield the reply as it comes.

The two drivers below are the same loop written for an ``AsyncOpenAI`` and an ``OpenAI`` client; everything else
(accumulating streamed tool calls, events, errors) is shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import chatobs

from .history import SYSTEM_PROMPT_NAME, SYSTEM_PROMPT_VERSION
from .tools import ToolResult

if TYPE_CHECKING:
    from .settings import DemoConfig
    from .tools import McpToolbox, SyncToolbox

MAX_TOOL_ROUNDS = 4


@dataclass
class Delta:
    """A piece of the reply text."""

    text: str


@dataclass
class ToolUsed:
    result: ToolResult


Event = Delta | ToolUsed


class TurnFailed(Exception):
    """The LLM call failed (rate limit, provider down...): the turn has no answer. ``str()`` is safe to show."""

    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def describe_llm_error(exc: Exception) -> TurnFailed:
    status = getattr(exc, "status_code", None)
    kind = type(exc).__name__
    if status == 429:
        return TurnFailed("The model provider is rate limiting us (HTTP 429). Try again or regenerate.", kind)
    if status is not None:
        return TurnFailed(f"The model provider answered HTTP {status}.", kind)
    return TurnFailed(f"The model provider could not be reached ({kind}).", kind)


def openai_clients(cfg: DemoConfig) -> tuple[Any, Any]:
    """(sync, async) OpenAI clients. No SDK retries: the demo shows a 429 as the failed turn it is."""
    import openai

    kwargs: dict[str, Any] = {"api_key": cfg.api_key, "max_retries": 0, "timeout": cfg.llm_timeout_s}
    if cfg.base_url:
        kwargs["base_url"] = cfg.base_url
    return openai.OpenAI(**kwargs), openai.AsyncOpenAI(**kwargs)


@dataclass
class _StreamedMessage:
    """An assistant message assembled from streamed chunks (text and tool calls arrive in pieces)."""

    content: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)

    def add(self, chunk: Any) -> str:
        text = ""
        for choice in getattr(chunk, "choices", None) or []:
            delta = choice.delta
            if delta is None:
                continue
            if delta.content:
                text += delta.content
            for tc in delta.tool_calls or []:
                call = self.calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                if tc.id:
                    call["id"] = tc.id
                if tc.function is not None:
                    call["name"] += tc.function.name or ""
                    call["arguments"] += tc.function.arguments or ""
        if text:
            self.content.append(text)
        return text

    def tool_calls(self) -> list[dict[str, Any]]:
        return [self.calls[i] for i in sorted(self.calls)]


def _calls_of(message: Any) -> list[dict[str, Any]]:
    return [
        {"id": tc.id, "name": tc.function.name, "arguments": tc.function.arguments} for tc in message.tool_calls or []
    ]


def _assistant_with_calls(content: str | None, calls: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": content or None,
        "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls
        ],
    }


def _tool_message(call: dict[str, Any], result: ToolResult) -> dict[str, Any]:
    content = f"Error: {result.text}" if result.is_error else result.text
    return {"role": "tool", "tool_call_id": call["id"], "content": content}


def _request(
    cfg: DemoConfig, messages: list[dict[str, Any]], tools: list[dict[str, Any]], stream: bool, conversation_id: str
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"model": cfg.model, "messages": messages, "stream": stream}
    if tools:
        kwargs["tools"] = tools
    if cfg.fake:
        # The fake provider keys its "429 once" on the conversation; a real provider is sent nothing extra.
        kwargs["extra_headers"] = {"X-Conversation-Id": conversation_id}
    return kwargs


async def run_turn_async(
    cfg: DemoConfig, llm: Any, tools: McpToolbox, messages: list[dict[str, Any]], *, stream: bool, conversation_id: str
) -> AsyncIterator[Event]:
    """Yield the reply's deltas and the tools used. Raises ``TurnFailed`` when the LLM call fails."""
    import openai

    messages = list(messages)
    definitions = await tools.definitions()
    for _ in range(MAX_TOOL_ROUNDS):
        try:
            request = _request(cfg, messages, definitions, stream, conversation_id)
            if stream:
                acc = _StreamedMessage()
                # The LLM span names the system prompt's version, so `chatobs stats` can compare versions.
                with chatobs.prompt(SYSTEM_PROMPT_NAME, version=SYSTEM_PROMPT_VERSION):
                    chunks = await llm.chat.completions.create(**request)
                async for chunk in chunks:
                    text = acc.add(chunk)
                    if text:
                        yield Delta(text)
                content, calls = "".join(acc.content), acc.tool_calls()
            else:
                with chatobs.prompt(SYSTEM_PROMPT_NAME, version=SYSTEM_PROMPT_VERSION):
                    response = await llm.chat.completions.create(**request)
                message = response.choices[0].message
                content, calls = message.content or "", _calls_of(message)
                if content:
                    yield Delta(content)
        except openai.OpenAIError as exc:
            raise describe_llm_error(exc) from exc
        if not calls:
            return
        messages.append(_assistant_with_calls(content, calls))
        # A model may ask for several tools at once; they run side by side, like a real agent loop.
        results = await asyncio.gather(*(tools.call(c["name"], c["arguments"]) for c in calls))
        for call, result in zip(calls, results, strict=False):
            yield ToolUsed(result)
            messages.append(_tool_message(call, result))
    yield Delta("\n(stopped: too many tool calls in one turn)")


def run_turn_sync(
    cfg: DemoConfig, llm: Any, tools: SyncToolbox, messages: list[dict[str, Any]], *, stream: bool, conversation_id: str
) -> Iterator[Event]:
    """``run_turn_async`` for a sync ``OpenAI`` client and a threaded app."""
    import openai

    messages = list(messages)
    definitions = tools.definitions()
    for _ in range(MAX_TOOL_ROUNDS):
        try:
            request = _request(cfg, messages, definitions, stream, conversation_id)
            if stream:
                acc = _StreamedMessage()
                with chatobs.prompt(SYSTEM_PROMPT_NAME, version=SYSTEM_PROMPT_VERSION):
                    chunks = llm.chat.completions.create(**request)
                for chunk in chunks:
                    text = acc.add(chunk)
                    if text:
                        yield Delta(text)
                content, calls = "".join(acc.content), acc.tool_calls()
            else:
                with chatobs.prompt(SYSTEM_PROMPT_NAME, version=SYSTEM_PROMPT_VERSION):
                    response = llm.chat.completions.create(**request)
                message = response.choices[0].message
                content, calls = message.content or "", _calls_of(message)
                if content:
                    yield Delta(content)
        except openai.OpenAIError as exc:
            raise describe_llm_error(exc) from exc
        if not calls:
            return
        messages.append(_assistant_with_calls(content, calls))
        for call in calls:
            result = tools.call(call["name"], call["arguments"])
            yield ToolUsed(result)
            messages.append(_tool_message(call, result))
    yield Delta("\n(stopped: too many tool calls in one turn)")
