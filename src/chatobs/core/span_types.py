"""What a span is: the one answer the metrics, the alerts, the LLM backends and the local store map from.

Each consumer wants a coarser or differently named answer (the store's ``span_type`` column folds embeddings into
``llm``; Langfuse has no "MCP" observation; metrics only count MCP tool calls), but deciding it once here means an
MCP ``tools/call`` span, say, is a tool for every one of them. The mappings live with the consumers; the rules, and
their order, live only here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from . import semconv

SpanType = Literal[
    "request", "feedback", "llm", "embedding", "mcp_tool", "tool", "mcp", "agent", "workflow", "task", "other"
]

REQUEST: Final = "request"  # the chat request's SERVER span (chatobs.request): the trace's chat root
FEEDBACK: Final = "feedback"  # a user's rating of a trace, recorded after the turn
LLM: Final = "llm"  # a chat / text completion / generate_content call
EMBEDDING: Final = "embedding"  # an embeddings call
MCP_TOOL: Final = "mcp_tool"  # an MCP tools/call request (either side of it)
TOOL: Final = "tool"  # any other tool call (a @tool function, another instrumentation's execute_tool)
MCP: Final = "mcp"  # any other MCP request (initialize, tools/list, resources/read...) or an MCP connection
AGENT: Final = "agent"
WORKFLOW: Final = "workflow"
TASK: Final = "task"  # a @task function
OTHER: Final = "other"

LLM_TYPES: Final = frozenset({LLM, EMBEDDING})  # what calls a model (token usage, cost, model and provider labels)
TOOL_TYPES: Final = frozenset({MCP_TOOL, TOOL})  # what calls a tool
MCP_TYPES: Final = frozenset({MCP_TOOL, MCP})  # what speaks MCP

_BY_OPERATION: Final[Mapping[str, SpanType]] = {
    semconv.OP_CHAT: LLM,
    semconv.OP_TEXT_COMPLETION: LLM,
    semconv.OP_GENERATE_CONTENT: LLM,
    semconv.OP_EMBEDDINGS: EMBEDDING,
    semconv.OP_EXECUTE_TOOL: TOOL,
    semconv.OP_INVOKE_AGENT: AGENT,
    semconv.OP_INVOKE_WORKFLOW: WORKFLOW,
}
# chatobs.observation.type, for spans without an operation (the @task decorator, the SDK-adapter LLM spans).
_BY_OBSERVATION: Final[Mapping[str, SpanType]] = {
    "llm": LLM,
    "embedding": EMBEDDING,
    "tool": TOOL,
    "mcp": MCP,
    "agent": AGENT,
    "workflow": WORKFLOW,
    "task": TASK,
}


def classify(attrs: Mapping[str, Any]) -> SpanType:
    """The type of a span from its attributes, first rule that holds:

    1. ``chatobs.request`` -> request; ``chatobs.feedback`` -> feedback (both are chatobs' own markers);
    2. ``mcp.method.name`` -> mcp_tool for ``tools/call``, mcp for any other method: an MCP request is an MCP request
       whatever else it carries (a tools/call span also says ``execute_tool``);
    3. ``gen_ai.operation.name``, when it is one of the GenAI operations;
    4. ``chatobs.observation.type`` (the decorators and SDK adapters set it);
    5. an operation-less span with a request model and a provider: another instrumentation's LLM call, from before
       the conventions named operations;
    6. other.
    """
    if attrs.get(semconv.CHAT_REQUEST):
        return REQUEST
    if attrs.get(semconv.FEEDBACK):
        return FEEDBACK
    method = attrs.get(semconv.MCP_METHOD_NAME)
    if method is not None:
        return MCP_TOOL if method == "tools/call" else MCP
    op = attrs.get(semconv.GEN_AI_OPERATION_NAME)
    if op is not None:
        found = _BY_OPERATION.get(op) if isinstance(op, str) else None
        if found is not None:
            return found
    obs = attrs.get(semconv.OBSERVATION_TYPE)
    if obs is not None:
        found = _BY_OBSERVATION.get(obs) if isinstance(obs, str) else None
        if found is not None:
            return found
    legacy_llm = attrs.get(semconv.GEN_AI_REQUEST_MODEL) is not None and (
        attrs.get(semconv.GEN_AI_PROVIDER_NAME) is not None or attrs.get(semconv.GEN_AI_SYSTEM) is not None
    )
    return LLM if op is None and legacy_llm else OTHER
