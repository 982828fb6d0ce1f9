"""The chat API's contract, shared by both frameworks: request validation, marking the turn on its trace, the
JSON and SSE shapes of the answer.

``POST /api/chat`` and ``/api/chat/stream`` take ``{"conversation_id"?, "message", "message_id"?,
"parent_message_id"?, "action"?: "send"|"edit"|"regenerate"}`` and the user in ``X-User-Id``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .chat import Delta, Event, ToolUsed
from .history import ACTIONS, Action, Turn

MAX_MESSAGE_CHARS = 8000
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
DEFAULT_USER = "anonymous"


class BadRequest(ValueError):
    """A malformed chat request; the message says which field and what is expected."""


@dataclass(frozen=True)
class ChatRequest:
    user_id: str
    message: str
    action: Action
    conversation_id: str | None
    message_id: str | None
    parent_message_id: str | None


def _optional_id(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _ID.match(value):
        raise BadRequest(f"{name}: expected up to 128 letters, digits or _.:@- characters")
    return value


def user_of(headers: Mapping[str, str]) -> str:
    user = (headers.get("x-user-id") or "").strip() or DEFAULT_USER
    if not _ID.match(user):
        raise BadRequest("X-User-Id: expected up to 128 letters, digits or _.:@- characters")
    return user


def parse_chat_request(body: Any, headers: Mapping[str, str]) -> ChatRequest:
    if not isinstance(body, dict):
        raise BadRequest('body: expected a JSON object like {"message": "hello"}')
    action = body.get("action") or "send"
    if action not in ACTIONS:
        raise BadRequest(f"action: expected one of {', '.join(ACTIONS)}")
    message = body.get("message", "")
    if not isinstance(message, str):
        raise BadRequest("message: expected a string")
    if action != "regenerate" and not message.strip():
        raise BadRequest("message: expected a non-empty string")
    if len(message) > MAX_MESSAGE_CHARS:
        raise BadRequest(f"message: expected at most {MAX_MESSAGE_CHARS} characters")
    return ChatRequest(
        user_id=user_of(headers),
        message=message,
        action=action,
        conversation_id=_optional_id(body, "conversation_id"),
        message_id=_optional_id(body, "message_id"),
        parent_message_id=_optional_id(body, "parent_message_id"),
    )


def request_span() -> Any:
    """The span of the chat request being handled (chatobs's SERVER span, or the one it joined)."""
    import chatobs

    return chatobs.request_span()


@contextmanager
def turn_scope(req: ChatRequest, turn: Turn) -> Iterator[None]:
    """Everything the middleware could not know from the request: a conversation the server just created, and that
    this turn is an edit or a regeneration (on the request span, as ``chatobs.edit`` / ``chatobs.regenerate``)."""
    import chatobs
    from chatobs.core import semconv
    from chatobs.core.chat_scope import identity_attributes

    ids: dict[str, str] = {
        "conversation_id": turn.conversation.id,
        "user_id": req.user_id,
        "message_id": turn.user_message.id,
    }
    parent = req.parent_message_id or turn.replaced_message_id
    if parent and turn.action != "send":
        ids["parent_message_id"] = parent
    with chatobs.scope(**ids) as s:
        span = request_span()
        if span.is_recording():
            # The request span started before the handler knew these; spans started from here on get them anyway.
            span.set_attributes(identity_attributes(s))
            if turn.action == "edit":
                span.set_attribute(semconv.EDIT, True)
            elif turn.action == "regenerate":
                span.set_attribute(semconv.REGENERATE, True)
        yield


def mark_failed(error_type: str, message: str) -> None:
    """A failed turn fails its request span too, also when the HTTP status was already sent (streaming)."""
    from opentelemetry.trace import Status, StatusCode

    from chatobs.core import semconv

    span = request_span()
    if span.is_recording():
        span.set_attribute(semconv.ERROR_TYPE, error_type)
        span.set_status(Status(StatusCode.ERROR, message))


def current_trace_id() -> str | None:
    import chatobs

    return chatobs.current_trace_id()


def event_json(event: Event) -> dict[str, Any]:
    if isinstance(event, Delta):
        return {"type": "delta", "text": event.text}
    assert isinstance(event, ToolUsed)
    return {"type": "tool", **event.result.to_json()}


def sse(payload: dict[str, Any]) -> str:
    return f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n"


def done_payload(turn: Turn, reply_id: str, trace_id: str | None) -> dict[str, Any]:
    return {
        "type": "done",
        "conversation_id": turn.conversation.id,
        "message_id": reply_id,
        "user_message_id": turn.user_message.id,
        "trace_id": trace_id,
    }
