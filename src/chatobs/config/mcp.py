"""MCP settings: MCP tool calls: tool I/O capture, the slow-tool threshold and the server's name."""

from __future__ import annotations

from pydantic_settings import BaseSettings

from .fields import env_field


class MCPSettings(BaseSettings):
    """MCP: mCP tool calls: tool I/O capture, the slow-tool threshold and the server's name."""

    capture_tool_io: bool = env_field(
        "CHATOBS_CAPTURE_TOOL_IO",
        "MCP_TRACE_TOOL_IO",
        default=False,
        doc="Record MCP tool arguments and results on spans (masked before export).",
        example="true",
    )
    slow_tool_ms: float = env_field(
        "CHATOBS_SLOW_TOOL_MS",
        default=5000.0,
        gt=0,
        doc="A tool call slower than this is marked `chatobs.slow=true` and fires the slow-tool alert.",
        example="2000",
    )
    mcp_server_name: str | None = env_field(
        "CHATOBS_MCP_SERVER_NAME",
        default=None,
        doc="Name an instrumented MCP server reports for itself (defaults to the server's own name).",
        example="kb-tools",
    )
