"""Cost of the metrics and alerts stages per span (background thread CPU; the request path is not involved).

    python benchmarks/bench_metrics.py [--turns 2000]

A "turn" is 4 spans (request, 2 LLM calls, 1 MCP tool call). Reports CPU microseconds per turn for the metrics stage,
the alerts stage (all rule types on) and both, against a pass-through stage as the bare baseline.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

from chatobs import semconv  # noqa: E402
from chatobs.config import load_settings  # noqa: E402
from chatobs.pipeline import alerts, metrics  # noqa: E402


def make_spans(turns: int) -> list:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    t = time.time_ns()
    for i in range(turns):
        base = {semconv.GEN_AI_CONVERSATION_ID: f"c{i % 500}", semconv.USER_ID: f"u{i % 300}", semconv.TENANT_ID: f"t{i % 20}"}
        root = tracer.start_span("POST /api/chat", kind=SpanKind.SERVER, start_time=t,
                                 attributes={**base, semconv.CHAT_REQUEST: True, semconv.HTTP_ROUTE: "/api/chat",
                                             semconv.HTTP_REQUEST_METHOD: "POST", semconv.HTTP_RESPONSE_STATUS_CODE: 200})
        with trace.use_span(root, end_on_exit=False):
            for m in ("gpt-4o-2024-08-06", "claude-3-5-sonnet-20241022"):
                s = tracer.start_span("chat", kind=SpanKind.CLIENT, start_time=t, attributes={
                    **base, semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_PROVIDER_NAME: "openai", semconv.GEN_AI_REQUEST_MODEL: m,
                    semconv.GEN_AI_USAGE_INPUT_TOKENS: 500, semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 80, semconv.COST_USD: 0.002})
                s.end(end_time=t + 400_000_000)
            s = tracer.start_span("tools/call search", kind=SpanKind.CLIENT, start_time=t, attributes={
                **base, semconv.MCP_METHOD_NAME: "tools/call", semconv.GEN_AI_TOOL_NAME: "search", semconv.MCP_SERVER_NAME: "kb"})
            s.end(end_time=t + 30_000_000)
            root.end(end_time=t + 600_000_000)
        t += 10_000_000
    return list(exporter.get_finished_spans())


def cpu_per_turn(stage, spans: list, turns: int, batch: int = 256) -> float:
    start = time.process_time()
    for i in range(0, len(spans), batch):
        stage.process(spans[i : i + batch])
    return (time.process_time() - start) / turns * 1e6


class PassThrough:
    def process(self, spans: list) -> list:
        return spans


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=2000)
    args = parser.parse_args()
    spans = make_spans(args.turns)
    settings = load_settings(exporters="none", alert_error_rate=0.5, alert_budget_usd=100, alert_spike_factor=5, alert_latency_p95_ms=10_000)
    m = metrics.build(settings)
    a = alerts.build(settings)
    assert m is not None and a is not None
    bare = cpu_per_turn(PassThrough(), spans, args.turns)
    m_us = cpu_per_turn(m, spans, args.turns)
    a_us = cpu_per_turn(a, spans, args.turns)
    print(f"turns: {args.turns} ({len(spans)} spans); background CPU per turn, microseconds")
    print(f"  pass-through baseline: {bare:8.1f}")
    print(f"  metrics stage:         {m_us:8.1f}")
    print(f"  alerts stage (5 rule types): {a_us:8.1f}")
    print(f"  metrics + alerts:      {m_us + a_us:8.1f}  (request path: 0; this runs on the pipeline thread)")
    m.shutdown()
    a.shutdown()


if __name__ == "__main__":
    main()
