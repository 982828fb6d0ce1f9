"""A chat turn that puts PII into every content-bearing place of every span chatobs exports, and checks for leaks."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.trace import Status, StatusCode

import chatobs
from chatobs.core import semconv
from chatobs.runtime.wiring import get_tracer

EMAIL = "jane.roe@example.org"
PHONE = "(415) 555-0132"
CARD = "4111 1111 1111 1111"
SSN = "536-22-1874"
IBAN = "GB82WEST12345698765432"
IP = "203.0.113.77"
API_KEY = "sk-proj-Zq4uT8vW2xY6aB1cD3eF5gH7iJ9kL0mN"
PASSWORD = "hunter2-Wq9"
PII_VALUES = (EMAIL, PHONE, CARD, SSN, IBAN, IP, API_KEY, PASSWORD)


def messages(*texts: tuple[str, str]) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]} for role, text in texts])


def chat_turn(*, user_id: str = "user-42") -> None:
    """One chat request: server span, LLM call with a tool call, the tool, a decorator span and a failing step."""
    tracer = get_tracer()
    prompt = f"Hi, I'm moving. Email me at {EMAIL} or call {PHONE}; my card is {CARD}."
    with (
        chatobs.scope(conversation_id="conv-1", user_id=user_id),
        tracer.start_as_current_span("POST /chat") as root,
    ):
        root.set_attribute(semconv.CHAT_REQUEST, True)
        root.set_attribute(semconv.INPUT, json.dumps({"message": prompt, "ssn": SSN}))
        root.set_attribute(semconv.URL_QUERY, f"email={EMAIL}&debug=1")
        root.set_attribute("http.request.header.authorization", f"Bearer {API_KEY}")
        root.set_attribute("http.request.header.cookie", "session=abcdef0123456789")
        root.set_attribute("http.request.header.user_agent", "pytest-client/1.0")
        root.set_attribute("app.ticket.body", f"customer wrote from {IP}")
        root.set_attribute("app.api_key", API_KEY)
        root.set_attribute("url.full", f"https://bob:{PASSWORD}@api.example.com/v1/chat")
        with tracer.start_as_current_span("chat gpt-4o") as llm:
            llm.set_attribute(semconv.GEN_AI_OPERATION_NAME, semconv.OP_CHAT)
            llm.set_attribute(
                semconv.GEN_AI_SYSTEM_INSTRUCTIONS,
                json.dumps([{"type": "text", "content": f"Escalations go to {EMAIL}."}]),
            )
            llm.set_attribute(semconv.GEN_AI_INPUT_MESSAGES, messages(("system", "Be brief."), ("user", prompt)))
            llm.set_attribute(
                semconv.GEN_AI_OUTPUT_MESSAGES,
                json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [
                                {"type": "text", "content": f"Updating the IBAN {IBAN} on file."},
                                {
                                    "type": "tool_call",
                                    "id": "call_1",
                                    "name": "update_contact",
                                    "arguments": {"email": EMAIL, "phone": PHONE},
                                },
                            ],
                            "finish_reason": "tool_call",
                        }
                    ]
                ),
            )
            llm.set_attribute(semconv.GEN_AI_USAGE_INPUT_TOKENS, 1234)
        with tracer.start_as_current_span("execute_tool update_contact") as tool:
            tool.set_attribute(semconv.GEN_AI_OPERATION_NAME, semconv.OP_EXECUTE_TOOL)
            tool.set_attribute(semconv.GEN_AI_TOOL_NAME, "update_contact")
            tool.set_attribute(
                semconv.GEN_AI_TOOL_CALL_ARGUMENTS,
                json.dumps({"email": EMAIL, "phone": PHONE, "password": PASSWORD}),
            )
            tool.set_attribute(
                semconv.GEN_AI_TOOL_CALL_RESULT, json.dumps({"ok": True, "ssn_on_file": SSN, "card": CARD})
            )
        with tracer.start_as_current_span("task charge") as task:
            task.set_attribute(semconv.OBSERVATION_TYPE, "task")
            task.set_attribute(semconv.OUTPUT, json.dumps({"charged": CARD}))
            task.add_event("user_feedback", {"comment": f"call me on {PHONE}", "rating": 2})
            try:
                raise ValueError(f"card {CARD} declined for {EMAIL}")
            except ValueError as exc:
                task.record_exception(exc)
                task.set_status(Status(StatusCode.ERROR, f"ValueError: card {CARD} declined for {EMAIL}"))


def span_text(span: Any) -> str:
    """Everything an exporter could send for a span, as one string."""
    parts = [
        span.name,
        json.dumps({k: (list(v) if isinstance(v, tuple) else v) for k, v in (span.attributes or {}).items()}),
    ]
    for e in span.events:
        parts.append(e.name)
        parts.append(json.dumps({k: (list(v) if isinstance(v, tuple) else v) for k, v in (e.attributes or {}).items()}))
    parts.append(span.status.description or "")
    return "\n".join(parts)


def leaks(text: str) -> list[str]:
    return [v for v in PII_VALUES if v in text]


def exported(cap: Any) -> list[Any]:
    """The capture's spans after the pipeline settled; a generous flush because a first masking-worker start on a
    busy 2-core machine can take several seconds."""
    cap.runtime.force_flush(90)
    return cap.spans()
