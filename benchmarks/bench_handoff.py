"""App-process CPU of handing spans to the agent (target: at most ~20 us per span).

Measured with process time (every thread of the app process: the request path's append and the sender thread's
encoding and socket writes), against a real agent in its own process, interleaved with the same spans ended into a
provider without chatobs. Also: the encoding of one record with marshal (used) and pickle (the alternative).
"""

from __future__ import annotations

import json
import marshal
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import table

REPO = Path(__file__).resolve().parent.parent
N = 5000
ROUNDS = 5


def _spans(provider: Any, n: int) -> None:
    tracer = provider.get_tracer("bench")
    content = json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": "What is the weather in Paris? " * 20}]}]
    )
    for i in range(n):
        with tracer.start_as_current_span("chat gpt-4o-mini") as s:
            s.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.request.temperature": 0.2,
                    "gen_ai.request.max_tokens": 256,
                    "gen_ai.usage.input_tokens": 120,
                    "gen_ai.usage.output_tokens": 30,
                    "gen_ai.conversation.id": f"conv-{i % 50}",
                    "user.id": "user-1",
                    "gen_ai.input.messages": content,
                    "gen_ai.response.finish_reasons": ("stop",),
                }
            )


def _cpu(provider: Any, flush: Any) -> float:
    start = time.process_time()
    _spans(provider, N)
    flush()
    return (time.process_time() - start) / N


def main() -> dict[str, Any]:
    sys.path[:0] = [str(REPO / "src")]
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from chatobs.config import load_settings
    from chatobs.core import launch, sockdir, wire
    from chatobs.recording.handoff import HandoffProcessor

    directory = Path(tempfile.mkdtemp(prefix="co-bench-", dir="/tmp"))
    os.environ.update({"CHATOBS_EXPORTERS": "none", "CHATOBS_PII": "off", "CHATOBS_METRICS": "false"})
    settings = load_settings()
    path = sockdir.socket_path(directory, sockdir.settings_key(settings))
    try:
        assert launch.ensure_agent(path, dict(os.environ), idle_exit_s=30), "the agent did not start"
        resource = Resource({"service.name": "bench"})
        bare = TracerProvider(resource=resource)
        handed = TracerProvider(resource=resource)
        handoff = HandoffProcessor(path, resource, queue_size=N * 2)
        handed.add_span_processor(handoff)
        assert handoff.force_flush(10_000), "not connected"
        samples: dict[str, list[float]] = {"no chatobs": [], "hand-off to the agent": []}
        for _ in range(ROUNDS):
            samples["no chatobs"].append(_cpu(bare, lambda: None))
            samples["hand-off to the agent"].append(_cpu(handed, lambda: handoff.force_flush(30_000)))
        med = {k: statistics.median(v) * 1e6 for k, v in samples.items()}
        handoff.shutdown(5)
        # One record, encoded both ways (the wire uses marshal: primitives only, fastest in the stdlib).
        span_holder: list[Any] = []

        from opentelemetry.sdk.trace import SpanProcessor

        class Keep(SpanProcessor):
            def on_end(self, span: Any) -> None:
                span_holder.append(span)

        keep = TracerProvider(resource=resource)
        keep.add_span_processor(Keep())
        _spans(keep, 1)
        rec = wire.span_record(span_holder[0], resource)
        enc = {}
        for name, dumps in (
            ("marshal", marshal.dumps),
            ("pickle", lambda r: pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL)),
        ):
            start = time.perf_counter()
            for _ in range(20000):
                dumps(rec)
            enc[name] = (time.perf_counter() - start) / 20000 * 1e6
        build_start = time.perf_counter()
        for _ in range(20000):
            wire.span_record(span_holder[0], resource)
        build_us = (time.perf_counter() - build_start) / 20000 * 1e6
    finally:
        from tests.conftest import stop_agents

        stop_agents(str(directory))
        shutil.rmtree(directory, ignore_errors=True)
    cost = med["hand-off to the agent"] - med["no chatobs"]
    table([(k, f"{v:.1f}") for k, v in med.items()], ("variant (app process, all threads)", "CPU us/span"))
    print(f"\nhand-off cost: {cost:.1f} us of app-process CPU per span (target <= 20)")
    print(f"one record: build {build_us:.2f} us; encode marshal {enc['marshal']:.2f} us, pickle {enc['pickle']:.2f} us")
    return {"cpu_us_per_span": med, "handoff_us_per_span": cost, "record_build_us": build_us, "encode_us": enc}


if __name__ == "__main__":
    main()
