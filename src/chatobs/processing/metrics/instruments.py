"""The metric instruments chatobs records (names, units, descriptions) and their bucket boundaries."""

from __future__ import annotations

OTHER = "_OTHER"

# Bucket boundaries recommended by the GenAI semantic conventions.
DURATION_BUCKETS_S = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
TTFC_BUCKETS_S = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96)
TOOL_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)

# name -> (kind, unit, description). docs/metrics.md and the dashboard test are checked against this table.
INSTRUMENTS: dict[str, tuple[str, str, str]] = {
    "gen_ai.client.token.usage": (
        "histogram",
        "{token}",
        "Tokens per LLM call, by gen_ai.token.type (input/output), model, provider.",
    ),
    "gen_ai.client.operation.duration": (
        "histogram",
        "s",
        "Duration of LLM calls, by operation, model, provider and error.type.",
    ),
    "gen_ai.client.operation.time_to_first_chunk": (
        "histogram",
        "s",
        "Time to the first streamed chunk of streamed LLM calls.",
    ),
    "chatobs.cost.usd": ("counter", "{USD}", "LLM cost in US dollars, by model, provider and tenant."),
    "mcp.client.operation.duration": (
        "histogram",
        "s",
        "Duration of MCP requests made by the app, by method, tool, server and error.type.",
    ),
    "mcp.server.operation.duration": (
        "histogram",
        "s",
        "Duration of MCP requests handled by an instrumented MCP server.",
    ),
    "mcp.tool.invocations": (
        "counter",
        "{invocation}",
        "MCP tool calls, each counted once by the span that owns it, by tool, server and chatobs.tool.status (ok/error).",
    ),
    "mcp.tool.errors": ("counter", "{invocation}", "Failed MCP tool calls, by tool, server and error.type."),
    "mcp.tool.duration": (
        "histogram",
        "ms",
        "Duration of MCP tool calls, each counted once by the span that owns it, by tool, server and status.",
    ),
    "http.server.request.duration": (
        "histogram",
        "s",
        "Duration of chat requests, by method, route, status code and error.type.",
    ),
    "chatobs.pipeline.queue.size": ("gauge", "{span}", "Spans waiting for the background pipeline."),
    "chatobs.exporter.queue.size": ("gauge", "{span}", "Spans waiting per exporter, by chatobs.exporter."),
    "chatobs.pipeline.spans.received": ("observable_counter", "{span}", "Spans handed to the pipeline."),
    "chatobs.pipeline.spans.exported": ("observable_counter", "{span}", "Spans exported, by chatobs.exporter."),
    "chatobs.pipeline.spans.dropped": (
        "observable_counter",
        "{span}",
        "Spans dropped, by chatobs.drop.where (pipeline or exporter) and chatobs.drop.reason.",
    ),
    "chatobs.pipeline.export.failures": ("observable_counter", "{call}", "Failed export calls, by chatobs.exporter."),
    "chatobs.pipeline.masking.failures": (
        "observable_counter",
        "{span}",
        "Spans whose masking failed (dropped, never exported unmasked).",
    ),
    "chatobs.alerts": (
        "counter",
        "{alert}",
        "Alerts fired, by chatobs.alert.rule and chatobs.alert.type (including ones held back by the cooldown).",
    ),
}
