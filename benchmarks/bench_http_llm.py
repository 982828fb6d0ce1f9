"""Added CPU of the plain-HTTP LLM layer: per request that is not an LLM call, and per LLM call, for httpx and requests.

Non-LLM requests go to an in-process ``httpx.MockTransport`` (no sockets, so the few microseconds chatobs adds are not
lost in I/O noise) and, for ``requests``, to the fake server; LLM calls go to the fake provider server in a child
process (``benchmarks.bench_llm``'s), JSON and streamed. Like bench_llm: calls alternate uninstrumented /
instrumented one by one (the patch is a class attribute swap), CPU of this thread per call, plus the background
pipeline's CPU for the instrumented LLM calls. ``BENCH_LLM_N`` x 3 calls per variant (default 20; x50 for the
socket-free non-LLM requests).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.bench_llm import ROUNDS, N, _start_server, alternate, stop
from benchmarks.common import table

CHAT = {
    "model": "gpt-4o-mini",
    "temperature": 0.2,
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France? Answer in one short sentence please."},
    ],
}


def _workloads(base: str) -> dict[str, tuple[Callable[[], Any], int]]:
    import httpx
    import requests

    mock = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200, json={"ok": True})))
    client = httpx.Client(timeout=10)
    session = requests.Session()
    url = base + "/v1/chat/completions"

    def httpx_stream() -> Any:
        with client.stream("POST", url, json={**CHAT, "stream": True, "stream_options": {"include_usage": True}}) as r:
            return sum(1 for _ in r.iter_lines())

    def requests_stream() -> Any:
        with session.post(url, json={**CHAT, "stream": True}, stream=True) as r:
            return sum(1 for _ in r.iter_lines())

    return {
        "httpx non-LLM GET (no I/O)": (lambda: mock.get("http://app.internal/api/items?page=2"), 50),
        "httpx non-LLM POST (no I/O)": (lambda: mock.post("http://app.internal/api/search", json={"q": "x"}), 50),
        "requests non-LLM GET": (lambda: session.get(base + "/"), 1),
        "httpx chat JSON": (lambda: client.post(url, json=CHAT).json(), 1),
        "httpx chat stream": (httpx_stream, 1),
        "requests chat JSON": (lambda: session.post(url, json=CHAT).json(), 1),
        "requests chat stream": (requests_stream, 1),
    }


def main() -> dict[str, Any]:
    import chatobs
    from chatobs.recording.instrument.http import httpx_client, requests_client

    proc, base = _start_server()
    results: dict[str, Any] = {}
    try:
        runtime = chatobs.init(exporters="none", capture_content=True, instrument="httpx,requests")
        assert runtime is not None
        settings = runtime.settings
        work = _workloads(base)
        for fn, _ in work.values():  # warm up: imports, connections, genai-prices data (background)
            fn()
            fn()
        runtime.force_flush(30)

        def set_instrumented(on: bool) -> None:
            for adapter in (httpx_client, requests_client):
                adapter.instrument(settings) if on else adapter.uninstrument()

        rows = []
        for name, (fn, scale) in work.items():
            m = alternate(fn, set_instrumented, runtime, N * scale)
            bare, instrumented, background = m["bare"], m["chatobs"], m["background"]
            key = name.split(" (")[0].replace(" ", "_").replace("-", "_")
            results[f"{key}_bare_cpu_us"] = round(bare * 1e6, 1)
            results[f"{key}_added_cpu_us"] = round((instrumented - bare) * 1e6, 1)
            rows.append(
                (
                    name,
                    f"{bare * 1e6:.0f} us",
                    f"{instrumented * 1e6:.0f} us",
                    f"{(instrumented - bare) * 1e6:+.0f} us",
                    f"{background * 1e6:.0f} us",
                )
            )
        set_instrumented(True)
        import httpx

        from benchmarks.common import cpu_per_op

        request = httpx.Request("POST", "http://app.internal/api/search", json={"q": "x"})
        check = cpu_per_op(lambda: httpx_client._begin(request), 100_000)
        results["non_llm_check_us"] = round(check * 1e6, 2)
        print(f"the test a non-LLM httpx request pays (method + URL path), alone: {check * 1e6:.2f} us")
        print(
            f"fake server in a child process; {N * ROUNDS} calls per variant (x50 without I/O), alternating; CPU per call"
        )
        table(rows, ("request", "uninstrumented", "with chatobs", "added", "of which background"))
    finally:
        chatobs.shutdown()
        stop(proc)
    return results


if __name__ == "__main__":
    main()
