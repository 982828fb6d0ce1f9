"""Every content-bearing attribute is masked end to end: real chatobs pipeline, real Presidio, real OTLP encoding."""

from __future__ import annotations

import json

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from chatobs.core import semconv
from chatobs.core.stats import STATS

from .helpers import CARD, EMAIL, IBAN, PII_VALUES, SSN, chat_turn, exported, leaks, span_text

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("worker", ["process", "thread"])
def test_chat_turn_exports_no_pii(make_capture, worker: str) -> None:
    cap = make_capture(masking_worker=worker, redact_attributes="app.ticket.body", capture_headers="user-agent")
    chat_turn()
    spans = exported(cap)
    assert len(spans) == 4
    for span in spans:
        assert leaks(span_text(span)) == [], span.name

    # What goes over the wire: OTLP protobuf bytes, decoded again.
    raw = encode_spans(spans).SerializeToString()
    decoded = ExportTraceServiceRequest.FromString(raw)
    assert sum(len(ss.spans) for rs in decoded.resource_spans for ss in rs.scope_spans) == 4
    for value in PII_VALUES:
        assert value.encode() not in raw, value

    by = {s.name: s for s in spans}
    root, llm, tool, task = by["POST /chat"], by["chat gpt-4o"], by["execute_tool update_contact"], by["task charge"]
    # Masks are typed and the structure survives.
    inp = json.loads(llm.attributes[semconv.GEN_AI_INPUT_MESSAGES])
    assert inp[1]["parts"][0]["content"].startswith(
        "Hi, I'm moving. Email me at <EMAIL_ADDRESS> or call <PHONE_NUMBER>"
    )
    out = json.loads(llm.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])
    assert out[0]["parts"][0]["content"] == "Updating the IBAN <IBAN_CODE> on file."
    assert out[0]["parts"][1]["arguments"] == {"email": "<EMAIL_ADDRESS>", "phone": "<PHONE_NUMBER>"}
    assert (
        json.loads(llm.attributes[semconv.GEN_AI_SYSTEM_INSTRUCTIONS])[0]["content"]
        == "Escalations go to <EMAIL_ADDRESS>."
    )
    assert json.loads(tool.attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS]) == {
        "email": "<EMAIL_ADDRESS>",
        "phone": "<PHONE_NUMBER>",
        "password": "<SECRET>",
    }
    assert json.loads(tool.attributes[semconv.GEN_AI_TOOL_CALL_RESULT]) == {
        "ok": True,
        "ssn_on_file": "<US_SSN>",
        "card": "<CREDIT_CARD>",
    }
    assert json.loads(root.attributes[semconv.INPUT])["ssn"] == "<US_SSN>"
    # Presidio's e-mail pattern allows "=" in the local part, so the parameter name goes with the value.
    assert root.attributes[semconv.URL_QUERY].endswith("<EMAIL_ADDRESS>&debug=1")
    assert root.attributes["app.ticket.body"] == "customer wrote from <IP_ADDRESS>"
    assert root.attributes["app.api_key"] == "<SECRET>"
    assert root.attributes["url.full"] == "https://bob:<SECRET>@api.example.com/v1/chat"
    # Headers: only the allow-list goes out; secret headers never do.
    assert root.attributes["http.request.header.user_agent"] == "pytest-client/1.0"
    assert "http.request.header.authorization" not in root.attributes
    assert "http.request.header.cookie" not in root.attributes
    # Exceptions and span events: masked; the exception type and numbers stay.
    exc = next(e for e in task.events if e.name == "exception")
    assert exc.attributes[semconv.EXCEPTION_TYPE] == "ValueError"
    assert exc.attributes[semconv.EXCEPTION_MESSAGE] == "card <CREDIT_CARD> declined for <EMAIL_ADDRESS>"
    assert "<CREDIT_CARD>" in exc.attributes[semconv.EXCEPTION_STACKTRACE]
    feedback = next(e for e in task.events if e.name == "user_feedback")
    assert feedback.attributes["comment"] == "call me on <PHONE_NUMBER>"
    assert feedback.attributes["rating"] == 2
    assert task.status.description == "ValueError: card <CREDIT_CARD> declined for <EMAIL_ADDRESS>"
    assert llm.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 1234
    # What was masked is listed, for debugging without content.
    assert semconv.GEN_AI_INPUT_MESSAGES in llm.attributes[semconv.REDACTED]
    assert semconv.REDACTION_FAILED not in llm.attributes


def test_local_store_and_every_exporter_get_masked_spans(make_capture) -> None:
    """Masking is a pipeline stage before fan-out: a second in-memory exporter (standing in for any exporter)
    receives exactly the masked spans."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import chatobs
    from chatobs.runtime import wiring as runtime

    runtime.shutdown(timeout_s=2)
    a, b = InMemorySpanExporter(), InMemorySpanExporter()
    rt = chatobs.init(
        _span_exporters=[a, b],
        exporters="none",
        export_interval_ms=20,
        masking_worker="thread",
        redact_attributes="app.ticket.*",
    )
    assert rt is not None
    chat_turn()
    rt.force_flush(20)
    for exp in (a, b):
        texts = [span_text(s) for s in exp.get_finished_spans()]
        assert len(texts) == 4
        assert [leaks(t) for t in texts] == [[]] * 4


def test_pii_off_still_scrubs_secrets_and_headers(make_capture) -> None:
    cap = make_capture(pii="off")
    chat_turn()
    spans = {s.name: s for s in exported(cap)}
    root = spans["POST /chat"]
    assert root.attributes["app.api_key"] == "<SECRET>"
    assert "http.request.header.authorization" not in root.attributes
    tool = spans["execute_tool update_contact"]
    assert json.loads(tool.attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS])["password"] == "<SECRET>"
    # PII itself passes when masking is off (that is what `off` means).
    assert EMAIL in tool.attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS]


def test_seed_switch_sanitize_pii_false_is_off(make_capture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_TRACE_SANITIZE_PII", "false")
    cap = make_capture()
    chat_turn()
    llm = next(s for s in exported(cap) if s.name == "chat gpt-4o")
    assert IBAN in llm.attributes[semconv.GEN_AI_OUTPUT_MESSAGES]


def test_no_failure_counted_on_the_happy_path(make_capture) -> None:
    before = sum(n for k, n in STATS.events.items() if k.startswith("redaction_failed"))
    cap = make_capture(masking_worker="thread")
    chat_turn()
    spans = exported(cap)
    assert all(semconv.REDACTION_FAILED not in s.attributes for s in spans)
    assert sum(n for k, n in STATS.events.items() if k.startswith("redaction_failed")) == before
    assert SSN not in "".join(span_text(s) for s in spans) and CARD not in "".join(span_text(s) for s in spans)
