"""The metrics stage's fast path (cached label sets, values handed straight to the SDK's aggregations) records exactly
what recomputing every attribute set and calling the SDK's public API for every value records.

The reference is the same recorder with its caches bypassed and the direct path off: the code as it was before the
fast path, value for value. Both feed real SDK readers (an InMemoryMetricReader and the Prometheus reader).
"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from chatobs.config import load_settings
from chatobs.core import semconv as sc
from chatobs.processing.metrics import recorder as metrics
from chatobs.processing.metrics.recorder import MetricsStage, Recorder

pytestmark = pytest.mark.timeout(60)


class Reference(Recorder):
    """Every label set rebuilt for every span, every value through the SDK's public API."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._direct.enabled = False

    def _cached(self, cache: dict[Any, Any], key: Any, build: Any) -> Any:
        return build()


def _spans() -> list[Any]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    t = 1_700_000_000_000_000_000
    for i in range(400):
        who = {sc.TENANT_ID: f"t{i % 7}", sc.USER_ID: f"u{i % 11}"}
        # 260 distinct models (the limit is 200: later ones fold into _OTHER), dated pins, repeats interleaved
        model = f"model-{(i * 7) % 260}" + ("-2024-08-06" if i % 3 == 0 else "")
        attrs = {
            **who,
            sc.GEN_AI_OPERATION_NAME: "chat" if i % 5 else "embeddings",
            sc.GEN_AI_PROVIDER_NAME: ("openai", "anthropic")[i % 2],
            sc.GEN_AI_REQUEST_MODEL: model,
            sc.GEN_AI_USAGE_INPUT_TOKENS: 100 + i,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: i % 50,
        }
        if i % 4 == 0:
            attrs[sc.COST_USD] = 0.000_137 * (i % 13 + 1)
        if i % 6 == 0:
            attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = 0.05 * (i % 9)
        s = tracer.start_span("chat", kind=SpanKind.CLIENT, start_time=t, attributes=attrs)
        if i % 17 == 0:
            s.set_attribute(sc.ERROR_TYPE, ("RateLimitError", "APITimeoutError")[i % 2])
            s.set_status(Status(StatusCode.ERROR))
        s.end(end_time=t + (i % 40) * 37_000_000)
        tool = {
            sc.MCP_METHOD_NAME: ("tools/call", "tools/list")[i % 3 == 0],
            sc.GEN_AI_TOOL_NAME: f"tool{i % 4}",
            sc.MCP_SERVER_NAME: "kb",
            sc.NETWORK_TRANSPORT: "pipe",
        }
        s = tracer.start_span(
            "tools/call", kind=(SpanKind.CLIENT, SpanKind.SERVER)[i % 5 == 0], start_time=t, attributes=tool
        )
        if i % 7 == 1:
            s.set_status(Status(StatusCode.ERROR))
        s.end(end_time=t + (i % 23) * 3_000_000)
        req = {
            **who,
            sc.CHAT_REQUEST: True,
            sc.HTTP_REQUEST_METHOD: "POST",
            sc.HTTP_RESPONSE_STATUS_CODE: (200, 200, 502)[i % 3],
        }
        if i % 2:
            req[sc.HTTP_ROUTE] = "/api/chat"
        else:
            req[sc.URL_PATH] = f"/api/conversations/{i}/messages"
        s = tracer.start_span("POST", kind=SpanKind.SERVER, start_time=t, attributes=req)
        s.end(end_time=t + (i % 31) * 11_000_000)
        tracer.start_span("http send", start_time=t, attributes={"asgi.event.type": "http.response.body"}).end(
            end_time=t + 1000
        )
        t += 1_000_000_000
    return list(exporter.get_finished_spans())


