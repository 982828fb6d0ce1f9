"""Helpers shared by the sampling tests: one chat turn made of real spans, and keys at known hash positions."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import StatusCode

import chatobs
from chatobs.core import semconv
from chatobs.recording.light_spans import start_span
from chatobs.runtime.wiring import get_tracer


def position(key: str) -> float:
    """The documented formula (docs/sampling.md), computed independently of chatobs's code."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def key_between(lo: float, hi: float, prefix: str = "conv") -> str:
    """A conversation ID whose position lies in [lo, hi)."""
    i = 0
    while True:
        key = f"{prefix}-{i}"
        if lo <= position(key) < hi:
            return key
        i += 1


@contextmanager
def remote_parent(sampled: bool) -> Iterator[None]:
    """Act as a request that arrived with a ``traceparent`` header (the middleware extracts it the same way)."""
    flags = "01" if sampled else "00"
    ctx = propagate.extract({"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-{flags}"})
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


_cached: list[trace.Tracer] = []


def _tracer() -> trace.Tracer:
    # get_tracer() builds a new Tracer each call (slow); chatobs's provider is set once per process, so reuse one.
    if not _cached:
        if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            _cached.append(get_tracer())
        return get_tracer()
    return _cached[0]


def turn(
    conversation_id: str | None,
    *,
    error: bool = False,
    cost_usd: float | None = None,
    took_s: float | None = None,
    children: int = 1,
) -> trace.Span:
    """One chat turn as the middleware makes it: a request span with ``chatobs.request=True`` inside the scope, with
    LLM child spans. Returns the request span (to inspect the request-path decision)."""
    tracer = _tracer()
    ids = {"conversation_id": conversation_id} if conversation_id else {}
    with chatobs.scope(**ids):
        start = time.time_ns() - int(took_s * 1e9) if took_s else None
        # Started the way chatobs's middleware and recorders start theirs: light spans when the trace is dropped.
        root = start_span("POST /chat", attributes={semconv.CHAT_REQUEST: True}, start_time=start, tracer=tracer)
        with trace.use_span(root, end_on_exit=False):
            for i in range(children):
                llm_span = start_span(
                    "chat gpt-4o-mini", attributes={semconv.GEN_AI_OPERATION_NAME: "chat"}, tracer=tracer
                )
                with trace.use_span(llm_span, end_on_exit=True) as llm:
                    if cost_usd is not None and i == 0:
                        # The cost stage (not on main yet) computes this attribute from tokens; set it directly.
                        llm.set_attribute(semconv.COST_USD, cost_usd)
                    if error and i == children - 1:
                        llm.set_status(StatusCode.ERROR, "provider said 500")
        root.end()
    return root
