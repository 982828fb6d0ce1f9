"""Metric values after scripted chat turns, read from the SDK's in-memory reader, Prometheus and OTLP."""

from __future__ import annotations

import re
import socket
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client.parser import text_string_to_metric_families

from chatobs.core import semconv
from chatobs.core.stats import STATS
from chatobs.processing.metrics import recorder as metrics
from chatobs.runtime import wiring as runtime

from .helpers import Clock, chat_turn, count, llm_call, points, tool_call, total, wait_for


def _two_turns(clock: Clock) -> None:
    with chat_turn(clock, tenant_id="acme", user_id="u-1", conversation_id="c-1"):
        llm_call(
            clock,
            model="gpt-4o-2024-08-06",
            input_tokens=120,
            output_tokens=30,
            cost=0.0021,
            duration_ms=400,
            ttfc_s=0.15,
        )
        tool_call(clock, tool="search_kb", duration_ms=40)
        llm_call(clock, model="gpt-4o", input_tokens=200, output_tokens=50, cost=0.0035, duration_ms=600)
    with chat_turn(clock, tenant_id="globex", user_id="u-2", conversation_id="c-2", status=500):
        llm_call(
            clock,
            model="claude-3-5-sonnet-20241022",
            provider="anthropic",
            input_tokens=80,
            output_tokens=0,
            cost=0.0002,
            duration_ms=100,
            error="RateLimitError",
        )
        tool_call(clock, tool="get_weather", server="weather", duration_ms=20, error="tool_error")


def test_scripted_turns_give_the_expected_metric_values(make_capture: Any, reader: InMemoryMetricReader) -> None:
    cap = make_capture()
    _two_turns(Clock())
    cap.runtime.force_flush()

    # Tokens by type and normalised model: the dated and the undated gpt-4o are one series.
    assert (
        total(
            reader,
            "gen_ai.client.token.usage",
            **{semconv.GEN_AI_REQUEST_MODEL: "gpt-4o", semconv.GEN_AI_TOKEN_TYPE: "input"},
        )
        == 320
    )
    assert (
        total(
            reader,
            "gen_ai.client.token.usage",
            **{semconv.GEN_AI_REQUEST_MODEL: "gpt-4o", semconv.GEN_AI_TOKEN_TYPE: "output"},
        )
        == 80
    )
    assert count(reader, "gen_ai.client.token.usage", **{semconv.GEN_AI_REQUEST_MODEL: "gpt-4o"}) == 4
    assert (
        total(
            reader,
            "gen_ai.client.token.usage",
            **{semconv.GEN_AI_PROVIDER_NAME: "anthropic", semconv.GEN_AI_TOKEN_TYPE: "input"},
        )
        == 80
    )
    # Cost by tenant.
    assert total(reader, "chatobs.cost.usd", **{semconv.TENANT_ID: "acme"}) == pytest.approx(0.0056)
    assert total(
        reader, "chatobs.cost.usd", **{semconv.TENANT_ID: "globex", semconv.GEN_AI_REQUEST_MODEL: "claude-3-5-sonnet"}
    ) == pytest.approx(0.0002)
    # LLM durations in seconds, errors labelled.
    assert total(
        reader, "gen_ai.client.operation.duration", **{semconv.GEN_AI_REQUEST_MODEL: "gpt-4o"}
    ) == pytest.approx(1.0)
    assert count(reader, "gen_ai.client.operation.duration", **{semconv.ERROR_TYPE: "RateLimitError"}) == 1
    assert total(reader, "gen_ai.client.operation.time_to_first_chunk") == pytest.approx(0.15)
    # Tools: invocations, errors, durations (ms, as the seed has it) by tool and server.
    assert (
        total(
            reader,
            "mcp.tool.invocations",
            **{semconv.GEN_AI_TOOL_NAME: "search_kb", semconv.MCP_SERVER_NAME: "kb", semconv.TOOL_STATUS: "ok"},
        )
        == 1
    )
    assert (
        total(reader, "mcp.tool.invocations", **{semconv.GEN_AI_TOOL_NAME: "get_weather", semconv.TOOL_STATUS: "error"})
        == 1
    )
    assert (
        total(reader, "mcp.tool.errors", **{semconv.GEN_AI_TOOL_NAME: "get_weather", semconv.ERROR_TYPE: "tool_error"})
        == 1
    )
    assert total(reader, "mcp.tool.errors", **{semconv.GEN_AI_TOOL_NAME: "search_kb"}) == 0
    assert total(reader, "mcp.tool.duration", **{semconv.GEN_AI_TOOL_NAME: "search_kb"}) == pytest.approx(40.0)
    assert count(reader, "mcp.client.operation.duration", **{semconv.MCP_METHOD_NAME: "tools/call"}) == 2
    # Requests per route, the failed one with its status and error type.
    assert count(reader, "http.server.request.duration", **{semconv.HTTP_ROUTE: "/api/chat"}) == 2
    assert (
        count(
            reader,
            "http.server.request.duration",
            **{semconv.HTTP_RESPONSE_STATUS_CODE: 500, semconv.ERROR_TYPE: "500"},
        )
        == 1
    )


