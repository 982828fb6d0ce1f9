"""What the integrations add: ``ThreadPoolExecutor.submit`` with the ``threads`` patch against without it, and one
Gradio queued run's own span and context (``_Turn`` open + close, as ``Queue.process_events`` does it) under a chat
request scope. CPU time per operation, exporters off, interleaved rounds."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

from benchmarks.common import cpu_per_op, interleaved, table

N = int(os.environ.get("BENCH_N", "3000"))


def _submit_cost(pool: ThreadPoolExecutor) -> float:
    return cpu_per_op(lambda: pool.submit(int).result(), N)


def main() -> dict[str, Any]:
    import chatobs
    from chatobs.recording.instrument import threads
    from chatobs.recording.instrument.gradio import _Turn
    from chatobs.recording.middleware.extract import RequestInfo
    from chatobs.recording.middleware.request import RequestSpan
    from chatobs.runtime import wiring as runtime

    chatobs.init(exporters="none", instrument=[])
    pool = ThreadPoolExecutor(max_workers=1)

    def patched() -> float:
        threads.instrument(runtime.settings_or_none())  # type: ignore[arg-type]
        try:
            return _submit_cost(pool)
        finally:
            threads.uninstrument()

    pools = interleaved({"bare": lambda: _submit_cost(pool), "threads": patched})

    # A queued Gradio run under the request that submitted it (the span of queue/join opened as the middleware does).
    request = RequestSpan()
    request.open(
        RequestInfo(method="POST", path="/gradio_api/queue/join", headers={}),
        {},
        settings=runtime.settings_or_none(),
        scheme="http",
        server=None,
        client=None,
        http_version=None,
        query=None,
    )
    from opentelemetry import context as otel_context

    event = SimpleNamespace(_chatobs_context=otel_context.get_current(), session_hash="s-1", username="alice", _id="e1")
    request.close()
    fn = SimpleNamespace(api_name="chat")

    def run() -> None:
        turn = _Turn.open([event], fn)
        assert turn is not None
        turn.close()

    gradio_run = interleaved({"run": lambda: cpu_per_op(run, N)})["run"]
    chatobs.shutdown()
    pool.shutdown()
    rows = [
        (
            "ThreadPoolExecutor.submit + result",
            f"{pools['bare'] * 1e6:.1f}",
            f"{pools['threads'] * 1e6:.1f}",
            f"{(pools['threads'] - pools['bare']) * 1e6:+.1f}",
        ),
        ("Gradio queued run: span + context", "-", f"{gradio_run * 1e6:.1f}", f"{gradio_run * 1e6:+.1f}"),
    ]
    table(rows, ("operation", "bare us", "chatobs us", "added us"))
    return {
        "submit_bare_us": pools["bare"] * 1e6,
        "submit_threads_us": pools["threads"] * 1e6,
        "gradio_run_us": gradio_run * 1e6,
    }


if __name__ == "__main__":
    main()
