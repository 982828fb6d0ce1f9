"""The app's side of MCP: one client session to the demo tool server, shared by every chat request.

A background task owns the session (anyio wants a context manager entered and left in one task); requests call tools
through it from their own tasks, so the MCP SDK's client span -- and the trace context it sends in ``params._meta``
-- belongs to the request's trace. Flask, which has no event loop, drives the same class through ``LoopThread``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

logger = logging.getLogger("demo_app")
T = TypeVar("T")


@dataclass
class ToolResult:
    name: str
    arguments: dict[str, Any]
    text: str
    is_error: bool
    duration_ms: float

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arguments": self.arguments,
            "result": self.text,
            "is_error": self.is_error,
            "duration_ms": round(self.duration_ms, 1),
        }


class ToolsUnavailable(RuntimeError):
    """The MCP tool server could not be reached."""


def stdio_server(command: Sequence[str], env: dict[str, str] | None = None) -> Any:
    from mcp.client.stdio import StdioServerParameters

    # The SDK passes only a minimal environment to the child by default; the tool server needs ours (PYTHONPATH,
    # CHATOBS_*: it traces itself into the same store).
    return StdioServerParameters(
        command=command[0], args=list(command[1:]), env=dict(os.environ if env is None else env)
    )


class McpToolbox:
    """Tools of one MCP server for an LLM: ``definitions()`` in the OpenAI ``tools`` format, ``call()`` to run one.

    ``server`` is what ``mcp.Client`` accepts: a streamable-HTTP URL or ``StdioServerParameters``. Must be used from
    one event loop. A session that broke (server died) is re-opened on the next call.
    """

    def __init__(self, server: Any, timeout_s: float = 30.0) -> None:
        self.server = server
        self.timeout_s = timeout_s
        self._client: Any = None
        self._tools: list[Any] = []
        self._owner: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None

    async def start(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._owner is not None and not self._owner.done():
                return
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._stop = asyncio.Event()
            # The session outlives any request: start it outside the caller's trace.
            self._owner = asyncio.get_running_loop().create_task(self._own(ready, self._stop), context=_empty_context())
            try:
                await asyncio.wait_for(asyncio.shield(ready), self.timeout_s)
            except Exception as exc:
                raise ToolsUnavailable(f"MCP tool server did not start: {exc!r}") from exc

    async def _own(self, ready: asyncio.Future[None], stop: asyncio.Event) -> None:
        from mcp import Client

        try:
            async with Client(self.server, read_timeout_seconds=self.timeout_s) as client:
                listed = await client.list_tools()
                self._client, self._tools = client, list(listed.tools)
                ready.set_result(None)
                await stop.wait()
        except BaseException as exc:  # reported to whoever waits for the session
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else ToolsUnavailable(repr(exc)))
            elif not isinstance(exc, asyncio.CancelledError):
                logger.warning("MCP session ended: %r", exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        finally:
            self._client = None

    async def _ensure(self) -> Any:
        if self._client is None or self._owner is None or self._owner.done():
            await self.start()
        if self._client is None:
            raise ToolsUnavailable("MCP tool server is not connected")
        return self._client

    async def definitions(self) -> list[dict[str, Any]]:
        await self._ensure()
        return [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description or "", "parameters": t.input_schema},
            }
            for t in self._tools
        ]

    async def call(self, name: str, raw_arguments: str | dict[str, Any] | None) -> ToolResult:
        """Run a tool the model asked for. Tool failures come back as an error result for the model to read."""
        started = time.perf_counter()
        try:
            arguments = parse_arguments(raw_arguments)
        except ValueError as exc:
            return ToolResult(name, {}, f"invalid arguments: {exc}", True, 0.0)
        try:
            client = await self._ensure()
            result = await client.call_tool(name, arguments)
        except ToolsUnavailable as exc:
            return ToolResult(name, arguments, str(exc), True, (time.perf_counter() - started) * 1000)
        except Exception as exc:  # noqa: BLE001 - the model is told, the turn goes on
            return ToolResult(name, arguments, f"tool call failed: {exc}", True, (time.perf_counter() - started) * 1000)
        text = "\n".join(getattr(block, "text", "") for block in result.content if getattr(block, "type", "") == "text")
        if not text and result.structured_content is not None:
            text = json.dumps(result.structured_content)
        return ToolResult(name, arguments, text, bool(result.is_error), (time.perf_counter() - started) * 1000)

    async def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._owner is not None:
            try:
                await asyncio.wait_for(self._owner, 5)
            except (TimeoutError, asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping anyway
                self._owner.cancel()
        self._owner = None


def parse_arguments(raw: str | dict[str, Any] | None) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


def _empty_context() -> Any:
    import contextvars

    from opentelemetry import context as otel_context

    ctx = contextvars.copy_context()
    # Detach the owner task from whatever span is current (e.g. the first request that triggered the connect).
    ctx.run(otel_context.attach, otel_context.Context())
    return ctx


class LoopThread:
    """An event loop in a daemon thread, for sync code (Flask) that uses async clients.

    ``run(coro)`` copies the caller's context into the task (``call_soon_threadsafe`` does), so spans the coroutine
    creates are children of the caller's span.
    """

    def __init__(self, name: str = "demo-async") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


class SyncToolbox:
    """``McpToolbox`` for threaded (WSGI) apps."""

    def __init__(self, toolbox: McpToolbox, loop: LoopThread) -> None:
        self.toolbox = toolbox
        self.loop = loop

    def start(self) -> None:
        self.loop.run(self.toolbox.start(), timeout=self.toolbox.timeout_s + 5)

    def definitions(self) -> list[dict[str, Any]]:
        return self.loop.run(self.toolbox.definitions(), timeout=self.toolbox.timeout_s + 5)

    def call(self, name: str, raw_arguments: str | dict[str, Any] | None) -> ToolResult:
        return self.loop.run(self.toolbox.call(name, raw_arguments), timeout=self.toolbox.timeout_s + 5)

    def stop(self) -> None:
        try:
            self.loop.run(self.toolbox.stop(), timeout=10)
        except Exception as exc:  # noqa: BLE001 - shutting down
            logger.debug("stopping the MCP session: %r", exc)
