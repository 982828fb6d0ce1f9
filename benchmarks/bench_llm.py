"""Added CPU per LLM call: the real OpenAI / Anthropic SDKs against the fake provider server, instrumented by chatobs
vs. not instrumented, in the same run (interleaved rounds, median).

The fake server runs in a child process, so the CPU measured (``time.process_time``, all threads of this process) is
the client side only: the SDK's own work plus chatobs's (span, attributes, stream accumulation, and the background
pipeline, flushed inside the measured window). Also reports the bare recorder (``chatobs.llm_call``) per call.
Calls alternate uninstrumented / instrumented one by one (the patch is a class attribute swap), so load on a shared
machine hits both alike. Keep it short: ``BENCH_LLM_N`` x 3 calls per variant (default 20).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import cpu_per_op, table

REPO = Path(__file__).resolve().parent.parent
N = int(os.environ.get("BENCH_LLM_N", "20"))
ROUNDS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "demo_app.fake_llm", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("fake LLM server did not start")


def _workloads(base: str) -> dict[str, Callable[[], Any]]:
    import anthropic
    import openai

    oai = openai.OpenAI(base_url=base + "/v1", api_key="bench", max_retries=0)
    claude = anthropic.Anthropic(base_url=base, api_key="bench", max_retries=0)
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France? Answer in one short sentence please."},
    ]

    def openai_chat() -> Any:
        return oai.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0.2)

    def openai_stream() -> Any:
        return sum(1 for _ in oai.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True))

    def anthropic_messages() -> Any:
        return claude.messages.create(
            model="claude-haiku-4-5", max_tokens=100, system="Be brief.", messages=messages[1:]
        )

    return {"openai chat": openai_chat, "openai chat stream": openai_stream, "anthropic messages": anthropic_messages}


def alternate(
    fn: Callable[[], Any], set_instrumented: Callable[[bool], None], runtime: Any, n: int
) -> dict[str, float]:
    """CPU per call of ``fn`` uninstrumented ("bare") and instrumented ("chatobs", including the background pipeline).

    Alternates call by call (patching is a class attribute swap), so load drift on a shared machine hits both variants
    alike; main-thread CPU per call, plus the background pipeline's CPU for the chatobs calls."""
    cpu = {"bare": 0.0, "chatobs": 0.0}
    background = 0.0
    for _ in range(ROUNDS):
        for _ in range(n):
            for variant in ("bare", "chatobs"):
                set_instrumented(variant == "chatobs")
                start = time.thread_time()
                fn()
                cpu[variant] += time.thread_time() - start
        start = time.process_time()
        runtime.force_flush(30)
        background += time.process_time() - start
    calls = n * ROUNDS
    return {
        "bare": cpu["bare"] / calls,
        "chatobs": (cpu["chatobs"] + background) / calls,
        "background": background / calls,
    }


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> dict[str, Any]:
    import chatobs
    from chatobs.recording.instrument import anthropic as anthropic_adapter
    from chatobs.recording.instrument import openai as openai_adapter
    from chatobs.recording.instrument.http import httpx_client

    proc, base = _start_server()
    results: dict[str, Any] = {}
    try:
        runtime = chatobs.init(exporters="none", capture_content=True)
        assert runtime is not None
        settings = runtime.settings
        work = _workloads(base)
        for fn in work.values():  # warm up: imports, connections, genai-prices data (background)
            fn()
            fn()
        runtime.force_flush(30)

        def set_instrumented(on: bool) -> None:
            # the httpx layer too: without the SDK adapters it would record the SDKs' requests itself
            if on:
                openai_adapter.instrument(settings)
                anthropic_adapter.instrument(settings)
                httpx_client.instrument(settings)
            else:
                openai_adapter.uninstrument()
                anthropic_adapter.uninstrument()
                httpx_client.uninstrument()

        def measure(fn: Callable[[], Any]) -> dict[str, float]:
            return alternate(fn, set_instrumented, runtime, N)

        rows = []
        for name, fn in work.items():
            m = measure(fn)
            added_ms = (m["chatobs"] - m["bare"]) * 1000
            key = name.replace(" ", "_")
            results[f"{key}_bare_cpu_ms"] = round(m["bare"] * 1000, 3)
            results[f"{key}_chatobs_cpu_ms"] = round(m["chatobs"] * 1000, 3)
            results[f"{key}_added_cpu_ms"] = round(added_ms, 3)
            results[f"{key}_background_cpu_ms"] = round(m["background"] * 1000, 3)
            results[f"{key}_ratio"] = round(m["chatobs"] / m["bare"], 3)
            rows.append(
                (
                    name,
                    f"{m['bare'] * 1000:.2f} ms",
                    f"{m['chatobs'] * 1000:.2f} ms",
                    f"{added_ms:+.3f} ms",
                    f"{m['background'] * 1000:.3f} ms",
                    f"{m['chatobs'] / m['bare']:.2f}x",
                )
            )
        set_instrumented(True)

        def recorder() -> None:
            with chatobs.llm_call(
                provider="openai", model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], temperature=0.2
            ) as call:
                call.record(output="hello", usage={"input_tokens": 1, "output_tokens": 1}, finish_reason="stop")

        rec = cpu_per_op(recorder, 2000)
        runtime.force_flush(30)
        results["llm_call_recorder_request_path_us"] = round(rec * 1e6, 1)
        print(f"fake server in a child process; {N * ROUNDS} calls per variant, alternating call by call; CPU per call")
        table(rows, ("LLM call", "uninstrumented", "with chatobs", "added", "of which background", "ratio"))
        print(f"chatobs.llm_call recorder alone (request path, no I/O): {rec * 1e6:.0f} us per call")
    finally:
        chatobs.shutdown()
        stop(proc)
    return results


if __name__ == "__main__":
    main()
