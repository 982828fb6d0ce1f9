"""Every span and metric attribute name chatobs reads or writes, in one place.

Names follow the OpenTelemetry GenAI and MCP semantic conventions where they exist; chatobs's own additions live under
``chatobs.*``. Other modules import these constants and never spell an attribute name themselves.
"""

from typing import Final

# --- identity (set on every span inside a chat request by the scope processor) -----------------------------------
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
SESSION_ID: Final = "session.id"
USER_ID: Final = "user.id"
TENANT_ID: Final = "chatobs.tenant.id"
MESSAGE_ID: Final = "chatobs.message.id"
PARENT_MESSAGE_ID: Final = "chatobs.parent_message.id"
ROUTE: Final = "chatobs.route"

# --- chatobs markers ----------------------------------------------------------------------------------------------
CHAT_REQUEST: Final = "chatobs.request"  # True on the SERVER span of a chat request (the trace's chat root)
CHAT_TURN: Final = "chatobs.chat_turn"  # False on every span of a request that is not a chat turn (never stored)
OBSERVATION_TYPE: Final = (
    "chatobs.observation.type"  # workflow | task | agent | tool | llm | mcp (decorators, adapters)
)
INPUT: Final = "chatobs.input"  # decorator / request input (JSON), masked before export
OUTPUT: Final = "chatobs.output"  # decorator / request output (JSON), masked before export
SLOW: Final = "chatobs.slow"
COST_USD: Final = "chatobs.cost.usd"
COST_INPUT_USD: Final = "chatobs.cost.input_usd"
COST_OUTPUT_USD: Final = "chatobs.cost.output_usd"
COST_UNKNOWN_MODEL: Final = "chatobs.cost.unknown_model"
COST_SOURCE: Final = "chatobs.cost.source"  # pricing_file | genai-prices | pricing_file_default
STREAM_ABANDONED: Final = "chatobs.stream.abandoned"  # the app stopped reading a streamed LLM reply early
SAMPLING_REASON: Final = "chatobs.sampling.reason"
SAMPLING_KEY: Final = "chatobs.sampling.key"
REDACTED: Final = "chatobs.redacted"  # list of attribute names that were masked
REDACTION_FAILED: Final = "chatobs.redaction.failed"
TRUNCATED: Final = "chatobs.truncated"
MCP_SERVER_NAME: Final = "chatobs.mcp.server.name"
MCP_SERVER_COMMAND: Final = (
    "chatobs.mcp.server.command"  # stdio servers: the launched command (secret-looking args hidden)
)
# On a SERVER tools/call span: the caller is a chatobs-instrumented MCP client, whose CLIENT span counts the call.
MCP_CALLER_TRACED: Final = "chatobs.mcp.caller.traced"
EDIT: Final = "chatobs.edit"
REGENERATE: Final = "chatobs.regenerate"

