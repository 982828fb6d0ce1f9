"""How long chatobs's background threads make the app's event loop wait for the GIL they share.

    python -m benchmarks.bench_gil [--turns 40] [--cycles 6] [--variants no-pipeline,chatobs,switch1ms]

An asyncio app in the main thread runs chat turns one after another: each turn creates the spans a real turn does
(the request span, two LLM calls with the growing conversation, system prompt and tool definitions as content, an
MCP tool call, a few framework spans) and spends ~20 ms of Python CPU, with a GIL-releasing system call every ~0.1 ms
(as socket I/O does), awaiting seven 1 ms timers in between (the app waiting for its provider and tools).

Figures per turn: ``gil`` = wall time the loop thread was neither on a CPU, nor queued for one (read from
/proc/self/task/<tid>/schedstat, so other processes' load on this shared machine is taken out), nor in its own
timers -- i.e. waiting for the GIL; ``late`` = how late each 1 ms timer fired; ``turn`` = turn latency; ``cpu`` =
CPU of the whole process per turn (the masking worker process not included).

Variants, switched at run time in one process and alternated segment by segment (``--cycles`` of ``--turns``), so
the machine's changing load hits all of them alike:
- ``no-pipeline``: the same request path, but the pipeline thread discards what it receives (no stages, no export):
  the baseline;
- ``chatobs``: chatobs with its defaults (content capture, PII masking in its worker process, metrics, local store);
- ``switch1ms``: the same with ``sys.setswitchinterval(0.001)`` (process-wide: an app's decision, not chatobs's);
- ``often``: the pipeline woken every 100 ms instead of every export interval (1 s).
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
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SYSTEM = "You are a helpful assistant for ACME Corp. Use the calculator tool for arithmetic. Be brief. " * 3
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "calculate",
            "description": "Evaluate an arithmetic expression exactly.",
            "parameters": {
                "type": "object",
                "properties": {"expression": {"type": "string"}},
                "required": ["expression"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_docs",
            "description": "Search the product documentation.",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
        },
    },
]


def _busy(ms: float) -> None:
    """App work: Python, with a system call every ~0.1 ms that releases the GIL for a moment, as socket reads and
    writes do (a thread waiting for the GIL takes it there, and the app must wait to get it back)."""
    end = time.perf_counter() + ms / 1000
    x = 0
    while time.perf_counter() < end:
        for i in range(400):
            x += i * i
        os.stat(".")


async def _wait(ms: float, late: list[float]) -> None:
    started = time.perf_counter()
    await asyncio.sleep(ms / 1000)
    late.append(time.perf_counter() - started - ms / 1000)


async def _turn(i: int, history: list[dict[str, Any]], late: list[float]) -> None:
    from opentelemetry.trace import SpanKind

    import chatobs
    from chatobs.runtime.wiring import get_tracer

    tracer = get_tracer()
    user = f"message {i}: calculate {i}*7 please, and send the result to jane.doe{i}@example.com or call +1 415 555 {i % 10000:04d}"
    with (
        chatobs.scope(conversation_id=f"conv-{i // 5}", user_id="bench-user"),
        tracer.start_as_current_span(
            "POST /api/chat", kind=SpanKind.SERVER, attributes={"chatobs.request": True, "http.route": "/api/chat"}
        ),
    ):
        for name in ("http receive", "http receive"):
            tracer.start_span(name).end()
        _busy(3)
        history.append({"role": "user", "content": user})
        msgs = [{"role": "system", "content": SYSTEM}, *history]
        async with chatobs.allm_call("openai", "gpt-4o-mini", msgs, tools=TOOLS, temperature=0.2) as call:
            for _ in range(3):
                await _wait(1, late)
                _busy(2)
            call.record(
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": f"c{i}",
                            "type": "function",
                            "function": {"name": "calculate", "arguments": json.dumps({"expression": f"{i}*7"})},
                        }
                    ],
                },
                usage={"input_tokens": 300 + 40 * len(history), "output_tokens": 20},
            )
        with tracer.start_as_current_span(
            "tools/call calculate",
            kind=SpanKind.CLIENT,
            attributes={"mcp.method.name": "tools/call", "gen_ai.tool.name": "calculate"},
        ):
            await _wait(1, late)
            _busy(2)
        history.append(
            {
                "role": "assistant",
                "content": f"{i}*7 = {i * 7}. I will mail it to jane.doe{i}@example.com. "
                + "Here is how the calculation works, step by step. " * 8,
            }
        )
        msgs = [{"role": "system", "content": SYSTEM}, *history]
        async with chatobs.allm_call("openai", "gpt-4o-mini", msgs, tools=TOOLS, temperature=0.2) as call:
            for _ in range(3):
                await _wait(1, late)
                _busy(2)
            call.record(history[-1]["content"], usage={"input_tokens": 400 + 40 * len(history), "output_tokens": 30})
        tracer.start_span("http send").end()
        _busy(3)
    if len(history) >= 20:  # a new conversation every 10 turns
        history.clear()


TIMERS_PER_TURN = 7


def _schedstat() -> tuple[float, float]:
    """This thread's CPU time (exact) and time spent runnable but waiting for a CPU (the kernel's run_delay,
    updated at context switches), in seconds."""
    try:
        queued = int(Path(f"/proc/self/task/{threading.get_native_id()}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        queued = 0.0
    return time.thread_time(), queued


async def _run(turns: int) -> dict[str, list[float]]:
    late: list[float] = []
    lat: list[float] = []
    blocked: list[float] = []
    history: list[dict[str, Any]] = []
    for i in range(turns):
        started = time.perf_counter()
        cpu0, queued0 = _schedstat()
        await _turn(i, history, late)
        elapsed = time.perf_counter() - started
        cpu1, queued1 = _schedstat()
        lat.append(elapsed)
        # Wall time neither on a CPU, nor waiting for one (other processes' load), nor in the turn's own timers:
        # what is left is the loop waiting for the GIL.
        blocked.append(elapsed - (cpu1 - cpu0) - (queued1 - queued0) - TIMERS_PER_TURN / 1000)
    return {"late": late, "lat": lat, "blocked": blocked}


def _configure(pipe: Any, variant: str, defaults: dict[str, Any]) -> None:
    pipe.__dict__.pop("_drain", None)
    sys.setswitchinterval(defaults.setdefault("switch", sys.getswitchinterval()))
    pipe._interval = defaults.setdefault("interval", pipe._interval)
    if variant == "no-pipeline":
        pipe._drain = pipe._inbox.clear
    elif variant == "switch1ms":  # the interpreter's switch interval at 1 ms: process-wide, so the app's choice
        sys.setswitchinterval(0.001)
    elif variant == "often":  # the pipeline woken every 100 ms: smaller batches, shorter bursts
        pipe._interval = 0.1
    elif variant != "chatobs":
        raise SystemExit(f"unknown variant {variant!r}")


def child(variants: list[str], turns: int, cycles: int) -> None:
    """All variants in one process, in alternating segments, so the machine's load (shared, noisy) hits all alike."""
    import chatobs
    from chatobs.runtime.wiring import get_runtime

    chatobs.init()
    rt = get_runtime()
    assert rt is not None
    pipe = rt.pipeline
    asyncio.run(_run(40))  # warm up: imports, the masking worker, caches
    pipe.force_flush(60_000)
    defaults: dict[str, Any] = {}
    out: dict[str, dict[str, list[float]]] = {v: {"late": [], "lat": [], "blocked": [], "cpu_s": []} for v in variants}
    for _ in range(cycles):
        for variant in variants:
            _configure(pipe, variant, defaults)
            time.sleep(0.2)
            cpu0 = time.process_time()
            seg = asyncio.run(_run(turns))
            pipe.force_flush(60_000)
            out[variant]["cpu_s"].append((time.process_time() - cpu0) / turns)
            out[variant]["late"] += seg["late"]
            out[variant]["lat"] += seg["lat"]
            out[variant]["blocked"] += seg["blocked"]
    _configure(pipe, "chatobs", defaults)
    print(json.dumps(out))
    chatobs.shutdown()


