"""CPU cost of the cost, metrics and alerts stages per chat turn (pipeline thread; the request path is not involved).

    python benchmarks/bench_metrics.py [--turns 1000] [--rounds 5]      (env: BENCH_TURNS, BENCH_ROUNDS)

A "turn" is the 8 spans of a demo turn: the request SERVER span, 3 framework-internal spans (FastAPI's own), 2 LLM
calls (token counts growing with the conversation, as a resent history does) and 2 MCP client calls (tools/list,
tools/call). The stages run in pipeline order (cost, then metrics and alerts on the priced spans) in batches of 256.
Figures: CPU microseconds per turn of this thread (``thread_time``), best of ``rounds`` (the machine is shared), against
a pass-through stage as the bare baseline. "cost, uncached" prices every LLM span through genai-prices itself (the
path the cache replaces, and its reference in the tests).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from chatobs.config import load_settings
from chatobs.core import semconv
from chatobs.processing import cost
from chatobs.processing.alerts import rules as alerts
from chatobs.processing.metrics import recorder as metrics

BATCH = 256
SPANS_PER_TURN = 8


def make_spans(turns: int) -> list[Any]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    t = time.time_ns()
    for i in range(turns):
        base = {
            semconv.GEN_AI_CONVERSATION_ID: f"c{i % 500}",
            semconv.USER_ID: f"u{i % 300}",
            semconv.TENANT_ID: f"t{i % 20}",
        }
        root = tracer.start_span(
            "POST /api/chat",
            kind=SpanKind.SERVER,
            start_time=t,
            attributes={
                **base,
                semconv.CHAT_REQUEST: True,
                semconv.HTTP_ROUTE: "/api/chat",
                semconv.HTTP_REQUEST_METHOD: "POST",
                semconv.HTTP_RESPONSE_STATUS_CODE: 200,
            },
        )
        with trace.use_span(root, end_on_exit=False):
            for name in ("POST /api/chat http receive", "POST /api/chat http send", "POST /api/chat http send"):
                s = tracer.start_span(
                    name,
                    kind=SpanKind.INTERNAL,
                    start_time=t,
                    attributes={**base, "asgi.event.type": "http.response.body", semconv.HTTP_ROUTE: "/api/chat"},
                )
                s.end(end_time=t + 100_000)
            history = 40 * (i % 25)  # a conversation resends its history: no two calls have the same usage
            for j, model in enumerate(("gpt-4o-2024-08-06", "gpt-4o-mini")):
                s = tracer.start_span(
                    f"chat {model}",
                    kind=SpanKind.CLIENT,
                    start_time=t,
                    attributes={
                        **base,
                        semconv.GEN_AI_OPERATION_NAME: "chat",
                        semconv.GEN_AI_PROVIDER_NAME: "openai",
                        semconv.GEN_AI_REQUEST_MODEL: model,
                        semconv.GEN_AI_RESPONSE_MODEL: model,
                        semconv.GEN_AI_USAGE_INPUT_TOKENS: 500 + history + i + 60 * j,
                        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 20 + i % 90,
                        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: history,
                    },
                )
                s.end(end_time=t + 400_000_000)
            for method, tool in (("tools/list", None), ("tools/call", "calculator")):
                attrs = {
                    **base,
                    semconv.MCP_METHOD_NAME: method,
                    semconv.MCP_SERVER_NAME: "demo-tools",
                    semconv.NETWORK_TRANSPORT: "pipe",
                }
                if tool:
                    attrs[semconv.GEN_AI_TOOL_NAME] = tool
                s = tracer.start_span(
                    f"{method} {tool or ''}".strip(), kind=SpanKind.CLIENT, start_time=t, attributes=attrs
                )
                s.end(end_time=t + 30_000_000)
            root.end(end_time=t + 600_000_000)
        t += 10_000_000
    return list(exporter.get_finished_spans())


def cpu_per_turn(stage: Any, spans: list[Any], turns: int, rounds: int) -> tuple[float, list[Any]]:
    """Best-of-``rounds`` CPU microseconds per turn of ``stage.process`` over the spans, and its output.

    ``stage`` may be a factory (a class): then each round starts with a fresh stage and empty caches.
    """
    best = float("inf")
    out: list[Any] = []
    for _ in range(rounds):
        stage_ = stage() if isinstance(stage, type) else stage
        gc.collect()
        out = []
        start = time.thread_time()
        for i in range(0, len(spans), BATCH):
            out.extend(stage_.process(spans[i : i + BATCH]))
        best = min(best, time.thread_time() - start)
    return best / turns * 1e6, out


class PassThrough:
    def process(self, spans: list[Any]) -> list[Any]:
        return spans


class UncachedCost(cost.CostStage):
    """The cost stage asking genai-prices for every span (what the cached path replaces)."""

    def __init__(self) -> None:
        super().__init__(None)

    def _price_cached(self, models, provider, tokens):  # type: ignore[no-untyped-def,override]
        return self._price(list(models), provider, tokens)


def main(turns: int | None = None, rounds: int | None = None) -> dict[str, Any]:
    turns = turns or int(os.environ.get("BENCH_TURNS", "1000"))
    rounds = rounds or int(os.environ.get("BENCH_ROUNDS", "5"))
    spans = make_spans(turns)
    assert len(spans) == turns * SPANS_PER_TURN
    settings = load_settings(
        exporters="none", alert_error_rate=0.5, alert_budget_usd=100, alert_spike_factor=5, alert_latency_p95_ms=10_000
    )
    m, a = metrics.build(settings), alerts.build(settings)
    a_default = alerts.build(load_settings(exporters="none"))  # what an app gets without alert settings: slow_tool
    assert m is not None and a is not None and a_default is not None
    cost.CostStage(None).process(spans[:SPANS_PER_TURN])  # import genai-prices (a one-off, off the app's startup path)

    class Cost(cost.CostStage):  # a fresh stage per round: its caches fill during the measured run, as in an app
        def __init__(self) -> None:
            super().__init__(None)

    bare, _ = cpu_per_turn(PassThrough(), spans, turns, rounds)
    c_us, priced = cpu_per_turn(Cost, spans, turns, rounds)
    u_us, priced_uncached = cpu_per_turn(UncachedCost, spans, turns, 1 if rounds < 3 else 2)
    assert [s.attributes.get(semconv.COST_USD) for s in priced] == [
        s.attributes.get(semconv.COST_USD) for s in priced_uncached
    ]
    assert sum(1 for s in priced if semconv.COST_USD in s.attributes) == 2 * turns
    m_us, _ = cpu_per_turn(m, priced, turns, rounds)
    a_us, _ = cpu_per_turn(a, priced, turns, rounds)
    a0_us, _ = cpu_per_turn(a_default, priced, turns, rounds)
    m.shutdown()
    a.shutdown()
    a_default.shutdown()
    result = {
        "turns": turns,
        "spans_per_turn": SPANS_PER_TURN,
        "rounds": rounds,
        "baseline_us": round(bare, 1),
        "cost_us": round(c_us, 1),
        "cost_uncached_us": round(u_us, 1),
        "metrics_us": round(m_us, 1),
        "alerts_us": round(a_us, 1),
        "alerts_default_us": round(a0_us, 1),
        "total_us": round(c_us + m_us + a_us, 1),
    }
    print(f"turns: {turns} x {SPANS_PER_TURN} spans, best of {rounds}; pipeline-thread CPU per turn, microseconds")
    print(f"  pass-through baseline:        {bare:8.1f}")
    print(f"  cost stage:                   {c_us:8.1f}   (uncached, genai-prices per span: {u_us:.1f})")
    print(f"  metrics stage:                {m_us:8.1f}")
    print(f"  alerts stage (5 rule types):  {a_us:8.1f}   (defaults, slow_tool only: {a0_us:.1f})")
    print(f"  cost + metrics + alerts:      {c_us + m_us + a_us:8.1f}   (request path: 0)")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    main(args.turns, args.rounds)