# --- GenAI semantic conventions -----------------------------------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_SYSTEM: Final = "gen_ai.system"  # deprecated predecessor of gen_ai.provider.name, still read by some backends
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K: Final = "gen_ai.request.top_k"
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"  # not (yet) in the spec; Langfuse/OpenLLMetry read it
# gen_ai.request.* attribute -> the request parameter's generic (OpenAI-style) name. The LLM backends show a call's
# parameters under these names; the SDK adapters read it the other way round (instrument/messages.PARAM_ATTRIBUTES).
REQUEST_PARAMETERS: Final[dict[str, str]] = {
    GEN_AI_REQUEST_TEMPERATURE: "temperature",
    GEN_AI_REQUEST_MAX_TOKENS: "max_tokens",
    GEN_AI_REQUEST_TOP_P: "top_p",
    GEN_AI_REQUEST_TOP_K: "top_k",
    GEN_AI_REQUEST_FREQUENCY_PENALTY: "frequency_penalty",
    GEN_AI_REQUEST_PRESENCE_PENALTY: "presence_penalty",
    GEN_AI_REQUEST_STOP_SEQUENCES: "stop",
    GEN_AI_REQUEST_SEED: "seed",
    GEN_AI_REQUEST_STREAM: "stream",
}
# Other spellings of a parameter some SDKs use (Anthropic's ``stop_sequences``).
REQUEST_PARAMETER_ALIASES: Final[dict[str, str]] = {"stop_sequences": GEN_AI_REQUEST_STOP_SEQUENCES}
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_USAGE_COST: Final = "gen_ai.usage.cost"  # read by Langfuse's and Opik's OTLP ingestion
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
GEN_AI_TOOL_DEFINITIONS: Final = "gen_ai.tool.definitions"
# What an LLM call sent/received, as captured on the request path (one JSON encoding of the raw values) before the
# pipeline's first stage (chatobs.processing.content) turns it into the gen_ai.* content attributes and removes it.
RAW_FORMAT: Final = "chatobs.raw.format"  # which adapter's shape RAW_REQUEST has (openai.chat, anthropic, ...)
RAW_REQUEST: Final = "chatobs.raw.request"
RAW_OUTPUT: Final = "chatobs.raw.output"
RAW_ATTRIBUTES: Final = frozenset({RAW_FORMAT, RAW_REQUEST, RAW_OUTPUT})
GEN_AI_OUTPUT_TYPE: Final = "gen_ai.output.type"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"
GEN_AI_TOOL_DESCRIPTION: Final = "gen_ai.tool.description"
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_PROMPT_NAME: Final = "gen_ai.prompt.name"
GEN_AI_PROMPT_VERSION: Final = "gen_ai.prompt.version"  # not (yet) in the spec; OpenLLMetry and others write it
PROMPT_VARIABLES: Final = "chatobs.prompt.variables"  # JSON of the template variables (content: masked)
# --- evaluation results (OTel GenAI gen_ai.evaluation.result) and chatobs's user feedback ----------------------
GEN_AI_EVALUATION_RESULT: Final = "gen_ai.evaluation.result"  # event name
GEN_AI_EVALUATION_NAME: Final = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE: Final = "gen_ai.evaluation.score.value"
GEN_AI_EVALUATION_SCORE_LABEL: Final = "gen_ai.evaluation.score.label"
GEN_AI_EVALUATION_EXPLANATION: Final = "gen_ai.evaluation.explanation"
FEEDBACK: Final = "chatobs.feedback"  # True on a feedback span (a rating of its trace, made after the turn)
FEEDBACK_TYPE: Final = "chatobs.feedback.type"  # boolean | numeric | categorical
FEEDBACK_NEGATIVE: Final = "chatobs.feedback.negative"  # what the negative-feedback alert and filters count
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"  # metric attribute: input | output

# gen_ai.operation.name values
OP_CHAT: Final = "chat"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_EMBEDDINGS: Final = "embeddings"
OP_GENERATE_CONTENT: Final = "generate_content"
OP_EXECUTE_TOOL: Final = "execute_tool"
OP_INVOKE_AGENT: Final = "invoke_agent"
OP_INVOKE_WORKFLOW: Final = "invoke_workflow"

# --- MCP semantic conventions -------------------------------------------------------------------------------------
MCP_METHOD_NAME: Final = "mcp.method.name"
MCP_SESSION_ID: Final = "mcp.session.id"
MCP_PROTOCOL_VERSION: Final = "mcp.protocol.version"
MCP_RESOURCE_URI: Final = "mcp.resource.uri"
JSONRPC_REQUEST_ID: Final = "jsonrpc.request.id"
JSONRPC_PROTOCOL_VERSION: Final = "jsonrpc.protocol.version"
RPC_RESPONSE_STATUS_CODE: Final = "rpc.response.status_code"

# --- general / HTTP semantic conventions --------------------------------------------------------------------------
ERROR_TYPE: Final = "error.type"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
CLIENT_ADDRESS: Final = "client.address"
NETWORK_TRANSPORT: Final = "network.transport"
NETWORK_PROTOCOL_NAME: Final = "network.protocol.name"
NETWORK_PROTOCOL_VERSION: Final = "network.protocol.version"
HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
HTTP_ROUTE: Final = "http.route"
URL_PATH: Final = "url.path"
URL_SCHEME: Final = "url.scheme"
URL_QUERY: Final = "url.query"
USER_AGENT_ORIGINAL: Final = "user_agent.original"
HTTP_REQUEST_HEADER_PREFIX: Final = "http.request.header."
EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"
EXCEPTION_STACKTRACE: Final = "exception.stacktrace"
PROCESS_COMMAND: Final = "process.command"
SERVICE_NAME: Final = "service.name"
SERVICE_VERSION: Final = "service.version"
DEPLOYMENT_ENVIRONMENT: Final = "deployment.environment.name"

# --- metric attributes of chatobs's own instruments (pipeline health, alerts) -----------------------------------
EXPORTER: Final = "chatobs.exporter"
DROP_WHERE: Final = "chatobs.drop.where"  # "pipeline" or an exporter's name
DROP_REASON: Final = "chatobs.drop.reason"
PIPELINE_EVENT: Final = "chatobs.event"
ALERT_RULE: Final = "chatobs.alert.rule"
ALERT_TYPE: Final = "chatobs.alert.type"
TOOL_STATUS: Final = "chatobs.tool.status"  # ok | error, on the seed's mcp.tool.* instruments

