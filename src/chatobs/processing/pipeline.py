"""The two span processors chatobs adds to the tracer provider, and the background pipeline behind them.

Request path (cheap): ``ScopeProcessor.on_start`` stamps identity attributes; ``PipelineProcessor.on_end`` appends
the finished span to a bounded inbox (full: drop and count). Everything else runs on one background thread, in
batches: the stages in order (content -> cost -> metrics/alerts -> sampling -> redaction), then the dispatcher hands the result
to each exporter's own bounded channel.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from ..core.chat_scope import identity_attributes, scope_for_span
from ..core.fork import restart_after_fork
from ..core.guard import guard, log_limited
from ..core.stats import STATS, PipelineStats

logger = logging.getLogger("chatobs")


@runtime_checkable
class Stage(Protocol):
    """One step of the background pipeline. Receives a batch of finished spans and returns the spans to pass on
    (possibly changed copies, fewer, or spans held back earlier). Runs on the pipeline thread only."""

    name: str

    def process(self, spans: list[ReadableSpan]) -> list[ReadableSpan]: ...

    def flush(self) -> list[ReadableSpan]:
        """Spans held back (e.g. by tail sampling) to release at shutdown."""
        ...

    def shutdown(self) -> None: ...


class Sink(Protocol):
    def dispatch(self, spans: Sequence[ReadableSpan]) -> None: ...
    def flush(self, deadline: float) -> bool: ...
    def shutdown(self, deadline: float) -> None: ...


class ScopeProcessor(SpanProcessor):
    """Puts the request's identity on every span started inside a chat scope, whoever creates the span."""

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        try:
            s = scope_for_span(parent_context)
            if s is None:
                return
            attrs = identity_attributes(s)
            if attrs:
                span.set_attributes(attrs)
        except Exception as exc:  # noqa: BLE001
            log_limited("scope-processor", "chatobs: could not stamp identity on a span: %s", exc)

    def on_end(self, span: ReadableSpan) -> None:
        pass


class PipelineProcessor(SpanProcessor):
    """Hands finished spans to the background pipeline. ``on_end`` is an append to a bounded deque."""

    def __init__(
        self,
        stages: Sequence[Stage],
        sink: Sink,
        *,
        max_queue_size: int = 8192,
        batch_size: int = 256,
        interval_s: float = 1.0,
        stats: PipelineStats = STATS,
    ) -> None:
        self.stages = list(stages)
        self.sink = sink
        self._max = max_queue_size
        self._batch = batch_size
        self._interval = interval_s
        self.stats = stats
        self._inbox: deque[ReadableSpan] = deque()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._busy = False
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._start()
        restart_after_fork(self)

    # --- request path ---------------------------------------------------------------------------------------------
    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        inbox = self._inbox
        if len(inbox) >= self._max or self._stopped:
            self.stats.drop("pipeline", "queue_full" if not self._stopped else "shutdown")
            return
        inbox.append(span)
        self.stats.received += 1
        if len(inbox) >= self._batch:
            self._wake.set()

    # --- background -----------------------------------------------------------------------------------------------
    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="chatobs-pipeline", daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        # The child has the parent's queue but not its thread: start afresh (gunicorn --preload workers).
        if self._stopped:
            return
        self._inbox = deque()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._busy = False
        self._stopped = False
        self._start()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._drain()

    def _drain(self) -> None:
        with self._idle:
            self._busy = True
        try:
            while self._inbox:
                batch: list[ReadableSpan] = []
                try:
                    while len(batch) < self._batch:
                        batch.append(self._inbox.popleft())
                except IndexError:
                    pass
                self._process(batch)
        finally:
            with self._idle:
                self._busy = False
                self._idle.notify_all()

    def _process(self, spans: list[ReadableSpan]) -> None:
        for stage in self.stages:
            if not spans:
                break
            before = spans
            with guard(f"pipeline stage {stage.name}"):
                spans = stage.process(spans)
                continue
            # A failing stage must not lose the batch, but must not let it skip masking either: see Stage docs.
            spans = before if getattr(stage, "pass_on_error", False) else []
            if not spans:
                self.stats.drop("pipeline", f"stage_error:{stage.name}", len(before))
        if spans:
            with guard("dispatch"):
                self.sink.dispatch(spans)

    def _wait_idle(self, deadline: float) -> bool:
        self._wake.set()
        with self._idle:
            while self._inbox or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.05))
                self._wake.set()
        return True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        ok = self._wait_idle(deadline)
        return self.sink.flush(deadline) and ok

    def shutdown(self, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        self._wait_idle(deadline)
        self._stopped = True
        self._wake.set()
        held: list[ReadableSpan] = []
        for i, stage in enumerate(self.stages):
            with guard(f"pipeline stage {stage.name} flush"):
                flush = getattr(stage, "flush", None)
                released = list(flush() or []) if flush else []
                # Released spans still go through the stages after the one that held them (e.g. redaction).
                for later in self.stages[i + 1 :]:
                    released = later.process(released) if released else released
                held.extend(released)
        if held:
            with guard("dispatch"):
                self.sink.dispatch(held)
        self.sink.shutdown(deadline)
        for stage in self.stages:
            with guard(f"pipeline stage {stage.name} shutdown"):
                stage.shutdown()
