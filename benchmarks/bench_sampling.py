"""Request-path cost of a kept vs a dropped chat turn (``python -m benchmarks.bench_sampling [turns]``).

One turn = what the middleware and the LLM recorder do on the request path: open the chat scope, a SERVER span with
the request attributes, two LLM calls (chatobs's ``Generation``) resending an 8-message history, with content capture
on (one JSON snapshot of the history when the trace is recorded in full, normalised by the pipeline's content stage;
skipped for light spans). "kept, normalised on the request path" is how the recorder worked before the content stage
(normalise + encode on the request thread), measured in the same run for comparison. Measured as CPU time of the request thread
(``time.thread_time``; the background pipeline runs on its own thread after each round and is reported separately),
best of a few rounds, against a bare baseline in the same run: the same code with OpenTelemetry's no-op tracer and no scope.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import trace

ROUNDS = 5
N = int(os.environ.get("BENCH_N", "1000"))

_ROOT_ATTRS = {
    "chatobs.request": True,
    "chatobs.route": "/api/chat",
    "http.request.method": "POST",
    "url.path": "/api/chat",
    "url.scheme": "http",
    "server.address": "127.0.0.1",
}
_LLM_ATTRS = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 120,
    "gen_ai.usage.output_tokens": 40,
}


_MESSAGES = [
    {"role": "system", "content": "You are the support assistant of ACME. Be brief."},
    *[{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}: " + "words " * 30} for i in range(8)],
]


_legacy = False  # normalise on the request path, as before the content stage


def _turn(tracer: trace.Tracer, scope: Callable[..., Any], conv: str) -> None:
    """What the middleware and the LLM recorder do for a turn of 2 LLM calls resending an 8-message history."""
    from chatobs.recording.instrument.generation import Generation, capture_enabled
    from chatobs.recording.instrument.messages import normalize_messages
    from chatobs.recording.light_spans import start_span

    with scope(conversation_id=conv):
        root = start_span("POST /api/chat", kind=trace.SpanKind.SERVER, attributes=_ROOT_ATTRS, tracer=tracer)
        with trace.use_span(root, end_on_exit=True):
            for _ in range(2):
                capture = capture_enabled()
                if _legacy:
                    gen = Generation(
                        "openai",
                        "gpt-4o-mini",
                        capture=capture,
                        input_messages=normalize_messages(_MESSAGES) if capture else None,
                    )
                else:  # what the OpenAI adapter does: the request body's messages and tools, as sent
                    gen = Generation(
                        "openai",
                        "gpt-4o-mini",
                        capture=capture,
                        raw=("openai.chat", (_MESSAGES, None)) if capture else None,
                    )
                gen.record(
                    output_messages=[{"role": "assistant", "parts": [{"type": "text", "content": "sure " * 20}]}]
                    if gen.capture
                    else None,
                    usage={"prompt_tokens": 120, "completion_tokens": 40},
                    response_model="gpt-4o-mini",
                )
                gen.end()
            root.set_attribute("http.response.status_code", 200)


def _bare_turn(tracer: trace.Tracer, scope: Callable[..., Any], conv: str) -> None:
    with tracer.start_as_current_span("POST /api/chat", kind=trace.SpanKind.SERVER, attributes=_ROOT_ATTRS):
        for _ in range(2):
            with tracer.start_as_current_span("chat gpt-4o-mini", attributes=_LLM_ATTRS):
                pass


def _round(
    tracer: trace.Tracer, scope: Callable[..., Any], turns: int, tag: str, flush: Callable[[], Any]
) -> tuple[float, float]:
    """(request-path µs per turn, background µs per turn) of one round."""
    convs = [f"bench-{tag}-{i}" for i in range(turns)]
    flush()
    p0, t0 = time.process_time(), time.thread_time()
    turn = _bare_turn if isinstance(tracer, trace.NoOpTracer) else _turn
    for conv in convs:
        turn(tracer, scope, conv)
    t1 = time.thread_time()
    flush()
    p1, t2 = time.process_time(), time.thread_time()
    return (t1 - t0) / turns * 1e6, max(0.0, (p1 - p0) - (t2 - t0)) / turns * 1e6


MODES: dict[str, dict[str, Any] | None] = {
    "bare (no-op tracer, no scope)": None,
    "kept (rate 1)": dict(sample_rate=1.0),
    "kept, normalised on the request path (before)": dict(sample_rate=1.0, _legacy=True),
    "dropped, light spans (rate 0; the default)": dict(sample_rate=0.0),
    "dropped, recorded in full (CHATOBS_RECORD_UNSAMPLED=full)": dict(sample_rate=0.0, record_unsampled="full"),
    "dropped, not recorded (rate 0, metrics+rules off)": dict(sample_rate=0.0, metrics=False, keep_errors=False),
    "mixed (rate 0.25)": dict(sample_rate=0.25),
}


def main(turns: int = N) -> dict[str, dict[str, float]]:
    global _legacy
    import chatobs
    from chatobs.runtime import wiring as runtime

    @contextlib.contextmanager
    def no_scope(**_: Any) -> Any:
        yield

    samples: dict[str, list[tuple[float, float]]] = {label: [] for label in MODES}
    # Modes interleaved round by round, so load drift on a shared machine hits all of them alike; best round kept.
    for r in range(ROUNDS):
        for label, settings in MODES.items():
            if settings is None:
                samples[label].append(_round(trace.NoOpTracer(), no_scope, turns, f"{r}", lambda: None))
                continue
            # The pipeline runs only at the flush after the round: its thread does not disturb the request figure.
            settings = dict(settings)
            _legacy = bool(settings.pop("_legacy", False))
            rt = chatobs.init(
                exporters="none",
                max_queue_size=200_000,
                export_batch_size=100_000,
                export_interval_ms=600_000,
                **settings,
            )
            assert rt is not None
            samples[label].append(
                _round(runtime.get_tracer(), chatobs.scope, turns, f"{r}", lambda: rt.force_flush(30))
            )
            runtime.shutdown()
    results = {
        label: {"request_us": min(x[0] for x in rows), "background_us": min(x[1] for x in rows)}
        for label, rows in samples.items()
    }
    bare = results["bare (no-op tracer, no scope)"]["request_us"]

    print(f"sampling: CPU per chat turn (scope + request span + 2 LLM spans), {turns} turns, best of {ROUNDS}")
    print(f"{'mode':58} {'request µs':>11} {'+ vs bare':>10} {'x bare':>7} {'background µs':>14}")
    for label, r in results.items():
        print(
            f"{label:58} {r['request_us']:11.1f} {r['request_us'] - bare:10.1f} {r['request_us'] / bare:7.1f} {r['background_us']:14.1f}"
        )
    return results


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else N)