# --- attributes that carry user or model content: masked by the privacy pipeline --------------------------------
CONTENT_ATTRIBUTES: Final = frozenset(
    {
        GEN_AI_INPUT_MESSAGES,
        GEN_AI_OUTPUT_MESSAGES,
        GEN_AI_SYSTEM_INSTRUCTIONS,
        GEN_AI_TOOL_CALL_ARGUMENTS,
        GEN_AI_TOOL_CALL_RESULT,
        INPUT,
        OUTPUT,
        EXCEPTION_MESSAGE,
        EXCEPTION_STACKTRACE,
        URL_QUERY,
        GEN_AI_EVALUATION_EXPLANATION,  # a feedback comment: user text
        PROMPT_VARIABLES,
        RAW_REQUEST,  # removed by the content stage before redaction; listed so a leftover is masked, never sent as is
        RAW_OUTPUT,
    }
)

# Content attributes written by other instrumentations (OpenLLMetry's indexed prompts, OpenInference, Langfuse's and
# Traceloop's own): masked the same way when an app's other instrumentation puts them on spans chatobs exports.
FOREIGN_CONTENT_ATTRIBUTES: Final = frozenset(
    {
        "input.value",
        "output.value",
        "langfuse.observation.input",
        "langfuse.observation.output",
        "langfuse.trace.input",
        "langfuse.trace.output",
        "traceloop.entity.input",
        "traceloop.entity.output",
        "db.query.text",
        "db.statement",
    }
)
FOREIGN_CONTENT_PREFIXES: Final = (
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.input_messages.",
    "llm.output_messages.",
)
HTTP_RESPONSE_HEADER_PREFIX: Final = "http.response.header."
# Span-event attributes that never carry content (everything else on an event is masked like content).
EVENT_NON_CONTENT_ATTRIBUTES: Final = frozenset(
    {
        EXCEPTION_TYPE,
        "exception.escaped",
        GEN_AI_EVALUATION_NAME,
        GEN_AI_EVALUATION_SCORE_VALUE,
        GEN_AI_EVALUATION_SCORE_LABEL,
    }
)
# Names under a FOREIGN_CONTENT_PREFIXES prefix that are not content (the prompt's name and version, not its text).
NON_CONTENT_ATTRIBUTES: Final = frozenset({GEN_AI_PROMPT_NAME, GEN_AI_PROMPT_VERSION})

# --- Langfuse (what its server maps from OTLP; names as in the langfuse 5.x SDK's LangfuseOtelSpanAttributes) ------
LF_TRACE_NAME: Final = "langfuse.trace.name"
LF_TRACE_TAGS: Final = "langfuse.trace.tags"
LF_TRACE_METADATA: Final = "langfuse.trace.metadata"  # one attribute per key: langfuse.trace.metadata.<key>
LF_TRACE_INPUT: Final = "langfuse.trace.input"  # older servers read trace I/O from these; newer from the app root
LF_TRACE_OUTPUT: Final = "langfuse.trace.output"
LF_OBSERVATION_TYPE: Final = "langfuse.observation.type"
LF_OBSERVATION_METADATA: Final = "langfuse.observation.metadata"
LF_OBSERVATION_LEVEL: Final = "langfuse.observation.level"
LF_OBSERVATION_STATUS_MESSAGE: Final = "langfuse.observation.status_message"
LF_OBSERVATION_INPUT: Final = "langfuse.observation.input"
LF_OBSERVATION_OUTPUT: Final = "langfuse.observation.output"
LF_COMPLETION_START_TIME: Final = "langfuse.observation.completion_start_time"
LF_MODEL: Final = "langfuse.observation.model.name"
LF_MODEL_PARAMETERS: Final = "langfuse.observation.model.parameters"
LF_USAGE_DETAILS: Final = "langfuse.observation.usage_details"
LF_COST_DETAILS: Final = "langfuse.observation.cost_details"
LF_PROMPT_NAME: Final = "langfuse.observation.prompt.name"
LF_PROMPT_VERSION: Final = "langfuse.observation.prompt.version"  # an integer: Langfuse prompt versions are numbers
LF_ENVIRONMENT: Final = "langfuse.environment"
LF_RELEASE: Final = "langfuse.release"
LF_IS_APP_ROOT: Final = "langfuse.internal.is_app_root"
