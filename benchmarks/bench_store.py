"""Local store: CPU per chat turn written through the real exporter, against a bare SQLite insert of prebuilt rows.

The spans are shaped like the demo's turn (``make_turn``): 8 spans -- the request, three FastAPI internal spans, two
LLM calls carrying the (masked) message history, the MCP client span and the MCP server's span -- about 9 KB of JSON
attributes, random trace and span IDs (as OTel generates them: they decide where index entries land).

Two batch shapes, because per-batch costs (transaction, commit, summary refresh) dominate when batches are small:

- ``one turn per batch``: a quiet app, where the exporter channel drains one turn at a time;
- ``batches of 256`` (the default ``CHATOBS_EXPORT_BATCH_SIZE``): a busy app. Here every turn's MCP server span comes
  in a later batch than the rest of its turn (as from the MCP server's own process), so the trace summaries are also
  exercised with traces that arrive in two parts.

Variants on the same spans, in the same run: ``span -> row`` (conversion only), ``bare sqlite`` (executemany of
prebuilt rows into a table without indexes, WAL, one transaction per batch) and ``local exporter`` (conversion,
insert with indexes, trace summaries, commit). CPU is process time (all threads, user + system), best of
``BENCH_ROUNDS`` rounds, each on a fresh file that already holds ``BENCH_STORE_PREFILL`` turns (a store in use is not
empty: its indexes no longer fit one page). Runs on the exporter's background thread in production, never in a
request.
"""

from __future__ import annotations

import gc
import json
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from benchmarks.common import table
from chatobs.core import semconv
from chatobs.export.local import LocalExporter
from chatobs.export.local.rows import SPAN_COLUMNS, span_row