def _q(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) >= 100 else max(values)


def measure(variants: list[str], turns: int, cycles: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO / "src") + os.pathsep + str(REPO),
            "CHATOBS_LOCAL_DB": f"{tmp}/t.db",
        }
        env = {k: v for k, v in env.items() if not k.startswith(("CHATOBS_ENABLED", "OTEL_"))}
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.bench_gil",
                "--child",
                ",".join(variants),
                "--turns",
                str(turns),
                "--cycles",
                str(cycles),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            cwd=REPO,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    res = {}
    for variant, d in data.items():
        late = [x * 1000 for x in d["late"]]
        lat = [x * 1000 for x in d["lat"]]
        blocked = [x * 1000 for x in d["blocked"]]
        res[variant] = {
            "gil_mean": statistics.fmean(blocked),
            "gil_p50": statistics.median(blocked),
            "gil_p99": _q(blocked, 99),
            "late_mean": statistics.fmean(late),
            "late_p50": statistics.median(late),
            "late_p99": _q(late, 99),
            "late_max": max(late),
            "turn_p50": statistics.median(lat),
            "turn_p99": _q(lat, 99),
            "turn_max": max(lat),
            "cpu_ms": statistics.median(d["cpu_s"]) * 1000,
        }
    return res


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=40, help="turns per segment")
    parser.add_argument("--cycles", type=int, default=6)
    parser.add_argument("--child")
    parser.add_argument(
        "--variants",
        default="no-pipeline,chatobs",
        help="also: switch1ms (sys.setswitchinterval"
        "(0.001)), often (pipeline woken every 100 ms instead of every export interval)",
    )
    args, _ = parser.parse_known_args()  # `python -m benchmarks gil` passes its own arguments through
    if args.child:
        child(args.child.split(","), args.turns, args.cycles)
        return {}
    med = measure(args.variants.split(","), args.turns, args.cycles)
    names = list(med)
    base = med[names[0]]
    print(
        f"{args.cycles} x {args.turns} turns per variant, alternating segments in one process (ms); timer lateness = "
        f"how late a 1 ms asyncio timer fires; gil = per turn, wall time the loop thread was neither on a CPU nor queued for one nor in its timers (waiting for the GIL); (x) = ratio to {names[0]}"
    )
    print(f"{'figure':<12}" + "".join(f"{n:>24}" for n in names))
    for key in (
        "gil_mean",
        "gil_p50",
        "gil_p99",
        "late_mean",
        "late_p50",
        "late_p99",
        "late_max",
        "turn_p50",
        "turn_p99",
        "turn_max",
        "cpu_ms",
    ):
        cells = "".join(
            f"{med[n][key]:>14.3f} ({med[n][key] / base[key] if base[key] else float('nan'):5.2f}x)" for n in names
        )
        print(f"{key:<12}{cells}")
    return med


if __name__ == "__main__":
    main()
