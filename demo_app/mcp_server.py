"""The demo's MCP server: three tools, one resource and one prompt, traced by chatobs from its own process.

Run it on its own (``python -m demo_app.mcp_server --transport stdio`` or ``--transport http --port 8765``); the demo
chat app and the tests start it as a subprocess. It calls ``chatobs.init()`` so its spans join the trace of the chat
request that called the tool (trace context and the conversation/user IDs arrive in the request's ``params._meta``).

Tools:
- ``calculator``: arithmetic on numbers (``+ - * / // % **``, parentheses, unary minus) by walking the parsed
  expression; nothing is ever ``eval``-ed, names and calls are rejected. A bad expression is a tool error.
- ``kb_lookup``: a tiny built-in support knowledge base.
- ``slow_lookup``: ``kb_lookup`` after sleeping ``DEMO_SLOW_TOOL_SECONDS`` (default 5.5, i.e. slower than the default
  ``CHATOBS_SLOW_TOOL_MS=5000``), to show slow-tool marking and client timeouts.

With ``--transport stdio`` stdout is the protocol channel: do not use ``CHATOBS_EXPORTERS=console`` there.
"""

from __future__ import annotations

import argparse
import ast
import logging
import math
import operator
import os
import sys
from collections.abc import Callable
from typing import Any

SERVER_NAME = "chatobs-demo-tools"
DEFAULT_SLOW_SECONDS = 5.5

logger = logging.getLogger("demo_app.mcp_server")

KNOWLEDGE_BASE: dict[str, str] = {
    "refunds": "Refunds are issued to the original payment method within 5 business days of approval.",
    "shipping": "Standard shipping takes 3-5 business days; express shipping takes 1-2 business days.",
    "opening hours": "Support is open Monday to Friday, 08:00-18:00 CET.",
    "password reset": "Use 'Forgot password' on the sign-in page; the reset link is valid for 30 minutes.",
    "pricing": "The Basic plan costs 9 EUR per month, Pro costs 29 EUR per month, billed monthly.",
    "data retention": "Conversation logs are kept for 30 days, then deleted.",
}

# --- calculator: a whitelist evaluator over the AST ------------------------------------------------------------------
_BIN_OPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY_OPS: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_MAX_EXPRESSION_CHARS = 200
_MAX_EXPONENT = 100  # 9**9**9 would otherwise hang the server
_MAX_MAGNITUDE = 1e100


def safe_eval(expression: str) -> float | int:
    """The value of an arithmetic ``expression``; ``ValueError`` with a readable reason for anything else."""
    if len(expression) > _MAX_EXPRESSION_CHARS:
        raise ValueError(f"expression longer than {_MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise ValueError(f"not an arithmetic expression: {expression!r}") from None
    return _eval_node(tree.body)


def _eval_node(node: ast.AST) -> float | int:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY_OPS:
        return _UNARY_OPS[type(node.op)](_eval_node(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BIN_OPS:
        left, right = _eval_node(node.left), _eval_node(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ValueError(f"exponent larger than {_MAX_EXPONENT}")
        try:
            value = _BIN_OPS[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ValueError("division by zero") from None
        if (
            isinstance(value, complex)
            or (isinstance(value, float) and not math.isfinite(value))
            or abs(value) > _MAX_MAGNITUDE
        ):
            raise ValueError("result out of range")
        return value
    raise ValueError(f"unsupported element in expression: {type(node).__name__}")


def kb_answer(query: str) -> str:
    q = query.strip().lower()
    for topic, answer in KNOWLEDGE_BASE.items():
        if topic in q or q in topic:
            return answer
    return f"No entry for {query!r}. Known topics: {', '.join(KNOWLEDGE_BASE)}."


def slow_seconds() -> float:
    """``DEMO_SLOW_TOOL_SECONDS``, or the default; a bad value falls back to the default with a log line."""
    raw = os.environ.get("DEMO_SLOW_TOOL_SECONDS")
    if not raw:
        return DEFAULT_SLOW_SECONDS
    try:
        value = float(raw)
        if value < 0 or not math.isfinite(value):
            raise ValueError
        return value
    except ValueError:
        logger.warning(
            "DEMO_SLOW_TOOL_SECONDS=%r: expected a number of seconds >= 0; using %s", raw, DEFAULT_SLOW_SECONDS
        )
        return DEFAULT_SLOW_SECONDS


def build_server(name: str = SERVER_NAME) -> Any:
    """The demo ``MCPServer`` (mcp 2.x) with its tools, resource and prompt."""
    import anyio
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server = MCPServer(name=name, instructions="Support tools for the chatobs demo chat app.", log_level="WARNING")

    @server.tool(
        description="Evaluate an arithmetic expression, e.g. '(2 + 3) * 4 / 7'. Numbers and + - * / // % ** only."
    )
    def calculator(expression: str) -> str:
        try:
            return repr(safe_eval(expression))
        except ValueError as exc:
            raise ToolError(str(exc)) from None  # the caller gets a result with isError=true and this text

    @server.tool(description="Look up a support topic in the knowledge base (refunds, shipping, opening hours, ...).")
    def kb_lookup(query: str) -> str:
        return kb_answer(query)

    @server.tool(description="Like kb_lookup, but slow (a backend that takes several seconds).")
    async def slow_lookup(query: str) -> str:
        await anyio.sleep(slow_seconds())
        return kb_answer(query)

    @server.resource("kb://topics", description="The topics the knowledge base knows.", mime_type="text/plain")
    def kb_topics() -> str:
        return "\n".join(KNOWLEDGE_BASE)

    @server.prompt(description="A prompt that answers a customer question from the knowledge base.")
    def support_answer(question: str) -> str:
        return f"Answer the customer's question using the knowledge base tools.\n\nQuestion: {question}"

    return server


def _init_chatobs(transport: str) -> None:
    """Start chatobs in this process; the server keeps running if chatobs cannot start."""
    try:
        import chatobs

        overrides: dict[str, Any] = {}
        if not (os.environ.get("OTEL_SERVICE_NAME") or os.environ.get("CHATOBS_SERVICE_NAME")):
            overrides["service_name"] = "demo-mcp-server"
        if transport == "stdio" and "console" in os.environ.get("CHATOBS_EXPORTERS", "").lower():
            print(
                "demo mcp server: CHATOBS_EXPORTERS=console writes to stdout, the stdio protocol channel",
                file=sys.stderr,
            )
        chatobs.init(**overrides)
    except Exception as exc:  # noqa: BLE001 - a tool server without tracing is better than no tool server
        print(f"demo mcp server: chatobs not started: {exc}", file=sys.stderr)


def _instrument(server: Any) -> None:
    try:
        import chatobs

        chatobs.instrument_mcp_server(server)
    except Exception as exc:  # noqa: BLE001
        print(f"demo mcp server: chatobs.instrument_mcp_server failed: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m demo_app.mcp_server", description="The chatobs demo MCP server.")
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP only; the demo binds to loopback")
    parser.add_argument("--port", type=int, default=8765, help="HTTP only")
    parser.add_argument("--name", default=SERVER_NAME, help="server name reported to clients")
    parser.add_argument("--no-chatobs", action="store_true", help="run without chatobs (conformance comparison)")
    args = parser.parse_args(argv)

    if not args.no_chatobs:
        _init_chatobs(args.transport)
    server = build_server(args.name)
    if not args.no_chatobs:
        _instrument(server)
    if args.transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=args.host, port=args.port)


if __name__ == "__main__":
    main()
