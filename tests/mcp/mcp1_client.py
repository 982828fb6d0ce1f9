"""An mcp 1.x client under chatobs (run with the separate mcp 1.x environment, see test_mcp_v1.py).

Calls the 1.x demo server over stdio and over streamable HTTP (URL in argv[1]) inside a chat scope and prints what
the test needs to find the spans (the trace ID) as JSON. The transports are imported before ``chatobs.init()``, as in
most apps."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError

import chatobs
from chatobs.runtime.wiring import get_tracer

SERVER = str(Path(__file__).with_name("mcp1_server.py"))


async def run(url: str) -> dict[str, object]:
    out: dict[str, object] = {}
    with (
        chatobs.scope(conversation_id="conv-v1", user_id="user-v1"),
        get_tracer().start_as_current_span("turn") as turn,
    ):
        out["trace_id"] = format(turn.get_span_context().trace_id, "032x")
        env = {**os.environ, "OTEL_SERVICE_NAME": "mcp1-server"}
        async with (
            stdio_client(
                StdioServerParameters(command=sys.executable, args=[SERVER, "--transport", "stdio"], env=env)
            ) as (r, w),
            ClientSession(r, w) as session,
        ):
            await session.initialize()
            await session.list_tools()  # a request without params: chatobs must create params._meta
            result = await session.call_tool("kb_lookup", {"query": "refunds"})
            out["stdio"] = result.content[0].text
        async with streamablehttp_client(url) as (r, w, _), ClientSession(r, w) as session:
            await session.initialize()
            with get_tracer().start_as_current_span("chat fake-model"):
                results = await asyncio.gather(
                    session.call_tool("calculator", {"expression": "6 * 7"}),
                    session.call_tool("calculator", {"expression": "1 / 0"}),
                    session.call_tool("slow_lookup", {"query": "pricing"}),
                )
            out["http"] = [[c.text for c in r.content] + [r.isError] for r in results]
            try:
                await session.call_tool(
                    "slow_lookup", {"query": "shipping"}, read_timeout_seconds=timedelta(seconds=0.1)
                )
            except McpError as exc:
                out["timeout"] = exc.error.code
    return out


def main() -> None:
    chatobs.init()
    out = asyncio.run(run(sys.argv[1]))
    chatobs.shutdown()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