def test_no_user_or_conversation_ids_in_metrics_by_default(make_capture: Any, reader: InMemoryMetricReader) -> None:
    cap = make_capture()
    _two_turns(Clock())
    cap.runtime.force_flush()
    data = reader.get_metrics_data()
    keys = {
        k
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        for p in m.data.data_points
        for k in p.attributes
    }
    assert semconv.GEN_AI_REQUEST_MODEL in keys
    for forbidden in (semconv.USER_ID, semconv.GEN_AI_CONVERSATION_ID, semconv.SESSION_ID, semconv.MESSAGE_ID):
        assert forbidden not in keys


def test_user_attribute_is_opt_in(make_capture: Any, reader: InMemoryMetricReader) -> None:
    cap = make_capture(metrics_user_attribute=True)
    _two_turns(Clock())
    cap.runtime.force_flush()
    assert total(reader, "chatobs.cost.usd", **{semconv.USER_ID: "u-1"}) == pytest.approx(0.0056)
    assert (
        total(reader, "gen_ai.client.token.usage", **{semconv.USER_ID: "u-2", semconv.GEN_AI_TOKEN_TYPE: "input"}) == 80
    )
    assert all(semconv.GEN_AI_CONVERSATION_ID not in p.attributes for p in points(reader, "chatobs.cost.usd"))


def test_metrics_count_traces_that_sampling_drops(make_capture: Any, reader: InMemoryMetricReader) -> None:
    # CHATOBS_SAMPLE_RATE=0: every trace is dropped. chatobs's spans of it are still recorded as light spans because
    # metrics are on, so the metrics stage sees them before the sampling stage discards them.
    from chatobs.recording.light_spans import LightSpan

    cap = make_capture(sample_rate=0.0, keep_errors=False)  # the error trace would otherwise be kept by the tail rule
    clock = Clock()
    with chat_turn(clock) as root:
        pass
    assert type(root) is LightSpan  # recorded (lightly), not sampled:
    assert not root.get_span_context().trace_flags.sampled
    _two_turns(clock)
    assert cap.spans() == []  # nothing exported: the sampling stage dropped every span after the metrics stage
    assert total(reader, "gen_ai.client.token.usage", **{semconv.GEN_AI_TOKEN_TYPE: "input"}) == 400
    assert total(reader, "chatobs.cost.usd") == pytest.approx(0.0058)
    assert total(reader, "mcp.tool.invocations") == 2
    assert count(reader, "http.server.request.duration") == 3


def test_metrics_off(make_capture: Any, reader: InMemoryMetricReader) -> None:
    cap = make_capture(metrics=False)
    _two_turns(Clock())
    assert len(cap.spans()) == 7
    assert metrics.current() is None
    assert points(reader, "gen_ai.client.token.usage") == []


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),
        ("gpt-4-0613", "gpt-4"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("models/gemini-1.5-pro", "gemini-1.5-pro"),
        ("gpt-4-1106-preview", "gpt-4-1106-preview"),
        ("llama3.1:8b", "llama3.1:8b"),
        ("", ""),
    ],
)
def test_normalize_model(raw: str, normalised: str) -> None:
    assert metrics.normalize_model(raw) == normalised


def test_cardinality_is_bounded(make_capture: Any, reader: InMemoryMetricReader) -> None:
    cap = make_capture()
    clock = Clock()
    for i in range(260):
        llm_call(clock, model=f"custom-model-{i}", cost=None)
    cap.runtime.force_flush()
    models = {p.attributes[semconv.GEN_AI_REQUEST_MODEL] for p in points(reader, "gen_ai.client.operation.duration")}
    assert len(models) == 201 and metrics.OTHER in models
    assert count(reader, "gen_ai.client.operation.duration") == 260