TURNS = int(os.environ.get("BENCH_STORE_TURNS", "1000"))
PREFILL = int(os.environ.get("BENCH_STORE_PREFILL", "2000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
BATCH = 256
SPANS_PER_TURN = 8

_RES = Resource.create({"service.name": "demo-chat", "service.version": "1.0", "deployment.environment": "bench"})
_RES_MCP = Resource.create({"service.name": "demo-tools"})


def _history(turn: int) -> str:
    msgs: list[dict[str, Any]] = [
        {"role": "system", "parts": [{"type": "text", "content": "You are the support assistant of ACME. " * 4}]}
    ]
    for i in range(min(turn % 6, 5)):
        msgs.append(
            {
                "role": "user",
                "parts": [{"type": "text", "content": f"calculate 12*{i} and tell me about <EMAIL_ADDRESS>"}],
            }
        )
        msgs.append({"role": "assistant", "parts": [{"type": "text", "content": f"The result is {12 * i}. " * 5}]})
    msgs.append({"role": "user", "parts": [{"type": "text", "content": "calculate 12*7 for me"}]})
    return json.dumps(msgs)


_TOOLS = json.dumps(
    [
        {
            "type": "function",
            "name": "calculator",
            "description": "Evaluate an arithmetic expression, e.g. '(2 + 3) * 4 / 7'.",
            "parameters": {
                "type": "object",
                "properties": {"expression": {"type": "string"}},
                "required": ["expression"],
            },
        }
    ]
)


def make_turn(t: int, start: int, rng: random.Random) -> list[ReadableSpan]:
    """One demo chat turn, in the order its spans end (children first, the request last, the MCP server's span apart)."""
    tid = rng.getrandbits(128)
    sid = [rng.getrandbits(64) for _ in range(8)]
    ctx = [SpanContext(tid, s, False, TraceFlags(1)) for s in sid]
    ids = {
        semconv.GEN_AI_CONVERSATION_ID: f"conv-{t % 50}",
        semconv.USER_ID: f"user-{t % 20}",
        semconv.TENANT_ID: "acme",
    }
    ms = 1_000_000

    def span(
        i: int,
        name: str,
        parent: int | None,
        a: int,
        b: int,
        attrs: dict[str, Any],
        kind: SpanKind = SpanKind.INTERNAL,
        res: Resource = _RES,
    ) -> ReadableSpan:
        return ReadableSpan(
            name=name,
            context=ctx[i],
            parent=ctx[parent] if parent is not None else None,
            resource=res,
            kind=kind,
            start_time=start + a * ms,
            end_time=start + b * ms,
            attributes={**ids, **attrs},
        )

    history = _history(t)
    llm = {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.OBSERVATION_TYPE: "llm",
        semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
        semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 420,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 38,
        semconv.COST_USD: 0.000086,
        semconv.GEN_AI_INPUT_MESSAGES: history,
        "gen_ai.tool.definitions": _TOOLS,
        "server.address": "127.0.0.1",
        "server.port": 44459,
    }
    tool = {
        semconv.GEN_AI_OPERATION_NAME: "execute_tool",
        semconv.GEN_AI_TOOL_NAME: "calculator",
        semconv.MCP_METHOD_NAME: "tools/call",
        semconv.MCP_SERVER_NAME: "demo-tools",
        semconv.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps({"expression": "12*7"}),
        semconv.GEN_AI_TOOL_CALL_RESULT: json.dumps([{"type": "text", "text": "84"}]),
    }
    return [
        span(1, "fastapi.dependencies", 0, 1, 2, {"chatobs.observation.type": "task"}),
        span(3, "chat gpt-4o-mini", 2, 16, 24, llm, SpanKind.CLIENT),
        span(4, "MCP send tools/call calculator", 2, 24, 28, tool, SpanKind.CLIENT),
        span(
            6,
            "chat gpt-4o-mini",
            2,
            35,
            42,
            {
                **llm,
                semconv.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": "12*7 = 84"}]}]
                ),
            },
            SpanKind.CLIENT,
        ),
        span(2, "fastapi.endpoint", 0, 1, 42, {"chatobs.observation.type": "task"}),
        span(7, "fastapi.serialization", 0, 42, 43, {"chatobs.observation.type": "task"}),
        span(
            0,
            "POST /api/chat",
            None,
            0,
            43,
            {
                semconv.CHAT_REQUEST: True,
                semconv.ROUTE: "/api/chat",
                semconv.HTTP_REQUEST_METHOD: "POST",
                semconv.INPUT: "calculate 12*7 for me",
                semconv.OUTPUT: "12*7 = 84",
            },
            SpanKind.SERVER,
        ),
        span(5, "tools/call calculator", 4, 26, 27, tool, SpanKind.SERVER, _RES_MCP),
    ]


def make_turns(n: int, seed: int = 7) -> list[list[ReadableSpan]]:
    rng = random.Random(seed)
    now = time.time_ns()
    return [make_turn(t, now + t * 50_000_000, rng) for t in range(n)]


def busy_batches(turns: list[list[ReadableSpan]]) -> list[list[ReadableSpan]]:
    """Batches of 256 in arrival order; each turn's MCP server span arrives 40 turns later than the rest of its turn."""
    stream: list[ReadableSpan] = []
    for t, turn in enumerate(turns):
        stream.extend(turn[:-1])
        if t >= 40:
            stream.append(turns[t - 40][-1])
    stream.extend(turn[-1] for turn in turns[-40:])
    return [stream[i : i + BATCH] for i in range(0, len(stream), BATCH)]


def _cpu(fn: Callable[[], Any]) -> float:
    gc.collect()
    start = time.process_time()
    fn()
    return time.process_time() - start


def _exporter(path: Path) -> LocalExporter:
    exporter = LocalExporter(path, prune_interval_s=3600)
    for batch in busy_batches(make_turns(PREFILL, seed=1)):  # open, migrate and fill outside the measurement
        exporter.export(batch)
    return exporter


def main() -> dict[str, Any]:
    turns = make_turns(TURNS)
    spans = [s for turn in turns for s in turn]
    n = len(spans)
    busy = busy_batches(turns)
    rows_cpu, bare_cpu, quiet_cpu, busy_cpu = [], [], [], []
    size_mb = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(ROUNDS):
            rows_cpu.append(_cpu(lambda: [span_row(s) for s in spans]))
            prebuilt = [span_row(s) for s in spans]

            bare_db = sqlite3.connect(Path(tmp) / f"bare{r}.db", isolation_level=None)
            bare_db.execute("PRAGMA journal_mode = WAL")
            bare_db.execute("PRAGMA synchronous = NORMAL")
            bare_db.execute(f"CREATE TABLE spans ({', '.join(SPAN_COLUMNS)})")
            marks = ",".join("?" * len(SPAN_COLUMNS))

            def bare() -> None:
                for i in range(0, len(prebuilt), BATCH):
                    bare_db.execute("BEGIN")
                    bare_db.executemany(f"INSERT INTO spans VALUES ({marks})", prebuilt[i : i + BATCH])
                    bare_db.execute("COMMIT")

            bare_cpu.append(_cpu(bare))
            bare_db.close()

            quiet = _exporter(Path(tmp) / f"quiet{r}.db")
            quiet_cpu.append(_cpu(lambda: [quiet.export(turn) for turn in turns]))
            quiet.shutdown()

            path = Path(tmp) / f"busy{r}.db"
            exporter = _exporter(path)
            busy_cpu.append(_cpu(lambda: [exporter.export(b) for b in busy]))
            size_mb = (path.stat().st_size + sum(p.stat().st_size for p in Path(tmp).glob(f"{path.name}-wal"))) / 1e6
            exporter.shutdown()
            for p in Path(tmp).iterdir():
                p.unlink()

    def per_turn(cpu: list[float]) -> float:
        return round(min(cpu) / TURNS * 1e3, 3)

    def per_span(cpu: list[float]) -> float:
        return round(min(cpu) / n * 1e6, 1)

    result = {
        "turns": TURNS,
        "spans": n,
        "prefill_turns": PREFILL,
        "rows_cpu_ms_per_turn": per_turn(rows_cpu),
        "bare_sqlite_cpu_ms_per_turn": per_turn(bare_cpu),
        "quiet_cpu_ms_per_turn": per_turn(quiet_cpu),
        "busy_cpu_ms_per_turn": per_turn(busy_cpu),
        "quiet_cpu_us_per_span": per_span(quiet_cpu),
        "busy_cpu_us_per_span": per_span(busy_cpu),
        "busy_spans_per_cpu_s": round(n / min(busy_cpu)),
        "busy_vs_bare_cpu_ratio": round(min(busy_cpu) / min(bare_cpu), 2),
        "db_mb": round(size_mb, 1),
    }
    table(
        [
            ("span -> row only", f"{result['rows_cpu_ms_per_turn']:.3f}", f"{per_span(rows_cpu)}", "-"),
            (
                "bare sqlite insert of prebuilt rows (256)",
                f"{result['bare_sqlite_cpu_ms_per_turn']:.3f}",
                f"{per_span(bare_cpu)}",
                "1.00",
            ),
            (
                "local exporter, one turn per batch",
                f"{result['quiet_cpu_ms_per_turn']:.3f}",
                f"{result['quiet_cpu_us_per_span']}",
                f"{min(quiet_cpu) / min(bare_cpu):.2f}",
            ),
            (
                "local exporter, batches of 256",
                f"{result['busy_cpu_ms_per_turn']:.3f}",
                f"{result['busy_cpu_us_per_span']}",
                f"{result['busy_vs_bare_cpu_ratio']:.2f}",
            ),
        ],
        ("variant", "CPU ms/turn", "CPU us/span", "CPU vs bare"),
    )
    print(
        f"{TURNS} turns of {SPANS_PER_TURN} spans, best of {ROUNDS} rounds, on a store holding {PREFILL} turns; "
        f"store file {result['db_mb']} MB"
    )
    return result


if __name__ == "__main__":
    main()
