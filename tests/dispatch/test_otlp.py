"""OTLP/HTTP: the real opentelemetry-exporter-otlp sends protobuf, the recording server decodes it."""

from __future__ import annotations

import pytest

import chatobs
from chatobs.config import ConfigError, load_settings
from chatobs.core import semconv as sc
from chatobs.export import otlp
from tests.recording_server import RecordingServer

from .turns import chat_turn, unrelated_span

pytestmark = pytest.mark.timeout(60)


def test_otlp_http_protobuf_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    with RecordingServer() as srv:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.url)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s%3Dcret,X-Tenant=acme")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "support-bot")
        rt = chatobs.init(export_interval_ms=20)
        assert rt is not None and [s.name for s in rt.exporters] == ["otlp"]
        trace_id = chat_turn()
        unrelated_span()
        assert srv.wait_for(lambda s: len(s.otlp_spans()) >= 4)
        req = srv.by_path("/v1/traces")[0]
        assert req.headers["content-type"] == "application/x-protobuf"
        assert req.headers["content-encoding"] == "gzip"
        assert req.headers["x-api-key"] == "s=cret" and req.headers["x-tenant"] == "acme"
        spans = {s["name"]: s for s in srv.otlp_spans()}
        assert set(spans) == {"POST /chat", "chat gpt-4o-mini", "tools/call get_weather", "SELECT users"}
        root, llm = spans["POST /chat"], spans["chat gpt-4o-mini"]
        assert root["traceId"] == trace_id and llm["parentSpanId"] == root["spanId"]
        assert (
            root["resource"]["telemetry.distro.name"] == "chatobs"
        )  # (service.name is fixed by the first init of the process)
        assert llm["attributes"][sc.GEN_AI_USAGE_INPUT_TOKENS] == 12
        assert llm["attributes"][sc.GEN_AI_CONVERSATION_ID] == "conv-1"
        assert llm["attributes"][sc.USER_ID] == "user-1"


def test_otlp_per_signal_endpoint_used_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    with RecordingServer() as srv:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9/ignored")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{srv.url}/api/public/otel/v1/traces")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "Authorization=Basic%20cGs6c2s=")
        chatobs.init(export_interval_ms=20, otlp_chat_only=True)
        chat_turn()
        unrelated_span()
        assert srv.wait_for(lambda s: len(s.otlp_spans("/api/public/otel/v1/traces")) >= 3)
        chatobs.shutdown()
        req = srv.by_path("/api/public/otel/v1/traces")[0]
        assert req.headers["authorization"] == "Basic cGs6c2s="
        assert "SELECT users" not in {s["name"] for s in srv.otlp_spans("/api/public/otel/v1/traces")}


def test_otlp_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_HEADERS"):
        otlp.parse_headers("novalue")
    with pytest.raises(ConfigError, match="http/json"):
        otlp.build(load_settings(exporters="otlp", otlp_protocol="http/json"))
    assert otlp._timeout_s(load_settings(otlp_timeout_s=10000)) == 10.0
    assert otlp._timeout_s(load_settings(otlp_timeout_s=5)) == 5.0


def test_otlp_grpc_builds_with_certificate(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.recording_server import self_signed_cert

    cert, _ = self_signed_cert(tmp_path)
    exp = otlp.build(
        load_settings(otlp_protocol="grpc", otlp_endpoint="https://127.0.0.1:4317", otlp_certificate=str(cert))
    )
    assert type(exp).__module__.startswith("opentelemetry.exporter.otlp.proto.grpc")
    exp.shutdown()