def test_pipeline_health_instruments(make_capture: Any, reader: InMemoryMetricReader) -> None:
    cap = make_capture()
    STATS.drop("test-exporter", "queue_full", 3)
    STATS.count("redaction_failed")
    _two_turns(Clock())
    cap.spans()
    dropped = points(reader, "chatobs.pipeline.spans.dropped")
    assert any(
        p.attributes == {semconv.DROP_WHERE: "test-exporter", semconv.DROP_REASON: "queue_full"} and p.value >= 3
        for p in dropped
    )
    assert points(reader, "chatobs.pipeline.spans.received")[0].value >= 7
    assert points(reader, "chatobs.pipeline.masking.failures")[0].value >= 1
    assert points(reader, "chatobs.pipeline.queue.size")[0].value >= 0
    exported = {p.attributes[semconv.EXPORTER]: p.value for p in points(reader, "chatobs.pipeline.spans.exported")}
    queues = {p.attributes[semconv.EXPORTER] for p in points(reader, "chatobs.exporter.queue.size")}
    assert "extra0" in queues
    assert STATS.exported.get("extra0", 0) == 0 or exported.get("extra0") == STATS.exported["extra0"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(url: str) -> dict[str, list[Any]]:
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append(s)
    return samples


def test_prometheus_endpoint(make_capture: Any) -> None:
    port = _free_port()
    cap = make_capture(prometheus_port=port)
    _two_turns(Clock())
    cap.runtime.force_flush()
    samples = _scrape(f"http://127.0.0.1:{port}/metrics")
    tokens = {
        (s.labels["gen_ai_request_model"], s.labels["gen_ai_token_type"]): s.value
        for s in samples["gen_ai_client_token_usage_sum"]
    }
    assert tokens[("gpt-4o", "input")] == 320
    cost = {s.labels["chatobs_tenant_id"]: s.value for s in samples["chatobs_cost_usd_total"]}
    assert cost["acme"] == pytest.approx(0.0056)
    inv = {
        (s.labels["gen_ai_tool_name"], s.labels["chatobs_tool_status"]): s.value
        for s in samples["mcp_tool_invocations_total"]
    }
    assert inv == {("search_kb", "ok"): 1, ("get_weather", "error"): 1}
    assert sum(s.value for s in samples["http_server_request_duration_seconds_count"]) == 2
    assert "gen_ai_client_operation_duration_seconds_bucket" in samples
    assert "mcp_tool_duration_milliseconds_bucket" in samples
    # Loopback only.
    assert metrics.current()._http_server.server_address[0] == "127.0.0.1"  # type: ignore[union-attr]


def test_prometheus_port_taken_is_a_warning_not_a_crash(make_capture: Any, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cap = make_capture(prometheus_port=port)
        _two_turns(Clock())
        assert len(cap.spans()) == 7
    assert "cannot serve Prometheus metrics" in caplog.text


async def test_mountable_asgi_route(make_capture: Any) -> None:
    import httpx
    from starlette.applications import Starlette
    from starlette.routing import Mount

    app = Starlette(routes=[Mount("/metrics", app=metrics.asgi_app)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
        assert (await client.get("/metrics/")).status_code == 503  # chatobs not started yet: a clear answer
        cap = make_capture()
        _two_turns(Clock())
        cap.runtime.force_flush()
        r = await client.get("/metrics/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "mcp_tool_invocations_total{" in r.text and 'gen_ai_tool_name="search_kb"' in r.text


def test_mountable_wsgi_route(make_capture: Any) -> None:
    from werkzeug.test import Client

    cap = make_capture()
    _two_turns(Clock())
    cap.runtime.force_flush()
    r = Client(metrics.wsgi_app).get("/")
    assert r.status_code == 200
    assert "chatobs_cost_usd_total{" in r.get_data(as_text=True)


def test_otlp_metrics_push(make_capture: Any) -> None:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cap = make_capture(otel_metrics_exporter="otlp", otlp_endpoint=f"http://127.0.0.1:{server.server_address[1]}")
        _two_turns(Clock())
        cap.runtime.force_flush()
        metrics.current().force_flush()  # type: ignore[union-attr]
        assert wait_for(lambda: bodies)
        runtime.shutdown(timeout_s=2)  # while the receiver still listens: the final push must not retry into a void
    finally:
        server.shutdown()
        server.server_close()
    req = ExportMetricsServiceRequest()
    req.ParseFromString(bodies[-1])
    found: dict[str, Any] = {m.name: m for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {"gen_ai.client.token.usage", "chatobs.cost.usd", "mcp.tool.invocations"} <= set(found)
    cost = sum(p.as_double for p in found["chatobs.cost.usd"].sum.data_points)
    assert cost == pytest.approx(0.0058)
    resource = {a.key: a.value.string_value for a in req.resource_metrics[0].resource.attributes}
    assert resource["service.name"] == "chat-app"


def test_bad_metrics_exporter_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from chatobs.config import ConfigError, load_settings

    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp,statsd")
    with pytest.raises(ConfigError, match=r"OTEL_METRICS_EXPORTER.*unknown metrics exporter 'statsd'"):
        load_settings()


def test_app_meter_provider_is_left_alone(make_capture: Any) -> None:
    from opentelemetry import metrics as otel_metrics

    before = otel_metrics.get_meter_provider()
    make_capture()
    assert otel_metrics.get_meter_provider() is before


def test_user_ids_are_hashed_when_asked(make_capture: Any, reader: InMemoryMetricReader) -> None:
    cap = make_capture(metrics_user_attribute=True, hash_user_ids=True, hash_secret="k" * 32)
    _two_turns(Clock())
    cap.runtime.force_flush()
    users = {p.attributes.get(semconv.USER_ID) for p in points(reader, "chatobs.cost.usd")}
    assert len(users) == 2 and not users & {"u-1", "u-2"}
    assert all(isinstance(u, str) and re.fullmatch(r"uh_[0-9a-f]{32}", u) for u in users)
