"""CPU per MCP tool call: what chatobs's MCP adapter adds on top of the mcp SDK's own spans.

Client and server run in this process over the SDK's in-memory JSON-RPC transport (``Client(server, mode="legacy")``),
so process CPU time covers both sides of a call: the SDK client span, the server span, and chatobs's work on each
(enrichment, identity hand-over, the background pipeline with exporters off). Variants, measured interleaved:

- ``sdk spans, chatobs adapter off``: chatobs running (spans recorded and pipelined), MCP adapter uninstrumented;
- ``chatobs adapter on``: the same plus the adapter (the figure users get);
- ``adapter + tool I/O``: with ``CHATOBS_CAPTURE_TOOL_IO=true`` (arguments/results serialised on the request path).

``no tracing`` (no tracer provider: the SDK's spans are no-ops) is measured once before chatobs starts, as context.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import time
from typing import Any

from benchmarks.common import table

N = int(os.environ.get("BENCH_MCP_N", "60"))
ROUNDS = int(os.environ.get("BENCH_MCP_ROUNDS", "15"))  # many short interleaved samples: robust on a busy machine


async def _cpu_per_call(client: Any, n: int) -> float:
    gc.collect()
    start = time.process_time()
    for i in range(n):
        await client.call_tool("calculator", {"expression": f"{i} * 7 + 1"})
    return (time.process_time() - start) / n


async def _measure() -> dict[str, Any]:
    from mcp import Client

    import chatobs
    from chatobs.recording.instrument import mcp as mcp_adapter
    from chatobs.recording.instrument.mcp._common import STATE
    from chatobs.runtime.wiring import get_runtime
    from demo_app.mcp_server import build_server

    results: dict[str, Any] = {}
    server = build_server()
    async with Client(server, mode="legacy") as client:
        await _cpu_per_call(client, 20)
        results["no_tracing"] = await _cpu_per_call(client, N)

    chatobs.init(exporters="none", capture_tool_io=False)
    runtime = get_runtime()
    assert runtime is not None
    base_settings = runtime.settings
    io_settings = base_settings.model_copy(update={"capture_tool_io": True})

    def configure(variant: str) -> None:
        if variant == "adapter_off":
            mcp_adapter.uninstrument()
            return
        if STATE.settings is None:
            mcp_adapter.instrument(base_settings)
        STATE.settings = io_settings if variant == "adapter_tool_io" else base_settings

    samples: dict[str, list[float]] = {"adapter_off": [], "adapter_on": [], "adapter_tool_io": []}
    server = build_server()
    with chatobs.scope(conversation_id="bench-conv", user_id="bench-user"):
        # One connection for all variants: the adapter's hooks are class-level and the server middleware is
        # (re)installed per request, so switching the adapter off and on between samples takes effect at once.
        async with Client(server, mode="legacy") as client:
            await _cpu_per_call(client, 20)
            for _ in range(ROUNDS):
                for variant in samples:
                    configure(variant)
                    await _cpu_per_call(client, 5)
                    samples[variant].append(await _cpu_per_call(client, N))
                    runtime.force_flush(10)
    configure("adapter_on")
    chatobs.shutdown()
    results.update({k: statistics.median(v) for k, v in samples.items()})
    return results


def main() -> dict[str, Any]:
    m = asyncio.run(_measure())
    base = m["adapter_off"]
    rows = [
        ("no tracing (SDK spans are no-ops)", f"{m['no_tracing'] * 1e6:.0f} us", "", ""),
        ("SDK spans recorded, adapter off", f"{base * 1e6:.0f} us", "baseline", "1.00x"),
        (
            "chatobs MCP adapter on",
            f"{m['adapter_on'] * 1e6:.0f} us",
            f"+{(m['adapter_on'] - base) * 1e3:.3f} ms",
            f"{m['adapter_on'] / base:.2f}x",
        ),
        (
            "adapter on + tool I/O captured",
            f"{m['adapter_tool_io'] * 1e6:.0f} us",
            f"+{(m['adapter_tool_io'] - base) * 1e3:.3f} ms",
            f"{m['adapter_tool_io'] / base:.2f}x",
        ),
    ]
    print(f"CPU per tool call, client + server in one process, {N} calls x {ROUNDS} rounds (median)")
    table(rows, ("variant", "CPU/call", "added", "ratio"))
    return {
        "calls_per_sample": N,
        "cpu_per_call_no_tracing_us": round(m["no_tracing"] * 1e6, 1),
        "cpu_per_call_sdk_spans_us": round(base * 1e6, 1),
        "cpu_per_call_adapter_us": round(m["adapter_on"] * 1e6, 1),
        "cpu_per_call_adapter_tool_io_us": round(m["adapter_tool_io"] * 1e6, 1),
        "adapter_added_cpu_ms": round((m["adapter_on"] - base) * 1e3, 4),
        "adapter_tool_io_added_cpu_ms": round((m["adapter_tool_io"] - base) * 1e3, 4),
        "adapter_ratio": round(m["adapter_on"] / base, 3),
    }


if __name__ == "__main__":
    main()
