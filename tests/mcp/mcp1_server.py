"""The demo tools on an mcp 1.x ``FastMCP`` server (run with the separate mcp 1.x environment, see test_mcp_v1.py)."""

from __future__ import annotations

import argparse

import anyio
from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError

import chatobs
from demo_app.mcp_server import kb_answer, safe_eval, slow_seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    server = FastMCP("chatobs-demo-tools-v1", host="127.0.0.1", port=args.port, log_level="WARNING")

    @server.tool()
    def calculator(expression: str) -> str:
        try:
            return repr(safe_eval(expression))
        except ValueError as exc:
            raise ToolError(str(exc)) from None

    @server.tool()
    def kb_lookup(query: str) -> str:
        return kb_answer(query)

    @server.tool()
    async def slow_lookup(query: str) -> str:
        await anyio.sleep(slow_seconds())
        return kb_answer(query)

    chatobs.instrument_mcp_server(server)  # starts chatobs from the environment, as a server process would
    server.run("stdio" if args.transport == "stdio" else "streamable-http")


if __name__ == "__main__":
    main()
