"""Local store write throughput: spans per second through the real exporter, against a bare SQLite insert.

Three variants on the same spans, in the same run: ``rows`` (span -> row conversion only), ``bare sqlite`` (executemany
of prebuilt rows into a table without indexes, WAL, one transaction per batch) and ``local exporter`` (what the
background pipeline does: conversion, insert with indexes, trace summaries). Batches of 256, the default
``CHATOBS_EXPORT_BATCH_SIZE``. Runs on the background thread in production, never in a request.
"""

from __future__ import annotations

import gc
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from benchmarks.common import table
from chatobs import semconv
from chatobs.exporters.local import LocalExporter
from chatobs.exporters.local.rows import SPAN_COLUMNS, span_row

N = int(os.environ.get("BENCH_STORE_SPANS", "12000"))
BATCH = 256


def make_spans(n: int) -> list[ReadableSpan]:
    """Chat turns of 4 spans (request, LLM call, tool call, second LLM call) with realistic attributes."""
    res = Resource.create({"service.name": "bench"})
    now = time.time_ns()
    spans: list[ReadableSpan] = []
    messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "How do I reset my password? " * 6}]}])
    for t in range(n // 4):
        tid = (t + 1) << 64 | 0xABC
        root = SpanContext(tid, 1, False, TraceFlags(1))
        ids = {semconv.GEN_AI_CONVERSATION_ID: f"conv-{t % 50}", semconv.USER_ID: f"user-{t % 20}", semconv.TENANT_ID: "acme"}
        start = now + t * 1_000_000
        spans.append(ReadableSpan(name="POST /api/chat", context=root, parent=None, resource=res, kind=SpanKind.SERVER,
                                  start_time=start, end_time=start + 900_000,
                                  attributes={**ids, semconv.CHAT_REQUEST: True, semconv.ROUTE: "/api/chat", semconv.INPUT: "hello " * 20}))
        for i, kind in enumerate(("llm", "tool", "llm"), start=2):
            attrs: dict[str, Any] = dict(ids)
            if kind == "llm":
                attrs.update({semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini", semconv.GEN_AI_PROVIDER_NAME: "openai",
                              semconv.GEN_AI_USAGE_INPUT_TOKENS: 120, semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 40, semconv.COST_USD: 0.0002,
                              semconv.GEN_AI_INPUT_MESSAGES: messages})
            else:
                attrs.update({semconv.GEN_AI_OPERATION_NAME: "execute_tool", semconv.GEN_AI_TOOL_NAME: "search", semconv.MCP_SERVER_NAME: "kb"})
            spans.append(ReadableSpan(name=kind, context=SpanContext(tid, i, False, TraceFlags(1)), parent=root, resource=res,
                                      start_time=start + i * 100_000, end_time=start + i * 200_000, attributes=attrs))
    return spans


def _timed(fn: Any) -> tuple[float, float]:
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> dict[str, Any]:
    spans = make_spans(N)
    batches = [spans[i : i + BATCH] for i in range(0, len(spans), BATCH)]
    with tempfile.TemporaryDirectory() as tmp:
        rows_wall, rows_cpu = _timed(lambda: [span_row(s) for s in spans])
        prebuilt = [span_row(s) for s in spans]

        bare_db = sqlite3.connect(Path(tmp) / "bare.db", isolation_level=None)
        bare_db.execute("PRAGMA journal_mode = WAL")
        bare_db.execute("PRAGMA synchronous = NORMAL")
        bare_db.execute(f"CREATE TABLE spans ({', '.join(SPAN_COLUMNS)})")
        marks = ",".join("?" * len(SPAN_COLUMNS))

        def bare() -> None:
            for i in range(0, len(prebuilt), BATCH):
                bare_db.execute("BEGIN")
                bare_db.executemany(f"INSERT INTO spans VALUES ({marks})", prebuilt[i : i + BATCH])
                bare_db.execute("COMMIT")

        bare_wall, bare_cpu = _timed(bare)
        exporter = LocalExporter(Path(tmp) / "local.db", prune_interval_s=3600)
        exporter.export(make_spans(4))  # open + migrate outside the measurement

        def local() -> None:
            for b in batches:
                exporter.export(b)

        local_wall, local_cpu = _timed(local)
        size_mb = (Path(tmp) / "local.db").stat().st_size / 1e6 + sum(p.stat().st_size for p in Path(tmp).glob("local.db-wal")) / 1e6
        exporter.shutdown()
    n = len(spans)
    result = {
        "spans": n,
        "batch": BATCH,
        "rows_spans_per_s": round(n / rows_wall),
        "bare_sqlite_spans_per_s": round(n / bare_wall),
        "local_exporter_spans_per_s": round(n / local_wall),
        "local_exporter_cpu_us_per_span": round(local_cpu / n * 1e6, 1),
        "local_vs_bare_time_ratio": round(local_wall / bare_wall, 2),
        "db_mb": round(size_mb, 1),
    }
    table([
        ("span -> row only", f"{result['rows_spans_per_s']:,}", f"{rows_cpu / n * 1e6:.1f}", "-"),
        ("bare sqlite insert (prebuilt rows)", f"{result['bare_sqlite_spans_per_s']:,}", f"{bare_cpu / n * 1e6:.1f}", "1.00"),
        ("local exporter (convert+insert+traces)", f"{result['local_exporter_spans_per_s']:,}", f"{result['local_exporter_cpu_us_per_span']}", f"{result['local_vs_bare_time_ratio']:.2f}"),
    ], ("variant", "spans/s", "CPU us/span", "time vs bare"))
    print(f"{n} spans in batches of {BATCH}; store file {result['db_mb']} MB")
    return result


if __name__ == "__main__":
    main()
