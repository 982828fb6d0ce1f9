"""How much chatobs's background threads delay the app's event loop (they share its GIL).

    python -m benchmarks.bench_gil [--turns 150] [--rounds 3]

An asyncio app in the main thread runs chat turns one after another: each turn creates the spans a real turn does
(the request span, two LLM calls with the growing conversation, system prompt and tool definitions as content, an
MCP tool call and a few framework spans) and spends ~20 ms of Python CPU in slices, awaiting 1 ms timers between them
(the app waiting for its LLM provider). The figures are how late those timers fire (the event loop waking up and
waiting for the GIL) and the turn latency.

Variants, each in a fresh process, alternated ``--rounds`` times:
- ``chatobs``: chatobs with its defaults (content capture, PII masking in its worker process, metrics, local store);
- ``no-pipeline``: the same request path, but the pipeline thread discards what it receives (no stages, no export),
  so the difference is what the background work costs the loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SYSTEM = "You are a helpful assistant for ACME Corp. Use the calculator tool for arithmetic. Be brief. " * 3
TOOLS = [
    {"type": "function", "function": {"name": "calculate", "description": "Evaluate an arithmetic expression exactly.",
                                      "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                                                     "required": ["expression"]}}},
    {"type": "function", "function": {"name": "search_docs", "description": "Search the product documentation.",
                                      "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                                                     "required": ["query"]}}},
]


def _busy(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    x = 0
    while time.perf_counter() < end:
        for i in range(200):
            x += i * i


async def _wait(ms: float, late: list[float]) -> None:
    started = time.perf_counter()
    await asyncio.sleep(ms / 1000)
    late.append(time.perf_counter() - started - ms / 1000)


async def _turn(i: int, history: list[dict[str, Any]], late: list[float]) -> None:
    import chatobs
    from chatobs.runtime import get_tracer
    from opentelemetry.trace import SpanKind

    tracer = get_tracer()
    user = f"message {i}: calculate {i}*7 please, and send the result to jane.doe{i}@example.com or call +1 415 555 {i % 10000:04d}"
    with chatobs.scope(conversation_id=f"conv-{i // 5}", user_id="bench-user"):
        with tracer.start_as_current_span("POST /api/chat", kind=SpanKind.SERVER, attributes={"chatobs.request": True, "http.route": "/api/chat"}):
            for name in ("http receive", "http receive"):
                tracer.start_span(name).end()
            _busy(3)
            history.append({"role": "user", "content": user})
            msgs = [{"role": "system", "content": SYSTEM}] + history
            async with chatobs.allm_call("openai", "gpt-4o-mini", msgs, tools=TOOLS, temperature=0.2) as call:
                for _ in range(3):
                    await _wait(1, late)
                    _busy(2)
                call.record({"role": "assistant", "tool_calls": [{"id": f"c{i}", "type": "function", "function": {"name": "calculate", "arguments": json.dumps({"expression": f"{i}*7"})}}]},
                            usage={"input_tokens": 300 + 40 * len(history), "output_tokens": 20})
            with tracer.start_as_current_span("tools/call calculate", kind=SpanKind.CLIENT, attributes={"mcp.method.name": "tools/call", "gen_ai.tool.name": "calculate"}):
                await _wait(1, late)
                _busy(2)
            history.append({"role": "assistant", "content": f"{i}*7 = {i * 7}. I will mail it to jane.doe{i}@example.com."})
            msgs = [{"role": "system", "content": SYSTEM}] + history
            async with chatobs.allm_call("openai", "gpt-4o-mini", msgs, tools=TOOLS, temperature=0.2) as call:
                for _ in range(3):
                    await _wait(1, late)
                    _busy(2)
                call.record(history[-1]["content"], usage={"input_tokens": 400 + 40 * len(history), "output_tokens": 30})
            tracer.start_span("http send").end()
            _busy(3)
    if len(history) >= 10:
        history.clear()


async def _run(turns: int) -> dict[str, list[float]]:
    late: list[float] = []
    lat: list[float] = []
    history: list[dict[str, Any]] = []
    for i in range(turns):
        started = time.perf_counter()
        await _turn(i, history, late)
        lat.append(time.perf_counter() - started)
    return {"late": late, "lat": lat}


def child(variant: str, turns: int) -> None:
    import chatobs
    from chatobs.runtime import get_runtime

    chatobs.init()
    rt = get_runtime()
    assert rt is not None
    pipe = rt.pipeline
    if variant == "no-pipeline":
        pipe._drain = pipe._inbox.clear  # type: ignore[method-assign]
    elif variant == "nodefer":
        pipe._pacer.may_defer = None
        for ch in getattr(pipe.sink, "channels", []):
            ch._pacer.may_defer = None
    elif variant == "unpaced":
        from chatobs._pacing import unpaced

        pipe._pacer = unpaced()
        for ch in getattr(pipe.sink, "channels", []):
            ch._pacer = unpaced()
    asyncio.run(_run(40))  # warm up: imports, the masking worker, caches
    rt.pipeline.force_flush(60_000)
    time.sleep(0.5)
    cpu0 = time.process_time()
    out = asyncio.run(_run(turns))
    rt.pipeline.force_flush(60_000)
    out["cpu_s"] = [time.process_time() - cpu0]  # this process's threads; the masking worker is not counted
    print(json.dumps(out))
    chatobs.shutdown()


def _q(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) >= 100 else max(values)


def measure(variant: str, turns: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + str(REPO), "CHATOBS_LOCAL_DB": f"{tmp}/t.db"}
        env = {k: v for k, v in env.items() if not k.startswith(("CHATOBS_ENABLED", "OTEL_"))}
        proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_gil", "--child", variant, "--turns", str(turns)],
                              env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    late = [x * 1000 for x in data["late"]]
    lat = [x * 1000 for x in data["lat"]]
    return {
        "late_p50": statistics.median(late), "late_p99": _q(late, 99), "late_max": max(late),
        "late_mean": statistics.fmean(late),
        "cpu_ms": data["cpu_s"][0] * 1000 / len(lat),
        "turn_p50": statistics.median(lat), "turn_p99": _q(lat, 99), "turn_max": max(lat),
    }


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=int(os.environ.get("BENCH_TURNS", "150")))
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")))
    parser.add_argument("--child")
    parser.add_argument("--variants", default="no-pipeline,chatobs", help="also: unpaced (chatobs without pacing)")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.turns)
        return {}
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in args.variants.split(",")}
    for _ in range(args.rounds):
        for variant in runs:
            runs[variant].append(measure(variant, args.turns))
    med = {v: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for v, rs in runs.items()}
    names = list(med)
    base = med[names[0]]
    print(f"{args.turns} turns x {args.rounds} rounds, medians (ms); timer lateness = how late a 1 ms asyncio timer "
          f"fires; (x) = ratio to {names[0]}")
    print(f"{'figure':<12}" + "".join(f"{n:>24}" for n in names))
    for key in ("late_mean", "late_p50", "late_p99", "late_max", "turn_p50", "turn_p99", "turn_max", "cpu_ms"):
        cells = "".join(f"{med[n][key]:>14.3f} ({med[n][key] / base[key] if base[key] else float('nan'):5.2f}x)" for n in names)
        print(f"{key:<12}{cells}")
    for variant, rs in runs.items():
        print(f"{variant:>12} per round late_p99:", " ".join(f"{r['late_p99']:.2f}" for r in rs), " turn_p99:", " ".join(f"{r['turn_p99']:.1f}" for r in rs))
    return med


if __name__ == "__main__":
    main()
