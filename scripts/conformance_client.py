"""A minimal MCP client for the conformance suite's client scenarios (`initialize`, `tools_call`).

    python scripts/conformance_client.py [--no-chatobs] SERVER_URL

The suite appends the server URL and sets MCP_CONFORMANCE_SCENARIO. With chatobs (the default) the client runs
inside a chat scope, so every request carries chatobs's trace context and baggage in params._meta.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any


async def run(url: str) -> None:
    from mcp import Client

    async with Client(url, mode="legacy") as client:
        tools = await client.list_tools()
        for tool in tools.tools:
            props = (tool.input_schema or {}).get("properties", {}) if isinstance(tool.input_schema, dict) else {}
            args: dict[str, Any] = {
                name: i + 1 for i, name in enumerate(props) if props[name].get("type") in ("number", "integer")
            }
            await client.call_tool(tool.name, args)


def main() -> None:
    argv = sys.argv[1:]
    use_chatobs = "--no-chatobs" not in argv
    url = [a for a in argv if not a.startswith("--")][-1]
    if not use_chatobs:
        asyncio.run(run(url))
        return
    import chatobs

    chatobs.init()
    with (
        chatobs.scope(conversation_id="conformance", user_id="conformance-user"),
        chatobs.get_tracer().start_as_current_span("conformance"),
    ):
        asyncio.run(run(url))
    chatobs.shutdown()


if __name__ == "__main__":
    main()