def _points(reader: InMemoryMetricReader) -> dict[str, list[tuple[Any, ...]]]:
    data = reader.get_metrics_data()
    out: dict[str, list[tuple[Any, ...]]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                rows = []
                for p in metric.data.data_points:
                    attrs = tuple(sorted(p.attributes.items()))
                    if hasattr(p, "bucket_counts"):
                        rows.append(
                            (attrs, p.count, p.sum, tuple(p.bucket_counts), tuple(p.explicit_bounds), p.min, p.max)
                        )
                    else:
                        rows.append((attrs, p.value))
                out[metric.name] = sorted(rows, key=repr)
    return out


def _prometheus(rec: Recorder) -> list[str]:
    from prometheus_client import generate_latest

    return [line for line in generate_latest(rec.prometheus_registry).decode().splitlines() if "_created" not in line]


@pytest.mark.parametrize("with_user", [False, True])
def test_fast_path_records_exactly_what_the_public_api_records(
    monkeypatch: pytest.MonkeyPatch, with_user: bool
) -> None:
    monkeypatch.setattr(metrics, "_LABEL_CACHE_SIZE", 16)  # caches cleared and rebuilt many times over the run
    settings = load_settings(
        exporters="none",
        metrics_user_attribute=with_user,
        hash_user_ids=with_user,
        hash_secret="k" if with_user else None,
    )
    fast_reader, ref_reader = InMemoryMetricReader(), InMemoryMetricReader()
    fast, ref = Recorder(settings, readers=[fast_reader]), Reference(settings, readers=[ref_reader])
    try:
        assert fast._direct.enabled, "the installed opentelemetry-sdk no longer looks as the direct path expects"
        spans = _spans()
        for i in range(0, len(spans), 50):
            MetricsStage(fast).process(spans[i : i + 50])
            MetricsStage(ref).process(spans[i : i + 50])
            if i == 1000:
                assert _points(fast_reader) == _points(ref_reader)  # a collection midway changes nothing
        fast_points, ref_points = _points(fast_reader), _points(ref_reader)
        assert fast_points == ref_points
        assert {
            "gen_ai.client.token.usage",
            "gen_ai.client.operation.duration",
            "gen_ai.client.operation.time_to_first_chunk",
            "chatobs.cost.usd",
            "mcp.client.operation.duration",
            "mcp.server.operation.duration",
            "mcp.tool.invocations",
            "mcp.tool.errors",
            "mcp.tool.duration",
            "http.server.request.duration",
        } <= set(fast_points)
        models = {dict(a)[sc.GEN_AI_REQUEST_MODEL] for a, *_ in fast_points["gen_ai.client.token.usage"]}
        assert metrics.OTHER in models and len(models) == 201
        if not with_user:  # (the exposition of some 2,000 series takes a while: once is enough)
            assert _prometheus(fast) == _prometheus(ref)
        # Most values took the direct path: every series learnt its aggregations.
        series = [
            s
            for cache in (fast._llm_labels, fast._mcp_labels, fast._request_labels)
            for v in cache.values()
            for s in (v if isinstance(v, tuple) else (v,))
            if s is not None
        ]
        assert series and all(s._aggregations for s in series[-5:])
    finally:
        fast.shutdown()
        ref.shutdown()


def test_a_reader_added_later_gets_every_later_value() -> None:
    settings = load_settings(exporters="none")
    first = InMemoryMetricReader()
    rec = Recorder(settings, readers=[first])
    try:
        spans = _spans()[:400]
        MetricsStage(rec).process(spans[:200])
        late = InMemoryMetricReader()
        rec.provider.add_metric_reader(late)
        MetricsStage(rec).process(spans[200:])
        calls: dict[str, int] = {}
        for a, v in _points(late)["mcp.tool.invocations"]:  # ok and error series of each tool
            calls[dict(a)[sc.GEN_AI_TOOL_NAME]] = calls.get(dict(a)[sc.GEN_AI_TOOL_NAME], 0) + v
        expected: dict[str, int] = {}
        for s in spans[200:]:
            a = s.attributes
            # Client spans, and server spans with no chatobs caller (these carry no chatobs.mcp.caller.traced).
            if a.get(sc.MCP_METHOD_NAME) == "tools/call" and (
                s.kind == SpanKind.CLIENT or not a.get(sc.MCP_CALLER_TRACED)
            ):
                expected[a[sc.GEN_AI_TOOL_NAME]] = expected.get(a[sc.GEN_AI_TOOL_NAME], 0) + 1
        assert calls == expected
    finally:
        rec.shutdown()


def test_direct_path_off_when_the_sdk_looks_different(monkeypatch: pytest.MonkeyPatch) -> None:
    from chatobs.processing.metrics import series as metric_series

    monkeypatch.setattr(metric_series, "_sdk_parts", lambda: None)
    reader = InMemoryMetricReader()
    rec = Recorder(load_settings(exporters="none"), readers=[reader])
    try:
        assert not rec._direct.enabled
        MetricsStage(rec).process(_spans()[:100])
        assert sum(v for _, v in _points(reader)["mcp.tool.invocations"]) > 0
    finally:
        rec.shutdown()
