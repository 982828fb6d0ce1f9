"""Request scope and middleware settings: which requests are chat turns and where their conversation, user, tenant
and message IDs come from."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator
from pydantic_settings import BaseSettings

from ..core.routes import parse_route
from .fields import CSV, env_field, split_csv


class RequestSettings(BaseSettings):
    """Request scope and middleware: which requests are chat turns and where their conversation, user, tenant and message IDs come from."""

    exclude_paths: CSV = env_field(
        "CHATOBS_EXCLUDE_PATHS",
        default=[
            "/health",
            "/healthz",
            "/livez",
            "/readyz",
            "/ready",
            "/metrics",
            "/favicon.ico",
            "/static/*",
            "/_chatobs/*",
        ],
        doc="Paths the middleware does not trace, comma separated; a trailing `*` matches a prefix.",
        example="/health,/static/*,/assets/*",
    )
    chat_routes: CSV = env_field(
        "CHATOBS_CHAT_ROUTES",
        default=["POST *", "WS *"],
        doc="Requests that are chat turns and become traces, comma separated: `METHOD /path` or `/path` (any method), a trailing `*` matches a prefix, `*` alone every path; `WS /path`: each message received on that websocket is a turn. Other requests are counted in metrics but not stored or exported (see docs/middleware.md). Left unset, a framework integration that knows its chat endpoints uses those instead (Open WebUI: its completion endpoints; docs/integrations.md).",
        example="POST /api/chat*,POST /gradio_api/queue/join,GET /api/chat/stream",
    )
    trace_all_routes: bool = env_field(
        "CHATOBS_TRACE_ALL_ROUTES",
        default=False,
        doc="Trace every request that is not excluded (page loads, config, assets...), not only `CHATOBS_CHAT_ROUTES`.",
        example="true",
    )
    framework_spans: bool = env_field(
        "CHATOBS_FRAMEWORK_SPANS",
        default=False,
        doc="Keep the internal spans web frameworks open when a tracer provider exists (FastAPI's dependency, endpoint, serialization and background-task spans; OpenTelemetry ASGI's send/receive spans). Their server spans are always kept.",
        example="true",
    )
    conversation_header: str = env_field(
        "CHATOBS_CONVERSATION_HEADER",
        default="X-Conversation-Id",
        doc="Request header carrying the conversation ID.",
        example="X-Chat-Id",
    )
    user_header: str = env_field(
        "CHATOBS_USER_HEADER", default="X-User-Id", doc="Request header carrying the user ID.", example="X-Auth-User"
    )
    tenant_header: str = env_field(
        "CHATOBS_TENANT_HEADER", default="X-Tenant-Id", doc="Request header carrying the tenant ID.", example="X-Org-Id"
    )
    message_header: str = env_field(
        "CHATOBS_MESSAGE_HEADER",
        default="X-Message-Id",
        doc="Request header carrying the message ID.",
        example="X-Msg-Id",
    )
    parent_message_header: str = env_field(
        "CHATOBS_PARENT_MESSAGE_HEADER",
        default="X-Parent-Message-Id",
        doc="Request header carrying the parent message ID (edits and regenerations).",
        example="X-Parent-Msg-Id",
    )
    conversation_fields: CSV = env_field(
        "CHATOBS_CONVERSATION_FIELDS",
        default=["conversation_id", "conversationId"],
        doc="Top-level JSON body fields read for the conversation ID, in order.",
        example="conversation_id,chat_id",
    )
    user_fields: CSV = env_field(
        "CHATOBS_USER_FIELDS",
        default=["user_id", "userId"],
        doc="Top-level JSON body fields read for the user ID, in order.",
        example="user_id,user",
    )
    tenant_fields: CSV = env_field(
        "CHATOBS_TENANT_FIELDS",
        default=["tenant_id", "tenantId"],
        doc="Top-level JSON body fields read for the tenant ID, in order.",
        example="org_id",
    )
    message_fields: CSV = env_field(
        "CHATOBS_MESSAGE_FIELDS",
        default=["message_id", "messageId"],
        doc="Top-level JSON body fields read for the message ID, in order.",
        example="message_id",
    )
    parent_message_fields: CSV = env_field(
        "CHATOBS_PARENT_MESSAGE_FIELDS",
        default=["parent_message_id", "parentMessageId"],
        doc="Top-level JSON body fields read for the parent message ID, in order.",
        example="parent_message_id",
    )
    user_jwt_claim: str | None = env_field(
        "CHATOBS_USER_JWT_CLAIM",
        default=None,
        doc="Take the user ID from this claim of the `Authorization: Bearer` JWT when no header or body field named it. The token is decoded WITHOUT verifying its signature (needs PyJWT), only to label spans: never use it for anything else. A malformed token is ignored.",
        example="sub",
    )
    max_body_bytes: int = env_field(
        "CHATOBS_MAX_BODY_BYTES",
        default=65536,
        ge=0,
        doc="Largest JSON request body inspected for IDs; a larger body is passed to the app untouched and not parsed. 0 disables body inspection.",
        example="16384",
    )
    max_id_length: int = env_field(
        "CHATOBS_MAX_ID_LENGTH",
        default=256,
        ge=1,
        le=4096,
        doc="Longest accepted ID; longer or non-printable IDs are dropped (debug log).",
        example="128",
    )
    propagate_identity: bool = env_field(
        "CHATOBS_PROPAGATE_IDENTITY",
        default=True,
        doc="Send conversation and user IDs in W3C `baggage` on outgoing calls (HTTP, MCP).",
        example="false",
    )
    trace_id_header: str = env_field(
        "CHATOBS_TRACE_ID_HEADER",
        default="X-Trace-Id",
        doc="Response header that returns the trace ID to the client; empty disables it.",
        example="X-Request-Trace",
    )

    @field_validator(
        "exclude_paths",
        "chat_routes",
        "conversation_fields",
        "user_fields",
        "tenant_fields",
        "message_fields",
        "parent_message_fields",
        mode="before",
    )
    @classmethod
    def _csv_request(cls, value: Any) -> Any:
        return split_csv(value)

    @field_validator("chat_routes")
    @classmethod
    def _chat_routes(cls, value: list[str]) -> list[str]:
        for entry in value:
            parse_route(entry)
        return value

    @field_validator("user_jwt_claim")
    @classmethod
    def _jwt_claim(cls, value: str | None) -> str | None:
        value = (value or "").strip() or None
        if value is not None:
            import importlib.util

            if importlib.util.find_spec("jwt") is None:
                raise ValueError("needs PyJWT to read the token: pip install pyjwt, or unset it")
        return value
